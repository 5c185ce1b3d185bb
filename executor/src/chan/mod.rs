//! Go's channels: `gort::chan`.
//!
//! ```
//! # gort_executor::Runtime::<gort_executor::NoReactor>::new().unwrap().block_on(async {
//! use gort_executor::chan;
//!
//! let (tx, rx) = chan::bounded::<u32>(0); // Go: make(chan uint32) — a rendezvous
//! gort_executor::spawn(async move {
//!     for i in 0..3 {
//!         tx.send(i).await.unwrap(); // completes when a receiver took the value
//!     }
//!     // dropping the last sender closes the channel: close(c)
//! });
//! let mut got = vec![];
//! while let Some(v) = rx.recv().await { // Go: for v := range c
//!     got.push(v);
//! }
//! assert_eq!(got, [0, 1, 2]);
//! # });
//! ```
//!
//! | Go | gort |
//! |----|------|
//! | `make(chan T)` | `chan::bounded::<T>(0)` |
//! | `make(chan T, n)` | `chan::bounded::<T>(n)` |
//! | (none) | `chan::unbounded::<T>()` |
//! | `c <- v` | `tx.send(v).await` (`Err(SendError(v))` once closed, instead of a panic) |
//! | `v, ok := <-c` | `rx.recv().await` (`None` once closed and drained) |
//! | `close(c)` | `tx.close()` / `rx.close()`, or drop every sender |
//! | `len(c)`, `cap(c)` | `len()`, `capacity()` |
//! | `select { .. default: }` | `gort::select! { .. default => .. }` |
//!
//! Both ends are `Clone` (multi-producer, multi-consumer). Dropping every `Sender`
//! closes the channel (receivers drain what is buffered, then get `None`); dropping
//! every `Receiver` closes it too, so sends fail instead of blocking forever.
//! `send_blocking`/`recv_blocking` let plain threads take part. `Receiver` is a
//! [`futures_core::Stream`].
//!
//! The channel is one lock around two FIFO queues of waiters (see `state.rs`), as Go's
//! `hchan` is; every hand-over to or from a waiter happens under that lock, which is
//! what makes rendezvous, `close` and `select` exact. A channel of capacity 1 to 4096
//! buffers in a lock-free ring (`ring.rs`) that sends and receives use without the
//! lock while no waiter is queued.

mod error;
pub mod future;
mod ring;
pub(crate) mod select;
mod state;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use error::{RecvError, SendError, TryRecvError, TrySendError};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use self::future::Recv;
use self::ring::{Ring, RECV_SLOW, SEND_SLOW};
use self::state::{Guard, State, WakeList};
use crate::block_on::is_entered;
use crate::loom::{lock, Arc, AtomicU64, Mutex, Ordering};
use crate::task::wait::BLOCKING_CALLERS;
use crate::wait_list::WaiterKey;

/// A channel of capacity `cap`. `cap == 0` is Go's unbuffered channel: a send completes
/// only once a receiver has taken the value.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    new(Some(cap))
}

/// A channel whose sends never wait (its buffer grows as needed).
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(None)
}

fn new<T>(cap: Option<usize>) -> (Sender<T>, Receiver<T>) {
    let ring = cap
        .filter(|c| (1..=ring::MAX_CAP).contains(c))
        .map(Ring::new);
    let chan = Arc::new(Chan {
        state: Mutex::new(State::new(cap)),
        ring,
        handles: AtomicU64::new(ONE_SENDER + ONE_RECEIVER),
        external: std::sync::atomic::AtomicBool::new(false),
    });
    (
        Sender { chan: chan.clone() },
        Receiver { chan, stream: None },
    )
}

struct Chan<T> {
    state: Mutex<State<T>>,
    /// The buffer of a channel of capacity 1 to [`ring::MAX_CAP`], used without the
    /// lock while no waiter is queued (`ring.rs`); other channels buffer in `state`.
    ring: Option<Ring<T>>,
    /// Live `Sender`s (low 32 bits) and `Receiver`s (high 32 bits): one word for both
    /// keeps a `bounded::<u64>(1)` within Go's `hchan` size.
    handles: AtomicU64,
    /// Plain threads use this channel (`send_blocking`/`recv_blocking`), so a task
    /// waiting on it may be woken from outside the runtime.
    external: std::sync::atomic::AtomicBool,
}

/// One `Sender` or one `Receiver` in [`Chan::handles`]; each count is the 32 bits
/// above its unit.
const ONE_SENDER: u64 = 1;
const ONE_RECEIVER: u64 = 1 << 32;

/// Counts the calling thread as inside a blocking channel call.
struct BlockingCall;

impl BlockingCall {
    fn enter<T>(chan: &Chan<T>) -> BlockingCall {
        chan.external.store(true, Ordering::Relaxed);
        BLOCKING_CALLERS.fetch_add(1, Ordering::SeqCst);
        BlockingCall
    }
}

