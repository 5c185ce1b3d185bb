//! An async reader-writer lock: Go's `sync.RWMutex`, holding the data it guards.
//!
//! # Design
//!
//! A [`Semaphore`] with [`MAX_READERS`] permits: a reader takes one, a writer takes all
//! of them. Because the semaphore is FIFO and a queued waiter blocks every later arrival
//! (`semaphore.rs`, invariant 1), a writer that queues behind active readers stops new
//! readers from overtaking it: it gets the lock as soon as the readers already inside
//! leave. That is the writer preference Go's `RWMutex` has ("if a goroutine holds a
//! RWMutex for reading and another goroutine might call Lock, no goroutine should expect
//! to be able to acquire a read lock until the initial read lock is released"), and
//! readers queued behind a writer get in together when it leaves, so neither side
//! starves.
//!
//! The cell is `std`'s even under loom, for the reason given in `mutex.rs`. `unsafe` is
//! limited to the items marked `#[allow(unsafe_code)]`.

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use super::mutex::TryLockError;
use super::semaphore::{acquire_future, Acquirer, Semaphore};

/// The most readers that can hold a [`RwLock`] at once; more wait. Go's
/// `rwmutexMaxReaders` (`1 << 30`), which fits a semaphore's count on 32-bit targets too.
pub const MAX_READERS: usize = 1 << 30;

/// A reader takes one permit.
const READ_PERMITS: usize = 1;

/// An async reader-writer lock around a `T`: many readers or one writer.
///
/// Go: `sync.RWMutex` (`RLock` is [`read`](Self::read), `Lock` is
/// [`write`](Self::write)). Fair: a waiting writer blocks later readers, and readers
/// that queued behind a writer enter together after it.
pub struct RwLock<T> {
    sem: Semaphore,
    data: UnsafeCell<T>,
}

#[allow(unsafe_code)]
// SAFETY: `&RwLock<T>` reaches the `T` only through guards. A write guard holds every
// permit and so is alone, and may use (and, through `mem::replace`, drop) the `T` on
// its thread: `T: Send`. Read guards share `&T` across threads: `T: Sync`. `Send` is
// automatic for `T: Send`.
unsafe impl<T: Send + Sync> Sync for RwLock<T> {}

impl<T> RwLock<T> {
    /// A new, unlocked lock.
    pub fn new(value: T) -> RwLock<T> {
        RwLock {
            sem: Semaphore::new(MAX_READERS),
            data: UnsafeCell::new(value),
        }
    }

    /// A lock for a `static` (not under loom).
    #[cfg(not(loom))]
    pub const fn const_new(value: T) -> RwLock<T> {
        RwLock {
            sem: Semaphore::const_new(MAX_READERS),
            data: UnsafeCell::new(value),
        }
    }

    /// Waits for shared (read) access.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future leaves the queue, and returns the read permit if
    /// it had just been granted.
    ///
    /// # Errors
    /// None: the lock cannot be closed.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn read(&self) -> Read<'_, T> {
        Read {
            lock: self,
            waiter: Acquirer::new(READ_PERMITS),
        }
    }

    /// Waits for exclusive (write) access.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future leaves the queue (letting readers queued behind
    /// it in), and returns the permits if they had just been granted.
    ///
    /// # Errors
    /// None: the lock cannot be closed.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn write(&self) -> Write<'_, T> {
        Write {
            lock: self,
            waiter: Acquirer::new(MAX_READERS),
        }
    }

    /// Read access if no writer holds or waits for the lock.
    ///
    /// # Errors
    /// [`TryLockError`] otherwise.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        self.sem
            .try_take(READ_PERMITS)
            .map(|()| RwLockReadGuard::new(self))
            .map_err(|_| TryLockError::new())
    }

    /// Write access if nobody holds or waits for the lock.
    ///
    /// # Errors
    /// [`TryLockError`] otherwise.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        self.sem
            .try_take(MAX_READERS)
            .map(|()| RwLockWriteGuard::new(self))
            .map_err(|_| TryLockError::new())
    }

    /// The data, through `&mut self`: no locking needed.
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The data, consuming the lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }

    #[cfg(all(test, not(loom)))]
    pub(super) fn semaphore(&self) -> &Semaphore {
        &self.sem
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        RwLock::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        RwLock::new(value)
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(guard) => d.field("data", &&*guard),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

acquire_future! {
    /// Future of [`RwLock::read`].
    pub struct Read['a, T] { lock: &'a RwLock<T> }
    semaphore: |lock| &lock.sem,
    output: RwLockReadGuard<'a, T> = |lock, _permits, res| {
        res.expect("a RwLock's semaphore is never closed");
        RwLockReadGuard::new(lock)
    },
}

acquire_future! {
    /// Future of [`RwLock::write`].
    pub struct Write['a, T] { lock: &'a RwLock<T> }
    semaphore: |lock| &lock.sem,
    output: RwLockWriteGuard<'a, T> = |lock, _permits, res| {
        res.expect("a RwLock's semaphore is never closed");
        RwLockWriteGuard::new(lock)
    },
}

/// Shared access to a [`RwLock`]'s data; releases its read permit when dropped.
#[must_use = "dropping the guard unlocks at once"]
pub struct RwLockReadGuard<'a, T> {
    lock: &'a RwLock<T>,
    /// `Send`/`Sync` exactly when `&T` is.
    _marker: PhantomData<&'a T>,
}

impl<'a, T> RwLockReadGuard<'a, T> {
    /// The caller holds one read permit, which the guard now owns.
    fn new(lock: &'a RwLock<T>) -> Self {
        RwLockReadGuard {
            lock,
            _marker: PhantomData,
        }
    }
}

#[allow(unsafe_code)]
impl<T> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard owns a read permit, so no write guard (which needs all
        // `MAX_READERS` permits) exists while the reference, bounded by `&self`, lives.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(READ_PERMITS);
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to a [`RwLock`]'s data; releases every permit when dropped.
#[must_use = "dropping the guard unlocks at once"]
pub struct RwLockWriteGuard<'a, T> {
    lock: &'a RwLock<T>,
    /// `Send` when `T: Send`, `Sync` when `T: Sync` (it hands out `&mut T` and `&T`).
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T> RwLockWriteGuard<'a, T> {
    /// The caller holds all `MAX_READERS` permits, which the guard now owns.
    fn new(lock: &'a RwLock<T>) -> Self {
        RwLockWriteGuard {
            lock,
            _marker: PhantomData,
        }
    }

    /// Turns write access into read access without letting a writer in between:
    /// returns all permits but one, which lets readers queued at the head in at once.
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        let this = ManuallyDrop::new(self);
        this.lock.sem.release(MAX_READERS - READ_PERMITS);
        RwLockReadGuard::new(this.lock)
    }
}

#[allow(unsafe_code)]
impl<T> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard owns every permit, so no other guard exists while the
        // reference, bounded by `&self`, lives.
        unsafe { &*self.lock.data.get() }
    }
}

#[allow(unsafe_code)]
impl<T> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard owns every permit, and `&mut self` is unique.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.sem.release(MAX_READERS);
    }
}

impl<T: fmt::Debug> fmt::Debug for RwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
