//! The monitor (Go's `sysmon`): survive blocking code, and print the scheduler trace.
//!
//! One thread per runtime wakes every [`MONITOR_MIN_TICK`] while some worker is inside a task
//! poll it already saw at the last tick, backing off to [`MONITOR_BUSY_TICK`] while the
//! workers' polls are short and to [`MONITOR_MAX_TICK`] while all are idle; it never spins. Each worker
//! thread (M) publishes a poll counter, a count of the tasks it queued on its P, and an
//! in-poll flag. When the counters of an M that is inside a poll have not moved for the
//! *blocking threshold* (default 10 ms) and its P has work waiting (local queue, LIFO
//! slot, or a non-empty injector), the
//! monitor takes the P out of the M's slot and starts a fresh thread to run it — the
//! whole P: local queue, LIFO slot and parker. The stuck thread finishes its poll
//! without a P (wake-ups it causes go through the injector) and then exits. So a task
//! that calls `std::thread::sleep`, a blocking syscall or a long busy loop delays only
//! itself, as a goroutine in a syscall does in Go.
//!
//! A poll whose thread the kernel reports asleep (state `S` or `D` in
//! `/proc/self/task/TID/stat`: a blocking syscall, `std::thread::sleep`, a contended
//! lock) is handed off after [`SYSCALL_THRESHOLD`] (1 ms) instead of the full
//! threshold, which is Go's rule for Ms in syscalls; only a thread that is computing
//! keeps its P for the whole threshold. A poll is known to be long only when two ticks
//! see it, so while the tick has backed off to [`MONITOR_BUSY_TICK`] a poll asleep for less
//! than about one to two `MONITOR_BUSY_TICK`s ends before it is noticed (Go's sysmon, backed
//! off to 10 ms, misses more); once one is noticed the tick is back at [`MONITOR_MIN_TICK`].
//!
//! Threads stay bounded: a handed-off M exits when its poll returns, so the number of
//! worker threads is the number of Ps plus the number of polls currently stuck.
//!
//! # The reactor is never unwatched
//!
//! A task waiting on a timer or a socket is in no queue: it becomes runnable only when
//! some thread turns the reactor, which sleeping workers do (one of them blocks in it)
//! and busy ones do every 61 ticks. A worker stuck in one poll does neither, so with
//! every worker stuck nothing would ever wake. Each tick the monitor therefore
//! 1. lets the reactor submit work that workers queued and left unsubmitted for a
//!    whole tick ([`Reactor::flush_stale`](crate::reactor::Reactor::flush_stale)), and
//! 2. when the reactor's turn counter has not moved for
//!    [`REACTOR_UNWATCHED`](crate::reactor::REACTOR_UNWATCHED), turns it without
//!    blocking ([`Reactor::poll_now`](crate::reactor::Reactor::poll_now)): due timers
//!    fire, ready sockets wake their tasks, which go to the injector;
//!
//! and only then looks for stuck Ps, so a P stuck in a poll while the tasks just woken
//! wait in the injector is handed off in the same tick. This is Go's sysmon, which
//! polls the network when nobody has for 10 ms and retakes Ps held in syscalls.
//!
//! A hand-off whose thread cannot be started leaves the P on the runtime's idle list
//! (its queued tasks go to the injector); the monitor tries again every tick.
//!
//! The monitor runs whenever a reactor is attached (watching it is always needed),
//! and otherwise only for hand-offs, the trace or the deadlock check.
//!
//! With `GORT_DEBUG=schedtrace=MS` the monitor also prints, every `MS` milliseconds, one
//! line to stderr in the spirit of Go's `schedtrace`.

use std::io;
use std::time::{Duration, Instant};

use super::{Handle, RuntimeMetrics};
use crate::sched::worker::Shared;

/// Tick while any worker is inside a poll: fine enough to notice a 10 ms stall within
/// about a millisecond of the threshold, coarse enough to cost nothing measurable
/// (a thousand wake-ups a second of a thread that reads a few atomics).
pub const MONITOR_MIN_TICK: Duration = Duration::from_millis(1);
/// The longest tick while workers are busy with short polls (each poll seen at one
/// tick had ended by the next): a poll that turns out long is then first noticed up to
/// this much later, so a stall is handed off within threshold + `MONITOR_BUSY_TICK` (14 ms
/// with the default 10 ms threshold), a thread asleep in a syscall within about 2 x
/// `MONITOR_BUSY_TICK`.
pub const MONITOR_BUSY_TICK: Duration = Duration::from_millis(4);
/// Tick while every worker is idle (Go's sysmon backs off to 10 ms too). No longer
/// than [`REACTOR_UNWATCHED`](crate::reactor::REACTOR_UNWATCHED), so an unwatched
/// reactor is noticed on time even by an idle monitor.
pub const MONITOR_MAX_TICK: Duration = Duration::from_millis(10);
/// A poll this long whose thread the kernel reports asleep (blocked in a syscall, a
/// `sleep`, a lock) loses its P without waiting for the full threshold: its thread is
/// not computing, so moving the other tasks away costs it nothing. (Noticed at the
/// monitor's tick: within 1-2 ms at [`MONITOR_MIN_TICK`], up to 2 x [`MONITOR_BUSY_TICK`] after a
/// stretch of short polls.)
pub const SYSCALL_THRESHOLD: Duration = Duration::from_millis(1);

