//! The reactor: one epoll instance (`epoll.rs`, through mio) or one io_uring ring
//! (`uring/`) shared by every worker, as Go's netpoller is, plus the runtime's timers
//! (`timers.rs`). It plugs into the executor as its
//! [`Reactor`](gort_executor::reactor::Reactor).
//!
//! # Why one shared driver (the choice DESIGN.md asks for)
//!
//! Work stealing moves tasks between workers, so readiness must be noticed whichever
//! worker is busy. With one shared driver, a worker about to sleep tries to *hold* it
//! (a try-lock on the backend's waiting side): the holder blocks in `epoll_wait` or
//! `io_uring_enter` (with the next timer as its timeout), the others sleep on their
//! condition variables. When the holder wakes up to run tasks, it hands the driver over
//! by waking one condition-variable sleeper, so that whenever some worker sleeps, one
//! of them is watching the sockets and timers, also while another worker runs a
//! CPU-heavy task (`net_readiness_noticed_while_other_worker_busy`). Busy workers poll
//! it without blocking every 61 scheduler ticks. This is tokio's arrangement too. When
//! no worker sleeps and none has looked for `REACTOR_UNWATCHED` (every worker stuck in
//! a long poll), the runtime's monitor turns the driver itself (`Driver::poll_now`);
//! the tasks that wakes go to the injector and a stuck P is handed off to run them.
//!
//! The io_uring backend shares one ring the same way: per-worker rings with
//! `SINGLE_ISSUER | DEFER_TASKRUN` (the fastest flags for a single-threaded loop) would
//! tie every completion to one thread, which breaks when the monitor hands a stuck
//! worker's P to another thread and when a stolen task's I/O completes on a busy
//! worker's ring; `uring/mod.rs` says what the shared ring does instead.
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
//! # Sources
//!
//! A registered socket is a slot in the driver's slab, with the generation it was
//! registered with. Every epoll token and io_uring `user_data` carries both
//! (`token.rs`), and an event is dispatched only to the slot's current occupant, so a
//! socket that takes a freed slot never sees its predecessor's late events.

mod epoll;
mod io;
mod park;
mod timers;
pub(crate) mod token;
pub(crate) mod uring;

pub(crate) use io::{Direction, ScheduledIo, Waiter};
pub(crate) use park::DriverPark;
pub(crate) use timers::{far_future, TimerKey};

use std::io as stdio;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use mio::Interest;
use slab::Slab;

use crate::DriverKind;
use timers::Timers;
use token::{Generations, Kind, Token};

/// The reactor shared by every worker of one runtime. Attached to the runtime with
/// `Builder::reactor`, found from any of its threads by [`Driver::current`].
pub struct Driver {
    backend: Backend,
    sources: Mutex<Sources>,
    timers: Timers,
    /// Workers sleeping on their condition variable (candidates to take the driver).
    sleepers: Mutex<Vec<Arc<park::ParkState>>>,
    /// Turns so far, by any thread (written by the holder only; the monitor reads it).
    turns: AtomicU64,
    /// Times `submit_now` gave up (its entries left queued for the next turn).
    submit_give_ups: AtomicU64,
    /// This driver, for the parkers it makes.
    me: Weak<Driver>,
}

/// The backend, with its own waiting side: an epoll instance, or a ring.
enum Backend {
    Epoll(epoll::Epoll),
    Uring(Box<uring::Uring>),
}

/// The right to wait in the backend, held by one thread at a time (the try-lock of
/// the module docs). Each variant holds its own backend's waiting side (and the ring,
/// which io_uring's needs), so no pairing of one backend's state with the other's can
/// be written.
pub(crate) enum Holder<'a> {
    Epoll(MutexGuard<'a, epoll::Waiting>),
    Uring(&'a uring::Uring, MutexGuard<'a, Vec<(u64, i32, u32)>>),
}

/// A registered socket.
pub(crate) struct Source {
    pub(crate) io: Arc<ScheduledIo>,
    generation: u32,
    /// io_uring: the fd its polls watch.
    fd: RawFd,
    /// io_uring: the multishot read poll / the one-shot write poll is in flight.
    pub(crate) read_armed: bool,
    pub(crate) write_armed: bool,
    /// io_uring: deregistered; the slot is freed when no poll is in flight any more
    /// (a poll holds a reference to the file).
    pub(crate) removing: bool,
}

/// The registered sources, by slab key; each knows its generation.
#[derive(Default)]
pub(crate) struct Sources {
    slab: Slab<Source>,
    generations: Generations,
}

impl Sources {
    /// The source `token` was made for, if it still occupies its slot.
    pub(crate) fn get_mut(&mut self, token: Token) -> Option<&mut Source> {
        let s = self.slab.get_mut(token.key())?;
        (s.generation == token.generation()).then_some(s)
    }

