//! The machinery behind `gort::select!`: one context shared by all branches of a
//! select, so that at most one branch completes.
//!
//! # The algorithm (Go's `selectgo`, crossbeam's two phases)
//!
//! Each poll of a select:
//!
//! 0. If the branches are registered from an earlier poll, *abort* the context (CAS
//!    `WAITING → ABORTED`). If that fails, a counterparty already completed branch `i`
//!    for us: take its result. Otherwise unregister every branch.
//! 1. **Try** every enabled branch once, in a random order (Go's fairness: among
//!    branches ready at once each wins equally often). A channel branch completes only
//!    if it can without waiting, pairing with waiters of *other* parties; we are not
//!    registered anywhere, so nobody can complete one of our branches meanwhile, and no
//!    two branches can both complete. Other futures are simply polled. The first that
//!    is ready wins; the others are dropped (or kept for the next loop) untouched.
//! 2. With a `default` branch, stop here: Go's non-blocking select.
//! 3. **Register** every channel branch as a waiter sharing our context. Registering
//!    also peeks whether the operation became possible meanwhile; if so, abort and go
//!    back to 1. Otherwise wait: a counterparty that pairs with one of our waiters
//!    claims the context first (`WAITING → SELECTED(i)`), so exactly one branch is
//!    completed by others, and it wakes us.
//!
//! A losing channel branch therefore never consumes a value nor sends one.

// The types here are plumbing for the macro's generated code, hidden from the docs.
#![allow(missing_debug_implementations)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::coop;
use crate::loom::{lock, Arc, AtomicUsize, Mutex, Ordering};

const WAITING: usize = 0;
const ABORTED: usize = 1;
/// `SELECTED + i`: branch `i` was completed by a counterparty.
const SELECTED: usize = 2;

/// Branches one select may have: the enabled set is a `u64` bit mask.
pub const MAX_BRANCHES: usize = 64;

