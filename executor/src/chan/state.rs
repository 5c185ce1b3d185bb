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

use super::ring::{Ring, CLOSED, RECV_SLOW, SEND_SLOW};
use super::select::SelectCtx;
use crate::loom::{Arc, MutexGuard};
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

/// Both queues: list [`SENDERS`] and list [`RECEIVERS`] of one slab.
type Queues<T> = WaitList<Waiter<T>, 2>;
const RECEIVERS: usize = 0;
const SENDERS: usize = 1;

fn list(sender: bool) -> usize {
    if sender {
        SENDERS
    } else {
        RECEIVERS
    }
}

/// What a channel needs once something waits or is buffered under the lock: Go's
/// `hchan` keeps its two wait queues inline as two pointers each; ours are slabs, so
/// they live behind one pointer that is allocated on first use. A ring channel that
/// never parks anybody (the common case of a buffered channel that keeps up) never
/// allocates it, and a `bounded::<u64>(1)` stays within Go's size.
struct Slow<T> {
    queues: Queues<T>,
    /// The buffer of a channel without a ring (allocated with `Slow`); values given
    /// back by cancelled receives, in front of the ring's, in a channel with one, and
    /// in a rendezvous channel (allocated when the first such value comes, which is
    /// rare: so a parked waiter costs the queues and its slot, not a buffer too).
    // Boxed on purpose: an absent buffer is one word here, where an empty `VecDeque`
    // is four, in every parked channel.
    #[allow(clippy::box_collection)]
    buf: Option<Box<VecDeque<T>>>,
}

pub(crate) struct State<T> {
    /// `usize::MAX` for unbounded channels (and for `bounded(usize::MAX)`, which
    /// behaves the same but reports its capacity).
    pub(crate) cap: usize,
    pub(crate) unbounded: bool,
    pub(crate) closed: bool,
    /// `None` until the first waiter or value under the lock.
    slow: Option<Box<Slow<T>>>,
}

/// Dequeues the first waiter of `q` that can be paired with, claiming its select
/// context if it has one, and queues its wake-up; the caller completes the hand-over
/// through the returned waiter. Stale select waiters (another branch won) are dequeued
/// and skipped; their owner frees the slot.
fn pair<'q, T>(
    q: &'q mut Queues<T>,
    sender: bool,
    wake: &mut WakeList,
) -> Option<&'q mut Waiter<T>> {
    let w = q.pop_front_claimed_in(list(sender), wake, |w| match &w.who {
        Who::Solo => true,
        Who::Select { ctx, op } => ctx.try_select(*op),
    })?;
    if let Who::Select { ctx, .. } = &w.who {
        wake.push(Wake::Ctx(ctx.clone()));
    }
    Some(w)
}

/// Is a waiter of queue `sender` other than the select `me` ready to pair? A peek:
/// nothing is claimed.
fn any_pairable<T>(q: &Queues<T>, sender: bool, me: Option<&Arc<SelectCtx>>) -> bool {
    q.iter_in(list(sender)).any(|w| match &w.who {
        Who::Solo => true,
        Who::Select { ctx, .. } => me.is_none_or(|me| !Arc::ptr_eq(me, ctx)) && ctx.is_waiting(),
    })
}

impl<T> State<T> {
    /// `cap: None` is an unbounded channel. A channel served by a ring keeps `buf` for
    /// values given back by cancelled receives, which go before the ring's.
    pub(crate) fn new(cap: Option<usize>) -> State<T> {
        State {
            cap: cap.unwrap_or(usize::MAX),
            unbounded: cap.is_none(),
            closed: false,
            slow: None,
        }
    }

    /// The queues, allocated now if they were not. A buffered channel without a
    /// `ring` gets its buffer with them, with room for `cap` values, at most
    /// [`INITIAL_BUFFER`].
    fn slow_mut(&mut self, ring: bool) -> &mut Slow<T> {
        let buffered = !ring && self.cap > 0;
        let initial = self.cap.min(INITIAL_BUFFER);
        self.slow.get_or_insert_with(|| {
            Box::new(Slow {
                queues: WaitList::new(),
                buf: buffered.then(|| Box::new(VecDeque::with_capacity(initial))),
            })
        })
    }

    /// Both queues, if they were ever allocated.
    fn queues(&self) -> Option<&Queues<T>> {
        self.slow.as_deref().map(|s| &s.queues)
    }

