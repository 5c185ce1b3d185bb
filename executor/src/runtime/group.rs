//! `Group`: Go's `errgroup`. Tasks that return `Result`, the first error kept, a
//! shared [`Context`] cancelled the moment it happens, `wait` for all of them.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use super::JoinSet;
use crate::sync::{CancelHandle, Context};

/// A group of tasks working on one job. Go's `golang.org/x/sync/errgroup.Group`.
///
/// ```
/// # gort_executor::Runtime::<gort_executor::NoReactor>::new().unwrap().block_on(async {
/// use gort_executor::runtime::Group;
/// use gort_executor::sync::Context;
///
/// let (mut group, ctx) = Group::<String>::with_context(&Context::background());
/// for i in 0..4 {
///     let ctx = ctx.clone();
///     group.spawn(async move {
///         if i == 2 {
///             return Err(format!("part {i} failed"));
///         }
///         ctx.done().await; // the others stop when one fails
///         Ok(())
///     });
/// }
/// assert_eq!(group.wait().await, Err("part 2 failed".to_string()));
/// # });
/// ```
///
/// Differences from Go: a task that panics cancels the context as an error would, and
/// [`wait`](Self::wait) resumes the panic once every task has stopped (in Go the panic
/// ends the program). Dropping a group without waiting aborts its tasks, as
/// [`JoinSet`] does. Go's `SetLimit` is not here: a [`Semaphore`](crate::sync::Semaphore)
/// acquired inside each task does the same.
pub struct Group<E> {
    tasks: JoinSet<()>,
    first: Arc<Mutex<Option<E>>>,
    cancel: Option<CancelHandle>,
}

impl<E: Send + 'static> Group<E> {
    /// A group without a context. Go's zero `errgroup.Group`.
    pub fn new() -> Group<E> {
        Group {
            tasks: JoinSet::new(),
            first: Arc::new(Mutex::new(None)),
            cancel: None,
        }
    }

    /// A group and a context derived from `parent`, cancelled when a task first fails
    /// (or panics), or when [`wait`](Self::wait) returns, whichever comes first. Go's
    /// `errgroup.WithContext`.
    pub fn with_context(parent: &Context) -> (Group<E>, Context) {
        let (ctx, cancel) = parent.with_cancel();
        let group = Group {
            tasks: JoinSet::new(),
            first: Arc::new(Mutex::new(None)),
            cancel: Some(cancel),
        };
        (group, ctx)
    }

    /// Spawns `task` into the group. Its error, if it is the first, is what
    /// [`wait`](Self::wait) returns, and it cancels the group's context at once.
    ///
    /// # Panics
    /// When the thread has no current runtime.
    #[track_caller]
    pub fn spawn<F>(&mut self, task: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let first = self.first.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            // Cancels on a panic (the guard is dropped while unwinding) and on an error;
            // disarmed when the task succeeds.
            let mut guard = CancelOnDrop(cancel);
            if let Err(e) = task.await {
                let mut slot = first.lock().unwrap_or_else(|p| p.into_inner());
                if slot.is_none() {
                    *slot = Some(e);
                }
            } else {
                guard.0 = None;
            }
        });
    }

    /// Tasks not yet finished or not yet waited for.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is left.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for every task, cancels the context, and returns the first error (`Ok`
    /// if none failed). Go's `Group.Wait`.
    ///
    /// # Panics
    /// Resumes the first panic of a task, after every task has stopped.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping the future drops the group, which aborts the tasks
    /// still running.
    pub async fn wait(mut self) -> Result<(), E> {
        let mut panic = None;
        while let Some(res) = self.tasks.join_next().await {
            if let Err(e) = res {
                if e.is_panic() && panic.is_none() {
                    panic = Some(e.into_panic());
                }
            }
        }
        if let Some(c) = &self.cancel {
            c.cancel();
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        let first = self.first.lock().unwrap_or_else(|p| p.into_inner()).take();
        match first {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

struct CancelOnDrop(Option<CancelHandle>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.cancel();
        }
    }
}

impl<E: Send + 'static> Default for Group<E> {
    fn default() -> Self {
        Group::new()
    }
}

impl<E> fmt::Debug for Group<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("tasks", &self.tasks.len())
            .field("with_context", &self.cancel.is_some())
            .finish()
    }
}
