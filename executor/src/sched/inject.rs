//! The injector: the runtime-wide queue for tasks woken or spawned off the workers and
//! for local-queue overflow (Go's global run queue).
//!
//! A mutex-guarded `VecDeque` plus an atomic length, so the common "is there anything?"
//! check on the hot path costs one load and no lock. Workers take from it every
//! `GLOBAL_QUEUE_INTERVAL` ticks for fairness, and in batches when their own queue runs
//! dry. Once closed (shutdown) it drops what it is given.

use std::collections::VecDeque;

use crate::loom::{lock, AtomicUsize, Mutex, Ordering};
use crate::task::Notified;

pub(crate) struct Inject {
    synced: Mutex<Synced>,
    /// Mirrors `synced.queue.len()`; written under the lock.
    len: AtomicUsize,
}

struct Synced {
    queue: VecDeque<Notified>,
    closed: bool,
}

impl Inject {
    pub(crate) fn new() -> Inject {
        Inject {
            synced: Mutex::new(Synced {
                queue: VecDeque::new(),
                closed: false,
            }),
            len: AtomicUsize::new(0),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Queues a task; returns false (and drops it) when closed.
    pub(crate) fn push(&self, task: Notified) -> bool {
        let mut synced = lock(&self.synced);
        if synced.closed {
            return false;
        }
        synced.queue.push_back(task);
        self.len.store(synced.queue.len(), Ordering::Release);
        true
    }

    pub(crate) fn push_batch(&self, tasks: impl Iterator<Item = Notified>) {
        let mut synced = lock(&self.synced);
        if synced.closed {
            // Drop them outside the lock: dropping a reference may free a task.
            drop(synced);
            tasks.for_each(drop);
            return;
        }
        synced.queue.extend(tasks);
        self.len.store(synced.queue.len(), Ordering::Release);
    }

    pub(crate) fn pop(&self) -> Option<Notified> {
        if self.is_empty() {
            return None;
        }
        let mut synced = lock(&self.synced);
        let task = synced.queue.pop_front();
        self.len.store(synced.queue.len(), Ordering::Release);
        task
    }

    /// Takes up to `n` tasks, oldest first, handing them to `f` under the lock (`f` must
    /// not touch the injector).
    pub(crate) fn pop_n(
        &self,
        n: usize,
        f: impl FnOnce(&mut dyn ExactSizeIterator<Item = Notified>),
    ) {
        if self.is_empty() || n == 0 {
            return;
        }
        let mut synced = lock(&self.synced);
        let n = n.min(synced.queue.len());
        f(&mut synced.queue.drain(..n));
        self.len.store(synced.queue.len(), Ordering::Release);
    }

    /// Refuses further pushes and returns what was queued.
    pub(crate) fn close(&self) -> VecDeque<Notified> {
        let mut synced = lock(&self.synced);
        synced.closed = true;
        self.len.store(0, Ordering::Release);
        std::mem::take(&mut synced.queue)
    }
}
