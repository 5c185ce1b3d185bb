//! Go's "all goroutines are asleep - deadlock!": when nothing can ever wake the
//! runtime's tasks, `block_on` panics with a list of them instead of hanging.
//!
//! The monitor declares a deadlock when, continuously for [`GRACE`] and with no poll
//! anywhere in between:
//! - every worker is parked, and the run queues and the injector are empty;
//! - the blocking pool runs nothing and has nothing queued;
//! - no plain thread is inside `send_blocking`/`recv_blocking`;
//! - the reactor has no timer pending and no I/O source registered (its idle probe);
//! - every `block_on` is parked, and it and every live task wait on something only a
//!   task can end: a channel, a lock, a `WaitGroup`, a `JoinHandle`... (see
//!   [`WaitReason::only_tasks_can_wake`]).
//!
//! A task of one runtime may wake a waiter of another (`rt1.block_on(handle_of_rt2_task)`,
//! a channel shared by two runtimes), so a runtime is called deadlocked only while every
//! other runtime of the process is quiet too: shut down, or with nothing running,
//! queued or pending in its reactor and every task and `block_on` waiting on other
//! tasks. The runtimes register themselves in a process-wide list for this.
//!
//! What it cannot see: a plain thread that holds a channel end or a lock and will use
//! it later without being inside a gort call right now. A program built that way can
//! turn the check off with `Builder::deadlock_detection(false)`; channels that plain
//! threads have used (`send_blocking`, `recv_blocking`, `try_send`, `try_recv`) are
//! recognised from then on and excluded.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::{Arc, Weak};

use super::Handle;
use crate::sched::worker::Shared;
use crate::task::{TaskState, WaitReason};

/// Every runtime of the process that is still referenced, for the cross-runtime rule
/// in the module docs.
static RUNTIMES: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Adds a new runtime to the process-wide list (and forgets the dropped ones).
pub(crate) fn register(handle: &Handle) {
    let mut all = RUNTIMES.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&handle.shared));
}

/// Whether every runtime other than `me` is quiet: nothing there can wake a waiter
/// of `me`'s.
fn others_are_quiet(me: &Handle) -> bool {
    let others: Vec<Arc<Shared>> = RUNTIMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|s| !Arc::ptr_eq(s, &me.shared))
        .collect();
    others.into_iter().all(|shared| {
        let handle = Handle { shared };
        handle.shared.is_shutdown() || is_quiet(&handle, false)
    })
}

/// How long the runtime must look dead before it is called deadlocked: long enough
/// that a plain thread handing work over through a gort call is seen doing so.
pub const GRACE: Duration = Duration::from_millis(500);

/// The monitor's memory between checks.
#[derive(Default)]
pub(crate) struct Detector {
    since: Option<(Instant, u64)>,
}

impl Detector {
    /// One check; reports (and wakes the `block_on`s) once the runtime has looked dead
    /// for [`GRACE`]. `progress` must change whenever any worker polls.
    pub(crate) fn check(&mut self, handle: &Handle, progress: u64) {
        if !is_quiet(handle, true) || !others_are_quiet(handle) {
            self.since = None;
            return;
        }
        let now = Instant::now();
        match self.since {
            Some((t, p)) if p == progress => {
                if now.duration_since(t) >= GRACE {
                    self.since = None;
                    report(handle);
                }
            }
            _ => self.since = Some((now, progress)),
        }
    }
}

/// Nothing in `handle`'s runtime runs, is queued, or waits on anything but other
/// tasks; with `need_block_on`, at least one `block_on` waits too (someone is owed
/// the report).
fn is_quiet(handle: &Handle, need_block_on: bool) -> bool {
    let shared = &handle.shared;
    let m = handle.metrics();
    let n = m.num_workers();
    if m.num_parked_workers() != n || !shared.inject.is_empty() {
        return false;
    }
    if (0..n).any(|i| m.worker_local_queue_depth(i) > 0) {
        return false;
    }
    if m.num_blocking_threads() != m.num_idle_blocking_threads() || m.blocking_queue_depth() > 0 {
        return false;
    }
    if crate::task::wait::BLOCKING_CALLERS.load(Ordering::SeqCst) > 0 {
        return false;
    }
    if shared
        .reactor
        .as_ref()
        .is_some_and(|r| r.reactor.may_wake())
    {
        return false;
    }
    let block_ons = shared.block_ons();
    if (need_block_on && block_ons.is_empty())
        || !block_ons.iter().all(|b| {
            b.parked.load(Ordering::SeqCst)
                && WaitReason::from_u8(b.wait.load(Ordering::SeqCst)).only_tasks_can_wake()
        })
    {
        return false;
    }
    handle
        .dump()
        .iter()
        .all(|t| t.state == TaskState::Waiting && t.wait.only_tasks_can_wake())
}

fn report(handle: &Handle) {
    let mut msg = String::from("gort: all tasks are asleep - deadlock!\n\n");
    let block_ons = handle.shared.block_ons();
    for b in &block_ons {
        let wait = WaitReason::from_u8(b.wait.load(Ordering::SeqCst));
        let _ = writeln!(
            msg,
            "block_on [{wait}]: thread {:?}",
            b.thread.name().unwrap_or("unnamed")
        );
    }
    for t in handle.dump() {
        let _ = writeln!(msg, "{t}");
    }
    msg.push_str(
        "\nNothing in the runtime can wake these. If a thread outside the runtime will, \
         turn this check off with Builder::deadlock_detection(false).",
    );
    for b in &block_ons {
        *b.report.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.clone());
        b.thread.unpark();
    }
}
