//! The reactor: one epoll instance (through mio) shared by every worker, as Go's
//! netpoller is, plus the runtime's timers.
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
//! arrangement too; per-P io_uring rings (the faster backend, still to come) will keep
//! their own completion queues but follow the same parking protocol.
//!
//! # Timers
//!
//! One ordered map of `(deadline, sequence) → waker` under a mutex: O(log n) insert and
//! cancel (a dropped `Sleep` removes its entry), and the earliest deadline is the
//! driver's `epoll_wait` timeout. Inserting a deadline earlier than the one the holder
//! sleeps towards wakes it.

mod io;
mod park;

pub(crate) use io::{Direction, ScheduledIo};
pub(crate) use park::DriverPark;

use std::collections::BTreeMap;
use std::io as stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

/// Token of the driver's own waker (never a slab key: slab keys are offset by one).
const WAKER_TOKEN: Token = Token(0);
/// Events taken per `epoll_wait`: enough to drain a busy server's burst in one call.
const EVENTS_PER_TURN: usize = 1024;

/// The reactor shared by every worker of one runtime. Attached to the runtime with
/// `Builder::extension`, found from any of its threads by [`Driver::current`].
pub struct Driver {
    /// The epoll instance; held by the one worker blocked in it.
    poll: Mutex<PollState>,
    registry: Registry,
    waker: mio::Waker,
    sources: Mutex<Slab<Arc<ScheduledIo>>>,
    timers: Mutex<Timers>,
    /// Workers sleeping on their condition variable (candidates to take the driver).
    sleepers: Mutex<Vec<Arc<park::ParkState>>>,
}

struct PollState {
    poll: Poll,
    events: Events,
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
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Driver {
    /// A new epoll instance and its waker.
    ///
    /// # Errors
    /// When the kernel refuses an epoll or eventfd descriptor (e.g. `EMFILE`).
    pub fn new() -> stdio::Result<Arc<Driver>> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok(Arc::new(Driver {
            poll: Mutex::new(PollState {
                poll,
                events: Events::with_capacity(EVENTS_PER_TURN),
            }),
            registry,
            waker,
            sources: Mutex::new(Slab::new()),
            timers: Mutex::new(Timers::default()),
            sleepers: Mutex::new(Vec::new()),
        }))
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
    pub(crate) fn register(
        &self,
        source: &mut impl mio::event::Source,
        interest: Interest,
    ) -> stdio::Result<(usize, Arc<ScheduledIo>)> {
        let io = Arc::new(ScheduledIo::new());
        let key = lock(&self.sources).insert(io.clone());
        if let Err(e) = self.registry.register(source, Token(key + 1), interest) {
            lock(&self.sources).remove(key);
            return Err(e);
        }
        Ok((key, io))
    }

    pub(crate) fn deregister(&self, key: usize, source: &mut impl mio::event::Source) {
        // The fd is closed right after; a failure here changes nothing.
        let _ = self.registry.deregister(source);
        if let Some(io) = lock(&self.sources).try_remove(key) {
            io.wake_all();
        }
    }

    /// Number of registered I/O sources.
    pub fn num_sources(&self) -> usize {
        lock(&self.sources).len()
    }

    /// One turn: wait for events up to `timeout` (capped by the next timer), dispatch
    /// them, fire due timers. The caller holds the poll lock.
    fn turn(&self, state: &mut PollState, timeout: Option<Duration>) {
        if timeout == Some(Duration::ZERO) {
            // A busy worker's look (every 61 ticks): no timer bookkeeping around the
            // call, nobody to wake early.
            let _ = state.poll.poll(&mut state.events, timeout);
            self.dispatch(state);
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
        // EINTR and friends: treat as a spurious wake-up; the caller loops.
        let _ = state.poll.poll(&mut state.events, timeout);
        lock(&self.timers).waiting_until = None;
        self.dispatch(state);
        self.fire_timers();
    }

    /// Records the events of the last `epoll_wait` and wakes their waiters.
    fn dispatch(&self, state: &PollState) {
        if state.events.is_empty() {
            return;
        }
        {
            let sources = lock(&self.sources);
            for event in state.events.iter() {
                if event.token() == WAKER_TOKEN {
                    continue;
                }
                let Some(io) = sources.get(event.token().0 - 1) else {
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
                io.set_ready(bits);
            }
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
            let _ = self.waker.wake();
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
        let _ = self.waker.wake();
    }
}
