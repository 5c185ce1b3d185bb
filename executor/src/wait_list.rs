//! The waiter queue shared by every primitive, channels included: a FIFO of parked
//! futures, each with a value the primitive defines (permits needed, a notification
//! kind, a channel's value in transit, nothing at all).
//!
//! # Shape
//!
//! A doubly-linked list threaded through a [`Slab`]: `push_back`, `pop_front` and the
//! removal of any waiter are O(1) (a cancelled channel send or receive, a dropped lock
//! future), and the slots of dropped waiters are reused, so the
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
//!
//! A `WakeList` holds [`Waker`]s, or anything else that can be woken ([`Wake`]): a
//! channel's list also holds the shared contexts of `select!`s, which wake whichever
//! waker their select last stored.
//!
//! Links are `u32`s: a queue with four billion parked futures is not one we can reach,
//! and the narrower links (10 bytes with the `queued` flag and the list number) keep a
//! slot at its value, a waker and 16 bytes for an 8-aligned value (`Slot<u64>` is 40
//! bytes), and each list at 12 bytes beside the slab. A channel keeps its senders and
//! receivers as two lists of one slab (`WaitList<_, 2>`): Go's `hchan` is the size to
//! beat.

#![forbid(unsafe_code)]

use std::task::Waker;

use slab::Slab;

/// When the queue empties and the slab has more slots than this, the slab is freed. A
/// burst of ten thousand waiters should not pin their slots forever; a mutex that
/// always has a handful of waiters should not reallocate on every burst. 64 slots of
/// a few words each are a few KiB at most.
const SHRINK_ABOVE_SLOTS: usize = 64;

/// Names one waiter's slot. Owned by the waiting future; see the module docs. A `u32`,
/// as the links are: it lives in every waiting future (a channel `Recv` is a pointer
/// and this).
#[derive(Debug)]
pub(crate) struct WaiterKey(u32);

struct Slot<T> {
    value: T,
    /// The waker to call when the waiter is dequeued. `None` once it was taken.
    waker: Option<Waker>,
    /// Linked into its list (see the table in the module docs).
    queued: bool,
    /// Which of the queue's lists it is (or was) in.
    list: u8,
    prev: Link,
    next: Link,
}

/// A slab index, or [`NIL`].
type Link = u32;
const NIL: Link = Link::MAX;

fn link(idx: usize) -> Link {
    assert!(
        idx < NIL as usize,
        "more than 4 billion parked waiters on one queue"
    );
    idx as Link
}

fn index(l: Link) -> Option<usize> {
    (l != NIL).then_some(l as usize)
}

/// One list's ends and length.
#[derive(Clone, Copy)]
struct Ends {
    head: Link,
    tail: Link,
    /// Number of queued (linked) waiters.
    queued: u32,
}

const EMPTY: Ends = Ends {
    head: NIL,
    tail: NIL,
    queued: 0,
};

/// `N` FIFOs of waiters threaded through one slab; see the module docs. Every
/// primitive but the channel has one list; a channel keeps its senders and its
/// receivers in two lists of one slab, so the pair costs one slab (Go's `hchan`
/// has two lists of goroutines, too).
pub(crate) struct WaitList<T, const N: usize = 1> {
    slots: Slab<Slot<T>>,
    lists: [Ends; N],
}

/// The one-list queue's API: the list is implied.
impl<T> WaitList<T> {
    /// No waiter is queued (dequeued slots whose futures have not looked yet do not
    /// count: they wait for nothing).
    pub(crate) fn is_empty(&self) -> bool {
        self.is_empty_in(0)
    }

    /// Number of queued waiters.
    pub(crate) fn len(&self) -> usize {
        self.len_in(0)
    }

    /// Appends a waiter; its future owns the returned key.
    #[inline]
    pub(crate) fn push_back(&mut self, value: T, waker: Option<&Waker>) -> WaiterKey {
        self.push_back_to(0, value, waker)
    }

    /// The value of the first queued waiter.
    #[inline]
    pub(crate) fn front_mut(&mut self) -> Option<&mut T> {
        let h = index(self.lists[0].head)?;
        Some(&mut self.slots[h].value)
    }

    /// Dequeues the first waiter, moving its waker into `wakes`, and returns its value
    /// so the caller can record what the waiter was given. The slot stays allocated
    /// until its future calls [`remove`](Self::remove).
    #[inline]
    pub(crate) fn pop_front<W: Wake>(&mut self, wakes: &mut WakeList<W>) -> Option<&mut T> {
        self.pop_front_claimed_in(0, wakes, |_| true)
    }

    /// Dequeues every waiter, calling `f` on each value in FIFO order.
    pub(crate) fn drain<W: Wake>(&mut self, wakes: &mut WakeList<W>, mut f: impl FnMut(&mut T)) {
        while let Some(v) = self.pop_front(wakes) {
            f(v);
        }
    }
}

