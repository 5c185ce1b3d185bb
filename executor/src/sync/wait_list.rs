//! The waiter queue shared by every primitive: a FIFO of parked futures, each with a
//! value the primitive defines (permits needed, a notification kind, nothing at all).
//!
//! # Shape
//!
//! A doubly-linked list threaded through a [`Slab`]: `push_back`, `pop_front` and the
//! removal of any waiter are O(1), and the slots of dropped waiters are reused, so the
//! queue's memory is bounded by the largest number of waiters that were ever parked at
//! once (and is given back when the queue empties after a burst, see
//! [`SHRINK_ABOVE_SLOTS`]).
//!
//! # Slot life cycle
//!
//! A slot is owned by exactly one future, through the [`WaiterKey`] that `push_back`
//! returns (it is neither `Clone` nor `Copy`, and `remove` consumes it).
//!
//! | state    | `queued` | meaning                                                        |
//! |----------|----------|----------------------------------------------------------------|
//! | queued   | true     | linked between `head` and `tail`; the future is waiting        |
//! | dequeued | false    | a notifier took it off the list (`pop_front`) and set its value to say what it was given; the future has not looked yet |
//! | free     | —        | `remove` freed the slot; only the future can do this           |
//!
//! Because only the owning future frees its slot, a key can never name somebody else's
//! slot (no ABA), and a future that is dropped while *dequeued* still finds out what it
//! was given and can hand it back. That is the whole of the module's cancel safety.
//!
//! The list is not synchronised: it always lives inside its primitive's `Mutex`.
//!
//! # Wakers never die under a lock
//!
//! Dropping a `Waker` can drop the last reference to some task, and with it run that
//! task's destructors — which may touch this very primitive (drop a permit, a guard) and
//! so need its lock. Hence nothing here drops a waker: `pop_front` moves it into a
//! [`WakeList`] to be woken after unlocking, and `set_waker` and `remove` hand back the
//! waker they displace, for the caller to drop after unlocking.

#![forbid(unsafe_code)]

use std::task::Waker;

use slab::Slab;

/// When the queue empties and the slab has more slots than this, the slab is freed. A
/// burst of ten thousand waiters should not pin their slots forever; a mutex that
/// always has a handful of waiters should not reallocate on every burst. 64 slots of
/// a few words each are a few KiB at most.
const SHRINK_ABOVE_SLOTS: usize = 64;

/// Names one waiter's slot. Owned by the waiting future; see the module docs.
#[derive(Debug)]
pub(super) struct WaiterKey(usize);

struct Slot<T> {
    value: T,
    /// The waker to call when the waiter is dequeued. `None` once it was taken.
    waker: Option<Waker>,
    /// Linked into the queue (see the table in the module docs).
    queued: bool,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A FIFO of waiters; see the module docs.
pub(super) struct WaitList<T> {
    slots: Slab<Slot<T>>,
    head: Option<usize>,
    tail: Option<usize>,
    /// Number of queued (linked) waiters.
    queued: usize,
}

impl<T> WaitList<T> {
    pub(super) const fn new() -> Self {
        WaitList {
            slots: Slab::new(),
            head: None,
            tail: None,
            queued: 0,
        }
    }

    /// No waiter is queued (dequeued slots whose futures have not looked yet do not
    /// count: they wait for nothing).
    pub(super) fn is_empty(&self) -> bool {
        self.queued == 0
    }

    /// Number of queued waiters.
    pub(super) fn len(&self) -> usize {
        self.queued
    }

    /// Number of slots in use, queued or dequeued: what a leak would make grow.
    #[cfg(all(test, not(loom)))]
    pub(super) fn slots_in_use(&self) -> usize {
        self.slots.len()
    }

    /// Appends a waiter; its future owns the returned key.
    pub(super) fn push_back(&mut self, value: T, waker: Option<&Waker>) -> WaiterKey {
        let idx = self.slots.insert(Slot {
            value,
            waker: waker.cloned(),
            queued: true,
            prev: self.tail,
            next: None,
        });
        match self.tail {
            Some(t) => self.slots[t].next = Some(idx),
            None => self.head = Some(idx),
        }
        self.tail = Some(idx);
        self.queued += 1;
        WaiterKey(idx)
    }

