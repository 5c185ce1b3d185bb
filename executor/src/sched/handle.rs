//! The scheduler's handle: what `gort::spawn`, wakers and the blocking pool hold to
//! reach a runtime (tokio's `scheduler::Handle` plays the same part).
//!
//! The type is defined here, below the runtime, because the scheduler's threads need it
//! (a worker makes its runtime current, wakers schedule through it, pool threads enter
//! it); the runtime layer adds the user-facing methods (`spawn`, `block_on`, `metrics`)
//! in `runtime/mod.rs` and re-exports it as `gort::runtime::Handle`.

use std::fmt;
use std::sync::Arc;

use super::current::{self, SetCurrentGuard};
use super::worker::Shared;
use crate::blocking::PoolContext;
use crate::task::{Notified, Schedule, Task};

/// A reference to a runtime that can spawn tasks from any thread. Cheap to clone.
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.num_workers())
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// Queues a woken task: on this runtime's worker, the local queue; else the injector.
    fn schedule_task(&self, task: Notified, is_yield: bool) {
        let remote = current::with_worker(|worker| {
            let Some(worker) = worker else {
                return Some(task);
            };
            if !Arc::ptr_eq(&worker.handle.shared, &self.shared) {
                return Some(task);
            }
            // The P is in the slot while this thread polls a task or parks; it is
            // missing between polls or once it was handed off.
            match worker.slot.borrow() {
                Some(mut core) => {
                    self.shared.schedule_local(&mut core, task, is_yield);
                    worker.note_scheduled();
                    None
                }
                None => Some(task),
            }
        });
        if let Some(task) = remote {
            self.shared.schedule_remote(task);
        }
    }
}

impl Schedule for Handle {
    fn schedule(&self, task: Notified) {
        self.schedule_task(task, false);
    }

    fn yield_now(&self, task: Notified) {
        self.schedule_task(task, true);
    }

    fn release(&self, task: &Task) -> Option<Task> {
        self.shared.owned.release(task)
    }
}

/// A blocking-pool thread runs with its runtime current.
impl PoolContext for Handle {
    type Guard = SetCurrentGuard;

    fn enter(&self) -> SetCurrentGuard {
        current::set_current(self)
    }
}

/// Scheduler of blocking tasks: their queue is the pool's.
pub(crate) struct BlockingSchedule {
    handle: Handle,
}

impl BlockingSchedule {
    pub(crate) fn new(handle: Handle) -> BlockingSchedule {
        BlockingSchedule { handle }
    }
}

impl Schedule for BlockingSchedule {
    fn schedule(&self, task: Notified) {
        // A blocking task never returns Pending, and an abort while it is queued only
        // marks it; so this is reached only if a waker of the task is woken from inside
        // the closure, and re-queuing is still correct.
        self.handle.shared.blocking.push(task, &self.handle);
    }

    fn release(&self, task: &Task) -> Option<Task> {
        self.handle.shared.owned.release(task)
    }
}
