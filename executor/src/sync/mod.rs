//! Go's `sync` package (and `context`), as futures: [`Mutex`], [`RwLock`], [`WaitGroup`],
//! [`Once`], [`OnceCell`], [`Barrier`], [`Semaphore`], [`Notify`] and [`Context`].
//!
//! | Go                                  | gort                                             |
//! |-------------------------------------|--------------------------------------------------|
//! | `sync.Mutex` + the data it guards   | [`Mutex<T>`]: `lock().await` gives a guard       |
//! | `sync.RWMutex`                      | [`RwLock<T>`]: `read().await`, `write().await`   |
//! | `sync.WaitGroup`                    | [`WaitGroup`]: `add`, `done`, `wait().await`     |
//! | `sync.Once`                         | [`Once`]: `call_once(f).await`                   |
//! | `sync.OnceValue`                    | [`OnceCell<T>`]: `get_or_init(f).await`          |
//! | `sync.Cond` (`Signal`, `Broadcast`) | [`Notify`]: `notify_one`, `notify_waiters`       |
//! | `x/sync/semaphore.Weighted`         | [`Semaphore`]: `acquire_many(n).await`           |
//! | `context.Context`                   | [`Context`]: `with_cancel`, `done().await`, `err` |
//! | `x/sync/errgroup.Group`             | `Group`: `spawn`, `wait().await` (first error)   |
//!
//! # Design
//!
//! **Runtime-agnostic.** Every primitive here parks a task by storing its
//! [`Waker`](std::task::Waker) and wakes it by calling `wake`; nothing reaches into the
//! scheduler, so the primitives work under any executor (gort's workers, `block_on`, a
//! test's hand-written poll loop, another runtime). `Group`, which spawns its tasks on
//! the current gort runtime, is defined with the runtime (`runtime/group.rs`) and
//! re-exported here by the `gort` facade. The one runtime hook they touch is
//! the cooperative budget ([`crate::coop::poll_proceed`]): an uncontended `lock()` in a
//! loop is always ready, and the budget makes such a loop yield to its neighbours.
//!
//! **One waiter queue, under one lock.** Each primitive keeps its state and a FIFO queue
//! of parked waiters (`wait_list.rs`: a doubly-linked list threaded through a slab) behind
//! a single `Mutex` from the loom shim. Lock hold times are a few dozen instructions and
//! user code never runs under the lock (not even a waker's destructor: see "wake after
//! unlock"). Correctness over cleverness: acquiring and releasing have no lock-free fast
//! path (the only atomics are `Notify`'s generation counter and a `Context`'s error
//! code, both written under their lock and read without it), and there is no `unsafe`
//! outside the two cells that hand out `&T`/`&mut T` (`mutex.rs`, `rwlock.rs`, where only
//! the items marked `#[allow(unsafe_code)]` may use it); every other file forbids it.
//!
//! **Wake after unlock.** Wakers are collected into a `WakeList` while the lock is held
//! and woken after it is released, so a waker that runs the woken task inline (or takes
//! another lock) can never deadlock against us, and the woken task never finds the lock
//! still held. Wakers that are replaced or discarded are also dropped after unlocking:
//! dropping the last reference to a task runs its destructors, which may need this lock.
//!
//! **Cancel safety.** A waiter's queue slot is owned by its future. The slot stays
//! allocated after a notifier has dequeued it (granted permits, a notification, a
//! release) until the future observes the outcome, so a future that is dropped at any
//! point finds out what it was given and hands it back: granted permits return to the
//! semaphore and go to the next waiter, a `notify_one` notification is passed on to the
//! next waiter (or stored as the permit), a barrier arrival is withdrawn. A future that
//! is dropped while still queued unlinks itself, so creating and dropping futures in a
//! loop never grows the queue. Keys are never reused while their future lives, so
//! there is no ABA.
//!
//! **Fairness.** Queues are FIFO and a queued waiter blocks later arrivals: a semaphore
//! waiter asking for `n` permits is served before a later one asking for 1, even when
//! one permit is free. That makes [`Mutex`] starvation-free (Go's mutex only switches to
//! this "starvation mode" after a waiter has waited 1 ms; we are always in it, which costs
//! some throughput under heavy contention and buys predictable latency) and [`RwLock`]
//! writer-preferring: a queued writer stops new readers from overtaking it.
//!
//! **Deadlines.** A [`Context`] deadline is served by the timers of the runtime that
//! polls its `done()`: inside a gort runtime with the I/O reactor, the waiting task puts
//! one timer on the reactor (through [`crate::reactor::Reactor::add_timer`]) and, woken
//! at the deadline, cancels the context, which wakes every other waiter. A `done()`
//! awaited where there are no such timers (a plain thread's `block_on`, another
//! executor, a runtime built with a custom parker) falls back to one small shared
//! thread in this module (`deadline.rs`): started lazily by the first such wait, it
//! sleeps on a condition variable until the earliest deadline in an ordered map and
//! cancels the expired contexts; an entry is removed when its context is dropped.
//! `err()` and `is_cancelled()` also check the clock themselves, so they report
//! [`ContextError::DeadlineExceeded`] as soon as the deadline has passed, whoever waits.

