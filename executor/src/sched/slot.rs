//! `CoreSlot`: where a worker thread (M) keeps its P while it polls a task or parks, so
//! that the monitor can take the P away from a thread stuck inside a poll.
//!
//! The slot is one atomic pointer to a boxed `Core`, whose low bit (free: `Core` is
//! aligned to at least 8) says whether the P may be *stolen*: set while the M polls a
//! task, clear while it parks. The owner's `take` swaps in null and returns the box
//! (and the bit); `put` stores a box into the empty slot. The monitor's `steal` takes
//! the box only with a compare-and-swap from a tagged value, so it never takes the P of
//! a parked (idle) worker. Whoever's atomic operation returns the pointer owns the P,
//! so it never has two owners; an M that finds its slot empty after a poll knows its P
//! was handed off and retires.

use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use super::worker::Core;

/// Low-bit tag: the P is lent to a task poll and may be handed off.
const STEALABLE: usize = 1;
const _: () = assert!(std::mem::align_of::<Core>() > STEALABLE);

pub(crate) struct CoreSlot {
    ptr: AtomicPtr<Core>,
}

impl CoreSlot {
    pub(crate) fn new() -> CoreSlot {
        CoreSlot {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Takes the P out of the slot (owner side): the box and whether it was stealable.
    pub(crate) fn take(&self) -> Option<(Box<Core>, bool)> {
        // Acquire: the P's contents were last written by whoever put it.
        let p = self.ptr.swap(ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: every non-null value in the slot comes from `put`, and the swap made
        // us its only owner.
        unsafe { Self::unpack(p) }
    }

    /// Puts the P into the empty slot; `stealable` while a task is being polled.
    pub(crate) fn put(&self, core: Box<Core>, stealable: bool) {
        let raw = Box::into_raw(core);
        let tagged = raw.map_addr(|a| a | (usize::from(stealable) * STEALABLE));
        let prev = self.ptr.swap(tagged, Ordering::AcqRel);
        // A P has one owner; a second `put` would mean two of them.
        assert!(prev.is_null(), "gort: a worker slot held two Ps");
    }

    /// The monitor takes the P, but only if it is lent to a task poll.
    pub(crate) fn steal(&self) -> Option<Box<Core>> {
        let p = self.ptr.load(Ordering::Acquire);
        if p.addr() & STEALABLE == 0 {
            return None; // empty, or parked
        }
        self.ptr
            .compare_exchange(p, ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        // SAFETY: the CAS replaced exactly the tagged pointer we read, making us its
        // only owner; it came from `put`.
        unsafe { Self::unpack(p) }.map(|(core, _)| core)
    }

    /// # Safety
    /// `p` is null or a (possibly tagged) pointer from `put` that the caller now owns.
    unsafe fn unpack(p: *mut Core) -> Option<(Box<Core>, bool)> {
        if p.is_null() {
            return None;
        }
        let stealable = p.addr() & STEALABLE != 0;
        let raw = p.map_addr(|a| a & !STEALABLE);
        // SAFETY: `raw` is the untagged `Box::into_raw` pointer, owned by the caller.
        Some((unsafe { Box::from_raw(raw) }, stealable))
    }
}

impl Drop for CoreSlot {
    fn drop(&mut self) {
        drop(self.take());
    }
}
