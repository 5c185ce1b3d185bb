//! The channel itself: one lock around a buffer and two queues of waiters, as in Go's
//! `hchan`.
//!
//! # Waiters
//!
//! A blocked `send` or `recv` is a [`Waiter`] in `sendq` or `recvq`, the crate's one
//! waiter queue (`wait_list.rs`: O(1) push, pop and cancel): the value being handed
//! over, a status, and who to wake. Its future owns the slot's key. Whoever
//! pairs with a waiter does the whole hand-over under the lock — moves the value into
//! or out of the waiter, marks it `Done` or `Closed` — and wakes it after unlocking.
//! The waiting future, when polled again, takes its result out of the slot and frees
//! it. A parked operation therefore costs a slab slot and nothing else.
//!
//! A waiter belongs either to one plain operation (`Solo`: pairing with it always
//! succeeds) or to one branch of a `select!` (`Select`): all branches of one select
//! share a [`SelectCtx`], and pairing with such a waiter first claims the context by a
//! CAS; if another branch (on another channel) won first, the waiter is stale and is
//! skipped. So at most one branch of a select ever completes.
//!
//! # Go semantics kept
//!
//! - Capacity 0 is a rendezvous: a sender waits in `sendq` with its value until a
//!   receiver takes it.
//! - FIFO: values leave the buffer in order; blocked senders refill the buffer in their
//!   arrival order; waiters are served in arrival order.
//! - `close` wakes every waiter: receivers see "closed" once the buffer is drained,
//!   blocked senders get their value back.
//! - A `recv` that was handed a value but dropped before returning it gives the value
//!   back (to the next waiting receiver, else the front of the buffer), so no message
//!   is lost to cancellation.

use std::collections::VecDeque;
use std::task::Waker;

use super::select::SelectCtx;
use crate::loom::Arc;
use crate::wait_list::{Removed, WaitList, WaiterKey};

/// How pairing with a waiter is decided. A plain waiter's waker is kept by its queue
/// slot; a select's branches share one context, which holds the select's waker.
pub(crate) enum Who {
    Solo,
    Select { ctx: Arc<SelectCtx>, op: usize },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Waiting,
    /// Paired: a sender's value was taken, or a receiver's value delivered.
    Done,
    /// The channel closed while waiting: a sender's value is still in the slot.
    Closed,
}

pub(crate) struct Waiter<T> {
    pub(crate) value: Option<T>,
    pub(crate) status: Status,
    pub(crate) who: Who,
}

/// A channel's wake-ups: plain wakers, and the contexts of selects whose branch was
/// paired with.
pub(crate) enum Wake {
    Waker(Waker),
    Ctx(Arc<SelectCtx>),
}

impl From<Waker> for Wake {
    fn from(w: Waker) -> Wake {
        Wake::Waker(w)
    }
}

impl crate::wait_list::Wake for Wake {
    fn wake(self) {
        match self {
            Wake::Waker(w) => w.wake(),
            Wake::Ctx(ctx) => ctx.wake(),
        }
    }
}

/// Wake-ups collected under the channel's lock, woken after it is released.
pub(crate) type WakeList = crate::wait_list::WakeList<Wake>;

type Queue<T> = WaitList<Waiter<T>>;

pub(crate) struct State<T> {
    pub(crate) buf: VecDeque<T>,
    /// `usize::MAX` for unbounded channels (and for `bounded(usize::MAX)`, which
    /// behaves the same but reports its capacity).
    pub(crate) cap: usize,
    pub(crate) unbounded: bool,
    pub(crate) closed: bool,
    sendq: Queue<T>,
    recvq: Queue<T>,
}

/// Dequeues the first waiter of `q` that can be paired with, claiming its select
/// context if it has one, and queues its wake-up; the caller completes the hand-over
/// through the returned waiter. Stale select waiters (another branch won) are dequeued
/// and skipped; their owner frees the slot.
fn pair<'q, T>(q: &'q mut Queue<T>, wake: &mut WakeList) -> Option<&'q mut Waiter<T>> {
    let w = q.pop_front_claimed(wake, |w| match &w.who {
        Who::Solo => true,
        Who::Select { ctx, op } => ctx.try_select(*op),
    })?;
    if let Who::Select { ctx, .. } = &w.who {
        wake.push(Wake::Ctx(ctx.clone()));
    }
    Some(w)
}

/// Is a waiter of `q` other than the select `me` ready to pair? A peek: nothing is
/// claimed.
fn any_pairable<T>(q: &Queue<T>, me: Option<&Arc<SelectCtx>>) -> bool {
    q.iter().any(|w| match &w.who {
        Who::Solo => true,
        Who::Select { ctx, .. } => me.is_none_or(|me| !Arc::ptr_eq(me, ctx)) && ctx.is_waiting(),
    })
}

