//! The owned-task list: every live task of a runtime, so shutdown can cancel the ones
//! that are parked on a waker nobody will ever call.
//!
//! Sharded by task id to keep spawn and completion (one lock each) from contending
//! across workers. Each shard is a [`Shard`] of owned references, one word per task;
//! a task's key is stored in its header (`owned_key`) and only read or written under
//! the shard's lock.
//!
//! Closing is one-way: after `close_and_shutdown_all` starts, `bind` refuses new tasks
//! (it cancels them on the spot), so the shards drain and stay empty.

use super::{Notified, Task};
use crate::loom::{lock, AtomicBool, Mutex, Ordering};

/// Shards per worker: enough that concurrent spawns from every worker rarely collide.
/// Under loom, one shard: task ids come from a process-wide counter, and a shard chosen
/// by id would make models nondeterministic.
#[cfg(not(loom))]
const SHARDS_PER_WORKER: usize = 4;
#[cfg(loom)]
const SHARDS_PER_WORKER: usize = 1;

/// One shard's tasks: a slot per task, and the indexes of the free slots. A live task
/// costs one word (`Option<Task>` is a pointer); `slab::Slab`'s entries are two (their
/// tag), on every live task of the runtime.
struct Shard {
    slots: Vec<Option<Task>>,
    free: Vec<u32>,
    len: usize,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    /// The key the next [`insert`](Self::insert) will use.
    fn vacant_key(&self) -> usize {
        self.free
            .last()
            .map_or(self.slots.len(), |&free| free as usize)
    }

    fn insert(&mut self, task: Task) {
        match self.free.pop() {
            Some(free) => {
                let slot = &mut self.slots[free as usize];
                debug_assert!(slot.is_none(), "a free slot holds a task");
                *slot = Some(task);
            }
            None => self.slots.push(Some(task)),
        }
        self.len += 1;
    }

    fn get(&self, key: usize) -> Option<&Task> {
        self.slots.get(key)?.as_ref()
    }

    /// Takes the task in slot `key`, which holds one.
    fn remove(&mut self, key: usize) -> Task {
        let task = self.slots[key].take().expect("removing a listed task");
        let key = u32::try_from(key).expect("keys fit the task header's u32");
        self.free.push(key);
        self.len -= 1;
        task
    }

    /// Takes every task, leaving the shard empty (and its memory freed).
    fn drain(&mut self) -> Vec<Task> {
        self.free = Vec::new();
        self.len = 0;
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .collect()
    }

    fn iter(&self) -> impl Iterator<Item = &Task> {
        self.slots.iter().flatten()
    }
}

pub(crate) struct OwnedTasks {
    shards: Box<[Mutex<Shard>]>,
    /// `shards.len() - 1`; the length is a power of two.
    mask: usize,
    closed: AtomicBool,
}

impl OwnedTasks {
    pub(crate) fn new(workers: usize) -> OwnedTasks {
        let n = (workers.max(1) * SHARDS_PER_WORKER).next_power_of_two();
        OwnedTasks {
            shards: (0..n).map(|_| Mutex::new(Shard::new())).collect(),
            mask: n - 1,
            closed: AtomicBool::new(false),
        }
    }

    fn shard(&self, task: &Task) -> &Mutex<Shard> {
        // Truncation is fine: only the low bits pick the shard.
        &self.shards[task.id().as_u64() as usize & self.mask]
    }

    /// Adds a new task. Returns its `Notified` to be scheduled, or `None` when the list
    /// is closed, in which case the task has been cancelled.
    pub(crate) fn bind(&self, task: Task, notified: Notified) -> Option<Notified> {
        let mut shard = lock(self.shard(&task));
        // Checked under the shard lock: `close_and_shutdown_all` sets the flag before
        // draining each shard, so a task is either drained or refused here.
        if self.closed.load(Ordering::Acquire) {
            drop(shard);
            drop(notified);
            task.shutdown();
            return None;
        }
        let raw = task.raw();
        let key = shard.vacant_key();
        let key = u32::try_from(key).expect("fewer than 4 billion live tasks in one shard");
        raw.header().owned_key.store(key, Ordering::Relaxed);
        shard.insert(task);
        Some(notified)
    }

    /// Removes a completing task; returns the list's reference if it was still listed.
    pub(crate) fn release(&self, task: &Task) -> Option<Task> {
        let mut shard = lock(self.shard(task));
        // Written under this lock by `bind`.
        let key = task.raw().header().owned_key.load(Ordering::Relaxed) as usize;
        match shard.get(key) {
            Some(listed) if listed.raw() == task.raw() => Some(shard.remove(key)),
            _ => None,
        }
    }

    /// Refuses new tasks and cancels every listed task that is not running. Running
    /// tasks are cancelled by their worker when their current poll returns.
    pub(crate) fn close_and_shutdown_all(&self) {
        self.closed.store(true, Ordering::Release);
        for shard in self.shards.iter() {
            // Take them out first: cancelling runs user `Drop` code, which may spawn
            // (refused) or complete other tasks, both of which lock shards.
            let tasks: Vec<Task> = lock(shard).drain();
            for task in tasks {
                task.shutdown();
            }
        }
    }

    /// Number of live tasks (locks every shard; for metrics and tests).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len).sum()
    }

    /// Calls `f` with every live task (one shard locked at a time; `f` must not spawn).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Task)) {
        for shard in self.shards.iter() {
            for task in lock(shard).iter() {
                f(task);
            }
        }
    }
}
