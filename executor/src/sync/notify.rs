//! Wake-up signals between tasks: Go's `sync.Cond` without the lock, plus a stored
//! permit so that a signal sent before anyone waits is not lost.
//!
//! # Semantics
//!
//! - [`Notify::notify_one`] wakes the longest-waiting [`Notified`] future. If none is
//!   waiting, it stores a single **permit** (several calls still store one), and the next
//!   `notified().await` consumes it and returns at once.
//! - [`Notify::notify_waiters`] wakes every `Notified` future that exists at the moment
//!   of the call, including ones created but not yet polled, and stores no permit.
//!
//! # State
//!
//! Behind one lock: the permit flag and a FIFO of waiters, each marked `Waiting`,
//! `One` (dequeued by `notify_one`) or `All` (dequeued by `notify_waiters`). Beside the
//! lock, a generation counter that `notify_waiters` bumps (under the lock): a future
//! remembers the generation it was created in, and on its first poll a changed
//! generation means a `notify_waiters` happened since, so it completes.
//!
//! # Cancel safety
//!
//! A `notify_one` notification is never lost: if the future it was given to is dropped
//! before it observed it, the future's `Drop` hands it to the next waiter, or stores it
//! as the permit. A `notify_waiters` notification is a broadcast to the futures of that
//! moment; dropping one of them loses nothing anyone else would have had.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::loom::{lock, AtomicUsize, Mutex, Ordering};
use crate::task::WaitReason;
use crate::wait_list::{WaitList, WaiterKey, WakeList};

/// Wakes tasks waiting on it; remembers one wake-up if nobody waits.
///
/// Go: a `sync.Cond` (`Signal` is [`notify_one`](Self::notify_one), `Broadcast` is
/// [`notify_waiters`](Self::notify_waiters)) whose signals are not lost when they come
/// before the wait. Threading: `Send + Sync`; share it by reference or in an `Arc`.
pub struct Notify {
    state: Mutex<State>,
    /// Bumped by every `notify_waiters`, always with `state` locked.
    generation: AtomicUsize,
}

struct State {
    /// A `notify_one` with nobody waiting.
    permit: bool,
    waiters: WaitList<Mark>,
}

/// What a waiter got. `Waiting` exactly while its slot is queued.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Mark {
    Waiting,
    /// Dequeued by `notify_one`: must be passed on if not observed.
    One,
    /// Dequeued by `notify_waiters`.
    All,
}

impl State {
    /// Gives one notification to the head waiter, or stores the permit.
    fn notify_one(&mut self, wakes: &mut WakeList) {
        match self.waiters.pop_front(wakes) {
            Some(mark) => *mark = Mark::One,
            None => self.permit = true,
        }
    }
}

impl Notify {
    /// A `Notify` with no permit stored.
    pub fn new() -> Notify {
        Notify {
            state: Mutex::new(State {
                permit: false,
                waiters: WaitList::new(),
            }),
            generation: AtomicUsize::new(0),
        }
    }

    /// A `Notify` for a `static` (not under loom).
    #[cfg(not(loom))]
    pub const fn const_new() -> Notify {
        Notify {
            state: Mutex::new(State {
                permit: false,
                waiters: WaitList::new(),
            }),
            generation: AtomicUsize::new(0),
        }
    }

    /// A future that completes when this `Notify` is notified: by a `notify_one` (or the
    /// permit one left), or by a `notify_waiters` called after this call.
    ///
    /// # Cancel safety
    /// Cancel safe: if a `notify_one` notification had already been handed to this
    /// future, dropping it passes the notification to the next waiter (or stores it as
    /// the permit).
    ///
    /// # Errors
    /// None.
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            state: NotifiedState::Init {
                generation: self.generation.load(Ordering::SeqCst),
            },
        }
    }

    /// Wakes the longest-waiting task, or stores a permit if none waits.
    pub fn notify_one(&self) {
        let mut wakes = WakeList::new();
        lock(&self.state).notify_one(&mut wakes);
        wakes.wake_all();
    }

    /// Wakes every task waiting now, and every `Notified` future created before this
    /// call; stores no permit.
    pub fn notify_waiters(&self) {
        let mut wakes = WakeList::new();
        {
            let mut st = lock(&self.state);
            self.generation.fetch_add(1, Ordering::SeqCst);
            st.waiters.drain(&mut wakes, |mark| *mark = Mark::All);
        }
        wakes.wake_all();
    }

    #[cfg(all(test, not(loom)))]
    pub(super) fn slots_in_use(&self) -> usize {
        lock(&self.state).waiters.slots_in_use()
    }
}

impl Default for Notify {
    fn default() -> Self {
        Notify::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = lock(&self.state);
        f.debug_struct("Notify")
            .field("permit", &st.permit)
            .field("waiters", &st.waiters.len())
            .finish()
    }
}

/// Future of [`Notify::notified`].
#[must_use = "futures do nothing unless polled"]
pub struct Notified<'a> {
    notify: &'a Notify,
    state: NotifiedState,
}

#[derive(Debug)]
enum NotifiedState {
    /// Not polled yet; `generation` is `Notify::generation` at creation.
    Init {
        generation: usize,
    },
    /// Owns a slot in the queue.
    Waiting(WaiterKey),
    Done,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        super::poll_parked(cx, WaitReason::Notify, |cx, _| this.poll_locked(cx))
    }
}

impl Notified<'_> {
    /// The locked part of `poll`; also returns a waker to drop after unlocking.
    fn poll_locked(&mut self, cx: &mut Context<'_>) -> (Poll<()>, Option<Waker>) {
        let mut st = lock(&self.notify.state);
        match std::mem::replace(&mut self.state, NotifiedState::Done) {
            NotifiedState::Init { generation } => {
                let now = self.notify.generation.load(Ordering::SeqCst);
                if now != generation {
                    // A `notify_waiters` since creation.
                    (Poll::Ready(()), None)
                } else if st.permit {
                    st.permit = false;
                    (Poll::Ready(()), None)
                } else {
                    let key = st.waiters.push_back(Mark::Waiting, Some(cx.waker()));
                    self.state = NotifiedState::Waiting(key);
                    (Poll::Pending, None)
                }
            }
            NotifiedState::Waiting(key) => {
                if st.waiters.is_queued(&key) {
                    let stale = st.waiters.set_waker(&key, cx.waker());
                    self.state = NotifiedState::Waiting(key);
                    (Poll::Pending, stale)
                } else {
                    (Poll::Ready(()), st.waiters.remove(key).waker)
                }
            }
            NotifiedState::Done => {
                drop(st);
                panic!("`Notified` polled after it completed");
            }
        }
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        let NotifiedState::Waiting(key) = std::mem::replace(&mut self.state, NotifiedState::Done)
        else {
            return;
        };
        let mut wakes = WakeList::new();
        let removed = {
            let mut st = lock(&self.notify.state);
            let removed = st.waiters.remove(key);
            if removed.value == Mark::One {
                // Handed a `notify_one` we will never observe: pass it on.
                st.notify_one(&mut wakes);
            }
            removed
        };
        drop(removed);
        wakes.wake_all();
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("state", &self.state)
            .finish()
    }
}