impl<T, const N: usize> WaitList<T, N> {
    pub(crate) const fn new() -> Self {
        WaitList {
            slots: Slab::new(),
            lists: [EMPTY; N],
        }
    }

    /// No waiter is queued in `list`.
    pub(crate) fn is_empty_in(&self, list: usize) -> bool {
        self.lists[list].queued == 0
    }

    /// Number of waiters queued in `list`.
    pub(crate) fn len_in(&self, list: usize) -> usize {
        self.lists[list].queued as usize
    }

    /// Number of slots in use, queued or dequeued: what a leak would make grow.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn slots_in_use(&self) -> usize {
        self.slots.len()
    }

    /// Appends a waiter to `list`; its future owns the returned key.
    #[inline]
    pub(crate) fn push_back_to(
        &mut self,
        list: usize,
        value: T,
        waker: Option<&Waker>,
    ) -> WaiterKey {
        if self.slots.capacity() == 0 {
            // The first waiter gets one slot, not the four a growing `Vec` starts
            // with: most queues (a task parked on its own channel, a lock with one
            // waiter) never hold more. A second waiter grows it to four.
            self.slots.reserve_exact(1);
        }
        let ends = &mut self.lists[list];
        let idx = self.slots.insert(Slot {
            value,
            waker: waker.cloned(),
            queued: true,
            list: list as u8,
            prev: ends.tail,
            next: NIL,
        });
        let l = link(idx);
        match index(ends.tail) {
            Some(t) => self.slots[t].next = l,
            None => ends.head = l,
        }
        ends.tail = l;
        ends.queued += 1;
        WaiterKey(l)
    }

    /// Whether the waiter is still queued (not yet dequeued by a notifier).
    #[inline]
    pub(crate) fn is_queued(&self, key: &WaiterKey) -> bool {
        self.slots[key.0 as usize].queued
    }

    #[inline]
    pub(crate) fn value(&self, key: &WaiterKey) -> &T {
        &self.slots[key.0 as usize].value
    }

    /// The values of the waiters queued in `list`, first to last.
    pub(crate) fn iter_in(&self, list: usize) -> impl Iterator<Item = &T> + '_ {
        let mut at = self.lists[list].head;
        std::iter::from_fn(move || {
            let slot = &self.slots[index(at)?];
            at = slot.next;
            Some(&slot.value)
        })
    }

    /// Stores `waker` for a queued waiter, unless the stored one already wakes the
    /// same task (the common case: one clone per park, not one per poll). Returns the
    /// waker it replaced, for the caller to drop after releasing its lock.
    #[must_use = "drop the replaced waker after releasing the lock"]
    #[inline]
    pub(crate) fn set_waker(&mut self, key: &WaiterKey, waker: &Waker) -> Option<Waker> {
        let slot = &mut self.slots[key.0 as usize];
        match &mut slot.waker {
            Some(w) if w.will_wake(waker) => None,
            w => w.replace(waker.clone()),
        }
    }

    /// Dequeues waiters from the front of `list` until `claim` accepts one, and
    /// returns its value. Every waiter dequeued has its waker moved into `wakes`; one
    /// that `claim` refuses is dequeued all the same (it waits for nothing any more: a
    /// `select!` branch whose select another branch already won) and its future frees
    /// the slot.
    #[inline]
    pub(crate) fn pop_front_claimed_in<W: Wake>(
        &mut self,
        list: usize,
        wakes: &mut WakeList<W>,
        mut claim: impl FnMut(&T) -> bool,
    ) -> Option<&mut T> {
        loop {
            let h = index(self.lists[list].head)?;
            self.unlink(h);
            let slot = &mut self.slots[h];
            if let Some(w) = slot.waker.take() {
                wakes.push(W::from(w));
            }
            if claim(&slot.value) {
                return Some(&mut self.slots[h].value);
            }
        }
    }

    /// Frees the waiter's slot, unlinking it first if it is still queued.
    #[must_use = "drop the returned waker after releasing the lock"]
    #[inline]
    pub(crate) fn remove(&mut self, key: WaiterKey) -> Removed<T> {
        let was_queued = self.slots[key.0 as usize].queued;
        if was_queued {
            self.unlink(key.0 as usize);
        }
        let slot = self.slots.remove(key.0 as usize);
        if self.slots.is_empty() && self.slots.capacity() > SHRINK_ABOVE_SLOTS {
            self.slots = Slab::new();
        }
        Removed {
            value: slot.value,
            was_queued,
            waker: slot.waker,
        }
    }

    #[inline]
    fn unlink(&mut self, idx: usize) {
        let (prev, next, list) = {
            let slot = &mut self.slots[idx];
            debug_assert!(slot.queued, "unlinking a waiter that is not queued");
            slot.queued = false;
            (
                std::mem::replace(&mut slot.prev, NIL),
                std::mem::replace(&mut slot.next, NIL),
                slot.list as usize,
            )
        };
        match index(prev) {
            Some(p) => self.slots[p].next = next,
            None => self.lists[list].head = next,
        }
        match index(next) {
            Some(n) => self.slots[n].prev = prev,
            None => self.lists[list].tail = prev,
        }
        self.lists[list].queued -= 1;
    }
}

