//! The slot where a worker thread (M) keeps its P while it polls a task or parks, so
//! that the monitor can take the P away from a thread stuck inside a poll.
//!
//! The slot is one atomic pointer to a boxed `Core` with two tag bits (free: `Core` is
//! aligned to at least 8): `STEALABLE` while the M polls a task (clear while it parks)
//! and `BORROWED` while the M schedules a woken task into the P in place. [`pair`]
//! makes the two ends, and each role is its own type, so the rules below are the only
//! operations that can be written:
//! - the [`SlotOwner`] (the M's thread; not `Clone`, kept in its worker context)
//!   `put`s the P into the empty slot (a store: nobody else ever fills a slot),
//!   `take`s it back (a swap, racing the thief), and `borrow`s it in place (one CAS to
//!   set `BORROWED`, a store to clear it);
//! - the [`SlotThief`] (the monitor) `steal`s it with a CAS from a value tagged exactly
//!   `STEALABLE`, so it never takes the P of a parked worker or one being borrowed. It
//!   cannot put anything back: a P it stole is its own, and if no thread can be started
//!   for it, its work goes to the running workers (`Shared::hand_off`), never back into
//!   a slot whose owner may have retired.
//!
//! Whoever's atomic operation removes the pointer owns the P, so it never has two
//! owners; an M that finds its slot empty after a poll knows its P was handed off.
//! Per task poll this costs one store and one swap, per local wake-up one CAS and one
//! store.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr;

use crate::loom::{Arc, AtomicPtr, Ordering};

/// Low-bit tag: the P is lent to a task poll and may be handed off.
const STEALABLE: usize = 1;
/// Low-bit tag: the owner is using the P in place (scheduling a woken task into it);
/// nobody may take it meanwhile.
const BORROWED: usize = 2;
const TAGS: usize = STEALABLE | BORROWED;

/// The shared pointer. Generic so the loom model can use a small stand-in for the P;
/// the runtime always uses `Core`.
struct Slot<T> {
    ptr: AtomicPtr<T>,
    /// Neither `Send` nor `Sync` by itself: the impls below add them for `T: Send`.
    _owns: PhantomData<*mut T>,
}

/// The M's end of its slot: put, take, borrow. One per M, on its own thread.
pub(crate) struct SlotOwner<T = super::worker::Core> {
    slot: Arc<Slot<T>>,
}

/// The monitor's end of an M's slot: steal only.
pub(crate) struct SlotThief<T = super::worker::Core> {
    slot: Arc<Slot<T>>,
}

/// The owner's in-place use of the P (see [`SlotOwner::borrow`]); puts the slot back
/// as it was when dropped. Not `Send`: it lives within one call on the owner's thread.
pub(crate) struct Borrowed<'a, T = super::worker::Core> {
    slot: &'a Slot<T>,
    /// The slot's value before the borrow (pointer and `STEALABLE` tag).
    restore: *mut T,
}

/// An empty slot's two ends. Checks at compile time that `T`'s alignment leaves the
/// tag bits free.
pub(crate) fn pair<T>() -> (SlotOwner<T>, SlotThief<T>) {
    const { assert!(std::mem::align_of::<T>() > TAGS, "no room for the tag bits") };
    let slot = Arc::new(Slot {
        ptr: AtomicPtr::new(ptr::null_mut()),
        _owns: PhantomData,
    });
    (SlotOwner { slot: slot.clone() }, SlotThief { slot })
}

impl<T> SlotOwner<T> {
    /// Takes the P out of the slot (owner side): the box and whether it was stealable.
    pub(crate) fn take(&self) -> Option<(Box<T>, bool)> {
        // A swap, not a load and a store: the monitor may be stealing at this moment,
        // and exactly one of us must get the pointer. Acquire: the P's contents were
        // last written by whoever put it.
        let p = self.slot.ptr.swap(ptr::null_mut(), Ordering::AcqRel);
        debug_assert_eq!(p.addr() & BORROWED, 0, "taken while borrowed");
        // SAFETY: every non-null value in the slot comes from `put`, and the swap made
        // us its only owner.
        unsafe { unpack(p) }
    }

