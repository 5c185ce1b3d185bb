//! The runtime: worker threads, the blocking pool, and the handles that reach them.
//!
//! [`Runtime`] owns the threads; dropping it shuts everything down. [`Handle`] is a
//! cheap clone that spawns from any thread. The thread's *current* runtime (used by the
//! free functions `gort::spawn` and `gort::spawn_blocking`) is set on worker threads, on
//! blocking threads, inside [`Runtime::block_on`], and by [`Runtime::enter`].
//!
//! # Shutdown, in order
//!
//! 1. Close the owned-task list: from now on a spawn is cancelled on the spot; every
//!    idle task is cancelled now (its future dropped on the thread shutting down).
//! 2. Close the injector and set the shutdown flag; wake every worker. A worker sees the
//!    flag at its next tick (so a running task finishes its current poll), drops its
//!    queued references and exits. A task that was running when step 1 passed is
//!    cancelled by its worker when that poll returns.
//! 3. Wait for the workers, then for the blocking threads that are still running a
//!    closure (queued closures were cancelled in step 1), up to the timeout if one was
//!    given. Meanwhile this thread turns the reactor every millisecond (the monitor and
//!    the workers that turned it are gone), so a stuck poll or a closure waiting in
//!    `Handle::block_on` for a timer or a socket still gets it. A blocking thread that
//!    drops the runtime does not wait for itself.

mod builder;
pub(crate) mod deadlock;
mod group;
mod join_set;
mod metrics;
pub(crate) mod monitor;

pub use crate::reactor::{Extension, NeverReactor, NoReactor, Reactor, REACTOR_UNWATCHED};
pub use crate::sched::handle::Handle;
pub use builder::{
    Builder, DEFAULT_BLOCKING_KEEP_ALIVE, DEFAULT_MAX_BLOCKING_THREADS, ENV_DEBUG,
    ENV_MAX_BLOCKING, ENV_WORKERS, MAX_BLOCKING_THREADS, MAX_THREAD_STACK, MAX_WORKERS,
    MIN_THREAD_STACK,
};
pub use group::Group;
pub use join_set::JoinSet;
pub use metrics::RuntimeMetrics;
pub use monitor::{
    DEFAULT_BLOCKING_THRESHOLD, MONITOR_BUSY_TICK, MONITOR_MAX_TICK, MONITOR_MIN_TICK,
    SYSCALL_THRESHOLD,
};

use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::block_on;
use crate::blocking::{self, BlockingPool, BlockingTask};
use crate::park::Park;
use crate::sched::current;
use crate::sched::handle::BlockingSchedule;
use crate::sched::worker;
use crate::task::{self, Id, JoinHandle};

const NESTED_BLOCK_ON: &str = "gort: cannot block_on from inside a gort runtime: this thread is \
     already driving async code, and blocking it could deadlock the runtime. Use `.await` \
     instead, or move the blocking call to `gort::spawn_blocking`.";

const NO_RUNTIME: &str = "gort: there is no current runtime on this thread. Start one with \
     `#[gort::main]` on `main`, or `gort::Runtime::new()?.block_on(future)`; from a thread \
     the runtime did not start, spawn through a `gort::runtime::Handle` (or `rt.enter()`).";

/// A gort runtime: worker threads running tasks, and a pool for blocking calls.
///
/// `E` is the [`Extension`] that brings the reactor: `gort::Runtime` is
/// `Runtime<gort_netio::Io>`. On its own the executor has none ([`NoReactor`]); name
/// the type then (`let rt: Runtime = ...`), because Rust does not use a type
/// parameter's default to infer `Runtime::new()`'s.
///
/// ```
/// let rt: gort_executor::Runtime = gort_executor::Runtime::new().unwrap();
/// let answer = rt.block_on(async {
///     let task = gort_executor::spawn(async { 40 + 2 });
///     task.await.unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub struct Runtime<E: Extension = NoReactor> {
    handle: Handle,
    /// False once shut down.
    running: bool,
    /// The extension's reactor; `None` when it made none or the builder was given
    /// another.
    reactor: Option<Arc<E::Reactor>>,
}

impl<E: Extension> Runtime<E> {
    /// A runtime with the default configuration (see [`Builder::new`]).
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Self> {
        Builder::new().build()
    }

    /// A [`Builder`] to configure a runtime.
    pub fn builder() -> Builder<E> {
        Builder::new()
    }

    /// Which backend the extension's reactor runs (gort: io_uring or epoll); `None`
    /// without one (built with `park_with` or another `reactor`).
    pub fn driver(&self) -> Option<E::Driver> {
        self.reactor.as_deref().map(E::driver)
    }

