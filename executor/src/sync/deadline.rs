//! The deadline timer of [`Context`](super::Context): one shared thread that cancels
//! contexts whose deadline has passed, so that `done().await` wakes on time.
//!
//! # Why a thread
//!
//! A `done()` polled inside a gort runtime with the I/O reactor waits on the reactor's
//! timers (`context.rs`, [`crate::reactor::Reactor::add_timer`]); this module serves the
//! others: a `done()` awaited by a plain thread's `block_on`, by another executor, or on
//! a runtime with a custom parker and no timers. They need exactly one kind of timer
//! ("cancel this context at that instant"), and a single thread serves every such
//! context of the process:
//!
//! - **Lazy**: started by the first [`schedule`], i.e. the first `done()` that parks on a
//!   context with a deadline outside a runtime's timers. Programs that never wait so
//!   never start it.
//! - **Bounded**: one thread; entries live in an ordered map keyed by
//!   `(deadline, sequence number)`, so the earliest is first and removal is O(log n).
//!   An entry is removed when its context node is dropped, or when it fires, so the map
//!   holds at most one entry per live context that has parked on its deadline.
//! - **Weak**: an entry holds a `Weak` reference, so the timer never keeps a context
//!   alive.
//!
//! The thread sleeps on a condition variable until the earliest deadline (or forever
//! when the map is empty); [`schedule`] wakes it when the new entry becomes the
//! earliest. Expired entries are taken out under the lock and cancelled after it is
//! released, so the thread never holds its lock while taking a node's (the context
//! module holds a node's lock while calling [`schedule`], never the other way round).
//!
//! If the thread cannot be spawned (the OS refuses), [`schedule`] returns `None` and
//! contexts fall back to noticing their deadline when polled or checked.
//!
//! The thread's locks are `std`'s (through the loom shim, which is `std` here: this
//! module is compiled only without loom).

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::{OnceLock, Weak};
use std::time::Instant;

use super::context::{cancel, ContextError, Node};
use crate::loom::{lock, AtomicU64, Condvar, Mutex, Ordering};

/// Names the thread in debuggers and `top -H`.
const THREAD_NAME: &str = "gort-sync-deadline";

/// Identifies one entry: its deadline and a unique sequence number (two contexts may
/// share a deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct TimerKey {
    when: Instant,
    seq: u64,
}

struct Timer {
    entries: Mutex<BTreeMap<TimerKey, Weak<Node>>>,
    /// Signalled when an entry becomes the earliest.
    changed: Condvar,
    next_seq: AtomicU64,
}

/// The one timer. Its state is built in a constant; its thread starts on first use.
static TIMER: Timer = Timer {
    entries: Mutex::new(BTreeMap::new()),
    changed: Condvar::new(),
    next_seq: AtomicU64::new(0),
};

/// Whether the thread is running (set once, by the first `schedule`).
static STARTED: OnceLock<bool> = OnceLock::new();

/// The timer, starting its thread on first use; `None` if the thread cannot start.
fn timer() -> Option<&'static Timer> {
    let started = *STARTED.get_or_init(|| {
        std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(|| run(&TIMER))
            .is_ok()
    });
    started.then_some(&TIMER)
}

/// Cancels `node` with `DeadlineExceeded` at `when`. Returns the entry's key, to be
/// given to [`remove`] when the node is dropped; `None` if no timer thread could start.
pub(super) fn schedule(when: Instant, node: Weak<Node>) -> Option<TimerKey> {
    let timer = timer()?;
    let key = TimerKey {
        when,
        seq: timer.next_seq.fetch_add(1, Ordering::Relaxed),
    };
    let mut entries = lock(&timer.entries);
    entries.insert(key, node);
    let earliest = entries.keys().next() == Some(&key);
    drop(entries);
    if earliest {
        timer.changed.notify_one();
    }
    Some(key)
}

/// Removes an entry (its node is being dropped). No-op if it already fired.
pub(super) fn remove(key: TimerKey) {
    let removed = lock(&TIMER.entries).remove(&key);
    drop(removed);
}

/// The thread: fire what is due, sleep until the next deadline.
fn run(timer: &'static Timer) {
    let mut entries = lock(&timer.entries);
    loop {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(entry) = entries.first_entry() {
            if entry.key().when > now {
                break;
            }
            due.push(entry.remove());
        }
        if !due.is_empty() {
            drop(entries);
            for node in due {
                if let Some(node) = node.upgrade() {
                    cancel(&node, ContextError::DeadlineExceeded);
                }
            }
            entries = lock(&timer.entries);
            continue;
        }
        entries = match entries.keys().next() {
            Some(first) => {
                let wait = first.when.saturating_duration_since(now);
                match timer.changed.wait_timeout(entries, wait) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                }
            }
            None => match timer.changed.wait(entries) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            },
        };
    }
}
