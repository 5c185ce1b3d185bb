//! The task state word: lifecycle bits and the reference count in one `AtomicUsize`.
//!
//! Every transition a task goes through is one compare-and-swap (or one `fetch_*`) on this
//! word, so the question "who may touch the future, the output or the join waker right now"
//! always has exactly one answer. The bits:
//!
//! | bit             | set by                                   | cleared by                    |
//! |-----------------|------------------------------------------|-------------------------------|
//! | `RUNNING`       | the thread that won `transition_to_running` or `transition_to_shutdown` | `transition_to_idle`, `transition_to_complete` |
//! | `COMPLETE`      | `transition_to_complete` (never cleared) | —                             |
//! | `NOTIFIED`      | a wake-up; the task has a [`Notified`] in some queue, or will be re-queued when its poll ends | `transition_to_running` |
//! | `CANCELLED`     | `abort()` or runtime shutdown            | never                         |
//! | `JOIN_INTEREST` | spawn (the `JoinHandle` exists)          | dropping the `JoinHandle`     |
//! | `JOIN_WAKER`    | the `JoinHandle` after storing its waker | the `JoinHandle` (to replace it) or the runtime after waking it |
//!
//! Combinations that cannot exist: `RUNNING` with `COMPLETE`; `JOIN_WAKER` without
//! `JOIN_INTEREST` while not `COMPLETE`. A task that is neither `RUNNING` nor `COMPLETE` is
//! *idle*: its future lives in the cell and nobody is polling it.
//!
//! Ownership rules that follow from the bits (each accessor in `raw.rs` cites one):
//! 1. The future/output stage may be touched only by the thread that set `RUNNING`, or
//!    after `COMPLETE` by the `JoinHandle` (to take the output) — or by the runtime when
//!    `JOIN_INTEREST` is clear at completion (to drop the output).
//! 2. The join waker slot may be written by the `JoinHandle` only while `JOIN_WAKER` is
//!    clear and the task is not `COMPLETE`; it may be read by the runtime only after it set
//!    `COMPLETE` while `JOIN_WAKER` was set, until it clears `JOIN_WAKER`.
//! 3. At most one [`Notified`] exists per task: a wake-up only submits the task when it
//!    flips `NOTIFIED` from clear to set while the task is idle.
//!
//! The upper bits count references: one for the owned-task list (until completion), one
//! for the `JoinHandle`, one per `Waker`, one per `Notified` (a running task's reference is
//! the `Notified` it was popped as). The allocation is freed when the count reaches zero.
//!
//! [`Notified`]: super::Notified

use crate::loom::{AtomicUsize, Ordering};

const RUNNING: usize = 1 << 0;
const COMPLETE: usize = 1 << 1;
const NOTIFIED: usize = 1 << 2;
const CANCELLED: usize = 1 << 3;
const JOIN_INTEREST: usize = 1 << 4;
const JOIN_WAKER: usize = 1 << 5;
/// Number of low bits used by the flags above; the reference count lives above them.
const REF_SHIFT: u32 = 6;
const REF_ONE: usize = 1 << REF_SHIFT;
/// Refs held by a freshly spawned task: the owned list, the `JoinHandle`, the first `Notified`.
const INITIAL_REFS: usize = 3;
const INITIAL: usize = NOTIFIED | JOIN_INTEREST | (INITIAL_REFS * REF_ONE);
/// Past this many references we abort rather than risk wrapping (`Arc` does the same).
const MAX_REFS: usize = (isize::MAX as usize) >> REF_SHIFT;

pub(crate) struct State {
    val: AtomicUsize,
}

