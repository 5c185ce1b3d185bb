//! A minimal scheduler for unit tests, loom models and Miri: a FIFO of `Notified` tasks
//! that the test drains by hand, with the same owned-task list as the runtime.

#![allow(dead_code)] // each configuration (unit, loom, Miri) uses a different subset

use std::collections::VecDeque;
use std::future::Future;
use std::panic::Location;
use std::task::{Context, Poll, Waker};

use super::{new_task, Id, JoinHandle, Notified, OwnedTasks, Schedule, Task};
use crate::loom::{lock, Arc, Mutex};

pub(crate) struct TestSched {
    pub(crate) queue: Mutex<VecDeque<Notified>>,
    pub(crate) owned: OwnedTasks,
}

#[derive(Clone)]
pub(crate) struct Sched(pub(crate) Arc<TestSched>);

impl Sched {
    pub(crate) fn new() -> Sched {
        Sched(Arc::new(TestSched {
            queue: Mutex::new(VecDeque::new()),
            owned: OwnedTasks::new(1),
        }))
    }

    #[track_caller]
    pub(crate) fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (task, notified, join) = new_task(fut, self.clone(), Id::next(), Location::caller());
        if let Some(n) = self.0.owned.bind(task, notified) {
            lock(&self.0.queue).push_back(n);
        }
        join
    }

    /// A task made and bound, but handed to the caller instead of queued.
    pub(crate) fn notified<F>(&self, fut: F) -> (Notified, JoinHandle<F::Output>)
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (task, notified, join) = new_task(fut, self.clone(), Id::next(), Location::caller());
        let n = self.0.owned.bind(task, notified).expect("not closed");
        (n, join)
    }

    pub(crate) fn pop(&self) -> Option<Notified> {
        lock(&self.0.queue).pop_front()
    }

    pub(crate) fn queued(&self) -> usize {
        lock(&self.0.queue).len()
    }

    /// Runs queued tasks until the queue is empty; returns how many runs happened.
    pub(crate) fn run_all(&self) -> usize {
        let mut n = 0;
        while let Some(t) = self.pop() {
            t.run();
            n += 1;
        }
        n
    }

    /// Cancels everything left and drops queued references (end of a test).
    pub(crate) fn shutdown(&self) {
        self.0.owned.close_and_shutdown_all();
        while let Some(t) = self.pop() {
            drop(t);
        }
    }
}

impl Schedule for Sched {
    fn schedule(&self, task: Notified) {
        lock(&self.0.queue).push_back(task);
    }

    fn release(&self, task: &Task) -> Option<Task> {
        self.0.owned.release(task)
    }
}

/// Polls a `JoinHandle` once with a no-op waker.
pub(crate) fn poll_once<T>(join: &mut JoinHandle<T>) -> Poll<Result<T, super::JoinError>> {
    let mut cx = Context::from_waker(Waker::noop());
    std::pin::Pin::new(join).poll(&mut cx)
}