/// Is kernel thread `tid` of this process sleeping (`S`) or in uninterruptible wait
/// (`D`)? False when unknown. `cache` keeps the thread's stat file open, so a check
/// is one `pread` rather than open/stat/read/close.
fn blocked_in_kernel(tid: u32, cache: &mut Option<(u32, std::fs::File)>) -> bool {
    use std::os::unix::fs::FileExt;
    if tid == 0 {
        return false;
    }
    if cache.as_ref().is_none_or(|(t, _)| *t != tid) {
        *cache = std::fs::File::open(format!("/proc/self/task/{tid}/stat"))
            .ok()
            .map(|f| (tid, f));
    }
    let Some((_, file)) = cache else {
        return false;
    };
    // The line is under 400 bytes; the state is within the first hundred or so.
    let mut buf = [0u8; STAT_PREFIX];
    let Ok(n) = file.read_at(&mut buf, 0) else {
        return false;
    };
    let stat = &buf[..n];
    // The state letter follows the parenthesised thread name.
    stat.iter()
        .rposition(|&b| b == b')')
        .and_then(|i| stat[i + 1..].iter().find(|b| !b.is_ascii_whitespace()))
        .is_some_and(|&c| c == b'S' || c == b'D')
}

/// Bytes of `/proc/.../stat` read to find the state: pid, a name of at most 16 bytes
/// in parentheses, the state letter, with room to spare.
const STAT_PREFIX: usize = 128;

/// Default blocking threshold: a poll longer than this with work waiting behind it
/// moves the P. Go's sysmon retakes a P after 10–20 µs in a syscall, but it also knows
/// the syscall blocked; we cannot tell a long computation from a blocked one, so we wait
/// long enough that a normal poll never triggers it.
pub const DEFAULT_BLOCKING_THRESHOLD: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    /// `None`: no hand-offs.
    pub(crate) threshold: Option<Duration>,
    /// `None`: no trace.
    pub(crate) schedtrace: Option<Duration>,
    /// Watch for deadlocks (`deadlock.rs`).
    pub(crate) deadlock: bool,
}

/// Starts the monitor thread (unless it has nothing to do).
pub(crate) fn start(handle: &Handle, config: Config) -> io::Result<()> {
    // With a reactor there is always something to do: watch it (module docs).
    if config.threshold.is_none()
        && config.schedtrace.is_none()
        && !config.deadlock
        && handle.shared.reactor.is_none()
    {
        return Ok(());
    }
    let handle = handle.clone();
    std::thread::Builder::new()
        .name("gort-monitor".to_owned())
        .spawn(move || run(handle, config))
        .map(drop)
}

/// What the monitor remembers of one P's M between ticks.
struct Seen {
    /// The M's poll counter and scheduled-task counter when first seen at these
    /// values, and when.
    polls: u64,
    scheduled: u64,
    since: Instant,
    m: *const (),
}

/// What the monitor remembers of the reactor between ticks.
struct Watch {
    /// Its turn counter when first seen at this value, and when.
    turns: u64,
    since: Instant,
}

