//! Driving one future on the calling thread: poll, then sleep until its waker fires;
//! and the flag that says a thread already drives async code.
//!
//! Two callers: `Handle::block_on` (inside the runtime context, watched by the deadlock
//! check through a [`BlockOn`] entry) and the blocking channel operations of plain
//! threads ([`block_on_plain`], unwatched). The monitor only ever sees the entry: this
//! module knows nothing of runtimes, so the channels below the scheduler can use it.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::task::wait::replace_wait_reason;

std::thread_local! {
    /// Set on worker threads and inside `block_on`: blocking here would stall a
    /// runtime. No destructor, so it is usable while thread-locals are destroyed.
    static ENTERED: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as driving a runtime until the guard drops.
pub(crate) struct EnterRuntimeGuard(());

/// Enters runtime mode, or returns `None` when this thread already drives one.
pub(crate) fn try_enter_runtime() -> Option<EnterRuntimeGuard> {
    ENTERED.with(|c| {
        if c.replace(true) {
            None
        } else {
            Some(EnterRuntimeGuard(()))
        }
    })
}

impl Drop for EnterRuntimeGuard {
    fn drop(&mut self) {
        let _ = ENTERED.try_with(|c| c.set(false));
    }
}

/// True on worker threads and inside `block_on`.
pub(crate) fn is_entered() -> bool {
    ENTERED.try_with(Cell::get).unwrap_or(false)
}

/// A `block_on` in progress, as the deadlock check sees it.
pub(crate) struct BlockOn {
    pub(crate) thread: Thread,
    /// Parked waiting for its future's waker.
    pub(crate) parked: AtomicBool,
    /// Why its future is pending (a `WaitReason`).
    pub(crate) wait: AtomicU8,
    /// Set by the monitor; `block_on` panics with it.
    pub(crate) report: Mutex<Option<String>>,
}

impl BlockOn {
    pub(crate) fn new() -> BlockOn {
        BlockOn {
            thread: std::thread::current(),
            parked: AtomicBool::new(false),
            wait: AtomicU8::new(0),
            report: Mutex::new(None),
        }
    }

    pub(crate) fn take_report(&self) -> Option<String> {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

struct ThreadWaker {
    thread: Thread,
    /// Set by a wake, cleared by the poller before it polls again; spares a syscall
    /// when a wake arrives while the thread is awake anyway.
    notified: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

/// Polls `future` until it is ready, parking the thread between wake-ups. The caller
/// has entered the runtime context. With `watch`, the monitor can see why the future
/// waits and end a deadlocked wait with a panic.
pub(crate) fn block_on<F: Future>(future: F, watch: Option<&BlockOn>) -> F::Output {
    let waker_state = Arc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(waker_state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        let outer = replace_wait_reason(0);
        let poll = future.as_mut().poll(&mut cx);
        let reason = replace_wait_reason(outer);
        if let Poll::Ready(out) = poll {
            return out;
        }
        if let Some(w) = watch {
            w.wait.store(reason, Ordering::SeqCst);
            w.parked.store(true, Ordering::SeqCst);
        }
        // `park` may return spuriously; only a wake counts.
        while !waker_state.notified.swap(false, Ordering::Acquire) {
            if let Some(report) = watch.and_then(|w| w.take_report()) {
                panic!("{report}");
            }
            thread::park();
        }
        if let Some(w) = watch {
            w.parked.store(false, Ordering::SeqCst);
        }
    }
}

/// Runs `future` on the calling thread without entering a runtime (for the blocking
/// channel operations of plain threads).
pub(crate) fn block_on_plain<F: Future>(future: F) -> F::Output {
    block_on(future, None)
}
