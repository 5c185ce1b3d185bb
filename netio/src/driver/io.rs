//! Readiness of one registered I/O source, and the tasks waiting for it.
//!
//! mio is edge-triggered: an event says "became ready", not "is ready". So each source
//! keeps its readiness in an atomic word that the driver ORs new events into, and that
//! an operation clears only after it got `WouldBlock`. A clear is a compare-and-swap
//! against the word the operation saw, with a tick counter in the upper bits bumped by
//! every event, so an event that arrives between the failed read and the clear is
//! never lost.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

/// Readiness bits (the low byte of the word).
pub(crate) const READABLE: usize = 1 << 0;
pub(crate) const WRITABLE: usize = 1 << 1;
pub(crate) const READ_CLOSED: usize = 1 << 2;
pub(crate) const WRITE_CLOSED: usize = 1 << 3;
pub(crate) const ERROR: usize = 1 << 4;
/// Bytes wait in the stash (see [`ScheduledIo::stash`]).
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
}

/// What an operation saw when it found the source ready: pass it back to
/// [`ScheduledIo::clear`] after a `WouldBlock`.
#[derive(Copy, Clone, Debug)]
pub(crate) struct ReadyEvent {
    word: usize,
    direction: Direction,
}

#[derive(Default)]
struct Waiters {
    reader: Option<Waker>,
    writer: Option<Waker>,
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
    waiters: Mutex<Waiters>,
}

impl ScheduledIo {
    /// A source whose readiness starts as `bits` (io_uring starts optimistic: see
    /// `Driver::register`).
    pub(crate) fn with_ready(bits: usize) -> ScheduledIo {
        ScheduledIo {
            readiness: AtomicUsize::new(bits),
            orphan_reads: AtomicUsize::new(0),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The driver saw an event: record it and wake whoever waits for it.
    pub(crate) fn set_ready(&self, bits: usize) {
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some(((w & !READY_MASK).wrapping_add(TICK_ONE)) | (w & READY_MASK) | bits)
            });
        let (mut reader, mut writer) = (None, None);
        {
            let mut waiters = self.lock();
            if bits & Direction::Read.mask() != 0 {
                reader = waiters.reader.take();
            }
            if bits & Direction::Write.mask() != 0 {
                writer = waiters.writer.take();
            }
        }
        // Woken after unlocking: a waker may run the task inline.
        if let Some(w) = reader {
            w.wake();
        }
        if let Some(w) = writer {
            w.wake();
        }
    }

    /// Ready for `direction` right now? (No waker registered.)
    pub(crate) fn ready_now(&self, direction: Direction) -> Option<ReadyEvent> {
        let word = self.readiness.load(Ordering::Acquire);
        (word & direction.mask() != 0).then_some(ReadyEvent { word, direction })
    }

    /// Ready for `direction`? Otherwise registers `cx`'s waker.
    pub(crate) fn poll_ready(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<ReadyEvent> {
        let word = self.readiness.load(Ordering::Acquire);
        if word & direction.mask() != 0 {
            return Poll::Ready(ReadyEvent { word, direction });
        }
        let mut waiters = self.lock();
        let slot = match direction {
            Direction::Read => &mut waiters.reader,
            Direction::Write => &mut waiters.writer,
        };
        if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *slot = Some(cx.waker().clone());
        }
        // Re-check under the lock: an event may have landed before the waker did.
        let word = self.readiness.load(Ordering::Acquire);
        if word & direction.mask() != 0 {
            return Poll::Ready(ReadyEvent { word, direction });
        }
        Poll::Pending
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

    /// That read completed: keeps `bytes` for the next read, and wakes a reader
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
    pub(crate) fn poll_orphans(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.orphan_reads.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        let mut waiters = self.lock();
        if !waiters
            .reader
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            waiters.reader = Some(cx.waker().clone());
        }
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
        if self.readiness.load(Ordering::Acquire) & STASHED == 0 {
            return None;
        }
        let mut waiters = self.lock();
        let n = buf.len().min(waiters.stash.len());
        buf[..n].copy_from_slice(&waiters.stash[..n]);
        waiters.stash.drain(..n);
        if waiters.stash.is_empty() {
            waiters.stash = Vec::new();
            self.readiness.fetch_and(!STASHED, Ordering::AcqRel);
        }
        (n > 0 || buf.is_empty()).then_some(n)
    }

    /// Wakes every waiter (deregistration, shutdown).
    pub(crate) fn wake_all(&self) {
        self.set_ready(READABLE | WRITABLE | ERROR);
    }
}