/// A copy of the state word at one instant.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToRunning {
    /// The caller now owns the future and must poll it.
    Success,
    /// The caller owns the future and must cancel it (an abort or shutdown came first).
    Cancelled,
    /// The task is running elsewhere or complete; the caller's reference was dropped.
    Failed,
    /// As `Failed`, and that was the last reference: the caller must free the cell.
    Dealloc,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToIdle {
    /// Idle; the running reference was dropped.
    Ok,
    /// Woken during the poll: still `NOTIFIED`; the running reference becomes the
    /// reference of the `Notified` the caller must schedule.
    OkNotified,
    /// Cancelled during the poll: still `RUNNING`; the caller must cancel the future.
    Cancelled,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TransitionToNotified {
    /// Nothing to do (running, already queued, or complete); the reference, if one was
    /// consumed, was dropped and others remain.
    DoNothing,
    /// The caller must submit a `Notified` carrying the reference it holds.
    Submit,
    /// The consumed reference was the last: the caller must free the cell.
    Dealloc,
}

/// What the `JoinHandle` must clean up when it is dropped.
pub(crate) struct JoinHandleDrop {
    pub(crate) drop_output: bool,
    pub(crate) drop_waker: bool,
}

impl Snapshot {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn is_idle(self) -> bool {
        self.0 & (RUNNING | COMPLETE) == 0
    }
    pub(crate) fn is_join_interested(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(crate) fn is_join_waker_set(self) -> bool {
        self.0 & JOIN_WAKER != 0
    }
    pub(crate) fn ref_count(self) -> usize {
        self.0 >> REF_SHIFT
    }
    fn ref_inc(&mut self) {
        assert!(self.ref_count() < MAX_REFS, "task reference count overflow");
        self.0 += REF_ONE;
    }
    fn ref_dec(&mut self) {
        debug_assert!(self.ref_count() > 0);
        self.0 -= REF_ONE;
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("notified", &self.is_notified())
            .field("cancelled", &self.is_cancelled())
            .field("join_interest", &self.is_join_interested())
            .field("join_waker", &self.is_join_waker_set())
            .field("refs", &self.ref_count())
            .finish()
    }
}

impl State {
    /// The state of a task that was just spawned and is about to be queued.
    pub(crate) fn new() -> State {
        State {
            val: AtomicUsize::new(INITIAL),
        }
    }

    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.val.load(Ordering::Acquire))
    }

    /// Runs `f` on the current value in a CAS loop. `f` returns the result and, when the
    /// word must change, the new value.
    fn update<R>(&self, mut f: impl FnMut(Snapshot) -> (R, Option<Snapshot>)) -> R {
        let mut curr = self.load();
        loop {
            let (ret, next) = f(curr);
            let Some(next) = next else { return ret };
            match self.val.compare_exchange_weak(
                curr.0,
                next.0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return ret,
                Err(actual) => curr = Snapshot(actual),
            }
        }
    }

    /// Called by a scheduler holding a `Notified`; that reference becomes the running one.
    pub(crate) fn transition_to_running(&self) -> TransitionToRunning {
        self.update(|mut s| {
            debug_assert!(s.is_notified(), "a queued task must be NOTIFIED: {s:?}");
            if !s.is_idle() {
                // Running elsewhere (cannot be: one Notified at a time) or already
                // completed, e.g. cancelled by shutdown while it sat in a queue.
                s.ref_dec();
                let action = if s.ref_count() == 0 {
                    TransitionToRunning::Dealloc
                } else {
                    TransitionToRunning::Failed
                };
                return (action, Some(s));
            }
            s.0 |= RUNNING;
            s.0 &= !NOTIFIED;
            let action = if s.is_cancelled() {
                TransitionToRunning::Cancelled
            } else {
                TransitionToRunning::Success
            };
            (action, Some(s))
        })
    }

    /// Called after a poll returned `Pending`.
    pub(crate) fn transition_to_idle(&self) -> TransitionToIdle {
        self.update(|mut s| {
            debug_assert!(s.is_running());
            if s.is_cancelled() {
                return (TransitionToIdle::Cancelled, None);
            }
            s.0 &= !RUNNING;
            if s.is_notified() {
                return (TransitionToIdle::OkNotified, Some(s));
            }
            // The owned list still holds a reference (it is released only on
            // completion), so this cannot be the last one.
            s.ref_dec();
            debug_assert!(s.ref_count() > 0);
            (TransitionToIdle::Ok, Some(s))
        })
    }

    /// Sets `COMPLETE` and clears `RUNNING`; returns the new state.
    pub(crate) fn transition_to_complete(&self) -> Snapshot {
        const DELTA: usize = RUNNING | COMPLETE;
        let prev = Snapshot(self.val.fetch_xor(DELTA, Ordering::AcqRel));
        debug_assert!(prev.is_running() && !prev.is_complete(), "{prev:?}");
        Snapshot(prev.0 ^ DELTA)
    }

    /// Drops `count` references after completion; true when they were the last.
    pub(crate) fn transition_to_terminal(&self, count: usize) -> bool {
        let prev = Snapshot(self.val.fetch_sub(count * REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= count, "{prev:?} - {count}");
        prev.ref_count() == count
    }

    /// `Waker::wake`: consumes one reference.
    pub(crate) fn transition_to_notified_by_val(&self) -> TransitionToNotified {
        self.update(|mut s| {
            if s.is_running() {
                // The runner re-queues the task when its poll ends (transition_to_idle).
                s.0 |= NOTIFIED;
                s.ref_dec();
                debug_assert!(s.ref_count() > 0);
                (TransitionToNotified::DoNothing, Some(s))
            } else if s.is_complete() || s.is_notified() {
                s.ref_dec();
                let action = if s.ref_count() == 0 {
                    TransitionToNotified::Dealloc
                } else {
                    TransitionToNotified::DoNothing
                };
                (action, Some(s))
            } else {
                // Idle: our reference becomes the Notified's.
                s.0 |= NOTIFIED;
                (TransitionToNotified::Submit, Some(s))
            }
        })
    }

    /// `Waker::wake_by_ref`: takes a new reference when the task must be submitted.
    pub(crate) fn transition_to_notified_by_ref(&self) -> TransitionToNotified {
        self.update(|mut s| {
            if s.is_complete() || s.is_notified() {
                (TransitionToNotified::DoNothing, None)
            } else if s.is_running() {
                s.0 |= NOTIFIED;
                (TransitionToNotified::DoNothing, Some(s))
            } else {
                s.0 |= NOTIFIED;
                s.ref_inc();
                (TransitionToNotified::Submit, Some(s))
            }
        })
    }

    /// `abort()`: marks the task cancelled; returns true when the caller must submit a
    /// new `Notified` (it then holds a fresh reference for it) so that a worker runs the
    /// cancellation.
    pub(crate) fn transition_to_notified_and_cancel(&self) -> bool {
        self.update(|mut s| {
            if s.is_cancelled() || s.is_complete() {
                (false, None)
            } else if s.is_running() || s.is_notified() {
                // The runner sees CANCELLED when its poll ends; a queued task sees it
                // when it is popped.
                s.0 |= CANCELLED;
                (false, Some(s))
            } else {
                s.0 |= CANCELLED | NOTIFIED;
                s.ref_inc();
                (true, Some(s))
            }
        })
    }

    /// Runtime shutdown: marks the task cancelled and, when it is idle, claims it
    /// (sets `RUNNING`) so the caller can drop its future. Returns whether it claimed it.
    pub(crate) fn transition_to_shutdown(&self) -> bool {
        self.update(|mut s| {
            let claimed = s.is_idle();
            s.0 |= CANCELLED;
            if claimed {
                s.0 |= RUNNING;
            }
            (claimed, Some(s))
        })
    }

    /// `JoinHandle` drop.
    pub(crate) fn transition_to_join_handle_dropped(&self) -> JoinHandleDrop {
        self.update(|mut s| {
            debug_assert!(s.is_join_interested());
            let mut what = JoinHandleDrop {
                drop_output: false,
                drop_waker: false,
            };
            s.0 &= !JOIN_INTEREST;
            if s.is_complete() {
                // The output is ours to drop; the runtime has cleared JOIN_WAKER once it
                // finished waking, or will drop the waker itself when it sees no interest.
                what.drop_output = true;
            } else {
                // Take the waker slot back (rule 2) so we can drop it.
                s.0 &= !JOIN_WAKER;
            }
            what.drop_waker = !s.is_join_waker_set();
            (what, Some(s))
        })
    }

    /// The `JoinHandle` stored its waker; publish it. `Err` when the task completed first.
    pub(crate) fn set_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.update(|mut s| {
            debug_assert!(s.is_join_interested() && !s.is_join_waker_set());
            if s.is_complete() {
                return (Err(s), None);
            }
            s.0 |= JOIN_WAKER;
            (Ok(s), Some(s))
        })
    }

    /// The `JoinHandle` wants to replace its waker. `Err` when the task completed first.
    pub(crate) fn unset_join_waker(&self) -> Result<Snapshot, Snapshot> {
        self.update(|mut s| {
            debug_assert!(s.is_join_interested());
            if s.is_complete() {
                return (Err(s), None);
            }
            debug_assert!(s.is_join_waker_set());
            s.0 &= !JOIN_WAKER;
            (Ok(s), Some(s))
        })
    }

    /// The runtime finished waking the join waker after completion.
    pub(crate) fn unset_join_waker_after_complete(&self) -> Snapshot {
        let prev = Snapshot(self.val.fetch_and(!JOIN_WAKER, Ordering::AcqRel));
        debug_assert!(prev.is_complete() && prev.is_join_waker_set());
        Snapshot(prev.0 & !JOIN_WAKER)
    }

    pub(crate) fn ref_inc(&self) {
        // Relaxed is enough: a new reference is made from an existing one, which keeps
        // the cell alive; only the decrement that may free it needs ordering (as in Arc).
        let prev = self.val.fetch_add(REF_ONE, Ordering::Relaxed);
        if prev >> REF_SHIFT >= MAX_REFS {
            std::process::abort();
        }
    }

    /// Drops one reference; true when it was the last one.
    pub(crate) fn ref_dec(&self) -> bool {
        let prev = Snapshot(self.val.fetch_sub(REF_ONE, Ordering::AcqRel));
        debug_assert!(prev.ref_count() >= 1);
        prev.ref_count() == 1
    }
}