    pub(crate) fn remove(&mut self, token: Token) -> Option<Source> {
        self.get_mut(token)?;
        Some(self.slab.remove(token.key()))
    }

    fn len(&self) -> usize {
        self.slab.len()
    }
}

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

/// `None` when another thread holds `m`; a poisoned lock is taken anyway (the state
/// behind the holder locks is valid between statements).
fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
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
            Some(DriverKind::Uring) => Backend::Uring(Box::new(uring::Uring::new()?)),
            Some(DriverKind::Epoll) | None => Backend::Epoll(epoll::Epoll::new()?),
        };
        Ok(Arc::new_cyclic(|me| Driver {
            backend,
            sources: Mutex::new(Sources::default()),
            timers: Timers::default(),
            sleepers: Mutex::new(Vec::new()),
            turns: AtomicU64::new(0),
            submit_give_ups: AtomicU64::new(0),
            me: me.clone(),
        }))
    }

    /// Which backend this driver runs.
    pub fn kind(&self) -> DriverKind {
        match self.backend {
            Backend::Epoll(_) => DriverKind::Epoll,
            Backend::Uring(_) => DriverKind::Uring,
        }
    }

    pub(crate) fn uring(&self) -> Option<&uring::Uring> {
        match &self.backend {
            Backend::Uring(u) => Some(u),
            Backend::Epoll(_) => None,
        }
    }

    /// The driver of the current thread's runtime.
    ///
    /// # Errors
    /// `Other` with a message saying how to start a runtime, when there is none or it
    /// was built without the reactor.
    pub fn current() -> stdio::Result<Arc<Driver>> {
        gort_executor::Handle::try_current()
            .and_then(|h| h.reactor::<Driver>())
            .ok_or_else(|| {
                stdio::Error::other(
                    "gort: no I/O driver on this thread: use it inside a runtime started with \
                     #[gort::main] or gort::Runtime::new()",
                )
            })
    }

    /// Registers `source` for `interest`; the returned token and `ScheduledIo` track
    /// its readiness.
    ///
    /// On io_uring nothing is submitted yet: the source starts out *assumed* readable
    /// (and writable unless `connecting`), the first operation tries the syscall, and
    /// only one that gets `WouldBlock` arms a poll ([`Driver::arm`]). A connection used
    /// only through native operations (`read_owned`) never has a poll at all.
    ///
    /// # Errors
    /// What epoll says; `Other` past half a billion registered sources.
    pub(crate) fn register(
        &self,
        source: &mut (impl mio::event::Source + AsRawFd),
        interest: Interest,
        connecting: bool,
    ) -> stdio::Result<(Token, Arc<ScheduledIo>)> {
        let fd = source.as_raw_fd();
        let initial = match &self.backend {
            Backend::Epoll(_) => 0,
            Backend::Uring(_) if connecting => io::READABLE,
            Backend::Uring(_) => io::READABLE | io::WRITABLE,
        };
        let io = Arc::new(ScheduledIo::with_ready(initial));
        let token = {
            let mut sources = lock(&self.sources);
            let generation = sources.generations.next();
            let entry = sources.slab.vacant_entry();
            if entry.key() > token::MAX_KEY {
                return Err(stdio::Error::other("gort: too many registered I/O sources"));
            }
            let token = Token::new(Kind::Source, entry.key(), generation);
            entry.insert(Source {
                io: io.clone(),
                generation,
                fd,
                read_armed: false,
                write_armed: false,
                removing: false,
            });
            token
        };
        if let Backend::Epoll(e) = &self.backend {
            if let Err(err) = e.register(source, token, interest) {
                lock(&self.sources).remove(token);
                return Err(err);
            }
        }
        Ok((token, io))
    }

    /// io_uring: a task waits for `direction` on source `token`; make sure a poll
    /// watches it (nothing on epoll, where registration watches both).
    pub(crate) fn arm(&self, token: Token, direction: Direction) {
        let Backend::Uring(u) = &self.backend else {
            return;
        };
        let mut sources = lock(&self.sources);
        let Some(s) = sources.get_mut(token) else {
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
        u.queue(&uring::poll_entry(s.fd, token, write));
    }

    /// Forgets a source. `true` when io_uring polls were armed on it: their removal is
    /// submitted, but the kernel lets go of the socket only when it completes (see
    /// `Evented`'s `Drop`).
    pub(crate) fn deregister(&self, token: Token, source: &mut impl mio::event::Source) -> bool {
        match &self.backend {
            Backend::Epoll(e) => {
                e.deregister(source);
                if let Some(s) = lock(&self.sources).remove(token) {
                    s.io.wake_all();
                }
                false
            }
            Backend::Uring(u) => {
                let (io, pushed) = {
                    let mut sources = lock(&self.sources);
                    let Some(s) = sources.get_mut(token) else {
                        return false;
                    };
                    let io = s.io.clone();
                    if !s.read_armed && !s.write_armed {
                        sources.remove(token);
                        (io, false)
                    } else {
                        s.removing = true;
                        if s.read_armed {
                            u.push(&uring::poll_remove_entry(token, false));
                        }
                        if s.write_armed {
                            u.push(&uring::poll_remove_entry(token, true));
                        }
                        (io, true)
                    }
                };
                if pushed {
                    // A poll holds a reference to the socket: submit the removal now,
                    // or closing the fd would not close the connection until the next
                    // turn.
                    self.submit_now();
                }
                io.wake_all();
                pushed
            }
        }
    }

    /// On io_uring, submits what is queued and makes sure the kernel took it (a
    /// cancellation or poll removal that must reach the kernel before the caller
    /// closes a descriptor). A passing refusal is retried for up to a second, with
    /// pauses from 10 µs to 1 ms: `EBUSY` (completions overflowed) after reaping them,
    /// here when the driver is free or by waking its holder; `EAGAIN` (the kernel out
    /// of memory for requests) after the pause. Beyond that, or on any other error,
    /// the entries stay queued for the next turn.
    pub(crate) fn submit_now(&self) {
        let Some(u) = self.uring() else {
            return;
        };
        let deadline = Instant::now() + uring::SUBMIT_PATIENCE;
        let mut pause = Duration::from_micros(10);
        loop {
            match u.submit_now() {
                Ok(()) => return,
                Err(e) if uring::Uring::is_passing_refusal(&e) && Instant::now() < deadline => {
                    if e.raw_os_error() == Some(libc::EBUSY) {
                        if let Some(mut holder) = self.try_hold() {
                            self.turn(&mut holder, Some(Duration::ZERO));
                            drop(holder);
                            self.hand_to_sleeper();
                        } else {
                            // The holder reaps (and its next enter submits these too).
                            u.wake();
                        }
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(1));
                }
                Err(_) => {
                    self.submit_give_ups.fetch_add(1, Ordering::Relaxed);
                    return;
                }
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

    /// The right to wait in the backend, unless another thread has it.
    pub(crate) fn try_hold(&self) -> Option<Holder<'_>> {
        match &self.backend {
            Backend::Epoll(e) => try_lock(&e.waiting).map(Holder::Epoll),
            Backend::Uring(u) => try_lock(&u.reaped).map(|g| Holder::Uring(u, g)),
        }
    }

    /// One turn: wait for events up to `timeout` (capped by the next timer), dispatch
    /// them, fire due timers.
    pub(crate) fn turn(&self, holder: &mut Holder<'_>, timeout: Option<Duration>) {
        // Only the holder writes the counter: a load and a store.
        let turns = self.turns.load(Ordering::Relaxed);
        self.turns.store(turns.wrapping_add(1), Ordering::Relaxed);
        if timeout == Some(Duration::ZERO) {
            // A look without waiting (a busy worker every 61 ticks, the monitor): no
            // timer bookkeeping around the call, nobody to wake early.
            self.wait(holder, timeout);
            self.timers.fire();
            return;
        }
        let timeout = self.timers.before_wait(timeout);
        self.wait(holder, timeout);
        self.timers.after_wait();
        self.timers.fire();
    }

    /// Waits in the backend and dispatches what it reports.
    fn wait(&self, holder: &mut Holder<'_>, timeout: Option<Duration>) {
        match holder {
            Holder::Epoll(w) => {
                epoll::Epoll::wait(w, timeout);
                if epoll::Epoll::was_empty(w) {
                    return;
                }
                let mut sources = lock(&self.sources);
                epoll::Epoll::for_each_event(w, |token, bits| {
                    if let Some(s) = sources.get_mut(token) {
                        s.io.set_ready(bits);
                    }
                });
            }
            Holder::Uring(u, cqes) => {
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
                    for (user_data, res, flags) in cqes.drain(..) {
                        let token = Token(user_data);
                        match token.kind() {
                            Some(Kind::Source | Kind::WritePoll) => {
                                uring::dispatch_poll(&mut lock(&self.sources), token, res, flags);
                            }
                            _ => u.complete(token, res),
                        }
                    }
                }
            }
        }
    }

    /// The holder left: wake a condition-variable sleeper to take the driver, so it
    /// stays watched while anyone sleeps.
    pub(crate) fn hand_to_sleeper(&self) {
        let next = lock(&self.sleepers).pop();
        if let Some(next) = next {
            gort_executor::park::Unpark::unpark(&*next);
        }
    }

    /// Turns the driver once without blocking, unless another thread holds it. True
    /// when it turned. What it wakes is scheduled from the calling thread (the
    /// monitor: the injector).
    pub(crate) fn poll_now(&self) -> bool {
        let Some(mut holder) = self.try_hold() else {
            return false;
        };
        self.turn(&mut holder, Some(Duration::ZERO));
        drop(holder);
        // A worker may have found the driver held and gone to sleep meanwhile.
        self.hand_to_sleeper();
        true
    }

    /// Wakes every timer whose deadline has passed.
    pub(crate) fn fire_timers(&self) {
        self.timers.fire();
    }

    /// Adds a timer; wakes the driver's holder if it sleeps past this deadline.
    pub(crate) fn add_timer(&self, deadline: Instant, waker: Waker) -> TimerKey {
        let (key, wake) = self.timers.add(deadline, waker);
        if wake {
            self.wake();
        }
        key
    }

    /// Replaces a pending timer's waker; false when it already fired.
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) -> bool {
        self.timers.update(key, waker)
    }

    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        self.timers.cancel(key);
    }

    /// Test hook (io_uring only; nothing on epoll): the next `n` submissions that
    /// must reach the kernel at once (a cancellation before a descriptor closes) are
    /// refused with `errno` (`EAGAIN`, `EBUSY`...) as the kernel may refuse them.
    #[doc(hidden)]
    pub fn refuse_next_submits(&self, n: u64, errno: i32) {
        if let Some(u) = self.uring() {
            u.refuse_next_submits(n, errno);
        }
    }

    /// Times a submission that had to reach the kernel at once (a cancellation, a poll
    /// removal) was still refused after its second of retries, and was left queued
    /// for the next turn instead.
    pub fn num_submit_give_ups(&self) -> u64 {
        self.submit_give_ups.load(Ordering::Relaxed)
    }

    /// Pending timers.
    pub fn num_timers(&self) -> usize {
        self.timers.len()
    }

    /// Ends the holder's wait from another thread.
    fn wake(&self) {
        match &self.backend {
            Backend::Epoll(e) => e.wake(),
            Backend::Uring(u) => u.wake(),
        }
    }

    /// Test hook: an event for `token` as the backend would report it.
    #[cfg(test)]
    fn inject_event(&self, token: Token, bits: usize) {
        if let Some(s) = lock(&self.sources).get_mut(token) {
            s.io.set_ready(bits);
        }
    }
}