    /// Puts the P into the empty slot; `stealable` while a task is being polled. Only
    /// the owner has this method, and nobody else writes an empty slot, so a plain
    /// store is enough (Release: the P's contents travel with the pointer).
    pub(crate) fn put(&self, core: Box<T>, stealable: bool) {
        debug_assert!(
            self.slot.ptr.load(Ordering::Relaxed).is_null(),
            "gort: a worker slot held two Ps"
        );
        let raw = Box::into_raw(core);
        let tagged = raw.map_addr(|a| a | (usize::from(stealable) * STEALABLE));
        self.slot.ptr.store(tagged, Ordering::Release);
    }

    /// Whether the slot holds the P now (false between polls and after a hand-off).
    pub(crate) fn is_full(&self) -> bool {
        !self.slot.ptr.load(Ordering::Acquire).is_null()
    }

    /// The owner uses the P in place without taking it out: one compare-and-swap that
    /// marks it borrowed (so the monitor cannot steal it meanwhile), and a plain store
    /// when the guard drops. `None` when the slot is empty (between polls, or the P
    /// was handed off).
    pub(crate) fn borrow(&self) -> Option<Borrowed<'_, T>> {
        let p = self.slot.ptr.load(Ordering::Acquire);
        if p.is_null() || p.addr() & BORROWED != 0 {
            return None;
        }
        self.slot
            .ptr
            .compare_exchange(
                p,
                p.map_addr(|a| a | BORROWED),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .ok()?;
        Some(Borrowed {
            slot: &self.slot,
            restore: p,
        })
    }
}

impl<T> SlotThief<T> {
    /// Takes the P, but only if it is lent to a task poll and not borrowed.
    pub(crate) fn steal(&self) -> Option<Box<T>> {
        let p = self.slot.ptr.load(Ordering::Acquire);
        if p.addr() & TAGS != STEALABLE {
            return None; // empty, parked, or in use by its owner
        }
        self.slot
            .ptr
            .compare_exchange(p, ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        // SAFETY: the CAS replaced exactly the tagged pointer we read, making us its
        // only owner; it came from `put`.
        unsafe { unpack(p) }.map(|(core, _)| core)
    }
}

/// # Safety
/// `p` is null or a (possibly tagged) pointer from `put` that the caller now owns.
unsafe fn unpack<T>(p: *mut T) -> Option<(Box<T>, bool)> {
    if p.is_null() {
        return None;
    }
    let stealable = p.addr() & STEALABLE != 0;
    let raw = p.map_addr(|a| a & !TAGS);
    // SAFETY: `raw` is the untagged `Box::into_raw` pointer, owned by the caller.
    Some((unsafe { Box::from_raw(raw) }, stealable))
}

impl<T> Deref for Borrowed<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: while the slot holds our BORROWED-tagged pointer, the monitor's
        // `steal` fails (it requires the tag to be exactly STEALABLE) and the owner's
        // `take` is not called (the guard is used within one scheduling call on the
        // owner's thread), so nobody else can reach the P; the pointer came from `put`.
        unsafe { &*self.restore.map_addr(|a| a & !TAGS) }
    }
}

impl<T> DerefMut for Borrowed<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { &mut *self.restore.map_addr(|a| a & !TAGS) }
    }
}

impl<T> Drop for Borrowed<'_, T> {
    fn drop(&mut self) {
        // Only the owner writes a borrowed slot: a plain store hands it back.
        self.slot.ptr.store(self.restore, Ordering::Release);
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        // Both ends are gone: whatever is left is nobody's but ours.
        let p = self.ptr.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: `&mut self` (the last `Arc`) makes us the only owner; the pointer
        // came from `put`.
        drop(unsafe { unpack(p) });
    }
}

// SAFETY: the slot hands a `Box<T>` from thread to thread; that needs `T: Send`, and
// every access to the pointer is atomic.
unsafe impl<T: Send> Send for Slot<T> {}
// SAFETY: as above; shared references only reach the atomic pointer.
unsafe impl<T: Send> Sync for Slot<T> {}
