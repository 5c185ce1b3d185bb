//! Time: `sleep`, `sleep_until`, `timeout`, `interval` on the driver's timers.
//!
//! A `Sleep` registers its deadline with the driver on its first pending poll and
//! removes it when dropped (O(log n)), so abandoned timeouts cost nothing later. The
//! driver fires due timers whenever a worker turns it, and sleeps in `epoll_wait`
//! exactly until the earliest one.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

pub use std::time::Instant;

use crate::driver::{Driver, TimerKey};

/// Waits until `duration` has passed. Go's `time.Sleep`.
///
/// # Panics
/// When polled outside a gort runtime with the reactor.
///
/// # Cancel safety
/// Cancel safe: dropping it removes the timer.
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(crate::driver::far_future(Instant::now(), duration))
}

/// Waits until `deadline`.
///
/// # Panics
/// When polled outside a gort runtime with the reactor.
///
/// # Cancel safety
/// Cancel safe: dropping it removes the timer.
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        driver: None,
        key: None,
    }
}

/// Future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    driver: Option<Arc<Driver>>,
    key: Option<TimerKey>,
}

impl Sleep {
    /// When it completes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Moves the deadline (an already registered timer is replaced).
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
    }

    fn cancel(&mut self) {
        if let (Some(key), Some(driver)) = (self.key.take(), &self.driver) {
            driver.cancel_timer(key);
        }
    }
}

impl Unpin for Sleep {}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.key = None; // fired (or never registered): nothing to cancel
            return Poll::Ready(());
        }
        if self.driver.is_none() {
            match Driver::current() {
                Ok(d) => self.driver = Some(d),
                Err(e) => panic!("{e}"),
            }
        }
        let driver = self.driver.clone().expect("set above");
        match self.key {
            Some(key) if driver.update_timer(key, cx.waker()) => {}
            _ => {
                let key = driver.add_timer(self.deadline, cx.waker().clone());
                self.key = Some(key);
            }
        }
        // The deadline may have passed while registering; the timer then fires at the
        // driver's next turn, but there is no reason to wait for it.
        if Instant::now() >= self.deadline {
            self.cancel();
            return Poll::Ready(());
        }
        gort_executor::task::set_wait_reason(gort_executor::task::WaitReason::Timer);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// `timeout` elapsed before the future completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(_: Elapsed) -> std::io::Error {
        std::io::ErrorKind::TimedOut.into()
    }
}

/// Runs `future` for at most `duration`.
///
/// # Errors
/// `Elapsed` when the time ran out first; the future is dropped.
///
/// # Cancel safety
/// As cancel safe as `future`.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Runs `future` until `deadline` at most. tokio's `timeout_at`, Go's
/// `context.WithDeadline` for one call.
///
/// # Errors
/// `Elapsed` when the deadline passed first; the future is dropped.
///
/// # Cancel safety
/// As cancel safe as `future`.
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

/// Future of [`timeout`] and [`timeout_at`].
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned (never moved out of `self`); `sleep`
        // is `Unpin` and only accessed through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        if let Poll::Ready(v) = future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Ticks every `period`, first immediately. Go's `time.Ticker`. Missed ticks are
/// skipped (the next tick is the next multiple of `period` after now), so a slow
/// consumer never gets a burst.
///
/// # Panics
/// When `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "gort::time::interval: period must be non-zero"
    );
    let start = Instant::now();
    Interval {
        period,
        next: start,
        sleep: sleep_until(start),
    }
}

/// Returned by [`interval`].
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    next: Instant,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick; returns its scheduled instant.
    ///
    /// # Cancel safety
    /// Cancel safe: a dropped `tick()` loses no tick.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Poll version of [`tick`](Self::tick).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let tick = self.next;
        let now = Instant::now();
        // A period too long for an `Instant` (`Duration::MAX`) ticks once, then never
        // again: the next tick is "far in the future", as for `sleep`.
        let mut next = crate::driver::far_future(tick, self.period);
        if next <= now {
            // Skip missed ticks: the first multiple of the period after now. Counted
            // in nanoseconds (u128), so no multiplication can overflow a `Duration`.
            let period = self.period.as_nanos();
            let behind = now.duration_since(tick).as_nanos() / period;
            let ahead = (behind + 1) * period;
            next = u64::try_from(ahead)
                .ok()
                .and_then(|ns| tick.checked_add(Duration::from_nanos(ns)))
                .unwrap_or_else(|| crate::driver::far_future(now, Duration::MAX));
        }
        self.next = next;
        self.sleep.reset(next);
        Poll::Ready(tick)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}
