//! The reactor: one epoll instance (through mio) or one io_uring ring (`uring/`)
//! shared by every worker, as Go's netpoller is, plus the runtime's timers.
//!
//! # Why one shared driver (the choice DESIGN.md asks for)
//!
//! Work stealing moves tasks between workers, so readiness must be noticed whichever
//! worker is busy. With one shared epoll, a worker about to sleep *try-locks* the
//! driver: the winner blocks in `epoll_wait` (with the next timer as its timeout), the
//! others sleep on a condition variable. When the driver's holder wakes up to run
//! tasks, it hands the driver over by waking one condition-variable sleeper, so that
//! whenever some worker sleeps, one of them is watching the sockets and timers — also
//! while another worker runs a CPU-heavy task (`net_readiness_noticed_while_other_worker_busy`).
//! Busy workers also poll it without blocking every 61 scheduler ticks. This is tokio's
//! arrangement too. The io_uring backend shares one ring the same way: per-worker rings
//! with `SINGLE_ISSUER | DEFER_TASKRUN` (the fastest flags for a single-threaded loop)
//! would tie every completion to one thread, which breaks when the monitor hands a
//! stuck worker's P to another thread and when a stolen task's I/O completes on a
//! busy worker's ring; `uring/mod.rs` says what the shared ring does instead.
//!
//! # Which backend (measured; `cargo bench --bench echo`, README)
//!
//! epoll unless `GORT_DRIVER=uring` or `Builder::driver` asks for io_uring, which is
//! then probed (features and opcodes) and refused clearly when missing. Echo on one
//! worker, messages per server-CPU-second ÷ tokio at 100 / 1000 connections: epoll
//! 1.07 / 0.94, io_uring with the readiness API 1.02 / 0.92, io_uring with the
//! owned-buffer API 1.11 / 1.01 (0.05 system calls per message). With the API most
//! code uses, io_uring gains nothing and can delay a completion owed to a computing
//! thread by a timer tick, so it is opt-in.
//!
//! # Timers
//!
//! One ordered map of `(deadline, sequence) → waker` under a mutex: O(log n) insert and
//! cancel (a dropped `Sleep` removes its entry), and the earliest deadline is the
//! driver's `epoll_wait` timeout. Inserting a deadline earlier than the one the holder
//! sleeps towards wakes it.

mod io;
mod park;
pub(crate) mod uring;

pub(crate) use io::{Direction, ScheduledIo};
pub(crate) use park::DriverPark;

use std::collections::BTreeMap;
use std::io as stdio;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::DriverKind;

/// Token of the driver's own waker (never a slab key: slab keys are offset by one).
const WAKER_TOKEN: Token = Token(0);
/// Events taken per `epoll_wait`: enough to drain a busy server's burst in one call.
const EVENTS_PER_TURN: usize = 1024;

/// The reactor shared by every worker of one runtime. Attached to the runtime with
/// `Builder::extension`, found from any of its threads by [`Driver::current`].
pub struct Driver {
    backend: Backend,
    /// The waiting side (epoll instance or completion queue); held by the one worker
    /// blocked in it.
    poll: Mutex<PollState>,
    sources: Mutex<Slab<Source>>,
    timers: Mutex<Timers>,
    /// Workers sleeping on their condition variable (candidates to take the driver).
    sleepers: Mutex<Vec<Arc<park::ParkState>>>,
}

enum Backend {
    Epoll {
        registry: Registry,
        waker: mio::Waker,
    },
    Uring(Box<uring::Uring>),
}

enum PollState {
    Epoll {
        poll: Poll,
        events: Events,
    },
    /// Completions taken from the queue, dispatched after releasing it.
    Uring {
        cqes: Vec<(u64, i32, u32)>,
    },
}

/// A registered socket.
struct Source {
    io: Arc<ScheduledIo>,
    /// io_uring: the fd its polls watch.
    fd: RawFd,
    /// io_uring: the multishot read poll / the one-shot write poll is in flight.
    read_armed: bool,
    write_armed: bool,
    /// io_uring: deregistered; the slot is freed when no poll is in flight any more
    /// (so a late completion never reaches a new socket in the same slot).
    removing: bool,
}