impl<T> State<T> {
    /// `cap: None` is an unbounded channel.
    pub(crate) fn new(cap: Option<usize>) -> State<T> {
        State {
            buf: VecDeque::with_capacity(cap.unwrap_or(usize::MAX).min(INITIAL_BUFFER)),
            cap: cap.unwrap_or(usize::MAX),
            unbounded: cap.is_none(),
            closed: false,
            sendq: WaitList::new(),
            recvq: WaitList::new(),
        }
    }

    fn queue(&mut self, senders: bool) -> &mut Queue<T> {
        if senders {
            &mut self.sendq
        } else {
            &mut self.recvq
        }
    }

    /// Non-blocking send. `Err(value)` when it would block; the caller checks `closed`
    /// first.
    pub(crate) fn try_send(&mut self, value: T, wake: &mut WakeList) -> Result<(), T> {
        debug_assert!(!self.closed);
        if let Some(w) = pair(&mut self.recvq, wake) {
            w.value = Some(value);
            w.status = Status::Done;
            return Ok(());
        }
        if self.buf.len() < self.cap {
            self.buf.push_back(value);
            return Ok(());
        }
        Err(value)
    }

    /// Non-blocking receive; `None` when it would block (or the channel is closed and
    /// drained: the caller tells them apart by `closed`).
    pub(crate) fn try_recv(&mut self, wake: &mut WakeList) -> Option<T> {
        if let Some(v) = self.buf.pop_front() {
            // A blocked sender may now move its value into the freed slot.
            if let Some(w) = pair(&mut self.sendq, wake) {
                let sent = w.value.take().expect("a waiting sender holds its value");
                w.status = Status::Done;
                self.buf.push_back(sent);
            }
            return Some(v);
        }
        // Unbuffered (or drained) channel: take straight from a waiting sender.
        let w = pair(&mut self.sendq, wake)?;
        w.status = Status::Done;
        Some(w.value.take().expect("a waiting sender holds its value"))
    }

    /// Would a receive complete now (a value, a waiting sender other than `me`, or
    /// closed)? A peek: nothing is claimed.
    pub(crate) fn recv_ready(&self, me: Option<&Arc<SelectCtx>>) -> bool {
        !self.buf.is_empty() || self.closed || any_pairable(&self.sendq, me)
    }

    /// Would a send complete now (a waiting receiver other than `me`, room, or closed)?
    pub(crate) fn send_ready(&self, me: Option<&Arc<SelectCtx>>) -> bool {
        self.closed || self.buf.len() < self.cap || any_pairable(&self.recvq, me)
    }

    /// The status of waiter `key`.
    pub(crate) fn status(&self, key: &WaiterKey, sender: bool) -> Status {
        let q = if sender { &self.sendq } else { &self.recvq };
        q.value(key).status
    }

    /// A plain waiter was polled again, maybe by another task's waker: keep it current.
    /// Returns the waker it replaced, to drop after unlocking.
    #[must_use = "drop the replaced waker after releasing the lock"]
    pub(crate) fn refresh_waker(
        &mut self,
        key: &WaiterKey,
        sender: bool,
        waker: &Waker,
    ) -> Option<Waker> {
        self.queue(sender).set_waker(key, waker)
    }

    /// Enqueues a waiter; its future owns the returned key. `waker` is a plain
    /// waiter's (a select's lives in its context).
    pub(crate) fn push_waiter(
        &mut self,
        sender: bool,
        value: Option<T>,
        who: Who,
        waker: Option<&Waker>,
    ) -> WaiterKey {
        let waiter = Waiter {
            value,
            status: Status::Waiting,
            who,
        };
        self.queue(sender).push_back(waiter, waker)
    }

    /// Removes waiter `key` (from its queue too, if still queued) in O(1). Drop the
    /// returned waker after unlocking.
    #[must_use = "drop the returned waker after releasing the lock"]
    pub(crate) fn remove_waiter(&mut self, key: WaiterKey, sender: bool) -> Removed<Waiter<T>> {
        self.queue(sender).remove(key)
    }

    /// A receiver got `value` but will not return it: hand it to the next waiting
    /// receiver, or put it back at the front of the buffer (possibly past capacity).
    pub(crate) fn give_back(&mut self, value: T, wake: &mut WakeList) {
        if let Some(w) = pair(&mut self.recvq, wake) {
            w.value = Some(value);
            w.status = Status::Done;
        } else {
            self.buf.push_front(value);
        }
    }

    /// Closes the channel and wakes every waiter.
    pub(crate) fn close(&mut self, wake: &mut WakeList) -> bool {
        if self.closed {
            return false;
        }
        self.closed = true;
        for q in [&mut self.recvq, &mut self.sendq] {
            while let Some(w) = pair(q, wake) {
                w.status = Status::Closed;
            }
        }
        true
    }
}

/// Buffers grow on demand up to this many slots before their first use, so
/// `bounded(1_000_000)` does not allocate megabytes up front.
const INITIAL_BUFFER: usize = 64;
