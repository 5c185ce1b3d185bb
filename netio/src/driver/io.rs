//! Readiness of one registered I/O source, and every task waiting for it.
//!
//! # Readiness
//!
//! mio is edge-triggered: an event says "became ready", not "is ready". So each source
//! keeps its readiness in an atomic word that the driver ORs new events into, and that
//! an operation clears only after it got `WouldBlock`. A clear is a compare-and-swap
//! against the word the operation saw, with a tick counter in the upper bits bumped by
//! every event, so an event that arrives between the failed read and the clear is
//! never lost.
//!
//! # Waiters
//!
//! Every method of the socket types takes `&self`, so several tasks may wait in the
//! same direction of one socket: two accept loops on one listener, two `recv_from` on
//! one `Arc<UdpSocket>`, a reader beside a `readable()` watcher. Each direction keeps
//! - one *poll slot*, for the `poll_*` methods of `AsyncRead`/`AsyncWrite` (they have
//!   nowhere to keep a registration: as with tokio's `poll_read_ready`, the last task
//!   to poll in that direction is the one woken), and
//! - a list of *keyed waiters*, one per pending async operation (`read`, `readable`,
//!   `accept`, `recv_from`, ...). A [`Waiter`] lives in the operation's future; its key
//!   finds its entry to update the waker, and its drop removes the entry, so a future
//!   dropped before readiness (a `select!`, a `timeout`) leaves nothing behind.
//!
//! An event wakes every waiter of its direction (poll slot and list); those that lose
//! the race for the data get `WouldBlock` and wait again. A keyed waiter that was
//! woken is ready at its next poll even if another task consumed the readiness first
//! (a reader's short read clears it): `readable()` beside a reader returns once the
//! data came, instead of waiting for more. (A `poll_*` caller has no such memory: like
//! tokio's, it may be woken and find nothing.) The first keyed waiter is
//! stored inline: one waiter per direction, the common case, allocates nothing.
//! Waking the list bumps the direction's `wakes` counter; a waiter that sees it moved
//! since it registered knows its entry is gone, so dropping a completed operation takes
//! no lock.

#![forbid(unsafe_code)]

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Readiness bits (the low byte of the word).
pub(crate) const READABLE: usize = 1 << 0;
pub(crate) const WRITABLE: usize = 1 << 1;
pub(crate) const READ_CLOSED: usize = 1 << 2;
pub(crate) const WRITE_CLOSED: usize = 1 << 3;
pub(crate) const ERROR: usize = 1 << 4;
/// Bytes wait in the stash (see [`ScheduledIo::take_stash`]).
const STASHED: usize = 1 << 5;
const READY_MASK: usize = 0xff;
const TICK_ONE: usize = 1 << 8;

/// Which way an operation goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The bits that make an operation in this direction worth trying.
    fn mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED | ERROR | STASHED,
            Direction::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }

    fn index(self) -> usize {
        match self {
            Direction::Read => 0,
            Direction::Write => 1,
        }
    }
}

/// What an operation saw when it found the source ready: pass it back to
/// [`ScheduledIo::clear`] after a `WouldBlock`.
#[derive(Copy, Clone, Debug)]
pub(crate) struct ReadyEvent {
    word: usize,
    direction: Direction,
}

/// The waiters of one direction (see the module docs).
#[derive(Default)]
struct WaitList {
    poll: Option<Waker>,
    first: Option<(u64, Waker)>,
    more: Vec<(u64, Waker)>,
}

impl WaitList {
    fn set_poll(&mut self, waker: &Waker) {
        if !self.poll.as_ref().is_some_and(|w| w.will_wake(waker)) {
            self.poll = Some(waker.clone());
        }
    }

    fn find(&mut self, id: u64) -> Option<&mut Waker> {
        match &mut self.first {
            Some((i, w)) if *i == id => Some(w),
            _ => self.more.iter_mut().find(|(i, _)| *i == id).map(|(_, w)| w),
        }
    }