#![deny(unsafe_code)]

use crate::wait_list::WakeList;

mod barrier;
mod context;
#[cfg(not(loom))]
mod deadline;
mod mutex;
mod notify;
mod once;
mod rwlock;
mod semaphore;
mod wait_group;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use barrier::{Barrier, BarrierWaitResult};
pub use context::{CancelHandle, Context, ContextError};
pub use mutex::{Mutex, MutexGuard, OwnedMutexGuard, TryLockError};
pub use notify::Notify;
pub use once::{Once, OnceCell, SetError};
pub use rwlock::{RwLock, RwLockReadGuard, RwLockWriteGuard, MAX_READERS};
pub use semaphore::{
    AcquireError, OwnedSemaphorePermit, Semaphore, SemaphorePermit, TryAcquireError, MAX_PERMITS,
};
pub use wait_group::WaitGroup;

/// The futures the primitives' async methods return.
///
/// They are named here rather than at the top of `sync` so that `use gort::sync::*`
/// does not shadow `std::io::{Read, Write}` (nor bring in names as generic as `Wait`
/// and `Done`); code seldom names them. The module is `future`, not `futures` (as
/// tokio's and async-lock's are): a glob-imported `futures` would hide the `futures`
/// crate from code that also uses it.
pub mod future {
    pub use super::barrier::BarrierWait;
    pub use super::context::Done;
    pub use super::mutex::{Lock, LockOwned};
    pub use super::notify::Notified;
    pub use super::rwlock::{Read, Write};
    pub use super::semaphore::{Acquire, AcquireOwned};
    pub use super::wait_group::Wait;
}

/// One poll of a future that parks on a primitive's wait list: the part every
/// primitive shares. It spends the cooperative budget (an uncontended `lock()` in a
/// loop is always ready, and must still yield to its neighbours), runs `locked` (the
/// primitive's own step, under its lock: it may collect wake-ups into the list and
/// hands back the waker it replaced), then, with the lock released, drops that waker
/// and wakes what was collected (see "wake after unlock" above), and records `reason`
/// as what the task waits for when it stays pending.
fn poll_parked<T>(
    cx: &mut std::task::Context<'_>,
    reason: crate::task::WaitReason,
    locked: impl FnOnce(
        &mut std::task::Context<'_>,
        &mut WakeList,
    ) -> (std::task::Poll<T>, Option<std::task::Waker>),
) -> std::task::Poll<T> {
    let coop = std::task::ready!(crate::coop::poll_proceed(cx));
    let mut wakes = WakeList::new();
    let (poll, stale_waker) = locked(cx, &mut wakes);
    drop(stale_waker);
    wakes.wake_all();
    if poll.is_ready() {
        coop.made_progress();
    } else {
        crate::task::set_wait_reason(reason);
    }
    poll
}