impl<T, const N: usize> std::fmt::Debug for WaitList<T, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queued: Vec<u32> = self.lists.iter().map(|e| e.queued).collect();
        f.debug_struct("WaitList")
            .field("queued", &queued)
            .finish_non_exhaustive()
    }
}

/// What [`WaitList::remove`] returns.
pub(crate) struct Removed<T> {
    pub(crate) value: T,
    /// The waiter was still queued (nobody had dequeued it).
    pub(crate) was_queued: bool,
    /// The waker still stored: `Some` only for a waiter that was still queued. Drop it
    /// after releasing the lock (see [`WaitList`]'s module docs).
    pub(crate) waker: Option<Waker>,
}

/// Something a [`WakeList`] can hold: a [`Waker`], or a primitive's own wake-up (a
/// `select!`'s shared context) that a waiter's stored waker converts into.
pub(crate) trait Wake: From<Waker> {
    /// Wakes it; called with no lock held.
    fn wake(self);
}

impl Wake for Waker {
    fn wake(self) {
        Waker::wake(self);
    }
}

/// Wakers collected under a lock, to be woken after it is released.
///
/// The first waker is stored inline: releasing a mutex or a permit, or a channel
/// hand-over, wakes one waiter, and that path should not allocate. Call
/// [`wake_all`](Self::wake_all) after dropping the guard; a `WakeList` dropped without
/// it drops its wakers unwoken (that only happens while unwinding).
pub(crate) struct WakeList<W = Waker> {
    first: Option<W>,
    rest: Vec<W>,
}

impl WakeList {
    /// A list of plain wakers; `WakeList::default()` makes one of another [`Wake`].
    pub(crate) fn new() -> Self {
        WakeList::default()
    }
}

impl<W> Default for WakeList<W> {
    fn default() -> Self {
        WakeList {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<W: Wake> WakeList<W> {
    #[inline]
    pub(crate) fn push(&mut self, w: W) {
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.push(w);
        }
    }

    /// Wakes everything collected. Call it with no lock held.
    #[inline]
    pub(crate) fn wake_all(self) {
        if let Some(w) = self.first {
            w.wake();
        }
        // The guard is not redundant: building and dropping an empty `Vec`'s iterator
        // cost a channel round trip 10% more instructions (callgrind).
        if !self.rest.is_empty() {
            self.rest.into_iter().for_each(W::wake);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn pop(q: &mut WaitList<u32, 2>, list: usize) -> Option<u32> {
        let mut wakes = WakeList::new();
        q.pop_front_claimed_in(list, &mut wakes, |_| true)
            .map(|v| *v)
    }

    #[test]
    fn wait_list_two_lists_share_a_slab_and_stay_separate_fifos() {
        let mut q: WaitList<u32, 2> = WaitList::new();
        let mut keys = Vec::new();
        for i in 0..6 {
            keys.push((i, q.push_back_to(i as usize % 2, i, None)));
        }
        assert_eq!((q.len_in(0), q.len_in(1)), (3, 3));
        // Cancel the middle waiter of list 1 (value 3): list 0 is untouched.
        let (_, k3) = keys.remove(3);
        let removed = q.remove(k3);
        assert!(removed.was_queued);
        assert_eq!(removed.value, 3);
        assert_eq!(q.iter_in(0).copied().collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!(q.iter_in(1).copied().collect::<Vec<_>>(), [1, 5]);
        assert_eq!(pop(&mut q, 1), Some(1));
        assert_eq!(pop(&mut q, 0), Some(0));
        assert_eq!(pop(&mut q, 1), Some(5));
        assert_eq!(pop(&mut q, 1), None);
        assert!(q.is_empty_in(1) && q.len_in(0) == 2);
        // A dequeued waiter's slot lives until its owner removes it; removing the
        // head of list 0 while it is still queued relinks the list.
        let (_, k2) = keys.remove(2);
        assert!(q.is_queued(&k2));
        assert!(q.remove(k2).was_queued);
        assert_eq!(q.iter_in(0).copied().collect::<Vec<_>>(), [4]);
        for (_, k) in keys {
            let _ = q.remove(k);
        }
        assert_eq!(q.slots_in_use(), 0);
        assert!(q.is_empty_in(0) && q.is_empty_in(1));
    }
}
