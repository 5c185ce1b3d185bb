//! The per-worker run queue: a fixed ring buffer with one owner and many thieves.
//!
//! This is Go's `runq[256]` (and tokio's local queue). The owner ([`Local`]) pushes at
//! the tail and pops at the head; other workers ([`Steal`]) take half of the queue from
//! the head in one go.
//!
//! # Layout
//!
//! `tail` is a `u32` written only by the owner. `head` is an `AtomicU64` packing two
//! `u32` indices: `real`, the next slot to pop, and `steal`, where an in-progress steal
//! started. When no steal is running, `steal == real`. Indices grow without bound and
//! wrap; a slot is `index & MASK`. The queue holds `tail - steal` entries from the
//! owner's point of view (slots being stolen are not free yet).
//!
//! # Protocols
//!
//! *Push (owner).* If `tail - steal < CAPACITY`, write the slot at `tail`, then publish
//! it with a `Release` store of `tail + 1`. Otherwise the queue is full: if no steal is
//! running, claim the older half by advancing both head indices with one CAS and move
//! that half, plus the new task, to the injector (Go's `runqputslow`); if a steal is
//! running, the new task alone goes to the injector.
//!
//! *Pop (owner).* CAS `real` forward by one (and `steal` with it when they were equal);
//! the winner owns the slot at the old `real`.
//!
//! *Steal (thief).* 1. Read `head`; give up if another steal is running
//! (`steal != real`). 2. Read `tail` (`Acquire`, pairing with the owner's push) and
//! compute `n = ceil(len / 2)`. 3. CAS `real` forward by `n`, leaving `steal` behind: the
//! `n` slots from `steal` are now ours and the owner will not reuse them, because its
//! free-space check counts from `steal`. 4. Copy them into our own queue. 5. CAS `steal`
//! up to `real` (retrying, since the owner may have popped meanwhile), which frees the
//! slots. 6. Publish our copies by storing our own `tail`.
//!
//! Under loom the capacity shrinks to 4 so overflow and wrap-around are explored.

use std::mem::MaybeUninit;

use crate::loom::{Arc, AtomicU32, AtomicU64, Ordering, UnsafeCell};
use crate::task::{Notified, RawTask};

use super::inject::Inject;

/// Go's and tokio's size: deep enough to absorb a burst of wake-ups, small enough that
/// stealing half moves a cache-friendly batch.
#[cfg(not(loom))]
pub(crate) const CAPACITY: usize = 256;
#[cfg(loom)]
pub(crate) const CAPACITY: usize = 4;

const MASK: usize = CAPACITY - 1;
const _: () = assert!(CAPACITY.is_power_of_two() && CAPACITY <= u32::MAX as usize);

struct Inner {
    /// `(steal << 32) | real`.
    head: AtomicU64,
    tail: AtomicU32,
    /// Slots in `[steal, tail)` hold tasks (each owning one reference); others are
    /// uninitialised.
    buffer: Box<[UnsafeCell<MaybeUninit<RawTask>>]>,
}

/// The owner's end. Only the worker that owns the P may use it.
pub(crate) struct Local {
    inner: Arc<Inner>,
}

/// A thief's end; any thread may use it, concurrently.
#[derive(Clone)]
pub(crate) struct Steal(Arc<Inner>);

// SAFETY: the buffer's slots are handed between threads only through the head/tail
// protocol above, and the tasks they hold are `Send`.
unsafe impl Send for Inner {}
// SAFETY: as above: every slot access is made exclusive by the protocol.
unsafe impl Sync for Inner {}

fn unpack(head: u64) -> (u32, u32) {
    ((head >> 32) as u32, head as u32)
}

fn pack(steal: u32, real: u32) -> u64 {
    ((steal as u64) << 32) | real as u64
}

/// A new queue: the owner's end and the thieves' end.
pub(crate) fn local() -> (Steal, Local) {
    let buffer = (0..CAPACITY)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let inner = Arc::new(Inner {
        head: AtomicU64::new(0),
        tail: AtomicU32::new(0),
        buffer,
    });
    (Steal(inner.clone()), Local { inner })
}