    fn insert(&mut self, id: u64, waker: Waker) {
        if self.first.is_none() {
            self.first = Some((id, waker));
        } else {
            self.more.push((id, waker));
        }
    }

    fn remove(&mut self, id: u64) {
        if matches!(&self.first, Some((i, _)) if *i == id) {
            self.first = self.more.pop();
        } else if let Some(pos) = self.more.iter().position(|(i, _)| *i == id) {
            self.more.swap_remove(pos);
        }
    }

    /// Everyone, to wake after unlocking; `None` (no work at all) when nobody waits.
    /// Bumps `wakes` when keyed waiters go, so their `Waiter`s know.
    fn drain(&mut self, wakes: &AtomicU32) -> Option<Drained> {
        let first = match self.first.take() {
            Some((_, w)) => {
                // Release: pairs with the Acquire loads in `Waiter::drop` and
                // `poll_ready`.
                wakes.fetch_add(1, Ordering::Release);
                Some(w)
            }
            None if self.poll.is_none() => return None,
            None => None,
        };
        Some(Drained {
            poll: self.poll.take(),
            first,
            // Allocated only while two or more keyed waiters wait at once.
            more: if self.more.is_empty() {
                Vec::new()
            } else {
                std::mem::take(&mut self.more)
            },
        })
    }
}

/// Wakers taken out of a [`WaitList`] under the lock.
struct Drained {
    poll: Option<Waker>,
    first: Option<Waker>,
    more: Vec<(u64, Waker)>,
}

impl Drained {
    fn wake(self) {
        if let Some(w) = self.poll {
            w.wake();
        }
        if let Some(w) = self.first {
            w.wake();
        }
        for (_, w) in self.more {
            w.wake();
        }
    }
}

#[derive(Default)]
struct Waiters {
    lists: [WaitList; 2],
    /// Keys handed to [`Waiter`]s (0: not registered).
    next_id: u64,
    /// Bytes an io_uring read received after its future was dropped: the next read
    /// returns them first, so no byte is lost (empty, unallocated, almost always).
    stash: Vec<u8>,
}

pub(crate) struct ScheduledIo {
    /// `(tick << 8) | ready bits`.
    readiness: AtomicUsize,
    /// io_uring reads whose future was dropped before their completion: until they
    /// resolve, a new read waits (their bytes come first).
    orphan_reads: AtomicUsize,
    /// Per direction: times its keyed waiters were drained (written under the lock).
    wakes: [AtomicU32; 2],
    waiters: Mutex<Waiters>,
}

/// A pending async operation's place among a direction's waiters. Made by
/// [`ScheduledIo::waiter`], kept in the operation's future, passed to every poll; its
/// drop removes the entry if it is still listed.
pub(crate) struct Waiter<'a> {
    io: &'a ScheduledIo,
    direction: Direction,
    /// 0 until registered.
    id: u64,
    /// The direction's `wakes` count when it registered.
    epoch: u32,
}

impl Drop for Waiter<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.id == 0 {
            return;
        }
        let wakes = &self.io.wakes[self.direction.index()];
        // Acquire: pairs with the Release increment that follows a drain, so a moved
        // count proves the entry is gone.
        if wakes.load(Ordering::Acquire) != self.epoch {
            return;
        }
        self.io.lock().lists[self.direction.index()].remove(self.id);
    }
}

