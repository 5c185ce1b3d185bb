//! One-time initialisation: Go's `sync.Once` ([`Once`]) and `sync.OnceValue`
//! ([`OnceCell`]), for initialisers that `.await`.
//!
//! # Design
//!
//! A [`OnceCell`] is a `std::sync::OnceLock<T>` (which publishes the value: `get` is a
//! load) and a one-permit [`Semaphore`] that elects the initialiser:
//!
//! 1. `get_or_init` returns the value if it is set. Otherwise it acquires the permit
//!    (waiting in FIFO order), checks again, and if still unset runs the initialiser
//!    while holding the permit.
//! 2. Having stored the value, the initialiser **closes** the semaphore. Closing wakes
//!    every queued caller at once with an error that means "the value is set"; they read
//!    it. (Without the close they would take the permit one after another, a chain of
//!    wake-ups as long as the queue.)
//! 3. If the initialiser fails (`get_or_try_init` returns `Err`), panics, or its future
//!    is dropped, its permit guard returns the permit and the next queued caller runs
//!    *its* initialiser. This is where Go differs: Go's `Once` counts a panicking `f` as
//!    done. In async Rust, cancellation is routine, and a cancelled initialiser has not
//!    initialised anything.
//!
//! Every `set` of the `OnceLock` happens with the permit held, so it cannot fail.
//!
//! `OnceLock` is `std`'s even under loom (loom has none); the permit protocol is the
//! semaphore's, which the loom models check.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::sync::OnceLock;

use super::semaphore::{Semaphore, TryAcquireError};

/// The permit that elects the initialiser.
const INIT_PERMITS: usize = 1;

/// A cell written once, by the first caller whose (async) initialiser succeeds.
///
/// Go: `sync.OnceValue`, plus `get`/`set`. Threading: `Sync` when `T: Send + Sync`.
pub struct OnceCell<T> {
    value: OnceLock<T>,
    /// One permit while unset; closed once set (see the module docs).
    init: Semaphore,
}

/// [`OnceCell::set`] failed; the value comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetError<T> {
    /// The cell already holds a value.
    AlreadyInitialized(T),
    /// Another caller is running an initialiser right now.
    Initializing(T),
}

impl<T> SetError<T> {
    /// The value that was not stored.
    pub fn into_inner(self) -> T {
        match self {
            SetError::AlreadyInitialized(v) | SetError::Initializing(v) => v,
        }
    }
}

impl<T> fmt::Display for SetError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetError::AlreadyInitialized(_) => f.write_str("the cell is already initialized"),
            SetError::Initializing(_) => f.write_str("the cell is being initialized"),
        }
    }
}

impl<T: fmt::Debug> std::error::Error for SetError<T> {}

impl<T> OnceCell<T> {
    /// An empty cell.
    pub fn new() -> OnceCell<T> {
        OnceCell {
            value: OnceLock::new(),
            init: Semaphore::new(INIT_PERMITS),
        }
    }

    /// An empty cell for a `static` (not under loom).
    #[cfg(not(loom))]
    pub const fn const_new() -> OnceCell<T> {
        OnceCell {
            value: OnceLock::new(),
            init: Semaphore::const_new(INIT_PERMITS),
        }
    }

    /// A cell holding `value`.
    pub fn new_with(value: T) -> OnceCell<T> {
        let cell = OnceCell::new();
        let _ = cell.value.set(value);
        cell.init.close();
        cell
    }

    /// The value, if set.
    pub fn get(&self) -> Option<&T> {
        self.value.get()
    }

    /// Whether the value is set.
    pub fn initialized(&self) -> bool {
        self.value.get().is_some()
    }

    /// Stores `value` if the cell is empty and no initialiser is running.
    ///
    /// # Errors
    /// [`SetError::AlreadyInitialized`] or [`SetError::Initializing`], with the value.
    pub fn set(&self, value: T) -> Result<(), SetError<T>> {
        if self.initialized() {
            return Err(SetError::AlreadyInitialized(value));
        }
        match self.init.try_acquire() {
            Ok(_permit) => {
                if self.initialized() {
                    return Err(SetError::AlreadyInitialized(value));
                }
                self.publish(value);
                Ok(())
            }
            Err(TryAcquireError::Closed) => Err(SetError::AlreadyInitialized(value)),
            Err(TryAcquireError::NoPermits) => Err(SetError::Initializing(value)),
        }
    }

