//! The buffer of a bounded channel: a lock-free ring that senders and receivers use
//! without the channel's lock while no waiter is queued.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue, in the form crossbeam's `array`
//! flavour uses: every slot carries a stamp that says whose turn it is (a sender's when
//! it equals the tail position, a receiver's when it equals the head position plus
//! one), `head` and `tail` are claimed by CAS, and a position is a lap plus an index so
//! that stamps of different laps differ.
//!
//! What is ours is two flag bits in the position words, between the index and the lap:
//!
//! - `tail` carries [`CLOSED`] and [`SEND_SLOW`] (a sender is queued in `sendq`);
//! - `head` carries [`RECV_SLOW`] (a receiver is queued in `recvq`, or values wait in
//!   the channel's give-back queue).
//!
//! A fast push or pop fails as soon as its word has a flag, and since a claim is a CAS
//! of the whole word, a flag set by the lock holder makes every racing fast claim fail
//! too. So while `SEND_SLOW` is set, pushes happen only under the channel's lock, and
//! while `RECV_SLOW` is set, pops do: what the lock holder sees of "full" and "empty"
//! can then change only in the direction that helps it. The slow paths
//! (`chan/state.rs`) rely on exactly that.
//!
//! A waiter that is about to park sets its flag first and then looks at the ring again
//! (both `SeqCst`); a fast operation claims its slot (`SeqCst` CAS) and then loads the
//! other word's flag (`SeqCst`). Whichever comes second sees the other: either the
//! waiter finds the value (or the room), or the fast side sees the flag and takes the
//! lock to hand over. That is the Dekker pair that keeps wake-ups from being lost; the
//! loom models in `loom_tests.rs` check it.

use std::mem::MaybeUninit;

use crate::loom::{fence, AtomicUsize, Ordering, UnsafeCell};

/// The middle of a Dekker pair: between a flag's store and the look at the ring, or a
/// fast claim and the look at the flag. Both halves are `SeqCst` accesses, which is
/// enough (their total order forbids both sides missing the other; on x86 the CAS or
/// `fetch_or` is itself a full barrier), so this costs nothing in a normal build. Loom
/// models `SeqCst` accesses as `AcqRel` and would report the lost wake-up that cannot
/// happen, so under loom the pair gets the `SeqCst` fence loom does model.
#[inline(always)]
pub(crate) fn dekker() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
}

/// `tail`: the channel is closed; no push succeeds any more.
pub(crate) const CLOSED: usize = 0b01;
/// `tail`: senders are queued; pushes go through the lock.
pub(crate) const SEND_SLOW: usize = 0b10;
/// `head`: receivers are queued (or values wait to be given back); pops go through the
/// lock.
pub(crate) const RECV_SLOW: usize = 0b01;

/// The largest capacity served by a ring. Rings are allocated whole when the channel is
/// made (16 bytes a slot for a `u64`, as Go allocates a buffered channel's buffer);
/// larger channels keep a growing buffer under the lock.
pub(crate) const MAX_CAP: usize = 4096;

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

pub(crate) struct Ring<T> {
    head: AtomicUsize,
    tail: AtomicUsize,
    slots: Box<[Slot<T>]>,
    /// The flag bits are `flag * mark`; a lap is `4 * mark`; indexes are below `mark`.
    mark: usize,
}

// SAFETY: a slot's value is written by the one sender that claimed its tail position
// and read by the one receiver that claimed its head position; the stamps order the
// two (Release store, Acquire load). Values cross threads, so `T: Send` is needed.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: as above; `&Ring` only moves values in and out, never hands out `&T`.
unsafe impl<T: Send> Sync for Ring<T> {}

/// Short waits for a slot whose other side is between its claim and its stamp store
/// (a few instructions, unless that thread was preempted).
struct Backoff(u32);

