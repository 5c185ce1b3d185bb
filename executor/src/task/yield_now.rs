//! `yield_now`: let the other tasks of this worker run before continuing.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields once to the scheduler: the current task goes to the back of its worker's run
/// queue and is polled again after the tasks that were already waiting. Go's
/// `runtime.Gosched()`.
///
/// # Cancel safety
/// Cancel safe: dropping the future only skips the yield.
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // A task woken during its own poll is re-queued as a yield (behind the others).
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
