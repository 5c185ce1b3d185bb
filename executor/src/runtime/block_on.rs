//! Driving one future on the calling thread: poll, then sleep until its waker fires.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

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
pub(crate) fn block_on<F: Future>(
    future: F,
    watch: Option<&super::deadlock::BlockOn>,
) -> F::Output {
    let waker_state = Arc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(waker_state.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        let outer = crate::context::replace_wait_reason(0);
        let poll = future.as_mut().poll(&mut cx);
        let reason = crate::context::replace_wait_reason(outer);
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