    /// Both queues, which hold waiter `key`'s slot.
    fn queues_mut(&mut self) -> &mut Queues<T> {
        &mut self
            .slow
            .as_deref_mut()
            .expect("a waiter's key names a slot in an allocated queue")
            .queues
    }

    /// Is no waiter queued in queue `sender` (senders: true)?
    fn queue_is_empty(&self, sender: bool) -> bool {
        self.queues().is_none_or(|q| q.is_empty_in(list(sender)))
    }

    fn buf_len(&self) -> usize {
        self.slow
            .as_deref()
            .and_then(|s| s.buf.as_deref())
            .map_or(0, VecDeque::len)
    }

    fn buf_is_empty(&self) -> bool {
        self.buf_len() == 0
    }

    fn buf_pop_front(&mut self) -> Option<T> {
        self.slow.as_deref_mut()?.buf.as_deref_mut()?.pop_front()
    }

    /// Pairs with the first ready waiter of queue `sender` (see [`pair`]); `None`
    /// when none is queued, without allocating the queues.
    fn pair(&mut self, sender: bool, wake: &mut WakeList) -> Option<&mut Waiter<T>> {
        pair(&mut self.slow.as_deref_mut()?.queues, sender, wake)
    }

    /// The status of waiter `key`.
    pub(crate) fn status(&self, key: &WaiterKey) -> Status {
        self.queues()
            .expect("a waiter's key names a slot in an allocated queue")
            .value(key)
            .status
    }

    /// A plain waiter was polled again, maybe by another task's waker: keep it current.
    /// Returns the waker it replaced, to drop after unlocking.
    #[must_use = "drop the replaced waker after releasing the lock"]
    pub(crate) fn refresh_waker(&mut self, key: &WaiterKey, waker: &Waker) -> Option<Waker> {
        self.queues_mut().set_waker(key, waker)
    }

    /// Removes waiter `key` (from its queue too, if still queued) in O(1). Drop the
    /// returned waker after unlocking.
    #[must_use = "drop the returned waker after releasing the lock"]
    pub(crate) fn remove_waiter(&mut self, key: WaiterKey) -> Removed<Waiter<T>> {
        self.queues_mut().remove(key)
    }
}

/// The channel's lock held: its [`State`], and the ring when the channel has one. Every
/// hand-over goes through here. Dropping it brings the ring's flags up to date before
/// the lock is released: `RECV_SLOW` is set while receivers are queued or values wait
/// in `buf`, `SEND_SLOW` while senders are queued, so fast operations see the queues.
pub(crate) struct Guard<'a, T> {
    st: MutexGuard<'a, State<T>>,
    ring: Option<&'a Ring<T>>,
}

impl<T> std::ops::Deref for Guard<'_, T> {
    type Target = State<T>;
    fn deref(&self) -> &State<T> {
        &self.st
    }
}

impl<T> std::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.st
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        let Some(ring) = self.ring else { return };
        let st = &*self.st;
        let (empty, full) = ring.empty_full();
        // A flag is cleared only once the fast path it blocks has work: values for
        // fast receives, room for fast sends. Until then it stays, a little stale, so
        // that a ping-pong (a partner always parked) does not set and clear it every
        // round trip; a stale flag costs one locked operation, which clears it.
        if !st.queue_is_empty(false) || !st.buf_is_empty() {
            ring.put(false, RECV_SLOW, true);
        } else if !empty {
            ring.put(false, RECV_SLOW, false);
        }
        if !st.queue_is_empty(true) {
            ring.put(true, SEND_SLOW, true);
        } else if !full {
            ring.put(true, SEND_SLOW, false);
        }
    }
}

impl<'a, T> Guard<'a, T> {
    pub(crate) fn new(st: MutexGuard<'a, State<T>>, ring: Option<&'a Ring<T>>) -> Self {
        Guard { st, ring }
    }

    /// The queues and buffer, allocated if they were not.
    fn slow_mut(&mut self) -> &mut Slow<T> {
        let ring = self.ring.is_some();
        self.st.slow_mut(ring)
    }

    /// The buffer under the lock, allocated if it was not.
    fn buf_mut(&mut self) -> &mut VecDeque<T> {
        self.slow_mut().buf.get_or_insert_default()
    }