impl gort_executor::reactor::Reactor for Driver {
    fn parker(&self, _index: usize) -> stdio::Result<Box<dyn gort_executor::park::Park>> {
        let me = self
            .me
            .upgrade()
            .ok_or_else(|| stdio::Error::other("gort: the driver is gone"))?;
        Ok(Box::new(DriverPark::new(me)))
    }

    fn turns(&self) -> u64 {
        self.turns.load(Ordering::Relaxed)
    }

    fn poll_now(&self) -> bool {
        Driver::poll_now(self)
    }

    fn flush_stale(&self) {
        let Some(u) = self.uring() else {
            return;
        };
        if !u.take_stale() {
            return;
        }
        match self.try_hold() {
            // A worker waits in the ring: wake it, it submits them on its way back
            // in, as their owner (see `uring/mod.rs`).
            None => self.wake(),
            // Every worker is busy: submit from here.
            Some(holder) => {
                u.flush();
                drop(holder);
                self.hand_to_sleeper();
            }
        }
    }

    fn may_wake(&self) -> bool {
        self.num_timers() > 0 || self.num_sources() > 0
    }

    fn trace(&self) -> String {
        format!("timers={} io={}", self.num_timers(), self.num_sources())
    }

    fn add_timer(&self, when: Instant, waker: Waker) -> Option<gort_executor::reactor::TimerId> {
        let (when, seq) = Driver::add_timer(self, when, waker);
        Some(gort_executor::reactor::TimerId { when, seq })
    }

    fn cancel_timer(&self, id: gort_executor::reactor::TimerId) {
        Driver::cancel_timer(self, (id.when, id.seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes a freed slot never sees an event meant for the socket that
    /// held the slot before (an `epoll_wait` batch still being dispatched when the
    /// first was deregistered).
    #[test]
    fn net_stale_event_never_reaches_the_next_source_in_a_slot() {
        let driver = Driver::new(Some(DriverKind::Epoll)).unwrap();
        let mut a = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (ta, _) = driver.register(&mut a, Interest::READABLE, false).unwrap();
        driver.deregister(ta, &mut a);
        let mut b = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (tb, io_b) = driver.register(&mut b, Interest::READABLE, false).unwrap();
        assert_eq!(ta.key(), tb.key(), "the slot is reused");
        assert_ne!(ta, tb);
        driver.inject_event(ta, io::READABLE);
        assert!(
            io_b.ready_now(Direction::Read).is_none(),
            "a stale event landed"
        );
        driver.inject_event(tb, io::READABLE);
        assert!(io_b.ready_now(Direction::Read).is_some());
        driver.deregister(tb, &mut b);
    }
}