impl Inner {
    /// # Safety
    /// The caller owns the slot at `pos` (per the protocol) and it holds a task.
    unsafe fn take(&self, pos: u32) -> RawTask {
        // SAFETY: forwarded from the caller.
        self.buffer[pos as usize & MASK].with(|p| unsafe { (*p).assume_init_read() })
    }

    /// # Safety
    /// The caller owns the slot at `pos` (per the protocol) and it is free.
    unsafe fn put(&self, pos: u32, task: RawTask) {
        // SAFETY: forwarded from the caller.
        self.buffer[pos as usize & MASK].with_mut(|p| unsafe { (*p).write(task) });
    }

    fn len(&self) -> u32 {
        let (_, real) = unpack(self.head.load(Ordering::Acquire));
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(real)
    }
}

impl Local {
    /// Entries in the queue.
    pub(crate) fn len(&self) -> usize {
        self.inner.len() as usize
    }

    /// Free slots (a lower bound: thieves only ever free more).
    pub(crate) fn remaining_slots(&self) -> usize {
        let (steal, _) = unpack(self.inner.head.load(Ordering::Acquire));
        // Only we write `tail`, so a relaxed load sees our latest value.
        let tail = self.inner.tail.load(Ordering::Relaxed);
        CAPACITY - tail.wrapping_sub(steal) as usize
    }

    pub(crate) fn has_tasks(&self) -> bool {
        self.len() != 0
    }

    /// Pushes a batch the caller has checked fits (`remaining_slots`).
    pub(crate) fn push_back(&mut self, tasks: impl ExactSizeIterator<Item = Notified>) {
        let len = tasks.len();
        assert!(len <= self.remaining_slots(), "local queue overfilled");
        let mut tail = self.inner.tail.load(Ordering::Relaxed);
        for task in tasks {
            // SAFETY: `tail - steal < CAPACITY` (checked above), so the slot is free and
            // only the owner writes there.
            unsafe { self.inner.put(tail, task.into_raw()) };
            tail = tail.wrapping_add(1);
        }
        // Publish the slots to thieves.
        self.inner.tail.store(tail, Ordering::Release);
    }

    /// Pushes one task; when full, moves half the queue and the task to `inject`.
    pub(crate) fn push_back_or_overflow(&mut self, mut task: Notified, inject: &Inject) {
        let tail = loop {
            let head = self.inner.head.load(Ordering::Acquire);
            let (steal, real) = unpack(head);
            let tail = self.inner.tail.load(Ordering::Relaxed);
            if tail.wrapping_sub(steal) < CAPACITY as u32 {
                break tail;
            }
            if steal != real {
                // A thief is moving half of the queue out; it will make room soon, but
                // we cannot wait. The injector takes this one.
                inject.push(task);
                return;
            }
            match self.push_overflow(task, real, tail, inject) {
                Ok(()) => return,
                // Lost a race with a thief or a pop; look again.
                Err(t) => task = t,
            }
        };
        // SAFETY: checked `tail - steal < CAPACITY`: the slot is free and ours.
        unsafe { self.inner.put(tail, task.into_raw()) };
        self.inner
            .tail
            .store(tail.wrapping_add(1), Ordering::Release);
    }

    /// Moves the older half of a full queue plus `task` into the injector.
    fn push_overflow(
        &mut self,
        task: Notified,
        head: u32,
        tail: u32,
        inject: &Inject,
    ) -> Result<(), Notified> {
        const HALF: u32 = (CAPACITY / 2) as u32;
        debug_assert_eq!(tail.wrapping_sub(head), CAPACITY as u32);
        // Claim the half by moving both indices past it. Failure means a thief or
        // (never, we are the owner) a pop got in first.
        let prev = pack(head, head);
        let next = pack(head.wrapping_add(HALF), head.wrapping_add(HALF));
        if self
            .inner
            .head
            .compare_exchange(prev, next, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            return Err(task);
        }
        let inner = &self.inner;
        let batch = (0..HALF).map(|i| {
            // SAFETY: the CAS gave us [head, head + HALF); thieves start past it and we
            // do not write there until `tail` wraps, which needs these slots free.
            let raw = unsafe { inner.take(head.wrapping_add(i)) };
            // SAFETY: every queued entry owns a Notified reference.
            unsafe { Notified::from_raw(raw) }
        });
        inject.push_batch(batch.chain(std::iter::once(task)));
        Ok(())
    }

