//! The cooperative budget: a task that is always ready must still yield.
//!
//! A future that never returns `Pending` (a channel that is never empty, a socket that
//! always has data) would otherwise keep its worker forever and starve every task queued
//! behind it. Each poll of a task by a worker starts with a budget of
//! 128 units (`INITIAL_BUDGET`); each always-ready operation built on [`poll_proceed`] spends
//! one; once the budget is spent those operations return `Pending` after waking the task,
//! which sends it to the back of the run queue. Outside a worker (in `block_on`, on
//! blocking threads) the budget is unconstrained.
//!
//! The budget lives in a thread-local of its own, without a destructor, so it can be
//! read at any time, also while the thread's other thread-locals are destroyed.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Units a task may spend per poll. Tokio uses 128 too: big enough that batching is not
/// broken up, small enough that a queue of 256 tasks each gets a turn within milliseconds.
pub(crate) const INITIAL_BUDGET: u8 = 128;

std::thread_local! {
    /// The budget of the poll in progress on this thread.
    static BUDGET: Cell<Budget> = const { Cell::new(Budget::unconstrained()) };
}

fn current() -> Budget {
    BUDGET
        .try_with(Cell::get)
        .unwrap_or(Budget::unconstrained())
}

fn set(b: Budget) {
    let _ = BUDGET.try_with(|c| c.set(b));
}

/// Sets the budget and returns the previous one (`None` if thread-locals are gone).
fn replace(b: Budget) -> Option<Budget> {
    BUDGET.try_with(|c| c.replace(b)).ok()
}

/// Remaining units, or `None` when unconstrained.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Budget(Option<u8>);

impl Budget {
    pub(crate) const fn initial() -> Budget {
        Budget(Some(INITIAL_BUDGET))
    }

    pub(crate) const fn unconstrained() -> Budget {
        Budget(None)
    }
}

/// Runs `f` (a task poll) with a fresh budget, restoring the previous one afterwards,
/// also when `f` unwinds.
pub(crate) fn budget<R>(f: impl FnOnce() -> R) -> R {
    with_budget(Budget::initial(), f)
}

fn with_budget<R>(budget: Budget, f: impl FnOnce() -> R) -> R {
    struct Reset(Option<Budget>);
    impl Drop for Reset {
        fn drop(&mut self) {
            if let Some(prev) = self.0 {
                set(prev);
            }
        }
    }
    let _reset = Reset(replace(budget));
    f()
}

/// True when the current task still has budget (always true outside a worker).
pub(crate) fn has_budget_remaining() -> bool {
    current().0 != Some(0)
}

/// Spends one unit of the current task's budget.
///
/// Returns `Pending` (after waking the task, so it is re-queued) when the budget is
/// spent. On `Ready`, the returned guard gives the unit back if it is dropped without
/// [`made_progress`](RestoreOnPending::made_progress), i.e. when the operation ended up
/// `Pending` anyway. Leaf futures of gort (channels, sockets, `JoinHandle`) call this;
/// so can any future that may be ready indefinitely.
pub fn poll_proceed(cx: &mut Context<'_>) -> Poll<RestoreOnPending> {
    let mut budget = current();
    match budget.0 {
        None => Poll::Ready(RestoreOnPending(Cell::new(budget))),
        Some(0) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Some(n) => {
            let restore = RestoreOnPending(Cell::new(budget));
            budget.0 = Some(n - 1);
            set(budget);
            Poll::Ready(restore)
        }
    }
}

/// Returned by [`poll_proceed`]: restores the unit unless progress was made.
#[must_use]
#[derive(Debug)]
pub struct RestoreOnPending(Cell<Budget>);

impl RestoreOnPending {
    /// The operation completed: keep the unit spent.
    pub fn made_progress(&self) {
        self.0.set(Budget::unconstrained());
    }
}

impl Drop for RestoreOnPending {
    fn drop(&mut self) {
        let saved = self.0.get();
        if saved.0.is_some() {
            set(saved);
        }
    }
}

/// Spends one unit of budget, yielding to the scheduler once it is exhausted. Call it in
/// long loops that never await anything that could be `Pending`.
///
/// # Cancel safety
/// Cancel safe.
pub async fn consume_budget() {
    let mut spent = false;
    std::future::poll_fn(|cx| {
        if spent {
            return Poll::Ready(());
        }
        let restore = std::task::ready!(poll_proceed(cx));
        restore.made_progress();
        spent = true;
        Poll::Ready(())
    })
    .await
}

/// Runs `future` with no budget limit: its operations never yield for fairness. For
/// futures that must not be interrupted, at the price of starving their neighbours.
pub fn unconstrained<F: Future>(future: F) -> Unconstrained<F> {
    Unconstrained { inner: future }
}

/// Future returned by [`unconstrained`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Unconstrained<F> {
    inner: F,
}

impl<F: Future> Future for Unconstrained<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // Projecting the pin to the only field.
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
        with_budget(Budget::unconstrained(), || inner.poll(cx))
    }
}

/// Calls `f` with an unconstrained budget (blocking-pool closures).
pub(crate) fn unconstrained_call<R>(f: impl FnOnce() -> R) -> R {
    with_budget(Budget::unconstrained(), f)
}
