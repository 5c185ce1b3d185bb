//! The futures a channel's async methods return, and their `select!` branches.
//!
//! They live here rather than at the top of `chan` so that `use gort::chan::*` does not
//! shadow `std::marker::Send`; code seldom names them. It is `future`, not `futures`,
//! so that a glob import does not hide the `futures` crate (whose `StreamExt` users of
//! `Receiver` want).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::select::{Action, IsChanOp, Reply, SelectBranch, Wrap};
use super::state::{Status, WakeList, Who};
use super::{Chan, SendError};
use crate::loom::Arc;
use crate::task::WaitReason;
use crate::wait_list::WaiterKey;

// ----- receiving -----

/// Future of [`Receiver::recv`](super::Receiver::recv).
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, T> {
    pub(super) chan: &'a Arc<Chan<T>>,
    /// The waiter's key while registered.
    pub(super) key: Option<WaiterKey>,
}

impl<T> Unpin for Recv<'_, T> {}

impl<T> Recv<'_, T> {
    /// One receive step: take what is there, or register as a waiter. `waker` is a
    /// plain receive's current waker (it registers with it, or replaces a stale one);
    /// a `select!` branch passes `None` once its context was selected.
    fn poll_step(&mut self, waker: Option<&Waker>) -> Poll<Option<T>> {
        let mut seen_empty = false;
        if self.key.is_none() {
            match self.chan.fast_recv() {
                Ok(v) => return Poll::Ready(Some(v)),
                Err(empty) => seen_empty = empty,
            }
        }
        let mut wake = WakeList::default();
        // A replaced waker, dropped with the lock released. (A finished slot may go
        // under the lock: its waker was taken when it was paired, and a select branch's
        // context is still held by its select.)
        let mut stale = None;
        let res = {
            let mut st = self.chan.lock();
            if let Some(key) = self.key.take() {
                match st.status(&key) {
                    Status::Done | Status::Closed => {
                        let removed = st.remove_waiter(key);
                        debug_assert!(removed.waker.is_none());
                        Poll::Ready(removed.value.value)
                    }
                    Status::Waiting => {
                        if let Some(waker) = waker {
                            stale = st.refresh_waker(&key, waker);
                        }
                        self.key = Some(key);
                        Poll::Pending
                    }
                }
            } else if let Some(v) = if seen_empty {
                // Just seen empty: arm now, so that this look is the one after the flag.
                st.arm_and_try_recv(&mut wake)
            } else {
                st.try_recv(&mut wake)
            } {
                Poll::Ready(Some(v))
            } else if st.closed {
                Poll::Ready(None)
            } else if let Some(v) = (!seen_empty && st.arm(false))
                .then(|| st.try_recv(&mut wake))
                .flatten()
            {
                // A fast send got in before the flag.
                Poll::Ready(Some(v))
            } else {
                let waker = waker.expect("selected branches are registered");
                self.key = Some(st.push_waiter(false, None, Who::Solo, Some(waker)));
                Poll::Pending
            }
        };
        drop(stale);
        wake.wake_all();
        res
    }
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        let chan = this.chan;
        chan.poll_op(cx, WaitReason::ChanRecv, |w| this.poll_step(Some(w)))
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.chan.cancel_recv(key);
        }
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}

// ----- sending -----

/// Future of [`Sender::send`](super::Sender::send).
#[must_use = "futures do nothing unless polled"]
pub struct Send<'a, T> {
    pub(super) chan: &'a Arc<Chan<T>>,
    /// The value, until it is sent or parked in a waiter slot.
    pub(super) value: Option<T>,
    /// The waiter's key while registered.
    pub(super) key: Option<WaiterKey>,
}

impl<T> Unpin for Send<'_, T> {}

impl<T> Send<'_, T> {
    /// One send step: hand the value over, or register as a waiter holding it.
    /// `waker` as in [`Recv::poll_step`].
    fn poll_step(&mut self, waker: Option<&Waker>) -> Poll<Result<(), SendError<T>>> {
        if self.key.is_none() {
            let value = self.value.take().expect("Send polled after completion");
            match self.chan.fast_send(value) {
                Ok(()) => return Poll::Ready(Ok(())),
                Err(v) => self.value = Some(v),
            }
        }
        let mut wake = WakeList::default();
        // As in `Recv::poll_step`.
        let mut stale = None;
        let res = {
            let mut st = self.chan.lock();
            if let Some(key) = self.key.take() {
                match st.status(&key) {
                    Status::Waiting => {
                        if let Some(waker) = waker {
                            stale = st.refresh_waker(&key, waker);
                        }
                        self.key = Some(key);
                        Poll::Pending
                    }
                    Status::Done => {
                        let removed = st.remove_waiter(key);
                        debug_assert!(removed.waker.is_none() && removed.value.value.is_none());
                        Poll::Ready(Ok(()))
                    }
                    Status::Closed => {
                        let removed = st.remove_waiter(key);
                        debug_assert!(removed.waker.is_none());
                        let value = removed.value.value;
                        Poll::Ready(Err(SendError(
                            value.expect("closed sender keeps its value"),
                        )))
                    }
                }
            } else {
                let value = self.value.take().expect("Send polled after completion");
                if st.closed {
                    Poll::Ready(Err(SendError(value)))
                } else {
                    // Armed, a retry succeeds unless the ring is still full.
                    let sent = st.try_send(value, &mut wake).or_else(|v| {
                        if st.arm(true) {
                            st.try_send(v, &mut wake)
                        } else {
                            Err(v)
                        }
                    });
                    match sent {
                        Ok(()) => Poll::Ready(Ok(())),
                        Err(value) => {
                            let waker = waker.expect("selected branches are registered");
                            self.key =
                                Some(st.push_waiter(true, Some(value), Who::Solo, Some(waker)));
                            Poll::Pending
                        }
                    }
                }
            }
        };
        drop(stale);
        wake.wake_all();
        res
    }

    /// Removes the waiter, taking the value back (the select gave up on this branch).
    fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            let mut removed = self.chan.lock().remove_waiter(key);
            debug_assert_eq!(removed.value.status, Status::Waiting);
            self.value = removed.value.value.take();
        }
    }
}

