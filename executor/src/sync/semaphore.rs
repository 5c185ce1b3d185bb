//! A fair counting semaphore: the base of [`Mutex`](super::Mutex),
//! [`RwLock`](super::RwLock) and [`OnceCell`](super::OnceCell).
//!
//! # State
//!
//! Behind one lock: the number of available permits, a `closed` flag, and a FIFO of
//! waiters, each with the number of permits it asked for and an `Outcome`.
//!
//! # Invariants
//!
//! 1. **FIFO.** Permits are only handed out in queue order. An acquire may take free
//!    permits directly only when the queue is empty; otherwise it queues, even if enough
//!    permits are free for it. So a waiter asking for many permits is not overtaken by
//!    later ones asking for few (Go's `x/sync/semaphore` makes the same promise).
//! 2. **No idle permits while the head could run.** Whenever permits are returned or a
//!    waiter leaves the queue, `State::grant` hands free permits to waiters from the
//!    head for as long as the head's whole request fits. After any operation, either the
//!    queue is empty or the head needs more permits than are free.
//! 3. **Granted permits are never lost.** `grant` moves permits from the free count into
//!    a dequeued waiter's slot (outcome `Granted`). Exactly one of two things then
//!    happens: the future is polled and turns them into a permit guard, or the future is
//!    dropped and its `Drop` puts them back and calls `grant` again.
//! 4. **Closing** wakes every queued waiter with `Closed`; waiters already granted keep
//!    their permits. Permits returned after closing are still counted.
//!
//! Permits are handed out whole (never partially reserved for the head), which keeps the
//! state one number; invariant 1 gives the same fairness.

#![forbid(unsafe_code)]

use std::fmt;
// `std`'s even under loom: loom's `Arc` cannot be a method receiver (`self: Arc<Self>`),
// and the owned API is exercised by the ordinary tests, not the models.
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::loom::{lock, Mutex};
use crate::task::WaitReason;
use crate::wait_list::{WaitList, WaiterKey, WakeList};

/// The most free permits a semaphore can hold. Half of `usize`: more than any real use,
/// and the headroom means that permits coming back while `add_permits` has topped the
/// count up to the maximum cannot overflow it (were it ever to, the release panics
/// rather than wrap).
pub const MAX_PERMITS: usize = usize::MAX >> 1;

/// A counting semaphore with FIFO fairness.
///
/// Go: `golang.org/x/sync/semaphore.Weighted` (`Acquire(ctx, n)` is
/// [`acquire_many(n)`](Self::acquire_many), `Release(n)` is dropping the permit or
/// [`add_permits`](Self::add_permits)). Threading: `Send + Sync`; share it by reference
/// or in an [`Arc`] (for the `_owned` methods).
pub struct Semaphore {
    state: Mutex<State>,
}

struct State {
    /// Free permits. At most [`MAX_PERMITS`] after any `add_permits`.
    permits: usize,
    closed: bool,
    waiters: WaitList<Waiter>,
}

struct Waiter {
    /// Permits requested (all granted at once).
    needed: usize,
    outcome: Outcome,
}

/// What a waiter was given. `Pending` exactly while its slot is queued.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Pending,
    /// Dequeued by `grant`: `needed` permits now belong to this waiter.
    Granted,
    /// Dequeued by `close`: the acquire fails.
    Closed,
}

impl State {
    /// Hands free permits to waiters from the head while the head's request fits
    /// (invariant 2), collecting their wakers.
    fn grant(&mut self, wakes: &mut WakeList) {
        while let Some(head) = self.waiters.front_mut() {
            if head.needed > self.permits {
                break;
            }
            self.permits -= head.needed;
            let granted = self.waiters.pop_front(wakes).expect("head exists");
            granted.outcome = Outcome::Granted;
        }
    }

    fn release(&mut self, n: usize, wakes: &mut WakeList) {
        self.permits = match self.permits.checked_add(n) {
            Some(p) => p,
            None => panic!("semaphore permit count overflowed"),
        };
        self.grant(wakes);
    }
}

/// [`Semaphore::acquire`] failed: the semaphore is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireError(());

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("semaphore closed")
    }
}

impl std::error::Error for AcquireError {}

