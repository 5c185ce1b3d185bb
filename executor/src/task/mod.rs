//! Tasks: gort's goroutines.
//!
//! A task is one heap allocation (`raw.rs`) holding its header, its scheduler handle, its
//! future — later its output — and the waker of whoever joins it. Everything that refers
//! to a task is a pointer to that allocation plus one reference in its state word
//! (`state.rs`):
//!
//! - `Task`: the owned-task list's reference, which lets shutdown find and cancel every
//!   live task.
//! - `Notified`: a task that is due to run. At most one exists per task; running it
//!   polls the future (or cancels it) and turns the reference into the running one.
//! - [`Waker`](std::task::Waker)s: each clone owns a reference; `wake` submits a
//!   `Notified` only when the task was idle, so wake-ups never allocate and
//!   [`Waker::will_wake`](std::task::Waker::will_wake) compares equal for the same task.
//! - [`JoinHandle`]: the reference of the one party that may read the output.
//!
//! A task is scheduled through the `Schedule` trait, so the same cell serves worker
//! tasks, blocking-pool tasks and the test schedulers of the loom models.

mod error;
mod join;
mod owned;
mod raw;
mod state;
pub(crate) mod wait;
mod yield_now;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(all(test, not(loom)))]
mod tests;

pub use crate::coop::{consume_budget, unconstrained, Unconstrained};
pub use error::JoinError;
pub use join::{AbortHandle, JoinHandle};
pub use wait::{current_wait_reason, set_wait_reason, WaitReason};
pub use yield_now::yield_now;

pub(crate) use owned::OwnedTasks;
pub(crate) use raw::RawTask;

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::Location;

/// A task's identifier, unique among all tasks of the process for its lifetime.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(u64);

impl Id {
    pub(crate) fn next() -> Id {
        // Not part of any concurrent protocol, so plain std (also under loom).
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Id(NEXT.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.0)
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One live task, as listed by [`Handle::dump`](crate::Handle::dump) (what Go prints
/// for each goroutine on `SIGQUIT`).
#[derive(Clone, Debug)]
pub struct TaskDump {
    /// The task's id, unique for the process's life.
    pub id: Id,
    /// Where it was spawned (`gort::spawn` and friends are `#[track_caller]`).
    pub spawned_at: &'static Location<'static>,
    /// What it is doing now.
    pub state: TaskState,
    /// `abort()` or shutdown was requested; it stops at its next `.await`.
    pub cancelled: bool,
    /// What it waits for, when `Waiting`.
    pub wait: WaitReason,
}

/// What a live task is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Parked on a waker: waiting for a channel, a lock, I/O, a timer, a join...
    Waiting,
    /// In a run queue, due to run.
    Scheduled,
    /// Being polled by a worker (or a blocking thread) right now.
    Running,
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            TaskState::Waiting => self.wait.to_string(),
            TaskState::Scheduled => "runnable".to_owned(),
            TaskState::Running => "running".to_owned(),
        };
        let cancelled = if self.cancelled { ", cancelled" } else { "" };
        write!(
            f,
            "task {} [{state}{cancelled}]: spawned at {}",
            self.id, self.spawned_at
        )
    }
}

/// How a task reaches a run queue. Implemented by the worker scheduler, the blocking
/// pool and test schedulers.
pub(crate) trait Schedule: Send + Sync + 'static {
    /// Queues a task that was woken (or aborted while idle).
    fn schedule(&self, task: Notified);

    /// Queues a task that woke itself during its own poll: it should run after the
    /// tasks already waiting.
    fn yield_now(&self, task: Notified) {
        self.schedule(task);
    }

    /// Removes a completing task from the owned-task list, returning the list's
    /// reference, or `None` when shutdown already took it out.
    fn release(&self, task: &Task) -> Option<Task>;
}

/// An owned reference to a task, as held by the owned-task list.
pub(crate) struct Task {
    raw: RawTask,
}

impl Task {
    /// # Safety
    /// The caller transfers one reference of `raw` to the new handle.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Task {
        Task { raw }
    }

    pub(crate) fn raw(&self) -> RawTask {
        self.raw
    }

    pub(crate) fn id(&self) -> Id {
        self.raw.header().id
    }

    /// What `dump` shows of this task.
    pub(crate) fn dump(&self) -> TaskDump {
        let header = self.raw.header();
        let s = header.state.load();
        let state = if s.is_running() {
            TaskState::Running
        } else if s.is_notified() {
            TaskState::Scheduled
        } else {
            TaskState::Waiting
        };
        TaskDump {
            id: header.id,
            spawned_at: header.spawned_at,
            state,
            cancelled: s.is_cancelled(),
            wait: WaitReason::from_u8(header.wait.load(std::sync::atomic::Ordering::Relaxed)),
        }
    }

    /// Cancels the task if it is idle (runtime shutdown); consumes this reference.
    pub(crate) fn shutdown(self) {
        let raw = ManuallyDrop::new(self).raw;
        raw.shutdown();
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.raw.drop_reference();
    }
}

/// A task that is due to run. Dropping it without running it just drops its reference
/// (the owned list still finds the task at shutdown).
pub(crate) struct Notified(Task);

impl Notified {
    /// # Safety
    /// The caller transfers one reference of `raw`, for which `NOTIFIED` is set.
    pub(crate) unsafe fn from_raw(raw: RawTask) -> Notified {
        // SAFETY: forwarded from the caller.
        Notified(unsafe { Task::from_raw(raw) })
    }

    /// Polls (or cancels) the task; the reference moves into the poll.
    pub(crate) fn run(self) {
        let raw = ManuallyDrop::new(self).0.raw;
        raw.poll();
    }

    pub(crate) fn id(&self) -> Id {
        self.0.id()
    }

    /// Gives up ownership without dropping the reference (used by the run queue, which
    /// stores raw pointers).
    pub(crate) fn into_raw(self) -> RawTask {
        ManuallyDrop::new(self).0.raw
    }
}

impl fmt::Debug for Notified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Notified").field(&self.id()).finish()
    }
}

/// Allocates a task: the owned-list reference, the first `Notified`, and the handle.
pub(crate) fn new_task<F, S>(
    future: F,
    scheduler: S,
    id: Id,
    spawned_at: &'static Location<'static>,
) -> (Task, Notified, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let ptr = raw::allocate(future, scheduler, id, spawned_at);
    let raw = RawTask::from_ptr(ptr);
    // SAFETY: `allocate` made three references (owned list, Notified, JoinHandle) and set
    // NOTIFIED and JOIN_INTEREST; each handle below takes one.
    unsafe {
        (
            Task::from_raw(raw),
            Notified::from_raw(raw),
            JoinHandle::from_raw(raw),
        )
    }
}
