//! Go's `sync.WaitGroup`: wait for a group of tasks to finish.
//!
//! # Design
//!
//! A signed counter and a FIFO of waiters behind one lock, in an `Arc` so that the group
//! can be cloned into the tasks it counts (Go passes a `*sync.WaitGroup`; a clone here is
//! that pointer). [`add`](WaitGroup::add) changes the counter; when it reaches zero every
//! queued waiter is dequeued and woken. A waiter is released by being dequeued, not by
//! reading the counter later, so a waiter released at zero completes even if the counter
//! has gone up again (the group is reused) by the time it runs.
//!
//! A counter below zero is a bug in the caller, reported as Go reports it: a panic with
//! the message `sync: negative WaitGroup counter`. The counter is left unchanged (the
//! panic happens after the lock is released), so the group stays usable by tasks that
//! catch the panic.
//!
//! # Cancel safety
//!
//! Waiting takes nothing from anyone: a dropped [`Wait`] future only leaves the queue.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::{lock, Arc, Mutex};
use crate::task::WaitReason;
use crate::wait_list::{WaitList, WaiterKey, WakeList};

/// Go's panic message for a counter below zero.
const NEGATIVE_COUNTER: &str = "sync: negative WaitGroup counter";

/// Waits for a collection of tasks to finish.
///
/// Go: `sync.WaitGroup`. Clones share one counter: clone the group into each task, call
/// [`done`](Self::done) when the task finishes, and [`wait`](Self::wait) for the counter
/// to reach zero. Threading: `Send + Sync + Clone`.
///
/// ```
/// # gort_executor::Runtime::<gort_executor::NoReactor>::new().unwrap().block_on(async {
/// use gort_executor::sync::WaitGroup;
/// let wg = WaitGroup::new();
/// for _ in 0..3 {
///     wg.add(1);
///     let wg = wg.clone();
///     gort_executor::spawn(async move {
///         // ... work ...
///         wg.done();
///     });
/// }
/// wg.wait().await;
/// # });
/// ```
#[derive(Clone)]
pub struct WaitGroup {
    inner: Arc<Mutex<State>>,
}

struct State {
    count: isize,
    /// Waiters parked while `count > 0`; all dequeued when it reaches zero.
    waiters: WaitList<()>,
}

impl WaitGroup {
    /// A group with a counter of zero.
    pub fn new() -> WaitGroup {
        WaitGroup {
            inner: Arc::new(Mutex::new(State {
                count: 0,
                waiters: WaitList::new(),
            })),
        }
    }

    /// Adds `delta` (which may be negative) to the counter; at zero, releases every
    /// waiter. As in Go, call `add` before starting the task it counts, not inside it.
    ///
    /// # Panics
    /// With `sync: negative WaitGroup counter` if the counter would go below zero, and if
    /// it would overflow `isize`. The counter is left unchanged.
    pub fn add(&self, delta: isize) {
        let mut wakes = WakeList::new();
        {
            let mut st = lock(&self.inner);
            let count = match st.count.checked_add(delta) {
                Some(c) if c >= 0 => c,
                Some(_) => {
                    drop(st);
                    panic!("{NEGATIVE_COUNTER}");
                }
                None => {
                    drop(st);
                    panic!("sync: WaitGroup counter overflow");
                }
            };
            st.count = count;
            if count == 0 {
                st.waiters.drain(&mut wakes, |()| {});
            }
        }
        wakes.wake_all();
    }

    /// Decrements the counter by one: `add(-1)`.
    ///
    /// # Panics
    /// With `sync: negative WaitGroup counter` if the counter was zero.
    pub fn done(&self) {
        self.add(-1);
    }

    /// Waits until the counter is zero; completes at once if it already is.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped future just leaves the queue.
    ///
    /// # Errors
    /// None.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            group: self,
            state: WaitState::Init,
        }
    }

    /// The counter now (a snapshot, for diagnostics; Go has no equivalent).
    pub fn count(&self) -> usize {
        // Never negative: `add` refuses to make it so.
        lock(&self.inner).count.unsigned_abs()
    }

    #[cfg(all(test, not(loom)))]
    pub(super) fn slots_in_use(&self) -> usize {
        lock(&self.inner).waiters.slots_in_use()
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.inner);
        f.debug_struct("WaitGroup")
            .field("count", &st.count)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

/// Future of [`WaitGroup::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct Wait<'a> {
    group: &'a WaitGroup,
    state: WaitState,
}

#[derive(Debug)]
enum WaitState {
    Init,
    Waiting(WaiterKey),
    Done,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        super::poll_parked(cx, WaitReason::WaitGroup, |cx, _| this.poll_locked(cx))
    }
}

impl Wait<'_> {
    /// The locked part of `poll`; also returns a waker to drop after unlocking.
    fn poll_locked(&mut self, cx: &mut Context<'_>) -> (Poll<()>, Option<Waker>) {
        let mut st = lock(&self.group.inner);
        match std::mem::replace(&mut self.state, WaitState::Done) {
            WaitState::Init => {
                if st.count == 0 {
                    return (Poll::Ready(()), None);
                }
                let key = st.waiters.push_back((), Some(cx.waker()));
                self.state = WaitState::Waiting(key);
                (Poll::Pending, None)
            }
            WaitState::Waiting(key) => {
                if st.waiters.is_queued(&key) {
                    let stale = st.waiters.set_waker(&key, cx.waker());
                    self.state = WaitState::Waiting(key);
                    (Poll::Pending, stale)
                } else {
                    (Poll::Ready(()), st.waiters.remove(key).waker)
                }
            }
            WaitState::Done => {
                drop(st);
                panic!("`Wait` polled after it completed");
            }
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let WaitState::Waiting(key) = std::mem::replace(&mut self.state, WaitState::Done) {
            let removed = lock(&self.group.inner).waiters.remove(key);
            drop(removed); // after the lock (see `wait_list.rs`)
        }
    }
}

impl fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait").field("state", &self.state).finish()
    }
}