/// Steps 1 and 2 of "The reactor is never unwatched" (module docs).
fn watch_reactor(shared: &Shared, watch: &mut Watch, now: Instant) {
    let Some(r) = shared.reactor.as_ref().map(|r| &*r.reactor) else {
        return;
    };
    r.flush_stale();
    let turns = r.turns();
    if turns != watch.turns {
        *watch = Watch { turns, since: now };
    } else if now.duration_since(watch.since) >= crate::reactor::REACTOR_UNWATCHED {
        if r.poll_now() {
            shared
                .monitor_turns
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *watch = Watch {
            turns: r.turns(),
            since: now,
        };
    }
}

fn run(handle: Handle, config: Config) {
    let shared: &Shared = &handle.shared;
    let n = shared.num_workers();
    let start = Instant::now();
    let mut watch = Watch {
        turns: u64::MAX,
        since: start,
    };
    let mut seen: Vec<Seen> = (0..n)
        .map(|_| Seen {
            polls: u64::MAX,
            scheduled: u64::MAX,
            since: start,
            m: std::ptr::null(),
        })
        .collect();
    let mut tick = MONITOR_MIN_TICK;
    let mut stat_files: Vec<Option<(u32, std::fs::File)>> = (0..n).map(|_| None).collect();
    let mut next_trace = config.schedtrace.and_then(|d| start.checked_add(d));
    let mut detector = super::deadlock::Detector::default();
    loop {
        std::thread::sleep(tick);
        if shared.is_shutdown() {
            return;
        }
        let now = Instant::now();
        watch_reactor(shared, &mut watch, now);
        Shared::restart_idle_ps(&handle);
        let mut busy = false;
        // A worker inside the same poll as at the last tick: watch it closely.
        let mut suspect = false;
        for (i, seen) in seen.iter_mut().enumerate() {
            let m = shared.m(i);
            let polls = m.polls.load(std::sync::atomic::Ordering::Relaxed);
            let scheduled = m.scheduled.load(std::sync::atomic::Ordering::Relaxed);
            let in_poll = m.in_poll.load(std::sync::atomic::Ordering::Acquire);
            let id = std::sync::Arc::as_ptr(&m) as *const ();
            // A poll that queued tasks on its P since the last tick (a spawning loop,
            // a producer waking consumers) is running, not stuck: what it queues is
            // in the P's queue, where other workers steal it.
            if !in_poll || polls != seen.polls || scheduled != seen.scheduled || id != seen.m {
                *seen = Seen {
                    polls,
                    scheduled,
                    since: now,
                    m: id,
                };
                busy |= in_poll;
                continue;
            }
            busy = true;
            suspect = true;
            let Some(threshold) = config.threshold else {
                continue;
            };
            let stuck_for = now.duration_since(seen.since);
            if stuck_for < SYSCALL_THRESHOLD.min(threshold) {
                continue;
            }
            if !shared.p_has_work(i) && shared.inject.is_empty() {
                continue;
            }
            // Go hands off a P as soon as its M enters a syscall; we cannot see the
            // syscall, but the kernel can tell us the thread is asleep in one.
            let tid = m.tid.load(std::sync::atomic::Ordering::Relaxed);
            if stuck_for >= threshold || blocked_in_kernel(tid, &mut stat_files[i]) {
                Shared::hand_off(&handle, &m);
            }
        }
        tick = if suspect {
            MONITOR_MIN_TICK
        } else if busy {
            // Busy, but every poll seen last tick has ended: polls are short, nothing
            // to retake. Back off (Go's sysmon does, to 10 ms) so that a loaded
            // server's core is not interrupted a thousand times a second; the first
            // tick that finds a poll still running drops back to `MONITOR_MIN_TICK`.
            (tick * 2).min(MONITOR_BUSY_TICK)
        } else {
            (tick * 2).min(MONITOR_MAX_TICK)
        };
        if config.deadlock && !busy {
            detector.check(&handle, shared.total_polls());
        }
        if let (Some(every), Some(at)) = (config.schedtrace, next_trace) {
            if now >= at {
                eprintln!("{}", trace_line(&handle, now.duration_since(start)));
                next_trace = at.checked_add(every);
            }
        }
    }
}

/// One `schedtrace` line.
pub(crate) fn trace_line(handle: &Handle, elapsed: Duration) -> String {
    let m = RuntimeMetrics::new(handle.clone());
    let local: Vec<String> = (0..m.num_workers())
        .map(|i| m.worker_local_queue_depth(i).to_string())
        .collect();
    let extra = handle
        .shared
        .reactor
        .as_ref()
        .map(|r| r.reactor.trace())
        .filter(|t| !t.is_empty())
        .map(|t| format!(" {t}"))
        .unwrap_or_default();
    format!(
        "gort: {}ms: workers={} threads={} idle={} searching={} handoffs={} monitor_turns={} globalq={} localq=[{}] blocking={} (idle {}) tasks={}{extra}",
        elapsed.as_millis(),
        m.num_workers(),
        m.num_worker_threads(),
        m.num_parked_workers(),
        m.num_searching_workers(),
        m.num_handoffs(),
        m.num_monitor_reactor_turns(),
        m.global_queue_depth(),
        local.join(" "),
        m.num_blocking_threads(),
        m.num_idle_blocking_threads(),
        m.num_alive_tasks(),
    )
}
