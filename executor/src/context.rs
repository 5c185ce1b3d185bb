//! The thread's runtime context: which runtime `gort::spawn` talks to, whether this
//! thread is already driving a runtime (so `block_on` must refuse), the worker state the
//! scheduler reaches from inside a poll, and the coop budget.
//!
//! All of it is thread-local and touched only by its own thread. Access goes through
//! `try_with`, so wakers invoked while thread-locals are being destroyed fall back to the
//! remote path instead of panicking.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::coop::Budget;
use crate::runtime::Handle;
use crate::sched::worker::WorkerContext;

struct Context {
    /// The runtime `gort::spawn` uses on this thread.
    handle: RefCell<Option<Handle>>,
    /// Set on worker threads and inside `block_on`: blocking here would stall a runtime.
    entered: Cell<bool>,
    /// Set on worker threads: the P this thread runs.
    worker: RefCell<Option<Rc<WorkerContext>>>,
    budget: Cell<Budget>,
    /// What the future being polled on this thread waits for, set by gort's leaf
    /// futures when they return `Pending` (a `WaitReason` as `u8`).
    wait_reason: Cell<u8>,
}

thread_local! {
    static CONTEXT: Context = const {
        Context {
            handle: RefCell::new(None),
            entered: Cell::new(false),
            worker: RefCell::new(None),
            budget: Cell::new(Budget::unconstrained()),
            wait_reason: Cell::new(0),
        }
    };
}

/// The current runtime's handle, if any.
pub(crate) fn current_handle() -> Option<Handle> {
    CONTEXT
        .try_with(|c| c.handle.borrow().clone())
        .ok()
        .flatten()
}

/// Runs `f` with the current runtime's handle, borrowed (no reference-count traffic).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    let mut f = Some(f);
    let res = CONTEXT.try_with(|c| {
        let h = c.handle.borrow();
        (f.take().expect("called once"))(h.as_ref())
    });
    match res {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called when try_with fails"))(None),
    }
}

/// Restores the previous handle when dropped.
pub(crate) struct SetCurrentGuard {
    prev: Option<Handle>,
}

/// Makes `handle` the current runtime of this thread until the guard drops.
pub(crate) fn set_current(handle: &Handle) -> SetCurrentGuard {
    let prev = CONTEXT.with(|c| c.handle.borrow_mut().replace(handle.clone()));
    SetCurrentGuard { prev }
}

impl Drop for SetCurrentGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CONTEXT.try_with(|c| *c.handle.borrow_mut() = prev);
    }
}

/// Marks this thread as driving a runtime until the guard drops.
pub(crate) struct EnterRuntimeGuard(());

/// Enters runtime mode, or returns `None` when this thread already drives one.
pub(crate) fn try_enter_runtime() -> Option<EnterRuntimeGuard> {
    CONTEXT.with(|c| {
        if c.entered.replace(true) {
            None
        } else {
            Some(EnterRuntimeGuard(()))
        }
    })
}

impl Drop for EnterRuntimeGuard {
    fn drop(&mut self) {
        let _ = CONTEXT.try_with(|c| c.entered.set(false));
    }
}

/// True on worker threads and inside `block_on`.
pub(crate) fn is_entered() -> bool {
    CONTEXT.try_with(|c| c.entered.get()).unwrap_or(false)
}

/// Installs the worker state of this thread until the guard drops.
pub(crate) struct SetWorkerGuard(());

pub(crate) fn set_worker(cx: Rc<WorkerContext>) -> SetWorkerGuard {
    CONTEXT.with(|c| *c.worker.borrow_mut() = Some(cx));
    SetWorkerGuard(())
}

impl Drop for SetWorkerGuard {
    fn drop(&mut self) {
        let _ = CONTEXT.try_with(|c| c.worker.borrow_mut().take());
    }
}

/// Runs `f` with this thread's worker state (`None` off worker threads).
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&WorkerContext>) -> R) -> R {
    let mut f = Some(f);
    let res = CONTEXT.try_with(|c| {
        let w = c.worker.borrow();
        (f.take().expect("called once"))(w.as_deref())
    });
    match res {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called when try_with fails"))(None),
    }
}

/// Replaces the current poll's wait reason; returns the previous one.
pub(crate) fn replace_wait_reason(r: u8) -> u8 {
    CONTEXT.try_with(|c| c.wait_reason.replace(r)).unwrap_or(0)
}

pub(crate) fn wait_reason() -> u8 {
    CONTEXT.try_with(|c| c.wait_reason.get()).unwrap_or(0)
}

pub(crate) fn budget() -> Budget {
    CONTEXT
        .try_with(|c| c.budget.get())
        .unwrap_or(Budget::unconstrained())
}

pub(crate) fn set_budget(b: Budget) {
    let _ = CONTEXT.try_with(|c| c.budget.set(b));
}

/// Sets the budget and returns the previous one (`None` if thread-locals are gone).
pub(crate) fn replace_budget(b: Budget) -> Option<Budget> {
    CONTEXT.try_with(|c| c.budget.replace(b)).ok()
}