impl ScheduledIo {
    /// A source whose readiness starts as `bits` (io_uring starts optimistic: see
    /// `Driver::register`).
    pub(crate) fn with_ready(bits: usize) -> ScheduledIo {
        ScheduledIo {
            readiness: AtomicUsize::new(bits),
            orphan_reads: AtomicUsize::new(0),
            wakes: [AtomicU32::new(0), AtomicU32::new(0)],
            waiters: Mutex::new(Waiters::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A waiter for one async operation in `direction` (registers nothing yet).
    pub(crate) fn waiter(&self, direction: Direction) -> Waiter<'_> {
        Waiter {
            io: self,
            direction,
            id: 0,
            epoch: 0,
        }
    }

    /// The driver saw an event: record it and wake whoever waits for it.
    pub(crate) fn set_ready(&self, bits: usize) {
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(((w & !READY_MASK).wrapping_add(TICK_ONE)) | (w & READY_MASK) | bits)
            });
        let (read, write) = {
            let mut waiters = self.lock();
            let [r, w] = &mut waiters.lists;
            (
                (bits & Direction::Read.mask() != 0)
                    .then(|| r.drain(&self.wakes[Direction::Read.index()]))
                    .flatten(),
                (bits & Direction::Write.mask() != 0)
                    .then(|| w.drain(&self.wakes[Direction::Write.index()]))
                    .flatten(),
            )
        };
        // Woken after unlocking: a waker may run code that comes back here.
        if let Some(d) = read {
            d.wake();
        }
        if let Some(d) = write {
            d.wake();
        }
    }

    /// Ready for `direction` right now? (No waker registered.)
    pub(crate) fn ready_now(&self, direction: Direction) -> Option<ReadyEvent> {
        let word = self.readiness.load(Ordering::Acquire);
        (word & direction.mask() != 0).then_some(ReadyEvent { word, direction })
    }

    /// Ready for `direction`? Otherwise registers `cx`'s waker: in `waiter`'s entry,
    /// or in the direction's poll slot when there is no `waiter` (the `poll_*` traits).
    pub(crate) fn poll_ready(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        waiter: Option<&mut Waiter<'_>>,
    ) -> Poll<ReadyEvent> {
        let word = self.readiness.load(Ordering::Acquire);
        if word & direction.mask() != 0 {
            return Poll::Ready(ReadyEvent { word, direction });
        }
        if let Some(w) = waiter.as_deref() {
            // Acquire: as in `Waiter::drop`. Woken since it registered: its event came.
            if w.id != 0 && self.wakes[direction.index()].load(Ordering::Acquire) != w.epoch {
                let w = waiter.expect("checked");
                w.id = 0;
                return Poll::Ready(ReadyEvent { word, direction });
            }
        }
        let mut waiters = self.lock();
        self.register(&mut waiters, direction, cx, waiter);
        // Re-check under the lock: an event may have landed before the waker did.
        let word = self.readiness.load(Ordering::Acquire);
        if word & direction.mask() != 0 {
            return Poll::Ready(ReadyEvent { word, direction });
        }
        Poll::Pending
    }

    /// Puts `cx`'s waker among `direction`'s waiters (caller holds the lock).
    fn register(
        &self,
        waiters: &mut Waiters,
        direction: Direction,
        cx: &mut Context<'_>,
        waiter: Option<&mut Waiter<'_>>,
    ) {
        let Some(w) = waiter else {
            waiters.lists[direction.index()].set_poll(cx.waker());
            return;
        };
        debug_assert_eq!(w.direction, direction);
        // Relaxed: the count only changes under the lock we hold.
        let epoch = self.wakes[direction.index()].load(Ordering::Relaxed);
        let list = &mut waiters.lists[direction.index()];
        if w.id != 0 && w.epoch == epoch {
            if let Some(existing) = list.find(w.id) {
                if !existing.will_wake(cx.waker()) {
                    *existing = cx.waker().clone();
                }
                return;
            }
        }
        waiters.next_id += 1;
        w.id = waiters.next_id;
        w.epoch = epoch;
        waiters.lists[direction.index()].insert(w.id, cx.waker().clone());
    }

