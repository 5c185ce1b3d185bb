//! The threads a runtime starts (workers and blocking-pool threads): how they are
//! named and sized, and how shutdown waits for them.
//!
//! A leaf: it knows nothing of tasks or schedulers, so the blocking pool and the
//! scheduler, which both start threads, share one configuration type and one wait.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Names each new thread (`Builder::thread_name_fn`).
pub(crate) type ThreadNameFn = Arc<dyn Fn() -> String + Send + Sync + 'static>;

/// How the runtime's threads are built: one value, shared by the workers and the
/// blocking pool (`Builder::thread_name`, `Builder::thread_stack_size`).
#[derive(Clone)]
pub(crate) struct ThreadConfig {
    pub(crate) name: ThreadNameFn,
    /// `None`: the standard library's default.
    pub(crate) stack_size: Option<usize>,
}

impl ThreadConfig {
    /// A `std::thread::Builder` with the next name and the configured stack size.
    pub(crate) fn builder(&self) -> std::thread::Builder {
        let builder = std::thread::Builder::new().name((self.name)());
        match self.stack_size {
            Some(size) => builder.stack_size(size),
            None => builder,
        }
    }
}

/// While shutdown waits for workers and blocking closures, how often it turns the
/// reactor for them (the monitor is gone, and so are the workers that turned it): a
/// poll or closure waiting on a timer or a socket (`Handle::block_on(sleep(..))` in a
/// blocking closure) is served at most this late.
pub(crate) const SHUTDOWN_REACTOR_TICK: Duration = Duration::from_millis(1);

/// Shutdown's waits: blocks on `cv` (guarding `lock`) until `done` holds or `deadline`
/// passes; with `turn`, wakes every [`SHUTDOWN_REACTOR_TICK`] and calls it with the lock
/// released. True when `done` held.
pub(crate) fn wait_turning<T>(
    lock: &Mutex<T>,
    cv: &Condvar,
    deadline: Option<Instant>,
    turn: Option<&dyn Fn()>,
    done: impl Fn(&T) -> bool,
) -> bool {
    let relock = || lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut guard = relock();
    while !done(&guard) {
        let mut wait = turn.map(|_| SHUTDOWN_REACTOR_TICK);
        if let Some(deadline) = deadline {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            wait = Some(wait.map_or(deadline - now, |w| w.min(deadline - now)));
        }
        guard = match wait {
            None => cv.wait(guard).unwrap_or_else(|e| e.into_inner()),
            Some(w) => {
                cv.wait_timeout(guard, w)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
        if let Some(turn) = turn.filter(|_| !done(&guard)) {
            drop(guard);
            turn();
            guard = relock();
        }
    }
    true
}