    /// Stores the value (the caller holds the permit) and releases every waiter.
    fn publish(&self, value: T) -> &T {
        // Sets happen only with the permit held, so this one always stores `value`.
        let stored = self.value.get_or_init(|| value);
        self.init.close();
        stored
    }

    /// The value once set: returned if a value is set, else by waiting for a running
    /// initialiser, else by running `f` (at most one caller's `f` runs at a time).
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future while it waits leaves the queue; dropping it
    /// while its `f` runs cancels that initialisation, and the next waiter runs its own.
    ///
    /// # Errors
    /// None.
    ///
    /// # Panics
    /// If `f` panics (the panic propagates; the next waiter runs its own `f`).
    pub async fn get_or_init<F, Fut>(&self, f: F) -> &T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        if let Some(v) = self.get() {
            return v;
        }
        match self.init.acquire().await {
            Ok(_permit) => match self.get() {
                Some(v) => v,
                None => self.publish(f().await),
            },
            Err(_closed) => self.get().expect("the semaphore is closed only once set"),
        }
    }

    /// Like [`get_or_init`](Self::get_or_init) with a fallible initialiser: an `Err` leaves
    /// the cell empty and lets the next waiter try.
    ///
    /// # Cancel safety
    /// Cancel safe, as [`get_or_init`](Self::get_or_init).
    ///
    /// # Errors
    /// The error of this caller's `f`. Callers that were waiting are not given it: they
    /// run their own initialisers.
    ///
    /// # Panics
    /// If `f` panics.
    pub async fn get_or_try_init<E, F, Fut>(&self, f: F) -> Result<&T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(v) = self.get() {
            return Ok(v);
        }
        match self.init.acquire().await {
            Ok(_permit) => match self.get() {
                Some(v) => Ok(v),
                None => Ok(self.publish(f().await?)),
            },
            Err(_closed) => Ok(self.get().expect("the semaphore is closed only once set")),
        }
    }

    /// The value, consuming the cell.
    pub fn into_inner(self) -> Option<T> {
        self.value.into_inner()
    }

    /// Takes the value out, leaving the cell empty and ready for a new initialisation.
    pub fn take(&mut self) -> Option<T> {
        std::mem::take(self).into_inner()
    }
}

impl<T> Default for OnceCell<T> {
    fn default() -> Self {
        OnceCell::new()
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceCell")
            .field("value", &self.get())
            .finish()
    }
}

impl<T: Clone> Clone for OnceCell<T> {
    fn clone(&self) -> Self {
        match self.get() {
            Some(v) => OnceCell::new_with(v.clone()),
            None => OnceCell::new(),
        }
    }
}

impl<T> From<T> for OnceCell<T> {
    fn from(value: T) -> Self {
        OnceCell::new_with(value)
    }
}

/// Runs an (async) action exactly once.
///
/// Go: `sync.Once`. Concurrent callers of [`call_once`](Self::call_once) wait for the one
/// whose action runs. Unlike Go, an action that panics or is cancelled (its caller's
/// future dropped) does not count: the next caller runs its own. Threading: `Send + Sync`.
///
/// ```
/// # gort_executor::Runtime::<gort_executor::NoReactor>::new().unwrap().block_on(async {
/// use gort_executor::sync::Once;
/// static SETUP: Once = Once::const_new();
/// SETUP.call_once(|| async { /* set things up */ }).await;
/// assert!(SETUP.is_completed());
/// # });
/// ```
#[derive(Default)]
pub struct Once {
    cell: OnceCell<()>,
}

impl Once {
    /// A `Once` whose action has not run.
    pub fn new() -> Once {
        Once {
            cell: OnceCell::new(),
        }
    }

    /// A `Once` for a `static` (not under loom).
    #[cfg(not(loom))]
    pub const fn const_new() -> Once {
        Once {
            cell: OnceCell::const_new(),
        }
    }

    /// Runs `f` and awaits its future, if no call has completed yet; otherwise waits for
    /// the call in progress, or returns at once if one has completed.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future while it waits leaves the queue; dropping it
    /// while its `f` runs cancels that run, and the next caller runs its own `f`.
    ///
    /// # Errors
    /// None.
    ///
    /// # Panics
    /// If `f` panics (the panic propagates; the next caller runs its own `f`).
    pub async fn call_once<F, Fut>(&self, f: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        self.cell.get_or_init(f).await;
    }

    /// Whether an action has run to completion.
    pub fn is_completed(&self) -> bool {
        self.cell.initialized()
    }
}

impl fmt::Debug for Once {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Once")
            .field("completed", &self.is_completed())
            .finish()
    }
}