    /// Puts `value` in front of everything buffered.
    fn push_buf_front(&mut self, value: T) {
        self.buf_mut().push_front(value);
    }

    /// Values buffered (past capacity too, for given-back ones).
    pub(crate) fn len(&self) -> usize {
        self.st.buf_len() + self.ring.map_or(0, Ring::len)
    }

    /// The next buffered value: given-back ones first, then the ring's.
    fn take_buffered(&mut self) -> Option<T> {
        self.st
            .buf_pop_front()
            .or_else(|| self.ring.and_then(|r| r.pop(false)))
    }

    /// Hands buffered values to queued receivers, oldest first: a fast send may have
    /// pushed while a receiver was parking. A value with no receiver left to take it
    /// goes to the front of `buf`.
    fn pump_recv(&mut self, wake: &mut WakeList) {
        // Queued receivers mean an empty ring, but for a fast push that raced their
        // flag (and will come here itself if this look misses it).
        if self.st.buf_is_empty() && self.ring.is_none_or(Ring::is_empty) {
            return;
        }
        while !self.st.queue_is_empty(false) {
            let Some(v) = self.take_buffered() else {
                return;
            };
            match self.st.pair(false, wake) {
                Some(w) => {
                    w.value = Some(v);
                    w.status = Status::Done;
                }
                None => {
                    self.push_buf_front(v);
                    return;
                }
            }
        }
    }

    /// Moves queued senders' values into the ring while it has room, in their order: a
    /// fast receive may have made room. `SEND_SLOW` is set while senders are queued, so
    /// no fast push races for the room seen here.
    fn pump_send(&mut self, wake: &mut WakeList) {
        let Some(ring) = self.ring else { return };
        while !self.st.queue_is_empty(true) && !ring.is_full() {
            let Some(w) = self.st.pair(true, wake) else {
                return;
            };
            let v = w.value.take().expect("a waiting sender holds its value");
            w.status = Status::Done;
            if let Err(v) = ring.push(v, false) {
                // Unreachable: room was seen under the lock, and SEND_SLOW (set while
                // senders are queued) fails every fast push. Were it reached, the value
                // would jump the ring's queue rather than be lost.
                debug_assert!(false, "no fast push while senders are queued");
                self.buf_mut().push_back(v);
            }
        }
    }

    /// Both pumps: what a fast operation that saw a flag calls under the lock.
    pub(crate) fn pump(&mut self, wake: &mut WakeList) {
        self.pump_recv(wake);
        self.pump_send(wake);
    }

    /// Non-blocking send. `Err(value)` when it would block; the caller checks `closed`
    /// first.
    pub(crate) fn try_send(&mut self, value: T, wake: &mut WakeList) -> Result<(), T> {
        debug_assert!(!self.st.closed);
        if let Some(ring) = self.ring {
            // Older values go to waiting receivers first; then this one goes straight
            // to a receiver still waiting (the ring is empty), else into the ring behind
            // any queued sender (FIFO: if one is left, the ring is full).
            self.pump_recv(wake);
            if let Some(w) = self.st.pair(false, wake) {
                w.value = Some(value);
                w.status = Status::Done;
                return Ok(());
            }
            self.pump_send(wake);
            if !self.st.queue_is_empty(true) {
                return Err(value);
            }
            return ring.push(value, false);
        }
        if let Some(w) = self.st.pair(false, wake) {
            w.value = Some(value);
            w.status = Status::Done;
            return Ok(());
        }
        if self.st.buf_len() < self.st.cap {
            self.buf_mut().push_back(value);
            return Ok(());
        }
        Err(value)
    }

    /// Non-blocking receive; `None` when it would block (or the channel is closed and
    /// drained: the caller tells them apart by `closed`).
    pub(crate) fn try_recv(&mut self, wake: &mut WakeList) -> Option<T> {
        if self.ring.is_some() {
            // Waiting receivers were first in line; queued senders fill the room a
            // fast receive left (they are behind what the ring holds).
            self.pump_recv(wake);
            self.pump_send(wake);
            let v = self.take_buffered()?;
            self.pump_send(wake);
            return Some(v);
        }
        if let Some(v) = self.st.buf_pop_front() {
            // A blocked sender may now move its value into the freed slot.
            if let Some(w) = self.st.pair(true, wake) {
                let sent = w.value.take().expect("a waiting sender holds its value");
                w.status = Status::Done;
                self.buf_mut().push_back(sent);
            }
            return Some(v);
        }
        // Unbuffered (or drained) channel: take straight from a waiting sender.
        let w = self.st.pair(true, wake)?;
        w.status = Status::Done;
        Some(w.value.take().expect("a waiting sender holds its value"))
    }

