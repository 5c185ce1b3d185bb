//! The channel itself: one lock around a buffer and two queues of waiters, as in Go's
//! `hchan`.
//!
//! # Waiters
//!
//! A blocked `send` or `recv` is a [`Waiter`] in the channel's slab: the value being
//! handed over, a status, and who to wake. Its key sits in `sendq` or `recvq`. Whoever
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

use slab::Slab;

use super::select::SelectCtx;
use crate::loom::Arc;

/// Who a waiter wakes, and how pairing with it is decided.
pub(crate) enum Who {
    Solo(Option<Waker>),
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

/// Wakers collected under the lock, woken after it is released. Almost every
/// operation wakes at most one party, so the first is kept inline: the hot path does
/// not allocate.
#[derive(Default)]
pub(crate) struct WakeList {
    first: Option<Wake>,
    rest: Vec<Wake>,
}

impl WakeList {
    pub(crate) fn new() -> WakeList {
        WakeList::default()
    }

    fn push(&mut self, w: Wake) {
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.push(w);
        }
    }
}

pub(crate) enum Wake {
    Waker(Waker),
    Ctx(Arc<SelectCtx>),
}

impl Wake {
    fn wake(self) {
        match self {
            Wake::Waker(w) => w.wake(),
            Wake::Ctx(ctx) => ctx.wake(),
        }
    }
}

pub(crate) fn wake_all(list: WakeList) {
    if let Some(w) = list.first {
        w.wake();
    }
    if !list.rest.is_empty() {
        list.rest.into_iter().for_each(Wake::wake);
    }
}

pub(crate) struct State<T> {
    pub(crate) buf: VecDeque<T>,
    /// `usize::MAX` for unbounded channels (and for `bounded(usize::MAX)`, which
    /// behaves the same but reports its capacity).
    pub(crate) cap: usize,
    pub(crate) unbounded: bool,
    pub(crate) closed: bool,
    pub(crate) waiters: Slab<Waiter<T>>,
    pub(crate) sendq: VecDeque<usize>,
    pub(crate) recvq: VecDeque<usize>,
}

impl<T> State<T> {
    /// `cap: None` is an unbounded channel.
    pub(crate) fn new(cap: Option<usize>) -> State<T> {
        State {
            buf: VecDeque::with_capacity(cap.unwrap_or(usize::MAX).min(INITIAL_BUFFER)),
            cap: cap.unwrap_or(usize::MAX),
            unbounded: cap.is_none(),
            closed: false,
            waiters: Slab::new(),
            sendq: VecDeque::new(),
            recvq: VecDeque::new(),
        }
    }

    /// Pops the first waiter of `recvq` (or `sendq`) that can be paired with, claiming
    /// its select context if it has one. Stale select waiters are dropped from the queue
    /// (their owner frees the slot).
    fn pop_pairable(&mut self, senders: bool) -> Option<usize> {
        let q = if senders {
            &mut self.sendq
        } else {
            &mut self.recvq
        };
        while let Some(key) = q.pop_front() {
            match &self.waiters[key].who {
                Who::Solo(_) => return Some(key),
                Who::Select { ctx, op } => {
                    if ctx.try_select(*op) {
                        return Some(key);
                    }
                }
            }
        }
        None
    }

    /// Marks waiter `key` finished and queues its wake-up.
    fn finish(&mut self, key: usize, status: Status, wake: &mut WakeList) {
        let w = &mut self.waiters[key];
        w.status = status;
        match &mut w.who {
            Who::Solo(waker) => {
                if let Some(waker) = waker.take() {
                    wake.push(Wake::Waker(waker));
                }
            }
            Who::Select { ctx, .. } => wake.push(Wake::Ctx(ctx.clone())),
        }
    }

    /// Non-blocking send. `Err(value)` when it would block; the caller checks `closed`
    /// first.
    pub(crate) fn try_send(&mut self, value: T, wake: &mut WakeList) -> Result<(), T> {
        debug_assert!(!self.closed);
        if let Some(key) = self.pop_pairable(false) {
            self.waiters[key].value = Some(value);
            self.finish(key, Status::Done, wake);
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
            if let Some(key) = self.pop_pairable(true) {
                let sent = self.waiters[key]
                    .value
                    .take()
                    .expect("a waiting sender holds its value");
                self.buf.push_back(sent);
                self.finish(key, Status::Done, wake);
            }
            return Some(v);
        }
        // Unbuffered (or drained) channel: take straight from a waiting sender.
        let key = self.pop_pairable(true)?;
        let v = self.waiters[key]
            .value
            .take()
            .expect("a waiting sender holds its value");
        self.finish(key, Status::Done, wake);
        Some(v)
    }

    /// Would a receive complete now (a value, a waiting sender other than `me`, or
    /// closed)? A peek: nothing is claimed.
    pub(crate) fn recv_ready(&self, me: Option<&Arc<SelectCtx>>) -> bool {
        !self.buf.is_empty() || self.closed || self.any_pairable(&self.sendq, me)
    }

    /// Would a send complete now (a waiting receiver other than `me`, room, or closed)?
    pub(crate) fn send_ready(&self, me: Option<&Arc<SelectCtx>>) -> bool {
        self.closed || self.buf.len() < self.cap || self.any_pairable(&self.recvq, me)
    }

    fn any_pairable(&self, q: &VecDeque<usize>, me: Option<&Arc<SelectCtx>>) -> bool {
        q.iter().any(|&key| match &self.waiters[key].who {
            Who::Solo(_) => true,
            Who::Select { ctx, .. } => {
                me.is_none_or(|me| !Arc::ptr_eq(me, ctx)) && ctx.is_waiting()
            }
        })
    }

    /// A plain waiter was polled again, maybe by another task's waker: keep it current.
    pub(crate) fn refresh_waker(&mut self, key: usize, waker: &Waker) {
        if let Who::Solo(w) = &mut self.waiters[key].who {
            if !w.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *w = Some(waker.clone());
            }
        }
    }

    /// Enqueues a waiter; returns its key.
    pub(crate) fn push_waiter(&mut self, sender: bool, value: Option<T>, who: Who) -> usize {
        let key = self.waiters.insert(Waiter {
            value,
            status: Status::Waiting,
            who,
        });
        if sender {
            self.sendq.push_back(key);
        } else {
            self.recvq.push_back(key);
        }
        key
    }

    /// Removes waiter `key` (from its queue too, if still queued) and returns it.
    pub(crate) fn remove_waiter(&mut self, key: usize, sender: bool) -> Waiter<T> {
        let w = self.waiters.remove(key);
        if w.status == Status::Waiting {
            let q = if sender {
                &mut self.sendq
            } else {
                &mut self.recvq
            };
            if let Some(pos) = q.iter().position(|&k| k == key) {
                q.remove(pos);
            }
        }
        w
    }

    /// A receiver got `value` but will not return it: hand it to the next waiting
    /// receiver, or put it back at the front of the buffer (possibly past capacity).
    pub(crate) fn give_back(&mut self, value: T, wake: &mut WakeList) {
        if let Some(key) = self.pop_pairable(false) {
            self.waiters[key].value = Some(value);
            self.finish(key, Status::Done, wake);
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
        for senders in [false, true] {
            while let Some(key) = self.pop_pairable(senders) {
                self.finish(key, Status::Closed, wake);
            }
        }
        true
    }
}

/// Buffers grow on demand up to this many slots before their first use, so
/// `bounded(1_000_000)` does not allocate megabytes up front.
const INITIAL_BUFFER: usize = 64;