    /// The extension's reactor, for its counters (gort's: registered sources, pending
    /// timers).
    pub fn reactor(&self) -> Option<&Arc<E::Reactor>> {
        self.reactor.as_ref()
    }

    pub(crate) fn start(
        parks: Vec<Box<dyn Park>>,
        blocking: blocking::Config,
        threads: crate::thread::ThreadConfig,
        monitor: monitor::Config,
        attached: Option<worker::AttachedReactor>,
        reactor: Option<Arc<E::Reactor>>,
    ) -> io::Result<Self> {
        crate::reactor::install_lookup(crate::sched::current::current_reactor);
        let (shared, cores) = worker::create(parks, BlockingPool::new(blocking), threads, attached);
        let handle = Handle { shared };
        deadlock::register(&handle);
        let mut rt = Runtime {
            handle: handle.clone(),
            running: true,
            reactor,
        };
        for core in cores {
            // On failure `rt` drops: the workers that did start are shut down.
            worker::spawn_worker(&handle, core).map_err(|(err, _)| err)?;
        }
        monitor::start(&handle, monitor).inspect_err(|_| rt.shutdown(None))?;
        Ok(rt)
    }

    /// Runs `future` to completion on the current thread, while the workers run the
    /// tasks it spawns. The future itself is not moved to a worker, so it need not be
    /// `Send`.
    ///
    /// # Panics
    /// When called from inside a runtime (a task, or another `block_on`): that would
    /// block a thread that async code depends on.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Spawns a task on this runtime. See [`spawn`](crate::spawn()).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs `f` on the blocking pool. See [`spawn_blocking`](crate::spawn_blocking()).
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// A handle to this runtime.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Makes this the current runtime of the calling thread until the guard drops, so
    /// `gort::spawn` works there.
    pub fn enter(&self) -> EnterGuard<'_> {
        self.handle.enter()
    }

    /// Counters describing the scheduler right now.
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics::new(self.handle.clone())
    }

    /// Shuts down, waiting at most `timeout` for running task polls and blocking
    /// closures to return. Threads still busy after that are left to finish on their
    /// own (they exit when their current call returns).
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        // A timeout too long for an `Instant` (`Duration::MAX`) waits as long as needed.
        self.shutdown(Instant::now().checked_add(timeout));
    }

    /// Shuts down without waiting for any thread.
    pub fn shutdown_background(self) {
        self.shutdown_timeout(Duration::ZERO);
    }

    fn shutdown(&mut self, deadline: Option<Instant>) {
        if !std::mem::replace(&mut self.running, false) {
            return;
        }
        let shared = &self.handle.shared;
        // Futures dropped here may call `gort::spawn`; let them find this (closed)
        // runtime, whose spawns are cancelled at once, rather than panic.
        let _current = current::set_current(&self.handle);

        // Step 1.
        shared.owned.close_and_shutdown_all();
        // Step 2.
        drop(shared.inject.close());
        shared.begin_shutdown();
        // Step 3.
        // Workers (and threads retiring after a hand-off) are counted, not joined:
        // threads started by the monitor have no join handle here.
        let turn = shared.reactor.as_ref().map(|r| {
            let r = &*r.reactor;
            move || {
                if r.may_wake() {
                    r.poll_now();
                }
            }
        });
        let turn = turn.as_ref().map(|t| t as &dyn Fn());
        shared.wait_workers(deadline, turn);
        shared.blocking.shutdown(deadline, turn);
        // Anything woken meanwhile was refused by the closed injector.
    }
}

impl<E: Extension> Drop for Runtime<E> {
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        if block_on::is_entered() {
            // Dropping from inside async code would block a worker (or wait for
            // itself). Shut down without waiting instead of deadlocking.
            self.shutdown(Some(Instant::now()));
        } else {
            self.shutdown(None);
        }
    }
}

impl<E: Extension> fmt::Debug for Runtime<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.handle.shared.num_workers())
            .field("driver", &self.driver())
            .finish_non_exhaustive()
    }
}

/// Restores the previous current runtime when dropped. See [`Runtime::enter`].
pub struct EnterGuard<'a> {
    _guard: current::SetCurrentGuard,
    _handle: std::marker::PhantomData<&'a Handle>,
}

impl fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}

impl Handle {
    /// The current thread's runtime.
    ///
    /// # Panics
    /// When there is none; see [`try_current`](Self::try_current).
    #[track_caller]
    pub fn current() -> Handle {
        Self::try_current().unwrap_or_else(|| panic!("{NO_RUNTIME}"))
    }

    /// The current thread's runtime, if any.
    pub fn try_current() -> Option<Handle> {
        current::current_handle()
    }