    /// The operation got `WouldBlock`: clear what it saw, unless a newer event came.
    pub(crate) fn clear(&self, event: ReadyEvent) {
        // Closed states are sticky: the next try reports them. An error is not: the
        // try that saw it consumed the socket error (`SO_ERROR`), and a sticky bit
        // would make every later wait return at once, spinning (a connected UDP
        // socket after an ICMP error); a new error brings a new event.
        let clear = match event.direction {
            Direction::Read => READABLE | ERROR,
            Direction::Write => WRITABLE | ERROR,
        };
        let _ = self.readiness.compare_exchange(
            event.word,
            event.word & !clear,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    /// A read's future was dropped with its io_uring operation in flight.
    pub(crate) fn orphan_read(&self) {
        self.orphan_reads.fetch_add(1, Ordering::AcqRel);
    }

    /// That read completed: keeps `bytes` for the next read, and wakes the readers
    /// waiting for it to resolve.
    pub(crate) fn orphan_read_done(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            let mut waiters = self.lock();
            waiters.stash.extend_from_slice(bytes);
            // Visible before the count drops: a reader that sees no orphan left must
            // see the stash.
            self.readiness.fetch_or(STASHED, Ordering::AcqRel);
        }
        self.orphan_reads.fetch_sub(1, Ordering::AcqRel);
        let stashed = if bytes.is_empty() { 0 } else { STASHED };
        self.set_ready(stashed | READABLE);
    }

    /// Whether an orphaned read is still in flight.
    pub(crate) fn has_orphans(&self) -> bool {
        self.orphan_reads.load(Ordering::Acquire) != 0
    }

    /// Ready once no orphaned read is in flight (their bytes must be read first).
    /// Registers like [`poll_ready`](Self::poll_ready) in the read direction.
    pub(crate) fn poll_orphans(
        &self,
        cx: &mut Context<'_>,
        waiter: Option<&mut Waiter<'_>>,
    ) -> Poll<()> {
        if self.orphan_reads.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        let mut waiters = self.lock();
        self.register(&mut waiters, Direction::Read, cx, waiter);
        if self.orphan_reads.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Whether a read must first take bytes from the stash.
    pub(crate) fn has_stash(&self) -> bool {
        self.readiness.load(Ordering::Acquire) & STASHED != 0
    }

    /// Serves a read from the stash: `None` when it is empty (the usual case, one
    /// atomic load).
    pub(crate) fn take_stash(&self, buf: &mut [u8]) -> Option<usize> {
        self.stash_with(buf.len(), true, |src| buf[..src.len()].copy_from_slice(src))
    }

    /// [`take_stash`](Self::take_stash) into uninitialised memory (hyper's and tokio's
    /// read buffers); `Some(n)` means `buf[..n]` is initialised.
    #[cfg_attr(not(any(feature = "hyper", feature = "tokio-io")), allow(dead_code))]
    pub(crate) fn take_stash_uninit(&self, buf: &mut [MaybeUninit<u8>]) -> Option<usize> {
        self.stash_with(buf.len(), true, |src| {
            for (dst, &byte) in buf.iter_mut().zip(src) {
                dst.write(byte);
            }
        })
    }

    /// Copies stashed bytes into `buf` without removing them (`peek`).
    pub(crate) fn peek_stash(&self, buf: &mut [u8]) -> Option<usize> {
        self.stash_with(buf.len(), false, |src| {
            buf[..src.len()].copy_from_slice(src)
        })
    }

    /// Hands up to `len` stashed bytes to `copy`, and removes them if `take`.
    fn stash_with(&self, len: usize, take: bool, copy: impl FnOnce(&[u8])) -> Option<usize> {
        if self.readiness.load(Ordering::Acquire) & STASHED == 0 {
            return None;
        }
        let mut waiters = self.lock();
        let n = len.min(waiters.stash.len());
        copy(&waiters.stash[..n]);
        if !take {
            return (n > 0 || len == 0).then_some(n);
        }
        waiters.stash.drain(..n);
        if waiters.stash.is_empty() {
            waiters.stash = Vec::new();
            self.readiness.fetch_and(!STASHED, Ordering::AcqRel);
        }
        (n > 0 || len == 0).then_some(n)
    }

    /// Wakes every waiter (deregistration, shutdown).
    pub(crate) fn wake_all(&self) {
        self.set_ready(READABLE | WRITABLE | ERROR);
    }

    /// Waiters currently registered in `direction` (tests).
    #[cfg(test)]
    fn num_waiters(&self, direction: Direction) -> usize {
        let w = self.lock();
        let l = &w.lists[direction.index()];
        usize::from(l.poll.is_some()) + usize::from(l.first.is_some()) + l.more.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn net_every_waiter_of_a_direction_is_woken() {
        let io = ScheduledIo::with_ready(0);
        let wakers: Vec<_> = (0..3).map(|_| counter()).collect();
        let mut ws: Vec<_> = (0..3).map(|_| io.waiter(Direction::Read)).collect();
        for ((_, waker), w) in wakers.iter().zip(&mut ws) {
            let mut cx = Context::from_waker(waker);
            assert!(io
                .poll_ready(Direction::Read, &mut cx, Some(w))
                .is_pending());
        }
        // A poll-style reader as well, and a writer that must not be woken.
        let (poller, pw) = counter();
        let (writer, ww) = counter();
        assert!(io
            .poll_ready(Direction::Read, &mut Context::from_waker(&pw), None)
            .is_pending());
        let mut wwaiter = io.waiter(Direction::Write);
        assert!(io
            .poll_ready(
                Direction::Write,
                &mut Context::from_waker(&ww),
                Some(&mut wwaiter)
            )
            .is_pending());
        assert_eq!(io.num_waiters(Direction::Read), 4);
        io.set_ready(READABLE);
        for (c, _) in &wakers {
            assert_eq!(c.0.load(Ordering::SeqCst), 1);
        }
        assert_eq!(poller.0.load(Ordering::SeqCst), 1);
        assert_eq!(writer.0.load(Ordering::SeqCst), 0);
        assert_eq!(io.num_waiters(Direction::Read), 0);
        assert_eq!(io.num_waiters(Direction::Write), 1);
        drop(ws);
        drop(wwaiter);
        assert_eq!(io.num_waiters(Direction::Write), 0);
    }

    /// Another task consumed the readiness between the wake-up and this waiter's
    /// poll: the waiter still completes (its event came), once.
    #[test]
    fn net_woken_waiter_is_ready_even_after_another_consumed_the_event() {
        let io = ScheduledIo::with_ready(0);
        let (_c, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut w = io.waiter(Direction::Read);
        assert!(io
            .poll_ready(Direction::Read, &mut cx, Some(&mut w))
            .is_pending());
        io.set_ready(READABLE);
        let seen = io.ready_now(Direction::Read).unwrap();
        io.clear(seen); // the other task's short read
        assert!(io
            .poll_ready(Direction::Read, &mut cx, Some(&mut w))
            .is_ready());
        // Having used its wake-up, it waits for the next event.
        assert!(io
            .poll_ready(Direction::Read, &mut cx, Some(&mut w))
            .is_pending());
    }

    #[test]
    fn net_dropped_waiter_leaves_no_entry_and_repolling_does_not_duplicate() {
        let io = ScheduledIo::with_ready(0);
        let (_c, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        let mut keep = io.waiter(Direction::Read);
        for _ in 0..5 {
            assert!(io
                .poll_ready(Direction::Read, &mut cx, Some(&mut keep))
                .is_pending());
        }
        for _ in 0..10 {
            let mut w = io.waiter(Direction::Read);
            assert!(io
                .poll_ready(Direction::Read, &mut cx, Some(&mut w))
                .is_pending());
        }
        assert_eq!(io.num_waiters(Direction::Read), 1);
        drop(keep);
        assert_eq!(io.num_waiters(Direction::Read), 0);
    }
}