impl Drop for BlockingCall {
    fn drop(&mut self) {
        BLOCKING_CALLERS.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T> Chan<T> {
    /// A handle (`one`: [`ONE_SENDER`] or [`ONE_RECEIVER`]) was cloned.
    fn add_handle(&self, one: u64) {
        let old = self.handles.fetch_add(one, Ordering::Relaxed);
        if (old / one) & u64::from(u32::MAX) == u64::from(u32::MAX) {
            // Four billion live clones of one end: a leak (`Arc` aborts likewise).
            std::process::abort();
        }
    }

    /// A handle was dropped: the last of either end closes the channel.
    fn drop_handle(&self, one: u64) {
        let old = self.handles.fetch_sub(one, Ordering::AcqRel);
        if (old / one) & u64::from(u32::MAX) == 1 {
            self.close();
        }
    }

    /// A plain thread (not a worker, not `block_on`) uses the channel: tasks waiting
    /// on it may be woken from outside the runtime, which the deadlock check must not
    /// call a deadlock.
    fn note_caller(&self) {
        if !is_entered() && !self.external.load(Ordering::Relaxed) {
            self.external.store(true, Ordering::Relaxed);
        }
    }

    /// One poll of a plain `send` or `recv`: spends the coop budget, runs `step` with
    /// the task's waker, and records why the task is parked when it stays pending
    /// (`ChanExternal` once plain threads use the channel). The channel's version of
    /// `sync::poll_parked`; `step` wakes and drops after unlocking itself.
    fn poll_op<R>(
        &self,
        cx: &mut std::task::Context<'_>,
        reason: crate::task::WaitReason,
        step: impl FnOnce(&std::task::Waker) -> std::task::Poll<R>,
    ) -> std::task::Poll<R> {
        let restore = std::task::ready!(crate::coop::poll_proceed(cx));
        let res = step(cx.waker());
        if res.is_ready() {
            restore.made_progress();
        } else {
            let external = self.external.load(Ordering::Relaxed);
            crate::task::set_wait_reason(if external {
                crate::task::WaitReason::ChanExternal
            } else {
                reason
            });
        }
        res
    }
}

impl<T> Chan<T> {
    fn lock(&self) -> Guard<'_, T> {
        Guard::new(lock(&self.state), self.ring.as_ref())
    }

    /// A send without the lock: into the ring, when it has room, nobody is queued and
    /// the channel is open. `Err(value)` sends the caller to the locked path (which
    /// also tells full from closed).
    #[inline]
    fn fast_send(&self, value: T) -> Result<(), T> {
        let Some(ring) = &self.ring else {
            return Err(value);
        };
        // A queued receiver takes the value hand to hand, under the lock.
        if ring.has(false, RECV_SLOW) {
            return Err(value);
        }
        ring.push(value, true)?;
        ring::dekker();
        // A receiver that parked while we pushed is handed the value now.
        if ring.has(false, RECV_SLOW) {
            self.pump();
        }
        Ok(())
    }

    /// A fast operation saw the other side's flag: hand over under the lock.
    #[cold]
    fn pump(&self) {
        let mut wake = WakeList::default();
        self.lock().pump(&mut wake);
        wake.wake_all();
    }

    /// A receive without the lock: from the ring, when nobody is queued. `Err(true)`:
    /// the ring had nothing for a fast pop (empty, or `RECV_SLOW` set), so a receive
    /// about to park arms before it looks again (`Guard::arm_and_try_recv`);
    /// `Err(false)`: no ring, or senders are queued (the locked path moves them in).
    #[inline]
    fn fast_recv(&self) -> Result<T, bool> {
        let Some(ring) = &self.ring else {
            return Err(false);
        };
        // Queued senders refill the ring in their order, under the lock.
        if ring.has(true, SEND_SLOW) {
            return Err(false);
        }
        let v = ring.pop(true).ok_or(true)?;
        ring::dekker();
        // A sender that parked on the full ring while we popped moves in now.
        if ring.has(true, SEND_SLOW) {
            self.pump();
        }
        Ok(v)
    }

    fn close(&self) -> bool {
        let mut wake = WakeList::default();
        let closed = self.lock().close(&mut wake);
        wake.wake_all();
        closed
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn capacity(&self) -> Option<usize> {
        let st = self.lock();
        (!st.unbounded).then_some(st.cap)
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// A receive gives up waiter `key`: it leaves the queue, and a value it was handed
    /// but will never return goes back to the channel.
    fn cancel_recv(&self, key: WaiterKey) {
        let mut wake = WakeList::default();
        let removed = {
            let mut st = self.lock();
            let mut removed = st.remove_waiter(key);
            if let Some(v) = removed.value.value.take() {
                st.give_back(v, &mut wake);
            }
            removed
        };
        // The waker (and a select's context) go with the lock released.
        drop(removed);
        wake.wake_all();
    }

    fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let value = match self.fast_send(value) {
            Ok(()) => return Ok(()),
            Err(v) => v,
        };
        let mut wake = WakeList::default();
        let res = {
            let mut st = self.lock();
            if st.closed {
                Err(TrySendError::Closed(value))
            } else {
                st.try_send(value, &mut wake).map_err(TrySendError::Full)
            }
        };
        wake.wake_all();
        res
    }

    fn try_recv(&self) -> Result<T, TryRecvError> {
        if let Ok(v) = self.fast_recv() {
            return Ok(v);
        }
        let mut wake = WakeList::default();
        let res = {
            let mut st = self.lock();
            match st.try_recv(&mut wake) {
                Some(v) => Ok(v),
                None if st.closed => Err(TryRecvError::Closed),
                None => Err(TryRecvError::Empty),
            }
        };
        wake.wake_all();
        res
    }
}

/// The sending end. Cheap to clone; the channel closes when the last one is dropped.
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving end. Cheap to clone (each value goes to exactly one receiver); the
/// channel closes when the last one is dropped.
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    /// The waiter key of `poll_next` (the `Stream` impl), kept across polls.
    stream: Option<WaiterKey>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full (for capacity 0: until a
    /// receiver takes it). Go's `c <- v`.
    ///
    /// # Errors
    /// `SendError(value)` when the channel is or becomes closed before the value was
    /// taken: the value comes back.
    ///
    /// # Cancel safety
    /// If the future is dropped, the value was either delivered (the send had completed)
    /// or it is dropped with the future unsent; it is never delivered twice or half.
    pub fn send(&self, value: T) -> future::Send<'_, T> {
        future::Send {
            chan: &self.chan,
            value: Some(value),
            key: None,
        }
    }

    /// Sends without waiting.
    ///
    /// # Errors
    /// `Full(value)` when it would wait, `Closed(value)` when the channel is closed.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.note_caller();
        self.chan.try_send(value)
    }