    /// Pops the oldest task.
    pub(crate) fn pop(&mut self) -> Option<Notified> {
        let mut head = self.inner.head.load(Ordering::Acquire);
        let pos = loop {
            let (steal, real) = unpack(head);
            let tail = self.inner.tail.load(Ordering::Relaxed);
            if real == tail {
                return None;
            }
            let next_real = real.wrapping_add(1);
            // Keep `steal` behind when a steal is running; otherwise move both.
            let next = if steal == real {
                pack(next_real, next_real)
            } else {
                debug_assert_ne!(steal, next_real);
                pack(steal, next_real)
            };
            match self
                .inner
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break real,
                Err(actual) => head = actual,
            }
        };
        // SAFETY: the CAS made the slot at `pos` ours; it held a task below `tail`.
        let raw = unsafe { self.inner.take(pos) };
        // SAFETY: every queued entry owns a Notified reference.
        Some(unsafe { Notified::from_raw(raw) })
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Tasks still queued (runtime shutdown) drop their references; shutdown
        // cancels the tasks themselves through the owned list.
        while let Some(task) = self.pop() {
            drop(task);
        }
    }
}

impl Steal {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len() as usize
    }

    /// Steals half of this queue into `dst` and returns one of the stolen tasks.
    pub(crate) fn steal_into(&self, dst: &mut Local) -> Option<Notified> {
        let dst_tail = dst.inner.tail.load(Ordering::Relaxed);
        // Only steal when `dst` can hold half a queue; a worker that has that much work
        // of its own should not be stealing anyway.
        let (dst_steal, _) = unpack(dst.inner.head.load(Ordering::Acquire));
        if dst_tail.wrapping_sub(dst_steal) > (CAPACITY / 2) as u32 {
            return None;
        }
        let n = self.steal_into_inner(dst, dst_tail);
        if n == 0 {
            return None;
        }
        // Return the last one copied; publish the rest.
        let n = n - 1;
        let ret_pos = dst_tail.wrapping_add(n);
        // SAFETY: we just wrote this slot of our own queue beyond its published tail.
        let raw = unsafe { dst.inner.take(ret_pos) };
        if n > 0 {
            dst.inner
                .tail
                .store(dst_tail.wrapping_add(n), Ordering::Release);
        }
        // SAFETY: every queued entry owns a Notified reference.
        Some(unsafe { Notified::from_raw(raw) })
    }

    /// Steps 1–5 of the steal protocol; returns how many tasks were copied to `dst`
    /// starting at `dst_tail` (not yet published).
    fn steal_into_inner(&self, dst: &mut Local, dst_tail: u32) -> u32 {
        let src = &self.0;
        let mut prev = src.head.load(Ordering::Acquire);
        // Steps 1–3: claim n slots.
        let (first, n) = loop {
            let (steal, real) = unpack(prev);
            if steal != real {
                return 0; // another thief is at work
            }
            let tail = src.tail.load(Ordering::Acquire);
            let len = tail.wrapping_sub(real);
            let n = len - len / 2;
            if n == 0 {
                return 0;
            }
            let next = pack(steal, real.wrapping_add(n));
            match src
                .head
                .compare_exchange(prev, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break (real, n),
                Err(actual) => prev = actual,
            }
        };
        debug_assert!(n as usize <= CAPACITY / 2);
        // Step 4: copy.
        for i in 0..n {
            // SAFETY: the CAS gave us [first, first + n) of `src`; `dst` has room
            // (checked by the caller) and its slots past `dst_tail` are written only
            // by its owner — which is us, the caller holds `&mut Local`.
            unsafe {
                let task = src.take(first.wrapping_add(i));
                dst.inner.put(dst_tail.wrapping_add(i), task);
            }
        }
        // Step 5: release the claimed slots by moving `steal` up to `real`.
        let mut prev = pack(first, first.wrapping_add(n));
        loop {
            let (_, real) = unpack(prev);
            match src.head.compare_exchange(
                prev,
                pack(real, real),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return n,
                Err(actual) => {
                    // Only the owner's pops (which move `real`) can interleave.
                    debug_assert_eq!(unpack(actual).0, first);
                    prev = actual;
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::task::testing::Sched;

    fn tasks(s: &Sched, n: usize) -> Vec<Notified> {
        (0..n)
            .map(|_| {
                let (t, j) = s.notified(async {});
                drop(j);
                t
            })
            .collect()
    }

    #[test]
    fn queue_push_pop_is_fifo() {
        let s = Sched::new();
        let inject = Inject::new();
        let (_steal, mut local) = local();
        let ts = tasks(&s, 10);
        let ids: Vec<_> = ts.iter().map(|t| t.id()).collect();
        for t in ts {
            local.push_back_or_overflow(t, &inject);
        }
        let popped: Vec<_> = std::iter::from_fn(|| local.pop()).map(|t| t.id()).collect();
        assert_eq!(popped, ids);
        s.shutdown();
    }

    #[test]
    fn queue_overflow_moves_half_to_inject() {
        let s = Sched::new();
        let inject = Inject::new();
        let (_steal, mut local) = local();
        for t in tasks(&s, CAPACITY + 1) {
            local.push_back_or_overflow(t, &inject);
        }
        assert_eq!(inject.len(), CAPACITY / 2 + 1);
        assert_eq!(local.len(), CAPACITY / 2);
        // Wraps around correctly afterwards.
        for t in tasks(&s, CAPACITY / 2) {
            local.push_back_or_overflow(t, &inject);
        }
        assert_eq!(local.len(), CAPACITY);
        let mut n = 0;
        while local.pop().is_some() {
            n += 1;
        }
        assert_eq!(n, CAPACITY);
        drop(inject.close());
        s.shutdown();
    }

    #[test]
    fn queue_steal_takes_half() {
        let s = Sched::new();
        let inject = Inject::new();
        let (steal, mut victim) = local();
        let (_s2, mut thief) = local();
        for t in tasks(&s, 9) {
            victim.push_back_or_overflow(t, &inject);
        }
        let got = steal.steal_into(&mut thief);
        assert!(got.is_some());
        // ceil(9 / 2) = 5 stolen: one returned, four queued in the thief.
        assert_eq!(thief.len(), 4);
        assert_eq!(victim.len(), 4);
        drop(got);
        s.shutdown();
    }

    #[test]
    fn queue_concurrent_steal_loses_and_duplicates_nothing() {
        let rounds = if cfg!(miri) { 50 } else { 20_000 };
        let s = Sched::new();
        let inject = Arc::new(Inject::new());
        let (steal, mut local) = local();
        let total: usize = rounds * 3;
        let thief = std::thread::spawn(move || {
            let (_s, mut mine) = super::local();
            let mut got = 0;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if let Some(t) = steal.steal_into(&mut mine) {
                    got += 1;
                    drop(t);
                }
                while let Some(t) = mine.pop() {
                    got += 1;
                    drop(t);
                }
                if Arc::strong_count(&steal.0) == 1 && steal.is_empty() {
                    break; // the owner is gone and nothing is left
                }
            }
            got
        });
        let mut popped = 0;
        let all = tasks(&s, total);
        let mut it = all.into_iter();
        for _ in 0..rounds {
            for t in it.by_ref().take(3) {
                local.push_back_or_overflow(t, &inject);
            }
            if local.pop().is_some() {
                popped += 1;
            }
        }
        while local.pop().is_some() {
            popped += 1;
        }
        drop(local);
        let stolen = thief.join().unwrap();
        let injected = inject.close().len();
        assert_eq!(popped + stolen + injected, total);
        s.shutdown();
    }
}