    /// Whether the waiter is still queued (not yet dequeued by a notifier).
    pub(super) fn is_queued(&self, key: &WaiterKey) -> bool {
        self.slots[key.0].queued
    }

    pub(super) fn value(&self, key: &WaiterKey) -> &T {
        &self.slots[key.0].value
    }

    /// Stores `waker` for a queued waiter, unless the stored one already wakes the
    /// same task (the common case: one clone per park, not one per poll). Returns the
    /// waker it replaced, for the caller to drop after releasing its lock.
    #[must_use = "drop the replaced waker after releasing the lock"]
    pub(super) fn set_waker(&mut self, key: &WaiterKey, waker: &Waker) -> Option<Waker> {
        let slot = &mut self.slots[key.0];
        match &mut slot.waker {
            Some(w) if w.will_wake(waker) => None,
            w => w.replace(waker.clone()),
        }
    }

    /// The value of the first queued waiter.
    pub(super) fn front_mut(&mut self) -> Option<&mut T> {
        let h = self.head?;
        Some(&mut self.slots[h].value)
    }

    /// Dequeues the first waiter, moving its waker into `wakes`, and returns its value
    /// so the caller can record what the waiter was given. The slot stays allocated
    /// until its future calls [`remove`](Self::remove).
    pub(super) fn pop_front(&mut self, wakes: &mut WakeList) -> Option<&mut T> {
        let h = self.head?;
        self.unlink(h);
        let slot = &mut self.slots[h];
        wakes.push(slot.waker.take());
        Some(&mut slot.value)
    }

    /// Dequeues every waiter, calling `f` on each value in FIFO order.
    pub(super) fn drain(&mut self, wakes: &mut WakeList, mut f: impl FnMut(&mut T)) {
        while let Some(v) = self.pop_front(wakes) {
            f(v);
        }
    }

    /// Frees the waiter's slot, unlinking it first if it is still queued.
    #[must_use = "drop the returned waker after releasing the lock"]
    pub(super) fn remove(&mut self, key: WaiterKey) -> Removed<T> {
        let was_queued = self.slots[key.0].queued;
        if was_queued {
            self.unlink(key.0);
        }
        let slot = self.slots.remove(key.0);
        if self.slots.is_empty() && self.slots.capacity() > SHRINK_ABOVE_SLOTS {
            self.slots = Slab::new();
        }
        Removed {
            value: slot.value,
            was_queued,
            waker: slot.waker,
        }
    }

    fn unlink(&mut self, idx: usize) {
        let (prev, next) = {
            let slot = &mut self.slots[idx];
            debug_assert!(slot.queued, "unlinking a waiter that is not queued");
            slot.queued = false;
            (slot.prev.take(), slot.next.take())
        };
        match prev {
            Some(p) => self.slots[p].next = next,
            None => self.head = next,
        }
        match next {
            Some(n) => self.slots[n].prev = prev,
            None => self.tail = prev,
        }
        self.queued -= 1;
    }
}

impl<T> std::fmt::Debug for WaitList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitList")
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

/// What [`WaitList::remove`] returns.
pub(super) struct Removed<T> {
    pub(super) value: T,
    /// The waiter was still queued (nobody had dequeued it).
    pub(super) was_queued: bool,
    /// The waker still stored: `Some` only for a waiter that was still queued. Drop it
    /// after releasing the lock (see [`WaitList`]'s module docs).
    pub(super) waker: Option<Waker>,
}

/// Wakers collected under a lock, to be woken after it is released.
///
/// The first waker is stored inline: releasing a mutex or a permit wakes one waiter,
/// and that path should not allocate. Call [`wake_all`](Self::wake_all) after dropping
/// the guard; a `WakeList` dropped without it drops its wakers unwoken (that only
/// happens while unwinding).
#[derive(Default)]
pub(super) struct WakeList {
    first: Option<Waker>,
    rest: Vec<Waker>,
}

impl WakeList {
    pub(super) fn new() -> Self {
        WakeList::default()
    }

    pub(super) fn push(&mut self, waker: Option<Waker>) {
        let Some(w) = waker else { return };
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.push(w);
        }
    }

    /// Wakes everything collected. Call it with no lock held.
    pub(super) fn wake_all(self) {
        if let Some(w) = self.first {
            w.wake();
        }
        for w in self.rest {
            w.wake();
        }
    }
}
