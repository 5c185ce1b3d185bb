//! An async mutex: Go's `sync.Mutex`, holding the data it guards.
//!
//! # Design
//!
//! A [`Semaphore`] with one permit decides who holds the lock; the data sits in an
//! `UnsafeCell` beside it. Whoever holds the permit is the only one to reach the data,
//! through a guard; the guard returns the permit when dropped. All the queueing, fairness
//! and cancel safety is the semaphore's: waiters are served first come, first served (no
//! waiter starves, and a `lock()` future dropped at any point loses no wake-up, see
//! `semaphore.rs`).
//!
//! The cell is `std`'s even under loom: a guard's `Deref` hands out a reference that
//! outlives any closure, so loom's access tracking could not see the real accesses
//! anyway. What loom checks is the exclusion itself, in the semaphore's models.
//!
//! `unsafe` here is limited to the items marked `#[allow(unsafe_code)]`: the `Sync` impl
//! and the guards' `Deref`/`DerefMut`, each with its `// SAFETY:` argument. The guards'
//! `Send`/`Sync` need no `unsafe`: a `PhantomData` field makes the compiler derive the
//! right bounds.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
// `std`'s even under loom, as in `semaphore.rs` (loom's `Arc` is no method receiver).
use std::sync::Arc;

use super::semaphore::{acquire_future, Acquirer, Semaphore, TryAcquireError};

/// The one permit of a mutex.
const LOCK_PERMITS: usize = 1;

/// An async mutual-exclusion lock around a `T`.
///
/// Go: `sync.Mutex` (Go's locks guard data by convention; here the mutex owns it).
/// `lock().await` waits in FIFO order, so no task starves. Hold the guard across `.await`
/// freely: the guard is `Send` when `T` is.
///
/// ```
/// # gort_executor::Runtime::<gort_executor::NoReactor>::new().unwrap().block_on(async {
/// use gort_executor::sync::Mutex;
/// let counter = Mutex::new(0);
/// *counter.lock().await += 1;
/// assert_eq!(*counter.lock().await, 1);
/// # });
/// ```
pub struct Mutex<T> {
    sem: Semaphore,
    data: UnsafeCell<T>,
}

#[allow(unsafe_code)]
// SAFETY: `&Mutex<T>` only reaches the `T` through a guard, and at most one guard exists
// at a time (it holds the semaphore's only permit); the `T` may be used, and dropped, on
// whichever thread holds the guard, hence `T: Send`. `Send` is automatic.
unsafe impl<T: Send> Sync for Mutex<T> {}

/// [`Mutex::try_lock`] failed: the mutex is locked (or others are queued for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryLockError(());

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the lock is held")
    }
}

impl std::error::Error for TryLockError {}

impl TryLockError {
    pub(super) fn new() -> Self {
        TryLockError(())
    }
}

impl<T> Mutex<T> {
    /// A new, unlocked mutex.
    pub fn new(value: T) -> Mutex<T> {
        Mutex {
            sem: Semaphore::new(LOCK_PERMITS),
            data: UnsafeCell::new(value),
        }
    }

    /// A mutex for a `static` (not under loom).
    #[cfg(not(loom))]
    pub const fn const_new(value: T) -> Mutex<T> {
        Mutex {
            sem: Semaphore::const_new(LOCK_PERMITS),
            data: UnsafeCell::new(value),
        }
    }

