//! Go's "all goroutines are asleep - deadlock!": when nothing can ever wake the
//! runtime's tasks, `block_on` panics with a list of them instead of hanging.
//!
//! The monitor declares a deadlock when, continuously for [`GRACE`] and with no poll
//! anywhere in between:
//! - every worker is parked, and the run queues and the injector are empty;
//! - the blocking pool runs nothing and has nothing queued;
//! - no plain thread is inside `send_blocking`/`recv_blocking`;
//! - the reactor has no timer pending and no I/O source registered (its idle probe);
//! - every `block_on` is parked, and it and every live task wait on something only a
//!   task can end: a channel, a lock, a `WaitGroup`, a `JoinHandle`... (see
//!   [`WaitReason::only_tasks_can_wake`]).
//!
//! What it cannot see: a plain thread that holds a channel end or a lock and will use
//! it later without being inside a gort call right now. A program built that way can
//! turn the check off with `Builder::deadlock_detection(false)`; channels that plain
//! threads have used (`send_blocking`, `recv_blocking`, `try_send`, `try_recv`) are
//! recognised from then on and excluded.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::Handle;
use crate::task::{TaskState, WaitReason};

/// How long the runtime must look dead before it is called deadlocked: long enough
/// that a plain thread handing work over through a gort call is seen doing so.
pub const GRACE: Duration = Duration::from_millis(500);

/// A `block_on` in progress, as the monitor sees it.
pub(crate) struct BlockOn {
    pub(crate) thread: Thread,
    /// Parked waiting for its future's waker.
    pub(crate) parked: AtomicBool,
    /// Why its future is pending (a `WaitReason`).
    pub(crate) wait: AtomicU8,
    /// Set by the monitor; `block_on` panics with it.
    pub(crate) report: Mutex<Option<String>>,
}

impl BlockOn {
    pub(crate) fn new() -> BlockOn {
        BlockOn {
            thread: std::thread::current(),
            parked: AtomicBool::new(false),
            wait: AtomicU8::new(0),
            report: Mutex::new(None),
        }
    }

    pub(crate) fn take_report(&self) -> Option<String> {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The monitor's memory between checks.
#[derive(Default)]
pub(crate) struct Detector {
    since: Option<(Instant, u64)>,
}

impl Detector {
    /// One check; reports (and wakes the `block_on`s) once the runtime has looked dead
    /// for [`GRACE`]. `progress` must change whenever any worker polls.
    pub(crate) fn check(&mut self, handle: &Handle, progress: u64) {
        if !looks_dead(handle) {
            self.since = None;
            return;
        }
        let now = Instant::now();
        match self.since {
            Some((t, p)) if p == progress => {
                if now.duration_since(t) >= GRACE {
                    self.since = None;
                    report(handle);
                }
            }
            _ => self.since = Some((now, progress)),
        }
    }
}

fn looks_dead(handle: &Handle) -> bool {
    let shared = &handle.shared;
    let m = handle.metrics();
    let n = m.num_workers();
    if m.num_parked_workers() != n || !shared.inject.is_empty() {
        return false;
    }
    if (0..n).any(|i| m.worker_local_queue_depth(i) > 0) {
        return false;
    }
    if m.num_blocking_threads() != m.num_idle_blocking_threads() || m.blocking_queue_depth() > 0 {
        return false;
    }
    if crate::chan::BLOCKING_CALLERS.load(Ordering::SeqCst) > 0 {
        return false;
    }
    if shared
        .reactor
        .as_ref()
        .is_some_and(|r| r.reactor.may_wake())
    {
        return false;
    }
    let block_ons = shared.block_ons();
    if block_ons.is_empty()
        || !block_ons.iter().all(|b| {
            b.parked.load(Ordering::SeqCst)
                && WaitReason::from_u8(b.wait.load(Ordering::SeqCst)).only_tasks_can_wake()
        })
    {
        return false;
    }
    handle
        .dump()
        .iter()
        .all(|t| t.state == TaskState::Waiting && t.wait.only_tasks_can_wake())
}

fn report(handle: &Handle) {
    let mut msg = String::from("gort: all tasks are asleep - deadlock!\n\n");
    let block_ons = handle.shared.block_ons();
    for b in &block_ons {
        let wait = WaitReason::from_u8(b.wait.load(Ordering::SeqCst));
        let _ = writeln!(
            msg,
            "block_on [{wait}]: thread {:?}",
            b.thread.name().unwrap_or("unnamed")
        );
    }
    for t in handle.dump() {
        let _ = writeln!(msg, "{t}");
    }
    msg.push_str(
        "\nNothing in the runtime can wake these. If a thread outside the runtime will, \
         turn this check off with Builder::deadlock_detection(false).",
    );
    for b in &block_ons {
        *b.report.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.clone());
        b.thread.unpark();
    }
}
