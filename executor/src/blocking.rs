//! The blocking pool: threads for work that cannot be made asynchronous.
//!
//! `spawn_blocking(f)` wraps `f` in a task whose future calls `f` on its first poll, so
//! it gets the same one-allocation cell, `JoinHandle`, panic capture and abort-before-
//! start as any task; only its queue differs. Threads are started on demand, up to
//! `max_threads`; an idle thread waits `keep_alive` for work and then retires, so a burst
//! of blocking calls does not leave hundreds of sleeping threads behind.
//!
//! Accounting under the one lock: `num_threads` counts started threads not yet exited,
//! `num_idle` those waiting for work, `num_notify` wake-ups sent but not yet consumed (a
//! condition variable may also wake spuriously, which must not be taken for work).

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::coop;
use crate::task::Notified;
use crate::thread::ThreadConfig;

/// What a pool thread runs inside: the runtime whose closures it runs, made current on
/// the thread for its whole life (so `gort::spawn` works in a closure). The scheduler's
/// `Handle` is the one implementation; the trait is what keeps this module below the
/// scheduler, whose shared state owns the pool.
pub(crate) trait PoolContext: Clone + Send + 'static {
    /// Held for the thread's life.
    type Guard;
    fn enter(&self) -> Self::Guard;
}

pub(crate) struct BlockingPool {
    inner: Arc<Inner>,
}

std::thread_local! {
    /// The pool this thread belongs to (its `Inner`'s address), 0 elsewhere.
    static OWN_POOL: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

pub(crate) struct Config {
    pub(crate) max_threads: usize,
    pub(crate) keep_alive: Duration,
    pub(crate) thread: ThreadConfig,
}

struct Inner {
    state: Mutex<State>,
    /// Signalled when work arrives or on shutdown.
    work_cv: Condvar,
    /// Signalled when a thread exits during shutdown.
    exit_cv: Condvar,
    config: Config,
}

struct State {
    queue: VecDeque<Notified>,
    num_threads: usize,
    num_idle: usize,
    num_notify: usize,
    shutdown: bool,
}

impl BlockingPool {
    pub(crate) fn new(config: Config) -> BlockingPool {
        BlockingPool {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    num_threads: 0,
                    num_idle: 0,
                    num_notify: 0,
                    shutdown: false,
                }),
                work_cv: Condvar::new(),
                exit_cv: Condvar::new(),
                config,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Queues a blocking task, starting a thread if none is idle and the cap allows.
    pub(crate) fn push<C: PoolContext>(&self, task: Notified, cx: &C) {
        let mut state = self.lock();
        if state.shutdown {
            // The task was cancelled when the owned list closed; drop our reference.
            drop(state);
            drop(task);
            return;
        }
        state.queue.push_back(task);
        if state.num_idle > 0 {
            state.num_idle -= 1;
            state.num_notify += 1;
            self.inner.work_cv.notify_one();
            return;
        }
        if state.num_threads >= self.inner.config.max_threads {
            return; // a busy thread takes it when it is done
        }
        state.num_threads += 1;
        drop(state);
        if let Err(err) = self.spawn_thread(cx.clone()) {
            let mut state = self.lock();
            state.num_threads -= 1;
            if state.num_threads == 0 {
                // Nobody would ever run the queued work: fail loudly, like any
                // resource exhaustion the caller cannot handle (tokio does the same).
                drop(state);
                panic!("gort: cannot start a blocking-pool thread: {err}");
            }
        }
    }

    fn spawn_thread<C: PoolContext>(&self, cx: C) -> io::Result<()> {
        let inner = self.inner.clone();
        inner
            .config
            .thread
            .builder()
            .spawn(move || inner.run(cx))
            .map(drop)
    }

    /// Stops accepting work, wakes idle threads and waits (at most until `deadline`) for
    /// the running ones to finish, calling `turn` (the reactor, without blocking) every
    /// `SHUTDOWN_REACTOR_TICK` meanwhile if there is one. A pool thread calling this (a
    /// closure that drops its runtime) does not wait for itself. Returns true when
    /// every other thread exited.
    pub(crate) fn shutdown(&self, deadline: Option<Instant>, turn: Option<&dyn Fn()>) -> bool {
        let mut state = self.lock();
        state.shutdown = true;
        let queued = std::mem::take(&mut state.queue);
        self.inner.work_cv.notify_all();
        drop(state);
        drop(queued);

        let me = Arc::as_ptr(&self.inner) as usize;
        let own = usize::from(OWN_POOL.try_with(|p| p.get() == me).unwrap_or(false));
        crate::thread::wait_turning(
            &self.inner.state,
            &self.inner.exit_cv,
            deadline,
            turn,
            |state| state.num_threads <= own,
        )
    }

    pub(crate) fn num_threads(&self) -> usize {
        self.lock().num_threads
    }

    pub(crate) fn num_idle_threads(&self) -> usize {
        self.lock().num_idle
    }

    pub(crate) fn queue_depth(&self) -> usize {
        self.lock().queue.len()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // User code never runs under this lock, so poisoning cannot hide a broken
        // invariant.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run<C: PoolContext>(&self, cx: C) {
        let _current = cx.enter();
        OWN_POOL.with(|p| p.set(std::ptr::from_ref(self) as usize));
        let mut state = self.lock();
        'work: loop {
            while let Some(task) = state.queue.pop_front() {
                drop(state);
                task.run();
                state = self.lock();
            }
            if state.shutdown {
                break;
            }
            state.num_idle += 1;
            loop {
                let (guard, wait) = self
                    .work_cv
                    .wait_timeout(state, self.config.keep_alive)
                    .unwrap_or_else(|e| e.into_inner());
                state = guard;
                if state.num_notify > 0 {
                    // A pusher picked us (and already took us off the idle count).
                    state.num_notify -= 1;
                    continue 'work;
                }
                if state.shutdown || wait.timed_out() {
                    state.num_idle -= 1;
                    break 'work;
                }
                // Spurious: keep waiting.
            }
        }
        state.num_threads -= 1;
        if state.shutdown {
            self.exit_cv.notify_all();
        }
    }
}

/// The future of a `spawn_blocking` task: calls the function on its first poll.
pub(crate) struct BlockingTask<F> {
    func: Option<F>,
}

impl<F> BlockingTask<F> {
    pub(crate) fn new(func: F) -> BlockingTask<F> {
        BlockingTask { func: Some(func) }
    }
}

impl<F> Unpin for BlockingTask<F> {}

impl<F, R> Future for BlockingTask<F>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<R> {
        let func = self
            .func
            .take()
            .expect("gort: blocking task polled after completion");
        // Blocking code may drive futures with `Handle::block_on`: no budget here.
        Poll::Ready(coop::unconstrained_call(func))
    }
}