    /// Waits for the lock.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future gives up its place in the queue, and if the lock
    /// had just been handed to it, passes it on to the next waiter.
    ///
    /// # Errors
    /// None: a mutex cannot be closed.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn lock(&self) -> Lock<'_, T> {
        Lock {
            mutex: self,
            waiter: Acquirer::new(LOCK_PERMITS),
        }
    }

    /// Waits for the lock, with a guard that owns an `Arc` of the mutex (so it can move
    /// into a spawned task).
    ///
    /// # Cancel safety
    /// Cancel safe, as [`lock`](Self::lock).
    ///
    /// # Errors
    /// None.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn lock_owned(self: Arc<Self>) -> LockOwned<T> {
        LockOwned {
            mutex: self,
            waiter: Acquirer::new(LOCK_PERMITS),
        }
    }

    /// Takes the lock if it is free and nobody is queued for it.
    ///
    /// # Errors
    /// [`TryLockError`] otherwise.
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        match self.sem.try_take(LOCK_PERMITS) {
            Ok(()) => Ok(MutexGuard::new(self)),
            Err(TryAcquireError::NoPermits | TryAcquireError::Closed) => Err(TryLockError::new()),
        }
    }

    /// Like [`try_lock`](Self::try_lock), with an owned guard.
    ///
    /// # Errors
    /// [`TryLockError`] if the lock is held or others are queued.
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        match self.sem.try_take(LOCK_PERMITS) {
            Ok(()) => Ok(OwnedMutexGuard::new(self)),
            Err(_) => Err(TryLockError::new()),
        }
    }

    /// The data, through `&mut self`: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The data, consuming the mutex.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    #[cfg(all(test, not(loom)))]
    pub(super) fn semaphore(&self) -> &Semaphore {
        &self.sem
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Mutex::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

acquire_future! {
    /// Future of [`Mutex::lock`].
    pub struct Lock['a, T] { mutex: &'a Mutex<T> }
    semaphore: |mutex| &mutex.sem,
    output: MutexGuard<'a, T> = |mutex, _permits, res| {
        res.expect("a mutex's semaphore is never closed");
        MutexGuard::new(mutex)
    },
}

acquire_future! {
    /// Future of [`Mutex::lock_owned`].
    pub struct LockOwned[T] { mutex: Arc<Mutex<T>> }
    semaphore: |mutex| &mutex.sem,
    output: OwnedMutexGuard<T> = |mutex, _permits, res| {
        res.expect("a mutex's semaphore is never closed");
        OwnedMutexGuard::new(mutex.clone())
    },
}

/// Exclusive access to a [`Mutex`]'s data; unlocks when dropped.
///
/// `Send` when `T: Send`, `Sync` when `T: Send + Sync` (the marker field sees to it).
#[must_use = "dropping the guard unlocks at once"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    /// Makes the guard `Sync` only when `T: Sync` (it hands out `&T`).
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T> MutexGuard<'a, T> {
    /// The caller holds the mutex's permit, which the guard now owns.
    fn new(mutex: &'a Mutex<T>) -> Self {
        MutexGuard {
            mutex,
            _marker: PhantomData,
        }
    }
}

#[allow(unsafe_code)]
impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard owns the semaphore's only permit, so no other guard exists;
        // the reference lives no longer than `&self`, and the permit is returned only
        // when the guard drops.
        unsafe { &*self.mutex.data.get() }
    }
}

#[allow(unsafe_code)]
impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through the
        // guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.sem.release(LOCK_PERMITS);
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// Exclusive access to a [`Mutex`]'s data, owning an `Arc` of the mutex; unlocks when
/// dropped.
#[must_use = "dropping the guard unlocks at once"]
pub struct OwnedMutexGuard<T> {
    mutex: Arc<Mutex<T>>,
    /// Makes the guard `Sync` only when `T: Sync` (it hands out `&T`).
    _marker: PhantomData<T>,
}

impl<T> OwnedMutexGuard<T> {
    /// The caller holds the mutex's permit, which the guard now owns.
    fn new(mutex: Arc<Mutex<T>>) -> Self {
        OwnedMutexGuard {
            mutex,
            _marker: PhantomData,
        }
    }

    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.mutex
    }
}

#[allow(unsafe_code)]
impl<T> Deref for OwnedMutexGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard owns the semaphore's only permit (see `MutexGuard::deref`).
        unsafe { &*self.mutex.data.get() }
    }
}

#[allow(unsafe_code)]
impl<T> DerefMut for OwnedMutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard owns the only permit and `&mut self` is unique.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for OwnedMutexGuard<T> {
    fn drop(&mut self) {
        self.mutex.sem.release(LOCK_PERMITS);
    }
}

impl<T: fmt::Debug> fmt::Debug for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display> fmt::Display for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}