    /// About to queue a receiver (`sender: false`) or sender: set its ring flag, then
    /// look at the ring again. True when the operation can complete after all (a fast
    /// operation got in before the flag); the caller then retries it, which succeeds.
    /// With the flag set, fast operations that come later take the lock instead.
    pub(crate) fn arm(&mut self, sender: bool) -> bool {
        let Some(ring) = self.ring else { return false };
        if sender {
            ring.set(true, SEND_SLOW);
            self.st.queue_is_empty(true) && !ring.is_full()
        } else {
            ring.set(false, RECV_SLOW);
            !ring.is_empty()
        }
    }

    /// A receive that just saw the ring empty and is about to park: arm first, then
    /// take what is there. The ring is not popped again when the armed look says empty.
    pub(crate) fn arm_and_try_recv(&mut self, wake: &mut WakeList) -> Option<T> {
        // Closed, nothing more can be pushed: no flag to arm (it would stay set).
        if self.st.closed {
            return self.try_recv(wake);
        }
        if self.arm(false) || !self.st.buf_is_empty() || !self.st.queue_is_empty(true) {
            self.try_recv(wake)
        } else {
            None
        }
    }

    /// Would a receive complete now (a value, a waiting sender other than `me`, or
    /// closed)? A peek: nothing is claimed.
    pub(crate) fn recv_ready(&self, me: Option<&Arc<SelectCtx>>) -> bool {
        !self.st.buf_is_empty()
            || self.ring.is_some_and(|r| !r.is_empty())
            || self.st.closed
            || self.st.queues().is_some_and(|q| any_pairable(q, true, me))
    }

    /// Would a send complete now (a waiting receiver other than `me`, room, or closed)?
    pub(crate) fn send_ready(&self, me: Option<&Arc<SelectCtx>>) -> bool {
        let room = match self.ring {
            Some(r) => self.st.queue_is_empty(true) && !r.is_full(),
            None => self.st.buf_len() < self.st.cap,
        };
        self.st.closed || room || self.st.queues().is_some_and(|q| any_pairable(q, false, me))
    }

    /// Enqueues a waiter; its future owns the returned key. `waker` is a plain
    /// waiter's (a select's lives in its context). The caller armed the ring first.
    pub(crate) fn push_waiter(
        &mut self,
        sender: bool,
        value: Option<T>,
        who: Who,
        waker: Option<&Waker>,
    ) -> WaiterKey {
        debug_assert!(self
            .ring
            .is_none_or(|r| r.has(sender, if sender { SEND_SLOW } else { RECV_SLOW })));
        let waiter = Waiter {
            value,
            status: Status::Waiting,
            who,
        };
        self.slow_mut()
            .queues
            .push_back_to(list(sender), waiter, waker)
    }

    /// A receiver got `value` but will not return it: hand it to the next waiting
    /// receiver, or put it back at the front of the buffer (possibly past capacity).
    pub(crate) fn give_back(&mut self, value: T, wake: &mut WakeList) {
        if let Some(w) = self.st.pair(false, wake) {
            w.value = Some(value);
            w.status = Status::Done;
        } else {
            self.push_buf_front(value);
            // Receivers must look at `buf` before the ring from now on.
            if let Some(ring) = self.ring {
                ring.set(false, RECV_SLOW);
            }
        }
    }

    /// Closes the channel and wakes every waiter.
    pub(crate) fn close(&mut self, wake: &mut WakeList) -> bool {
        if self.st.closed {
            return false;
        }
        self.st.closed = true;
        if let Some(ring) = self.ring {
            ring.set(true, CLOSED);
            // Values a fast send pushed while a receiver was parking go to it first.
            self.pump_recv(wake);
        }
        for sender in [false, true] {
            while let Some(w) = self.st.pair(sender, wake) {
                w.status = Status::Closed;
            }
        }
        true
    }
}

/// Buffers grow on demand up to this many slots before their first use, so
/// `bounded(1_000_000)` does not allocate megabytes up front.
const INITIAL_BUFFER: usize = 64;
