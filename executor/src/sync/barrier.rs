//! A reusable barrier: `n` tasks wait until all `n` have arrived, then all go on.
//!
//! # Design
//!
//! Behind one lock: how many tasks have arrived in the current generation, and a FIFO of
//! the ones waiting. A task *arrives* on its first poll of [`Barrier::wait`]. The `n`-th
//! arrival is the generation's **leader**: it resets the count to zero (starting the
//! next generation), dequeues and wakes every waiter, and completes at once with
//! `is_leader() == true`. Waiters are released by being dequeued, so a task of the old
//! generation that runs late cannot be confused with the new one.
//!
//! # Cancel safety
//!
//! Dropping a `wait()` future that arrived but was not yet released **withdraws its
//! arrival**: the count goes down by one, so the barrier waits for a replacement rather
//! than releasing a generation one task short (a task that gave up waiting, say on a
//! timeout, is not at the barrier). Once released, nothing is left to undo. The leader
//! is chosen in the poll that completes, so leadership is never lost with a dropped
//! future.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::{lock, Mutex};
use crate::task::WaitReason;
use crate::wait_list::{WaitList, WaiterKey, WakeList};

/// Lets `n` tasks wait for each other, generation after generation.
///
/// Threading: `Send + Sync`; share it by reference or in an `Arc`.
pub struct Barrier {
    n: usize,
    state: Mutex<State>,
}

struct State {
    /// Arrivals in the current generation, `< n` between operations.
    arrived: usize,
    waiters: WaitList<()>,
}

/// What [`Barrier::wait`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult {
    leader: bool,
}

impl BarrierWaitResult {
    /// True for exactly one task of each generation: the last to arrive.
    pub fn is_leader(&self) -> bool {
        self.leader
    }
}

impl Barrier {
    /// A barrier for `n` tasks. `n == 0` behaves as `n == 1` (every task passes at once,
    /// each as its own leader).
    pub fn new(n: usize) -> Barrier {
        Barrier {
            n: n.max(1),
            state: Mutex::new(State {
                arrived: 0,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Arrives at the barrier and waits until `n` tasks have arrived in this generation.
    /// The arrival happens on the future's first poll.
    ///
    /// # Cancel safety
    /// Cancel safe in the sense that dropping the future withdraws its arrival (see the
    /// module docs), so the barrier never releases a generation with fewer than `n`
    /// tasks still waiting at it.
    ///
    /// # Errors
    /// None.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn wait(&self) -> BarrierWait<'_> {
        BarrierWait {
            barrier: self,
            state: WaitState::Init,
        }
    }

    #[cfg(all(test, not(loom)))]
    pub(super) fn arrived(&self) -> usize {
        lock(&self.state).arrived
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Barrier")
            .field("n", &self.n)
            .field("arrived", &st.arrived)
            .finish()
    }
}

/// Future of [`Barrier::wait`].
#[must_use = "futures do nothing unless polled"]
pub struct BarrierWait<'a> {
    barrier: &'a Barrier,
    state: WaitState,
}

#[derive(Debug)]
enum WaitState {
    Init,
    Waiting(WaiterKey),
    Done,
}

impl Future for BarrierWait<'_> {
    type Output = BarrierWaitResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BarrierWaitResult> {
        let this = self.get_mut();
        super::poll_parked(cx, WaitReason::Barrier, |cx, wakes| {
            this.poll_locked(cx, wakes)
        })
    }
}

impl BarrierWait<'_> {
    /// The locked part of `poll`: arrives, or checks for release. Also returns a waker
    /// to drop after unlocking; a leader's wake-ups go to `wakes`.
    fn poll_locked(
        &mut self,
        cx: &mut Context<'_>,
        wakes: &mut WakeList,
    ) -> (Poll<BarrierWaitResult>, Option<Waker>) {
        let mut st = lock(&self.barrier.state);
        match std::mem::replace(&mut self.state, WaitState::Done) {
            WaitState::Init => {
                st.arrived += 1;
                if st.arrived < self.barrier.n {
                    let key = st.waiters.push_back((), Some(cx.waker()));
                    self.state = WaitState::Waiting(key);
                    return (Poll::Pending, None);
                }
                // The n-th arrival: release this generation, start the next.
                st.arrived = 0;
                st.waiters.drain(wakes, |()| {});
                (Poll::Ready(BarrierWaitResult { leader: true }), None)
            }
            WaitState::Waiting(key) => {
                if st.waiters.is_queued(&key) {
                    let stale = st.waiters.set_waker(&key, cx.waker());
                    self.state = WaitState::Waiting(key);
                    (Poll::Pending, stale)
                } else {
                    let removed = st.waiters.remove(key);
                    (
                        Poll::Ready(BarrierWaitResult { leader: false }),
                        removed.waker,
                    )
                }
            }
            WaitState::Done => {
                drop(st);
                panic!("`BarrierWait` polled after it completed");
            }
        }
    }
}

impl Drop for BarrierWait<'_> {
    fn drop(&mut self) {
        if let WaitState::Waiting(key) = std::mem::replace(&mut self.state, WaitState::Done) {
            let removed = {
                let mut st = lock(&self.barrier.state);
                let removed = st.waiters.remove(key);
                if removed.was_queued {
                    // Arrived but not released: withdraw the arrival.
                    st.arrived -= 1;
                }
                removed
            };
            drop(removed); // after the lock (see `wait_list.rs`)
        }
    }
}

impl fmt::Debug for BarrierWait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BarrierWait")
            .field("state", &self.state)
            .finish()
    }
}
