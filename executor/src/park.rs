//! How a worker sleeps: the [`Park`] trait, and the default thread parker.
//!
//! The scheduler knows nothing about I/O. When a worker has nothing to run it calls
//! [`Park::park`]; whatever implements the trait decides what "sleeping" means. The
//! default, [`ThreadParker`], blocks on a condition variable. The I/O reactor implements
//! the same trait by blocking in `epoll_wait`/`io_uring_enter` instead, so that a sleeping
//! worker also wakes for I/O — which is how Go's netpoller and tokio's driver plug in.
//!
//! Contract for implementors:
//! - `park(None)` blocks until [`Unpark::unpark`] is called; `park(Some(d))` at most `d`
//!   (zero: just process pending events and return).
//! - An `unpark` that happens before `park` makes the next `park` return at once: the
//!   wake-up is remembered, never lost (the "token" of `std::thread::park`).
//! - Spurious returns are allowed; the scheduler re-checks its queues.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;

use crate::loom::{lock, AtomicUsize, Condvar, Mutex, Ordering};

/// Blocks a worker thread when it has nothing to do. One per worker, used only by its
/// worker thread (hence `&mut self`), but movable between threads with the P.
pub trait Park: Send + 'static {
    /// Sleeps until unparked, or until `timeout` passes (`Some(Duration::ZERO)`: poll
    /// for events without blocking).
    fn park(&mut self, timeout: Option<Duration>);

    /// A handle that wakes this parker from any thread.
    fn unparker(&self) -> Arc<dyn Unpark>;
}

/// Wakes a [`Park`] from any thread.
pub trait Unpark: Send + Sync + 'static {
    /// Wakes the parker, or makes its next `park` return immediately.
    fn unpark(&self);
}

/// States of the parker's token.
const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

/// The default parker: a mutex and a condition variable, with an atomic token so that
/// the common "unpark a thread that is not asleep" costs one atomic swap, no syscall.
pub struct ThreadParker {
    inner: Arc<ParkInner>,
}

struct ParkInner {
    state: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
}

impl ThreadParker {
    /// A parker with no wake-up pending.
    pub fn new() -> ThreadParker {
        ThreadParker {
            inner: Arc::new(ParkInner {
                state: AtomicUsize::new(EMPTY),
                lock: Mutex::new(()),
                cvar: Condvar::new(),
            }),
        }
    }
}

impl Default for ThreadParker {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ThreadParker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadParker").finish_non_exhaustive()
    }
}

impl Park for ThreadParker {
    fn park(&mut self, timeout: Option<Duration>) {
        let inner = &*self.inner;
        // 1. Consume a pending token without locking.
        if inner
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
        if timeout == Some(Duration::ZERO) {
            return;
        }
        // 2. Announce that we sleep, under the lock so an unparker cannot signal
        //    between our announcement and our wait.
        let mut guard = lock(&inner.lock);
        match inner
            .state
            .compare_exchange(EMPTY, PARKED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => {}
            Err(NOTIFIED) => {
                // Unparked while we took the lock.
                inner.state.store(EMPTY, Ordering::SeqCst);
                return;
            }
            Err(actual) => panic!("inconsistent park state: {actual}"),
        }
        // 3. Wait. Spurious wake-ups loop; a timeout returns.
        match timeout {
            None => loop {
                guard = inner.cvar.wait(guard).unwrap_or_else(|e| e.into_inner());
                if inner
                    .state
                    .compare_exchange(NOTIFIED, EMPTY, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
            },
            Some(d) => {
                let (_g, _) = inner
                    .cvar
                    .wait_timeout(guard, d)
                    .unwrap_or_else(|e| e.into_inner());
                // Notified or timed out: either way we are no longer parked.
                inner.state.swap(EMPTY, Ordering::SeqCst);
            }
        }
    }

    fn unparker(&self) -> Arc<dyn Unpark> {
        self.inner.clone()
    }
}

impl Unpark for ParkInner {
    fn unpark(&self) {
        match self.state.swap(NOTIFIED, Ordering::SeqCst) {
            EMPTY | NOTIFIED => {} // no sleeper: the token is left for the next park
            PARKED => {
                // Take the lock so the parker is really waiting (step 2 holds it from
                // its announcement until `wait` releases it), then signal.
                drop(lock(&self.lock));
                self.cvar.notify_one();
            }
            actual => panic!("inconsistent park state: {actual}"),
        }
    }
}
