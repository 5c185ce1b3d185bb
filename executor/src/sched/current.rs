//! The thread's current runtime: which runtime `gort::spawn` talks to, and the worker
//! state the scheduler reaches from inside a poll.
//!
//! Both are thread-local and touched only by their own thread. The runtime slot lives
//! in a thread-local without a destructor, so it works at any time, also inside other
//! thread-locals' destructors (a runtime built and dropped there:
//! `fault_runtime_inside_a_thread_local_destructor`). The worker state has a
//! destructor; it is reached through `try_with`, so wakers invoked while thread-locals
//! are being destroyed fall back to the remote path instead of panicking.
//!
//! The other per-thread state lives with its owner, lower down: the entered flag in
//! `block_on.rs`, the coop budget in `coop.rs`, the wait reason in `task/wait.rs`.

use std::cell::{Cell, RefCell};
use std::mem::ManuallyDrop;
use std::rc::Rc;
use std::sync::Arc;

use super::handle::Handle;
use super::worker::{Shared, WorkerContext};

/// Everything here is `Copy`, so the thread-local has no destructor: it stays usable
/// while the thread's other thread-locals are destroyed, and a runtime can be built,
/// entered and dropped from inside such a destructor (a library keeping a runtime per
/// thread). The worker state, which has a destructor, lives apart in [`WORKER`].
struct Current {
    /// The runtime `gort::spawn` uses on this thread: `Arc::into_raw` of its `Shared`,
    /// a strong reference this slot owns, or null.
    handle: Cell<*const Shared>,
    /// `with_current` calls in progress, which borrow the slot's reference: the slot
    /// may not change meanwhile (as a `RefCell` would refuse).
    handle_borrows: Cell<usize>,
    /// Live `SetCurrentGuard`s: each records its depth, so one dropped out of order
    /// (or a later one leaked) is seen even when two guards name the same runtime.
    guard_depth: Cell<usize>,
}

thread_local! {
    static CURRENT: Current = const {
        Current {
            handle: Cell::new(std::ptr::null()),
            handle_borrows: Cell::new(0),
            guard_depth: Cell::new(0),
        }
    };

    /// Set on worker threads: the P this thread runs.
    static WORKER: RefCell<Option<Rc<WorkerContext>>> = const { RefCell::new(None) };
}

/// The current runtime's reactor; what `reactor::current` looks up (installed when a
/// runtime starts).
pub(crate) fn current_reactor() -> Option<Arc<dyn crate::reactor::Reactor>> {
    if !crate::block_on::is_entered() {
        // Not driving the runtime: it may be dropped while this thread still waits.
        return None;
    }
    with_current(|h| Some(h?.shared.reactor.as_ref()?.reactor.clone()))
}

/// The current runtime's handle, if any.
pub(crate) fn current_handle() -> Option<Handle> {
    with_current(|h| h.cloned())
}

/// Runs `f` with the current runtime's handle, borrowed (no reference-count traffic).
///
/// # Panics
/// When `f` changes this thread's current runtime (enters or leaves one).
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Handle>) -> R) -> R {
    let ptr = CURRENT.with(|c| c.handle.get());
    if ptr.is_null() {
        return f(None);
    }
    /// Ends the borrow however `f` returns.
    struct Borrow;
    impl Drop for Borrow {
        fn drop(&mut self) {
            CURRENT.with(|c| c.handle_borrows.set(c.handle_borrows.get() - 1));
        }
    }
    CURRENT.with(|c| c.handle_borrows.set(c.handle_borrows.get() + 1));
    let _borrow = Borrow;
    // SAFETY: `ptr` came from `Arc::into_raw` and the slot owns that strong
    // reference; the slot cannot be changed (and the reference released) while the
    // borrow count is raised. `ManuallyDrop`: this borrowed `Arc` is not released.
    let shared = unsafe { Arc::from_raw(ptr) };
    let handle = ManuallyDrop::new(Handle { shared });
    f(Some(&handle))
}

/// Puts `new` (an owned `Arc::into_raw` pointer, or null) in the slot; returns the
/// previous one, whose reference passes to the caller.
fn replace_handle(new: *const Shared) -> *const Shared {
    CURRENT.with(|c| {
        assert_eq!(
            c.handle_borrows.get(),
            0,
            "gort: the current runtime changed while it was in use"
        );
        c.handle.replace(new)
    })
}

/// Restores the previous handle when dropped. Not `Send`: it belongs to its thread.
/// Guards must drop in the reverse order of their creation (tokio's rule for its
/// `EnterGuard`); one dropped out of order panics rather than leave the wrong runtime
/// current.
pub(crate) struct SetCurrentGuard {
    /// The previous slot content, owned (an `Arc::into_raw` pointer, or null).
    prev: *const Shared,
    /// This guard's depth among the live guards (1 for the outermost).
    depth: usize,
}

/// Makes `handle` the current runtime of this thread until the guard drops.
pub(crate) fn set_current(handle: &Handle) -> SetCurrentGuard {
    let mine = Arc::into_raw(handle.shared.clone());
    let prev = replace_handle(mine);
    let depth = CURRENT.with(|c| {
        c.guard_depth.set(c.guard_depth.get() + 1);
        c.guard_depth.get()
    });
    SetCurrentGuard { prev, depth }
}

impl Drop for SetCurrentGuard {
    fn drop(&mut self) {
        let depth = CURRENT.with(|c| c.guard_depth.get());
        if depth != self.depth {
            // A later guard is still live (dropped out of order) or was leaked
            // (`mem::forget`). Restoring `prev` would put back a runtime that the
            // later guard may then restore over; `prev` is leaked, not freed.
            if !std::thread::panicking() {
                panic!(
                    "gort: a runtime enter guard was leaked or dropped out of order \
                     (drop the latest first)"
                );
            }
            return;
        }
        CURRENT.with(|c| c.guard_depth.set(depth - 1));
        let mine = replace_handle(self.prev);
        // SAFETY: this guard is the innermost live one (the depth says so), so the slot
        // holds the reference it installed (from `Arc::into_raw`); it is out of the
        // slot now, so this releases it exactly once.
        drop(unsafe { Arc::from_raw(mine) });
    }
}

/// Installs the worker state of this thread until the guard drops.
pub(crate) struct SetWorkerGuard(());

pub(crate) fn set_worker(cx: Rc<WorkerContext>) -> SetWorkerGuard {
    WORKER.with(|w| *w.borrow_mut() = Some(cx));
    SetWorkerGuard(())
}

impl Drop for SetWorkerGuard {
    fn drop(&mut self) {
        let _ = WORKER.try_with(|w| w.borrow_mut().take());
    }
}

/// Runs `f` with this thread's worker state (`None` off worker threads, and while the
/// thread's thread-locals are being destroyed).
pub(crate) fn with_worker<R>(f: impl FnOnce(Option<&WorkerContext>) -> R) -> R {
    let mut f = Some(f);
    let res = WORKER.try_with(|w| {
        let w = w.borrow();
        (f.take().expect("called once"))(w.as_deref())
    });
    match res {
        Ok(r) => r,
        Err(_) => (f.take().expect("not called when try_with fails"))(None),
    }
}