/// Shared by the waiters of one select (or owned alone by a stream receiver).
#[doc(hidden)]
pub struct SelectCtx {
    state: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl SelectCtx {
    pub(crate) fn new() -> Arc<SelectCtx> {
        Arc::new(SelectCtx {
            state: AtomicUsize::new(WAITING),
            waker: Mutex::new(None),
        })
    }

    /// A counterparty claims branch `op`; false when another branch won or the select
    /// gave up.
    pub(crate) fn try_select(&self, op: usize) -> bool {
        self.state
            .compare_exchange(WAITING, SELECTED + op, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }

    /// The select stops waiting. `Err(i)` when branch `i` was completed first.
    fn abort(&self) -> Result<(), usize> {
        match self
            .state
            .compare_exchange(WAITING, ABORTED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(s) => {
                debug_assert!(s >= SELECTED);
                Err(s - SELECTED)
            }
        }
    }

    /// Back to waiting; only once no waiter of ours is queued anywhere.
    fn reset(&self) {
        self.state.store(WAITING, Ordering::Release);
    }

    fn set_waker(&self, waker: &Waker) {
        let mut slot = lock(&self.waker);
        if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
            *slot = Some(waker.clone());
        }
    }

    pub(crate) fn wake(&self) {
        let waker = lock(&self.waker).clone();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// What the select asks of one branch.
#[doc(hidden)]
pub enum Action<'a> {
    /// Phase 1: complete now if possible, without registering.
    Try,
    /// Phase 3: register as a waiter of this context under this branch index.
    Register(&'a Arc<SelectCtx>, usize),
    /// The context was aborted: remove the waiter, keep the operation.
    Unregister,
    /// The context selected this branch: take the result.
    TakeSelected,
}

/// A branch's answer.
#[doc(hidden)]
pub enum Reply<O> {
    Ready(O),
    Pending,
    /// After `Register`: the operation looks possible now (abort and retry).
    ReadyNow,
}

impl<O> Reply<O> {
    pub fn map<P>(self, f: impl FnOnce(O) -> P) -> Reply<P> {
        match self {
            Reply::Ready(o) => Reply::Ready(f(o)),
            Reply::Pending => Reply::Pending,
            Reply::ReadyNow => Reply::ReadyNow,
        }
    }
}

/// One branch of a select: a channel operation or any future.
#[doc(hidden)]
pub trait SelectBranch {
    type Output;
    fn drive(self: Pin<&mut Self>, action: Action<'_>, cx: &mut Context<'_>)
        -> Reply<Self::Output>;
}

/// Any future as a branch: polled in phase 1 only.
#[doc(hidden)]
pub struct FutureBranch<F>(pub F);

impl<F: Future> SelectBranch for FutureBranch<F> {
    type Output = F::Output;

    fn drive(self: Pin<&mut Self>, action: Action<'_>, cx: &mut Context<'_>) -> Reply<F::Output> {
        match action {
            Action::Try => {
                // SAFETY: structural pinning of the only field; it is never moved out.
                let fut = unsafe { self.map_unchecked_mut(|b| &mut b.0) };
                // The select's wait reason so far (`Select` unless a branch waits on
                // something tasks alone cannot end); this branch's own reason replaces
                // it only if it is such a thing (a timer, I/O, an unknown future).
                let acc = crate::task::current_wait_reason();
                crate::task::set_wait_reason(crate::task::WaitReason::Other);
                let res = fut.poll(cx);
                let mine = crate::task::current_wait_reason();
                crate::task::set_wait_reason(if mine.only_tasks_can_wake() {
                    acc
                } else {
                    mine
                });
                match res {
                    Poll::Ready(o) => Reply::Ready(o),
                    Poll::Pending => Reply::Pending,
                }
            }
            // Plain futures never register, so nobody can select them.
            Action::Register(..) | Action::Unregister | Action::TakeSelected => Reply::Pending,
        }
    }
}

/// Holds a branch expression until the macro turns it into a branch. The two traits
/// below pick the channel implementation for `recv()`/`send()` futures and the plain
/// one for everything else (method resolution tries `&&Wrap` before `&Wrap`).
#[doc(hidden)]
pub struct Wrap<T>(pub Cell<Option<T>>);

impl<T> Wrap<T> {
    pub fn new(value: T) -> Wrap<T> {
        Wrap(Cell::new(Some(value)))
    }

    pub(crate) fn take(&self) -> T {
        self.0.take().expect("select branch taken twice")
    }
}

#[doc(hidden)]
pub trait IsChanOp {
    type Branch;
    fn __gort_select_branch(&self) -> Self::Branch;
}

#[doc(hidden)]
pub trait IsFuture {
    type Branch;
    fn __gort_select_branch(&self) -> Self::Branch;
}

impl<F: Future> IsFuture for Wrap<F> {
    type Branch = FutureBranch<F>;
    fn __gort_select_branch(&self) -> FutureBranch<F> {
        FutureBranch(self.take())
    }
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// Under loom the branch order must not depend on anything loom does not control.
#[cfg(loom)]
fn next_random() -> u64 {
    0
}

/// A fresh random `u64` (xorshift64*, per thread, seeded from a process-wide counter so
/// threads differ).
#[cfg(not(loom))]
fn next_random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        if x == 0 {
            use std::sync::atomic::{AtomicU64, Ordering as O};
            static SEED: AtomicU64 = AtomicU64::new(0x853c_49e6_748f_ea9b);
            x = SEED.fetch_add(0x9E37_79B9_7F4A_7C15, O::Relaxed) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// The state of one `select!` across polls.
#[doc(hidden)]
pub struct Select {
    n: usize,
    has_default: bool,
    /// Branches whose result did not match their pattern.
    disabled: u64,
    ctx: Arc<SelectCtx>,
    registered: bool,
}

impl Select {
    pub fn new(n: usize, has_default: bool) -> Select {
        assert!(
            n <= MAX_BRANCHES,
            "gort::select! takes at most {MAX_BRANCHES} branches"
        );
        Select {
            n,
            has_default,
            disabled: 0,
            ctx: SelectCtx::new(),
            registered: false,
        }
    }

    fn enabled(&self, i: usize) -> bool {
        self.disabled & (1 << i) == 0
    }

    /// Leaves the registered state: aborts the context and unregisters every branch,
    /// unless a counterparty completed branch `i` first; then that branch's result is
    /// returned (or, if it does not match its pattern, the branch is disabled).
    fn stop_waiting<O>(
        &mut self,
        cx: &mut Context<'_>,
        f: &mut impl FnMut(usize, Action<'_>, &mut Context<'_>) -> Reply<Option<O>>,
    ) -> Option<O> {
        let won = self.ctx.abort().err();
        for i in 0..self.n {
            if self.enabled(i) && Some(i) != won {
                f(i, Action::Unregister, cx);
            }
        }
        self.registered = false;
        let won = won?;
        match f(won, Action::TakeSelected, cx) {
            Reply::Ready(Some(o)) => Some(o),
            Reply::Ready(None) => {
                self.disabled |= 1 << won;
                None
            }
            Reply::Pending | Reply::ReadyNow => None,
        }
    }

    /// Polls the select. `f(i, action, cx)` drives branch `i`; its `Ready(None)` means
    /// "completed, but the result did not match the branch's pattern": the branch is
    /// disabled and the select goes on. Returns `Ready(None)` for the `default` branch.
    ///
    /// # Panics
    /// When every branch is disabled and there is no `default`.
    pub fn poll<O>(
        &mut self,
        cx: &mut Context<'_>,
        mut f: impl FnMut(usize, Action<'_>, &mut Context<'_>) -> Reply<Option<O>>,
    ) -> Poll<Option<O>> {
        let restore = std::task::ready!(coop::poll_proceed(cx));
        crate::task::set_wait_reason(crate::task::WaitReason::Select);

        // Step 0.
        if self.registered {
            if let Some(o) = self.stop_waiting(cx, &mut f) {
                restore.made_progress();
                return Poll::Ready(Some(o));
            }
        }

        loop {
            // Step 1: try every enabled branch in a random order.
            let mut order = [0u8; MAX_BRANCHES];
            let order = &mut order[..self.n];
            for (i, slot) in order.iter_mut().enumerate() {
                *slot = i as u8;
            }
            for i in (1..order.len()).rev() {
                let j = (next_random() % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for &i in order.iter() {
                let i = usize::from(i);
                if !self.enabled(i) {
                    continue;
                }
                if let Reply::Ready(out) = f(i, Action::Try, cx) {
                    match out {
                        Some(o) => {
                            restore.made_progress();
                            return Poll::Ready(Some(o));
                        }
                        None => self.disabled |= 1 << i,
                    }
                }
            }
            let all_disabled = (0..self.n).all(|i| !self.enabled(i));
            // Step 2.
            if self.has_default {
                restore.made_progress();
                return Poll::Ready(None);
            }
            if all_disabled {
                panic!("gort::select!: every branch is disabled (its result did not match its pattern) and there is no `default` branch");
            }

            // Step 3.
            self.ctx.reset();
            self.ctx.set_waker(cx.waker());
            self.registered = true;
            let mut ready_now = false;
            for i in 0..self.n {
                if self.enabled(i) {
                    if let Reply::ReadyNow = f(i, Action::Register(&self.ctx, i), cx) {
                        ready_now = true;
                        break;
                    }
                }
            }
            if !ready_now {
                // The wait reason is `Select`, or what a plain-future branch waits on
                // (see `FutureBranch`).
                return Poll::Pending;
            }
            if let Some(o) = self.stop_waiting(cx, &mut f) {
                restore.made_progress();
                return Poll::Ready(Some(o));
            }
        }
    }
}

/// Drives branch `b` (helper for the macro's generated code).
#[doc(hidden)]
pub fn drive<B: SelectBranch>(
    b: Pin<&mut B>,
    action: Action<'_>,
    cx: &mut Context<'_>,
) -> Reply<B::Output> {
    b.drive(action, cx)
}