    /// Sends from a thread that is not running async code, blocking it.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Panics
    /// When called from inside a gort runtime (a task or `block_on`): blocking there
    /// could deadlock; use `.await`.
    #[track_caller]
    pub fn send_blocking(&self, value: T) -> Result<(), SendError<T>> {
        assert_blocking_allowed("send_blocking");
        let _call = BlockingCall::enter(&self.chan);
        crate::block_on::block_on_plain(self.send(value))
    }

    /// Closes the channel: pending and future sends fail, receivers drain the buffer and
    /// then get `None`. Returns false if it was already closed.
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// True once the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Values waiting in the buffer (Go's `len(c)`).
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True when the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity (Go's `cap(c)`), `None` for an unbounded channel.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// True when both handles belong to the same channel.
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Receiver<T> {
    /// Receives a value, waiting until one is sent. `None` once the channel is closed and
    /// drained. Go's `v, ok := <-c`.
    ///
    /// # Cancel safety
    /// Cancel safe: a value is taken only by a `recv` that returns it. If the future is
    /// dropped after a sender handed it a value, the value goes to the next waiting
    /// receiver or back to the front of the buffer.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv {
            chan: &self.chan,
            key: None,
        }
    }

    /// Receives without waiting.
    ///
    /// # Errors
    /// `Empty` when it would wait, `Closed` when closed and drained.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.note_caller();
        self.chan.try_recv()
    }

    /// Receives on a thread that is not running async code, blocking it.
    ///
    /// # Errors
    /// `RecvError` once the channel is closed and drained.
    ///
    /// # Panics
    /// When called from inside a gort runtime; use `.await` there.
    #[track_caller]
    pub fn recv_blocking(&self) -> Result<T, RecvError> {
        assert_blocking_allowed("recv_blocking");
        let _call = BlockingCall::enter(&self.chan);
        crate::block_on::block_on_plain(self.recv()).ok_or(RecvError)
    }

    /// Closes the channel (see [`Sender::close`]).
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// True once the channel is closed.
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Values waiting in the buffer.
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// True when the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity, `None` for an unbounded channel.
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }
}

#[track_caller]
fn assert_blocking_allowed(what: &str) {
    if is_entered() {
        panic!(
            "gort: chan::{what} called from async code; it would block a worker thread. \
             Use `.await` on the async version instead."
        );
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_handle(ONE_SENDER);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_handle(ONE_SENDER);
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.add_handle(ONE_RECEIVER);
        Receiver {
            chan: self.chan.clone(),
            stream: None,
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // The stream's waiter (if any) goes, giving back a value it was handed.
        if let Some(key) = self.stream.take() {
            self.chan.cancel_recv(key);
        }
        self.chan.drop_handle(ONE_RECEIVER);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").finish_non_exhaustive()
    }
}

impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        let mut recv = Recv {
            chan: &this.chan,
            key: this.stream.take(),
        };
        let res = Pin::new(&mut recv).poll(cx);
        // Keep the registration for the next poll rather than dropping it.
        this.stream = recv.key.take();
        res
    }
}

/// Support for `gort::select!`; not a public API.
#[doc(hidden)]
pub mod __select {
    pub use super::select::{drive, IsChanOp, IsFuture, Reply, Select, Wrap};
}