impl Backoff {
    fn wait(&mut self) {
        #[cfg(loom)]
        crate::loom::thread::yield_now();
        #[cfg(not(loom))]
        {
            if self.0 < 6 {
                for _ in 0..1u32 << self.0 {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
        self.0 = self.0.saturating_add(1);
    }
}

impl<T> Ring<T> {
    pub(crate) fn new(cap: usize) -> Ring<T> {
        assert!((1..=MAX_CAP).contains(&cap));
        let mark = (cap + 1).next_power_of_two();
        let slots = (0..cap)
            .map(|i| Slot {
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ring {
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
            slots,
            mark,
        }
    }

    fn flags(&self) -> usize {
        3 * self.mark
    }

    fn lap(&self) -> usize {
        4 * self.mark
    }

    /// The position after `pos` (which has no flag bits).
    fn next(&self, pos: usize) -> usize {
        let index = pos & (self.mark - 1);
        if index + 1 < self.slots.len() {
            pos + 1
        } else {
            (pos & !(self.lap() - 1)).wrapping_add(self.lap())
        }
    }

    /// Pushes `value`. `fast`: fail if `tail` carries any flag (the caller then takes
    /// the lock). Otherwise (under the lock) flags are kept and ignored, so the caller
    /// checks `closed` itself. `Err` when full.
    pub(crate) fn push(&self, value: T, fast: bool) -> Result<(), T> {
        let mut backoff = Backoff(0);
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if fast && tail & self.flags() != 0 {
                return Err(value);
            }
            let pos = tail & !self.flags();
            let slot = &self.slots[pos & (self.mark - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == pos {
                let new = self.next(pos) | (tail & self.flags());
                match self.tail.compare_exchange_weak(
                    tail,
                    new,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the CAS made this position ours; its stamp said the
                        // slot is empty, and no receiver reads it before the store below.
                        slot.value.with_mut(|p| unsafe { (*p).write(value) });
                        slot.stamp.store(pos + 1, Ordering::Release);
                        return Ok(());
                    }
                    Err(t) => tail = t,
                }
            } else if stamp.wrapping_add(self.lap()) == pos + 1 {
                // The slot still holds last lap's value: full, unless its receiver has
                // claimed it and is reading. A fast push does not wait to find out: the
                // locked path looks again, after its flag.
                if fast {
                    return Err(value);
                }
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed) & !self.flags();
                if head.wrapping_add(self.lap()) == pos {
                    return Err(value);
                }
                backoff.wait();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another sender claimed this position and is writing.
                backoff.wait();
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Pops the oldest value. `fast`: fail if `head` carries a flag. `None` when empty
    /// (or, for `fast`, flagged).
    pub(crate) fn pop(&self, fast: bool) -> Option<T> {
        let mut backoff = Backoff(0);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            if fast && head & self.flags() != 0 {
                return None;
            }
            let pos = head & !self.flags();
            let slot = &self.slots[pos & (self.mark - 1)];
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == pos + 1 {
                let new = self.next(pos) | (head & self.flags());
                match self.head.compare_exchange_weak(
                    head,
                    new,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: the stamp (Acquire) says the sender's write is done,
                        // and the CAS made this position ours alone.
                        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
                        slot.stamp
                            .store(pos.wrapping_add(self.lap()), Ordering::Release);
                        return Some(value);
                    }
                    Err(h) => head = h,
                }
            } else if stamp == pos {
                // Empty, unless a sender has claimed this position and is writing (a
                // fast pop leaves that to the locked path, as a push does).
                if fast {
                    return None;
                }
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed) & !self.flags();
                if tail == pos {
                    return None;
                }
                backoff.wait();
                head = self.head.load(Ordering::Relaxed);
            } else {
                // Another receiver claimed this position and is reading.
                backoff.wait();
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Is `flag` set in `head` (`tail: false`) or `tail`?
    pub(crate) fn has(&self, tail: bool, flag: usize) -> bool {
        let word = if tail { &self.tail } else { &self.head };
        word.load(Ordering::SeqCst) & (flag * self.mark) != 0
    }

    /// Sets `flag`, the first half of a waiter's Dekker pair. Only the lock holder
    /// clears flags, so a flag already set needs no store: a fast operation that comes
    /// after this call sees it either way.
    pub(crate) fn set(&self, tail: bool, flag: usize) {
        let word = if tail { &self.tail } else { &self.head };
        let bit = flag * self.mark;
        if word.load(Ordering::SeqCst) & bit == 0 {
            word.fetch_or(bit, Ordering::SeqCst);
        }
        dekker();
    }

    /// Makes `flag` equal `on`; an atomic read-modify-write only when it changes.
    pub(crate) fn put(&self, tail: bool, flag: usize, on: bool) {
        let word = if tail { &self.tail } else { &self.head };
        let bit = flag * self.mark;
        if (word.load(Ordering::Relaxed) & bit != 0) != on {
            if on {
                word.fetch_or(bit, Ordering::SeqCst);
            } else {
                word.fetch_and(!bit, Ordering::SeqCst);
            }
        }
    }

    /// Positions of head and tail (no flags), read consistently.
    fn positions(&self) -> (usize, usize) {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                return (head & !self.flags(), tail & !self.flags());
            }
        }
    }

    /// Is the ring empty, and is it full? From one reading of the positions.
    pub(crate) fn empty_full(&self) -> (bool, bool) {
        let (head, tail) = self.positions();
        (head == tail, head.wrapping_add(self.lap()) == tail)
    }

    pub(crate) fn is_empty(&self) -> bool {
        let (head, tail) = self.positions();
        head == tail
    }

    pub(crate) fn is_full(&self) -> bool {
        let (head, tail) = self.positions();
        head.wrapping_add(self.lap()) == tail
    }

    pub(crate) fn len(&self) -> usize {
        let (head, tail) = self.positions();
        let (hix, tix) = (head & (self.mark - 1), tail & (self.mark - 1));
        if hix < tix {
            tix - hix
        } else if hix > tix {
            self.slots.len() - hix + tix
        } else if head == tail {
            0
        } else {
            self.slots.len()
        }
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        while self.pop(false).is_some() {}
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn ring_fills_drains_and_wraps_in_order() {
        for cap in [1, 2, 3, 7, 8] {
            let r = Ring::new(cap);
            let mut next_in = 0u32;
            let mut next_out = 0u32;
            for _round in 0..5 {
                while r.push(next_in, true).is_ok() {
                    next_in += 1;
                }
                assert_eq!(r.len(), cap);
                assert!(r.is_full());
                for _ in 0..cap {
                    assert_eq!(r.pop(true), Some(next_out));
                    next_out += 1;
                }
                assert!(r.is_empty());
                assert_eq!(r.pop(true), None);
            }
        }
    }

    #[test]
    fn ring_flags_stop_fast_operations_only() {
        let r = Ring::new(2);
        r.set(true, SEND_SLOW);
        assert_eq!(r.push(1, true), Err(1));
        assert_eq!(r.push(1, false), Ok(()));
        assert!(r.has(true, SEND_SLOW), "a locked push keeps the flag");
        r.set(false, RECV_SLOW);
        assert_eq!(r.pop(true), None);
        assert_eq!(r.pop(false), Some(1));
        r.put(false, RECV_SLOW, false);
        r.put(true, SEND_SLOW, false);
        assert_eq!(r.push(2, true), Ok(()));
        assert_eq!(r.pop(true), Some(2));
    }

    #[test]
    fn ring_drops_what_it_holds() {
        let v = std::sync::Arc::new(());
        let r = Ring::new(4);
        for _ in 0..3 {
            r.push(v.clone(), true).unwrap();
        }
        drop(r);
        assert_eq!(std::sync::Arc::strong_count(&v), 1);
    }

    #[test]
    fn ring_threads_lose_and_duplicate_nothing() {
        let r = std::sync::Arc::new(Ring::new(8));
        let per: u64 = if cfg!(miri) { 300 } else { 20_000 };
        let producers: Vec<_> = (0..2)
            .map(|p| {
                let r = r.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        let mut v = p * per + i;
                        while let Err(back) = r.push(v, true) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    // Each producer's values reach one consumer in the order sent.
                    let mut last = [None::<u64>; 2];
                    while got.len() < per as usize {
                        match r.pop(true) {
                            Some(v) => {
                                let p = (v / per) as usize;
                                assert!(last[p] < Some(v), "producer {p} reordered");
                                last[p] = Some(v);
                                got.push(v);
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                    got
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let mut all: Vec<u64> = consumers
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..2 * per).collect::<Vec<_>>());
    }
}