    /// Spawns a task. See [`spawn`](crate::spawn).
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_at(future, Location::caller())
    }

    pub(crate) fn spawn_at<F>(
        &self,
        future: F,
        at: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (task, notified, join) = task::new_task(future, self.clone(), Id::next(), at);
        if let Some(notified) = self.shared.owned.bind(task, notified) {
            crate::task::Schedule::schedule(self, notified);
        }
        join
    }

    /// Runs `f` on the blocking pool. See [`spawn_blocking`](crate::spawn_blocking).
    #[track_caller]
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let schedule = BlockingSchedule::new(self.clone());
        let at = Location::caller();
        let (task, notified, join) = task::new_task(BlockingTask::new(f), schedule, Id::next(), at);
        if let Some(notified) = self.shared.owned.bind(task, notified) {
            self.shared.blocking.push(notified, self);
        }
        join
    }

    /// Runs `future` to completion on the current thread. See [`Runtime::block_on`].
    ///
    /// # Panics
    /// When called from inside a runtime.
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        let Some(_entered) = block_on::try_enter_runtime() else {
            panic!("{NESTED_BLOCK_ON}");
        };
        let _current = current::set_current(self);
        let watch = std::sync::Arc::new(block_on::BlockOn::new());
        let _registered = self.shared.register_block_on(watch.clone());
        block_on::block_on(future, Some(&watch))
    }

    /// See [`Runtime::enter`].
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard {
            _guard: current::set_current(self),
            _handle: std::marker::PhantomData,
        }
    }

    /// Counters describing the scheduler right now.
    pub fn metrics(&self) -> RuntimeMetrics {
        RuntimeMetrics::new(self.clone())
    }

    /// The reactor attached with [`Builder::reactor`], if it has type `R` (how the I/O
    /// reactor finds itself from any thread of the runtime).
    pub fn reactor<R: crate::reactor::Reactor>(&self) -> Option<Arc<R>> {
        self.shared.reactor.as_ref()?.downcast::<R>()
    }

    /// Test hook: the next `n` attempts to start a worker thread (a hand-off, or the
    /// monitor's retry for a P left without one) fail as if the OS refused them.
    #[doc(hidden)]
    pub fn fail_next_worker_spawns(&self, n: usize) {
        self.shared.fail_next_spawns(n);
    }

    /// Every live task of this runtime, with where it was spawned and what it is doing,
    /// ordered by id (Go's goroutine dump). A snapshot: tasks change state meanwhile.
    pub fn dump(&self) -> Vec<task::TaskDump> {
        let mut tasks = Vec::new();
        self.shared.owned.for_each(|t| tasks.push(t.dump()));
        tasks.sort_by_key(|t| t.id);
        tasks
    }
}

/// Every live task of the current runtime (see [`Handle::dump`]).
///
/// # Panics
/// When the thread has no current runtime.
#[track_caller]
pub fn dump() -> Vec<task::TaskDump> {
    Handle::current().dump()
}

/// Spawns a task on the current runtime: Go's `go f()`.
///
/// The task starts running soon, on any worker, and keeps running even if the returned
/// [`JoinHandle`] is dropped. Spawned from a task, it usually runs next on the same
/// worker (the LIFO slot); from elsewhere it goes through the global queue.
///
/// # Panics
/// When the thread has no current runtime; the message says how to start one.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let at = Location::caller();
    match current::with_current(|h| h.map(|h| h.spawn_at(future, at))) {
        Some(join) => join,
        None => panic!("{NO_RUNTIME}"),
    }
}

/// Whether the calling thread is a runtime's worker that holds its P (its run queue
/// and parker) right now. Such a thread parks through the runtime's
/// [`Park`] before it sleeps, so a parker that batches work
/// (io_uring submissions) may leave it queued until then. Other threads must flush what
/// they queue themselves: `block_on`, plain threads, and a worker whose P the monitor
/// handed off while it was stuck in a poll (it retires after that poll).
pub fn is_worker_thread() -> bool {
    current::with_worker(|w| w.is_some_and(|w| w.holds_p()))
}

/// Runs `f`, which may block, on the current thread without stalling the other tasks of
/// this worker: the worker's queue, timers and I/O are first handed to a fresh thread
/// (what the monitor does by itself after the blocking threshold; this does it at
/// once). After `f`, the calling task continues its poll on this thread, which then
/// retires. Outside a worker thread, just calls `f`.
///
/// Prefer [`spawn_blocking`] for work that need not borrow from the task.
pub fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    current::with_worker(|w| {
        if let Some(w) = w {
            w.hand_off_now();
        }
    });
    f()
}

/// Runs a blocking function on the current runtime's blocking pool, so it does not stall
/// the workers. A panic in `f` comes back as a [`JoinError`](crate::task::JoinError).
///
/// # Panics
/// When the thread has no current runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Handle::current().spawn_blocking(f)
}