/// [`Semaphore::try_acquire`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryAcquireError {
    /// The semaphore is closed.
    Closed,
    /// Not enough permits are free, or other waiters are queued ahead.
    NoPermits,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryAcquireError::Closed => f.write_str("semaphore closed"),
            TryAcquireError::NoPermits => f.write_str("no permits available"),
        }
    }
}

impl std::error::Error for TryAcquireError {}

impl Semaphore {
    /// The most permits a semaphore can hold.
    pub const MAX_PERMITS: usize = MAX_PERMITS;

    /// A semaphore with `permits` free permits.
    ///
    /// # Panics
    /// If `permits` exceeds [`MAX_PERMITS`].
    pub fn new(permits: usize) -> Semaphore {
        assert!(
            permits <= MAX_PERMITS,
            "a semaphore holds at most {MAX_PERMITS} permits"
        );
        Semaphore {
            state: Mutex::new(State {
                permits,
                closed: false,
                waiters: WaitList::new(),
            }),
        }
    }

    /// A semaphore for a `static` (Go's `var sem = ...` at package level). Not available
    /// under loom, whose types cannot be built in a constant.
    ///
    /// # Panics
    /// If `permits` exceeds [`MAX_PERMITS`] (at compile time in a constant).
    #[cfg(not(loom))]
    pub const fn const_new(permits: usize) -> Semaphore {
        assert!(permits <= MAX_PERMITS, "too many permits");
        Semaphore {
            state: Mutex::new(State {
                permits,
                closed: false,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Free permits now (a snapshot).
    pub fn available_permits(&self) -> usize {
        lock(&self.state).permits
    }

    /// Adds `n` permits, waking waiters whose requests now fit.
    ///
    /// # Panics
    /// If the free permits would exceed [`MAX_PERMITS`].
    pub fn add_permits(&self, n: usize) {
        let mut wakes = WakeList::new();
        {
            let mut st = lock(&self.state);
            let fits = st.permits.checked_add(n).is_some_and(|p| p <= MAX_PERMITS);
            if !fits {
                drop(st);
                panic!("a semaphore holds at most {MAX_PERMITS} permits");
            }
            st.release(n, &mut wakes);
        }
        wakes.wake_all();
    }

    /// Returns `n` permits (a permit guard's drop, a lock's release).
    pub(super) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut wakes = WakeList::new();
        lock(&self.state).release(n, &mut wakes);
        wakes.wake_all();
    }

    /// Closes the semaphore: queued and future acquires fail with [`AcquireError`];
    /// permits already held stay valid.
    pub fn close(&self) {
        let mut wakes = WakeList::new();
        {
            let mut st = lock(&self.state);
            st.closed = true;
            st.waiters
                .drain(&mut wakes, |w| w.outcome = Outcome::Closed);
        }
        wakes.wake_all();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Number of queued waiters (a snapshot, for tests and diagnostics).
    #[doc(hidden)]
    pub fn num_waiters(&self) -> usize {
        lock(&self.state).waiters.len()
    }

    #[cfg(all(test, not(loom)))]
    pub(super) fn slots_in_use(&self) -> usize {
        lock(&self.state).waiters.slots_in_use()
    }

    /// Takes `n` permits if they are free and nobody is queued (FIFO: a free permit
    /// belongs to the queue's head first).
    pub(super) fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        let mut st = lock(&self.state);
        if st.closed {
            Err(TryAcquireError::Closed)
        } else if st.waiters.is_empty() && st.permits >= n {
            st.permits -= n;
            Ok(())
        } else {
            Err(TryAcquireError::NoPermits)
        }
    }

    /// Takes one permit without waiting.
    ///
    /// # Errors
    /// [`TryAcquireError::NoPermits`] if none is free or others are queued,
    /// [`TryAcquireError::Closed`] if the semaphore is closed.
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits without waiting.
    ///
    /// # Errors
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_take(n)?;
        Ok(SemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// Like [`try_acquire_many`](Self::try_acquire_many), with a permit that owns an `Arc`
    /// of the semaphore.
    ///
    /// # Errors
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_many_owned(
        self: Arc<Self>,
        n: usize,
    ) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_take(n)?;
        Ok(OwnedSemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// Waits for one permit.
    ///
    /// # Cancel safety
    /// Cancel safe. Dropping the future gives up its place in the queue; if permits had
    /// already been granted to it, they go back to the semaphore and on to the next
    /// waiter, so nothing is lost.
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is closed before the permit is granted.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_many(1)
    }

    /// Waits for `n` permits, granted all at once. While it waits it blocks later
    /// arrivals, however few permits they ask for.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is closed before the permits are granted.
    ///
    /// # Panics
    /// If `n` exceeds [`MAX_PERMITS`] (it could never be satisfied); the returned future
    /// panics if polled again after it completed.
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            waiter: Acquirer::new(n),
        }
    }

    /// Waits for one permit; the permit owns an `Arc` of the semaphore, so it can move
    /// into a spawned task.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is closed first.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn acquire_owned(self: Arc<Self>) -> AcquireOwned {
        self.acquire_many_owned(1)
    }

    /// Waits for `n` permits, owning an `Arc` of the semaphore.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`acquire`](Self::acquire).
    ///
    /// # Errors
    /// [`AcquireError`] if the semaphore is closed first.
    ///
    /// # Panics
    /// As [`acquire_many`](Self::acquire_many).
    pub fn acquire_many_owned(self: Arc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned {
            sem: self,
            waiter: Acquirer::new(n),
        }
    }
}

impl Default for Semaphore {
    /// A semaphore with no permits.
    fn default() -> Self {
        Semaphore::new(0)
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Semaphore")
            .field("permits", &st.permits)
            .field("closed", &st.closed)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

/// The waiting half of an acquire, shared by [`Acquire`], [`AcquireOwned`] and the lock
/// futures, which differ only in how they reach the semaphore. The owner must call
/// [`cancel`](Self::cancel) from its `Drop`.
#[derive(Debug)]
pub(super) struct Acquirer {
    needed: usize,
    state: AcquirerState,
}

impl Acquirer {
    /// The permits this waiter asks for (and holds once granted).
    pub(super) fn needed(&self) -> usize {
        self.needed
    }
}

#[derive(Debug)]
enum AcquirerState {
    /// Not polled yet.
    Idle,
    /// Owns a slot in the queue.
    Waiting(WaiterKey),
    /// Returned `Ready`; owns nothing.
    Done,
}

impl Acquirer {
    pub(super) fn new(needed: usize) -> Acquirer {
        assert!(
            needed <= MAX_PERMITS,
            "cannot acquire more than {MAX_PERMITS} permits"
        );
        Acquirer {
            needed,
            state: AcquirerState::Idle,
        }
    }

    /// Polls for the permits. On `Ready(Ok)` the caller owns `needed` permits.
    pub(super) fn poll_acquire(
        &mut self,
        sem: &Semaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), AcquireError>> {
        super::poll_parked(cx, WaitReason::Lock, |cx, _| self.poll_locked(sem, cx))
    }

    /// The locked part of `poll_acquire`; also returns a waker to drop after unlocking.
    fn poll_locked(
        &mut self,
        sem: &Semaphore,
        cx: &mut Context<'_>,
    ) -> (Poll<Result<(), AcquireError>>, Option<Waker>) {
        let mut st = lock(&sem.state);
        match std::mem::replace(&mut self.state, AcquirerState::Done) {
            AcquirerState::Idle => {
                if st.closed {
                    (Poll::Ready(Err(AcquireError(()))), None)
                } else if st.waiters.is_empty() && st.permits >= self.needed {
                    st.permits -= self.needed;
                    (Poll::Ready(Ok(())), None)
                } else {
                    let waiter = Waiter {
                        needed: self.needed,
                        outcome: Outcome::Pending,
                    };
                    let key = st.waiters.push_back(waiter, Some(cx.waker()));
                    self.state = AcquirerState::Waiting(key);
                    (Poll::Pending, None)
                }
            }
            AcquirerState::Waiting(key) => match st.waiters.value(&key).outcome {
                Outcome::Pending => {
                    let stale = st.waiters.set_waker(&key, cx.waker());
                    self.state = AcquirerState::Waiting(key);
                    (Poll::Pending, stale)
                }
                Outcome::Granted => (Poll::Ready(Ok(())), st.waiters.remove(key).waker),
                Outcome::Closed => (
                    Poll::Ready(Err(AcquireError(()))),
                    st.waiters.remove(key).waker,
                ),
            },
            AcquirerState::Done => {
                drop(st);
                panic!("a semaphore acquire future was polled after it completed");
            }
        }
    }

    /// Gives up the acquire: leaves the queue, and returns permits that were granted but
    /// not yet observed (invariant 3). Idempotent.
    pub(super) fn cancel(&mut self, sem: &Semaphore) {
        let AcquirerState::Waiting(key) = std::mem::replace(&mut self.state, AcquirerState::Done)
        else {
            return;
        };
        let mut wakes = WakeList::new();
        let removed = {
            let mut st = lock(&sem.state);
            let removed = st.waiters.remove(key);
            match removed.value.outcome {
                Outcome::Granted => st.release(removed.value.needed, &mut wakes),
                // Leaving the head may let the next waiter's smaller request fit.
                Outcome::Pending => st.grant(&mut wakes),
                Outcome::Closed => {}
            }
            removed
        };
        drop(removed);
        wakes.wake_all();
    }
}

/// Defines a future that waits for permits through an [`Acquirer`] and, once granted,
/// turns them into its output: the acquire futures of [`Semaphore`], `Mutex` and
/// `RwLock`, written once. Its generics go in brackets (`Lock['a, T]`). The future holds `$holder` (a reference or an `Arc`), finds
/// the semaphore through `semaphore: |h| ...`, builds its output from the holder, the
/// permits and the acquire result in `output: ... = |h, permits, result| ...`, and gives
/// its place in the queue (or granted permits) back when dropped unfinished.
macro_rules! acquire_future {
    (
        $(#[$attr:meta])*
        pub struct $name:ident[$($gen:tt)*] { $holder:ident: $holder_ty:ty }
        semaphore: |$hs:ident| $sem:expr,
        output: $out:ty = |$ho:ident, $permits:ident, $res:ident| $make:expr,
    ) => {
        $(#[$attr])*
        #[must_use = "futures do nothing unless polled"]
        pub struct $name<$($gen)*> {
            $holder: $holder_ty,
            waiter: $crate::sync::semaphore::Acquirer,
        }

        impl<$($gen)*> std::future::Future for $name<$($gen)*> {
            type Output = $out;

            fn poll(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<$out> {
                let this = self.get_mut();
                let $res = {
                    let $hs = &this.$holder;
                    std::task::ready!(this.waiter.poll_acquire($sem, cx))
                };
                let $ho = &this.$holder;
                let $permits = this.waiter.needed();
                std::task::Poll::Ready($make)
            }
        }

        impl<$($gen)*> Drop for $name<$($gen)*> {
            fn drop(&mut self) {
                let $hs = &self.$holder;
                self.waiter.cancel($sem);
            }
        }

        impl<$($gen)*> std::fmt::Debug for $name<$($gen)*> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("waiter", &self.waiter)
                    .finish_non_exhaustive()
            }
        }
    };
}
pub(super) use acquire_future;

acquire_future! {
    /// Future of [`Semaphore::acquire`] and [`Semaphore::acquire_many`].
    pub struct Acquire['a] { sem: &'a Semaphore }
    semaphore: |sem| sem,
    output: Result<SemaphorePermit<'a>, AcquireError> = |sem, permits, res| {
        res.map(|()| SemaphorePermit { sem, permits })
    },
}

acquire_future! {
    /// Future of [`Semaphore::acquire_owned`] and [`Semaphore::acquire_many_owned`].
    pub struct AcquireOwned[] { sem: Arc<Semaphore> }
    semaphore: |sem| sem,
    output: Result<OwnedSemaphorePermit, AcquireError> = |sem, permits, res| {
        res.map(|()| OwnedSemaphorePermit { sem: sem.clone(), permits })
    },
}

/// Permits borrowed from a [`Semaphore`]; dropping it returns them.
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

impl SemaphorePermit<'_> {
    /// Keeps the permits out of the semaphore for good (the semaphore shrinks).
    pub fn forget(mut self) {
        self.permits = 0;
    }

    /// How many permits this guard holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}

/// Permits of a [`Semaphore`] held through an `Arc`; dropping it returns them.
#[must_use = "dropping the permit releases it at once"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    permits: usize,
}

impl OwnedSemaphorePermit {
    /// Keeps the permits out of the semaphore for good (the semaphore shrinks).
    pub fn forget(mut self) {
        self.permits = 0;
    }

    /// How many permits this guard holds.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore the permits came from.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}