#[derive(Default)]
pub(crate) struct Timers {
    map: BTreeMap<(Instant, u64), Waker>,
    next_seq: u64,
    /// The deadline the driver's holder sleeps towards, if it sleeps in the driver.
    waiting_until: Option<Instant>,
}

/// A registered timer: its key in the map.
pub(crate) type TimerKey = (Instant, u64);

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Driver {
    /// A new driver on the backend `kind` names; epoll by default (see the crate
    /// docs for why io_uring is opt-in today).
    ///
    /// # Errors
    /// When the kernel refuses the epoll or eventfd descriptor (e.g. `EMFILE`), or,
    /// with `Some(DriverKind::Uring)`, why io_uring cannot be used (the probe of its
    /// features and opcodes names what is missing).
    pub fn new(kind: Option<DriverKind>) -> stdio::Result<Arc<Driver>> {
        let backend = match kind {
            Some(DriverKind::Uring) => Some(Box::new(uring::Uring::new()?)),
            Some(DriverKind::Epoll) | None => None,
        };
        let (backend, state) = match backend {
            Some(u) => (Backend::Uring(u), PollState::Uring { cqes: Vec::new() }),
            None => {
                let poll = Poll::new()?;
                let registry = poll.registry().try_clone()?;
                let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
                (
                    Backend::Epoll { registry, waker },
                    PollState::Epoll {
                        poll,
                        events: Events::with_capacity(EVENTS_PER_TURN),
                    },
                )
            }
        };
        Ok(Arc::new(Driver {
            backend,
            poll: Mutex::new(state),
            sources: Mutex::new(Slab::new()),
            timers: Mutex::new(Timers::default()),
            sleepers: Mutex::new(Vec::new()),
        }))
    }

    /// Which backend this driver runs.
    pub fn kind(&self) -> DriverKind {
        match self.backend {
            Backend::Epoll { .. } => DriverKind::Epoll,
            Backend::Uring(_) => DriverKind::Uring,
        }
    }

    pub(crate) fn uring(&self) -> Option<&uring::Uring> {
        match &self.backend {
            Backend::Uring(u) => Some(u),
            Backend::Epoll { .. } => None,
        }
    }

    /// The driver of the current thread's runtime.
    ///
    /// # Errors
    /// `Other` with a message saying how to start a runtime, when there is none or it
    /// was built without the reactor.
    pub fn current() -> stdio::Result<Arc<Driver>> {
        gort_executor::Handle::try_current()
            .and_then(|h| h.extension::<Arc<Driver>>().cloned())
            .ok_or_else(|| {
                stdio::Error::other(
                    "gort: no I/O driver on this thread: use it inside a runtime started with \
                     #[gort::main] or gort::Runtime::new()",
                )
            })
    }

    /// Registers `source` for `interest`; the returned `ScheduledIo` tracks its readiness.
    ///
    /// On io_uring nothing is submitted yet: the source starts out *assumed* readable
    /// (and writable unless `connecting`), the first operation tries the syscall, and
    /// only one that gets `WouldBlock` arms a poll ([`Driver::arm`]). A connection used
    /// only through native operations (`read_owned`) never has a poll at all.
    pub(crate) fn register(
        &self,
        source: &mut (impl mio::event::Source + AsRawFd),
        interest: Interest,
        connecting: bool,
    ) -> stdio::Result<(usize, Arc<ScheduledIo>)> {
        let fd = source.as_raw_fd();
        let initial = match &self.backend {
            Backend::Epoll { .. } => 0,
            Backend::Uring(_) if connecting => io::READABLE,
            Backend::Uring(_) => io::READABLE | io::WRITABLE,
        };
        let io = Arc::new(ScheduledIo::with_ready(initial));
        let key = lock(&self.sources).insert(Source {
            io: io.clone(),
            fd,
            read_armed: false,
            write_armed: false,
            removing: false,
        });
        if let Backend::Epoll { registry, .. } = &self.backend {
            if let Err(e) = registry.register(source, Token(key + 1), interest) {
                lock(&self.sources).remove(key);
                return Err(e);
            }
        }
        Ok((key, io))
    }

    /// io_uring: a task waits for `direction` on source `key`; make sure a poll
    /// watches it (nothing on epoll, where registration watches both).
    pub(crate) fn arm(&self, key: usize, direction: Direction) {
        let Backend::Uring(u) = &self.backend else {
            return;
        };
        let mut sources = lock(&self.sources);
        let Some(s) = sources.get_mut(key) else {
            return;
        };
        let write = direction == Direction::Write;
        let armed = if write {
            &mut s.write_armed
        } else {
            &mut s.read_armed
        };
        if s.removing || *armed {
            return;
        }
        *armed = true;
        // Queued under the sources lock, so it precedes any removal of this poll.
        u.queue(&uring::poll_entry(s.fd, key, write));
    }

    pub(crate) fn deregister(&self, key: usize, source: &mut impl mio::event::Source) {
        match &self.backend {
            Backend::Epoll { registry, .. } => {
                // The fd is closed right after; a failure here changes nothing.
                let _ = registry.deregister(source);
                if let Some(s) = lock(&self.sources).try_remove(key) {
                    s.io.wake_all();
                }
            }
            Backend::Uring(u) => {
                let (io, pushed) = {
                    let mut sources = lock(&self.sources);
                    let Some(s) = sources.get_mut(key) else {
                        return;
                    };
                    let io = s.io.clone();
                    if !s.read_armed && !s.write_armed {
                        sources.remove(key);
                        (io, false)
                    } else {
                        s.removing = true;
                        if s.read_armed {
                            u.push(&uring::poll_remove_entry(key, false));
                        }
                        if s.write_armed {
                            u.push(&uring::poll_remove_entry(key, true));
                        }
                        (io, true)
                    }
                };
                if pushed {
                    // A poll holds a reference to the socket: submit the removal now,
                    // or closing the fd would not close the connection until the next
                    // turn.
                    u.submit_now();
                }
                io.wake_all();
            }
        }
    }

    /// Number of registered I/O sources and, on io_uring, operations in flight.
    pub fn num_sources(&self) -> usize {
        let ops = self.uring().map_or(0, uring::Uring::num_ops);
        lock(&self.sources).len() + ops
    }

    /// Submits queued io_uring entries (nothing on epoll): a worker about to sleep
    /// without holding the driver calls this, so what it queued is not left waiting.
    pub(crate) fn flush(&self) {
        if let Some(u) = self.uring() {
            u.flush();
        }
    }

    /// One turn: wait for events up to `timeout` (capped by the next timer), dispatch
    /// them, fire due timers. The caller holds the poll lock.
    fn turn(&self, state: &mut PollState, timeout: Option<Duration>) {
        if timeout == Some(Duration::ZERO) {
            // A busy worker's look (every 61 ticks): no timer bookkeeping around the
            // call, nobody to wake early.
            self.wait(state, timeout);
            self.fire_timers();
            return;
        }
        let now = Instant::now();
        let timeout = {
            let mut timers = lock(&self.timers);
            let until_timer = timers
                .map
                .keys()
                .next()
                .map(|(d, _)| d.saturating_duration_since(now));
            let t = match (timeout, until_timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            timers.waiting_until = match t {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(now + d),
                None => Some(now + Duration::from_secs(u32::MAX as u64)),
            };
            t
        };
        self.wait(state, timeout);
        lock(&self.timers).waiting_until = None;
        self.fire_timers();
    }

    /// Waits in the backend and dispatches what it reports.
    fn wait(&self, state: &mut PollState, timeout: Option<Duration>) {
        match (state, &self.backend) {
            (PollState::Epoll { poll, events }, _) => {
                // EINTR and friends: treat as a spurious wake-up; the caller loops.
                let _ = poll.poll(events, timeout);
                self.dispatch_epoll(events);
            }
            (PollState::Uring { cqes }, Backend::Uring(u)) => {
                if timeout == Some(Duration::ZERO) && !u.has_unsubmitted() && !u.taskrun_pending() {
                    // Nothing to submit: reading the completion queue needs no syscall.
                } else {
                    u.enter(timeout);
                }
                loop {
                    u.reap(cqes);
                    if cqes.is_empty() {
                        break;
                    }
                    self.dispatch_uring(u, cqes);
                }
            }
            (PollState::Uring { .. }, Backend::Epoll { .. }) => unreachable!(),
        }
    }

    /// Records the events of the last `epoll_wait` and wakes their waiters.
    fn dispatch_epoll(&self, events: &Events) {
        if events.is_empty() {
            return;
        }
        {
            let sources = lock(&self.sources);
            for event in events.iter() {
                if event.token() == WAKER_TOKEN {
                    continue;
                }
                let Some(s) = sources.get(event.token().0 - 1) else {
                    continue;
                };
                let mut bits = 0;
                if event.is_readable() {
                    bits |= io::READABLE;
                }
                if event.is_writable() {
                    bits |= io::WRITABLE;
                }
                if event.is_read_closed() {
                    bits |= io::READ_CLOSED;
                }
                if event.is_write_closed() {
                    bits |= io::WRITE_CLOSED;
                }
                if event.is_error() {
                    bits |= io::ERROR;
                }
                s.io.set_ready(bits);
            }
        }
    }

    /// Handles reaped io_uring completions (and empties `cqes`).
    fn dispatch_uring(&self, u: &uring::Uring, cqes: &mut Vec<(u64, i32, u32)>) {
        for (user_data, res, flags) in cqes.drain(..) {
            if user_data & 3 != uring::TAG_POLL {
                u.complete(user_data, res);
                continue;
            }
            let key = (user_data >> 3) as usize;
            let write = user_data & uring::POLL_WRITE != 0;
            let last = uring::is_last(flags);
            let mut sources = lock(&self.sources);
            let Some(s) = sources.get_mut(key) else {
                continue;
            };
            if last {
                if write {
                    s.write_armed = false;
                } else {
                    s.read_armed = false;
                }
            }
            if s.removing {
                if !s.read_armed && !s.write_armed {
                    sources.remove(key);
                }
                continue;
            }
            let bits = if res >= 0 {
                uring::ready_bits(res as u32)
            } else {
                0
            };
            // A poll that ended without a readiness bit (an error, or a multishot poll
            // ended by a completion queue overflow): let the waiters try again, which
            // re-arms it if they still need to wait.
            let retry = if last && bits == 0 {
                if write {
                    io::WRITABLE
                } else {
                    io::READABLE
                }
            } else {
                0
            };
            s.io.set_ready(bits | retry);
        }
    }

    /// Wakes every timer whose deadline has passed.
    pub(crate) fn fire_timers(&self) {
        let due: Vec<Waker> = {
            let mut timers = lock(&self.timers);
            if timers.map.is_empty() {
                return;
            }
            let now = Instant::now();
            let mut due = Vec::new();
            while let Some(entry) = timers.map.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            due
        };
        for w in due {
            w.wake();
        }
    }

    /// Adds a timer; wakes the driver's holder if it sleeps past this deadline.
    pub(crate) fn add_timer(&self, deadline: Instant, waker: Waker) -> TimerKey {
        let mut timers = lock(&self.timers);
        let key = (deadline, timers.next_seq);
        timers.next_seq += 1;
        timers.map.insert(key, waker);
        let wake = timers.waiting_until.is_some_and(|w| deadline < w);
        drop(timers);
        if wake {
            self.wake();
        }
        key
    }

    /// Replaces a pending timer's waker; false when it already fired.
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) -> bool {
        let mut timers = lock(&self.timers);
        match timers.map.get_mut(&key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        let removed = lock(&self.timers).map.remove(&key);
        drop(removed);
    }

    /// Pending timers.
    pub fn num_timers(&self) -> usize {
        lock(&self.timers).map.len()
    }

    fn wake(&self) {
        match &self.backend {
            Backend::Epoll { waker, .. } => {
                let _ = waker.wake();
            }
            Backend::Uring(u) => u.wake(),
        }
    }
}