impl<T> Future for Send<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let chan = this.chan;
        chan.poll_op(cx, WaitReason::ChanSend, |w| this.poll_step(Some(w)))
    }
}

impl<T> Drop for Send<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            // Waiting: the value is dropped unsent. Done: it was delivered. Closed: it
            // is dropped. In every case the slot goes.
            let removed = self.chan.lock().remove_waiter(key);
            drop(removed);
        }
    }
}

impl<T> fmt::Debug for Send<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Send").finish_non_exhaustive()
    }
}

// ----- select! branches -----

/// A `recv()` inside `select!`.
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct RecvBranch<'a, T>(Recv<'a, T>);

/// A `send()` inside `select!`.
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct SendBranch<'a, T>(Send<'a, T>);

impl<'a, T> IsChanOp for &Wrap<Recv<'a, T>> {
    type Branch = RecvBranch<'a, T>;
    fn __gort_select_branch(&self) -> RecvBranch<'a, T> {
        RecvBranch(self.take())
    }
}

impl<'a, T> IsChanOp for &Wrap<Send<'a, T>> {
    type Branch = SendBranch<'a, T>;
    fn __gort_select_branch(&self) -> SendBranch<'a, T> {
        SendBranch(self.take())
    }
}

impl<T> SelectBranch for RecvBranch<'_, T> {
    type Output = Option<T>;

    fn drive(
        mut self: Pin<&mut Self>,
        action: Action<'_>,
        _cx: &mut Context<'_>,
    ) -> Reply<Option<T>> {
        let recv = &mut self.0;
        match action {
            Action::Try => {
                if let Ok(v) = recv.chan.fast_recv() {
                    return Reply::Ready(Some(v));
                }
                let mut wake = WakeList::default();
                let res = {
                    let mut st = recv.chan.lock();
                    match st.try_recv(&mut wake) {
                        Some(v) => Reply::Ready(Some(v)),
                        None if st.closed => Reply::Ready(None),
                        None => Reply::Pending,
                    }
                };
                wake.wake_all();
                res
            }
            Action::Register(ctx, op) => {
                let mut st = recv.chan.lock();
                if st.recv_ready(Some(ctx)) || st.arm(false) {
                    return Reply::ReadyNow;
                }
                let who = Who::Select {
                    ctx: ctx.clone(),
                    op,
                };
                recv.key = Some(st.push_waiter(false, None, who, None));
                Reply::Pending
            }
            Action::Unregister => {
                // Removes the waiter (and gives back a value, if one was handed over).
                if let Some(key) = recv.key.take() {
                    recv.chan.cancel_recv(key);
                }
                Reply::Pending
            }
            Action::TakeSelected => match recv.poll_step(None) {
                Poll::Ready(v) => Reply::Ready(v),
                Poll::Pending => Reply::Pending,
            },
        }
    }
}

impl<T> SelectBranch for SendBranch<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn drive(
        mut self: Pin<&mut Self>,
        action: Action<'_>,
        _cx: &mut Context<'_>,
    ) -> Reply<Self::Output> {
        let send = &mut self.0;
        match action {
            Action::Try => {
                let value = send
                    .value
                    .take()
                    .expect("send branch tried after completion");
                let value = match send.chan.fast_send(value) {
                    Ok(()) => return Reply::Ready(Ok(())),
                    Err(v) => v,
                };
                let mut wake = WakeList::default();
                let res = {
                    let mut st = send.chan.lock();
                    if st.closed {
                        Reply::Ready(Err(SendError(value)))
                    } else {
                        match st.try_send(value, &mut wake) {
                            Ok(()) => Reply::Ready(Ok(())),
                            Err(value) => {
                                send.value = Some(value);
                                Reply::Pending
                            }
                        }
                    }
                };
                wake.wake_all();
                res
            }
            Action::Register(ctx, op) => {
                let mut st = send.chan.lock();
                if st.send_ready(Some(ctx)) || st.arm(true) {
                    return Reply::ReadyNow;
                }
                let value = send.value.take();
                let who = Who::Select {
                    ctx: ctx.clone(),
                    op,
                };
                send.key = Some(st.push_waiter(true, value, who, None));
                Reply::Pending
            }
            Action::Unregister => {
                send.unregister();
                Reply::Pending
            }
            Action::TakeSelected => match send.poll_step(None) {
                Poll::Ready(v) => Reply::Ready(v),
                Poll::Pending => Reply::Pending,
            },
        }
    }
}
