//! Who is idle, who is searching, and whom to wake: the protocol that keeps a worker
//! from sleeping while work is queued without waking every worker on every push.
//!
//! One atomic word counts *unparked* workers (awake: running, searching or about to
//! park) and, among them, *searching* ones (looking for work to steal). A mutex-guarded
//! list holds the parked workers' indices.
//!
//! # The rules
//!
//! 1. **Notify.** Whoever makes work available (push to a local queue that others may
//!    steal from, push to the injector) then calls [`Idle::worker_to_notify`]: if some
//!    worker is searching it will find the work, so nobody is woken; otherwise one
//!    parked worker is woken *as a searcher*.
//! 2. **Bounded search.** A worker may start searching only while fewer than half the
//!    workers search ([`Idle::transition_worker_to_searching`]), so a burst of pushes
//!    does not set every idle core spinning on the same queues.
//! 3. **Hand-over.** A searcher that finds work stops searching; if it was the last
//!    searcher it notifies another worker (rule 1), so remaining work keeps being
//!    looked for.
//! 4. **Last look.** A worker about to park decrements the counts
//!    ([`Idle::transition_worker_to_parked`]); if it was the last searcher it must look
//!    at every queue once more *after* that decrement and notify if anything is there.
//!
//! Why no wake-up is lost: the pusher publishes its task and then reads the counts; the
//! last searcher decrements the counts and then reads the queues. Both are `SeqCst`, so
//! in the single total order either the pusher sees "nobody searching" and wakes a
//! worker, or the searcher sees the task. The `loom_idle_*` models check this.

use crate::loom::{lock, AtomicUsize, Mutex, Ordering};

/// Bits of the state word that count searching workers; the rest count unparked ones.
const SEARCH_BITS: u32 = 16;
const SEARCH_MASK: usize = (1 << SEARCH_BITS) - 1;
const UNPARK_ONE: usize = 1 << SEARCH_BITS;

pub(crate) struct Idle {
    /// `(num_unparked << SEARCH_BITS) | num_searching`.
    state: AtomicUsize,
    /// Indices of parked workers.
    sleepers: Mutex<Vec<usize>>,
    num_workers: usize,
}

fn num_searching(state: usize) -> usize {
    state & SEARCH_MASK
}

fn num_unparked(state: usize) -> usize {
    state >> SEARCH_BITS
}

impl Idle {
    pub(crate) fn new(num_workers: usize) -> Idle {
        assert!(num_workers < SEARCH_MASK, "too many workers");
        Idle {
            // Every worker starts unparked and not searching.
            state: AtomicUsize::new(num_workers << SEARCH_BITS),
            sleepers: Mutex::new(Vec::with_capacity(num_workers)),
            num_workers,
        }
    }

    /// Rule 1: picks a parked worker to wake, already counted as unparked and searching,
    /// or `None` when a searcher exists or everyone is awake.
    pub(crate) fn worker_to_notify(&self) -> Option<usize> {
        if !self.notify_should_wake() {
            return None;
        }
        let mut sleepers = lock(&self.sleepers);
        // Check again under the lock: another notifier may have won.
        if !self.notify_should_wake() {
            return None;
        }
        let worker = sleepers.pop()?;
        self.state.fetch_add(UNPARK_ONE | 1, Ordering::SeqCst);
        Some(worker)
    }

    fn notify_should_wake(&self) -> bool {
        // A read-modify-write, not a load: it must take part in the SeqCst total order
        // with the parker's decrement (see "Why no wake-up is lost").
        let state = self.state.fetch_add(0, Ordering::SeqCst);
        num_searching(state) == 0 && num_unparked(state) < self.num_workers
    }

    /// Rule 4: the worker `index` is about to park. Returns true when it was the last
    /// searcher and must look at the queues once more.
    pub(crate) fn transition_worker_to_parked(&self, index: usize, is_searching: bool) -> bool {
        let mut sleepers = lock(&self.sleepers);
        let dec = UNPARK_ONE | usize::from(is_searching);
        let prev = self.state.fetch_sub(dec, Ordering::SeqCst);
        sleepers.push(index);
        is_searching && num_searching(prev) == 1
    }

    /// Rule 2: may this worker start searching?
    pub(crate) fn transition_worker_to_searching(&self) -> bool {
        let state = self.state.load(Ordering::SeqCst);
        if 2 * num_searching(state) >= self.num_workers {
            return false;
        }
        // Racy by design: a few more than half may search; the limit only damps
        // contention.
        self.state.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Rule 3: a searcher found work. Returns true when it was the last searcher (the
    /// caller must then notify).
    pub(crate) fn transition_worker_from_searching(&self) -> bool {
        let prev = self.state.fetch_sub(1, Ordering::SeqCst);
        debug_assert!(num_searching(prev) > 0);
        num_searching(prev) == 1
    }

    /// A parked worker woke up for its own reasons (a timer, I/O, or work in its own
    /// queue). Removes it from the sleepers and counts it unparked; returns false when a
    /// notifier had already done so (it was woken as a searcher).
    pub(crate) fn unpark_worker_by_id(&self, index: usize) -> bool {
        let mut sleepers = lock(&self.sleepers);
        if let Some(pos) = sleepers.iter().position(|&i| i == index) {
            sleepers.swap_remove(pos);
            self.state.fetch_add(UNPARK_ONE, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// Is the worker still on the sleepers list (nobody woke it on purpose)?
    pub(crate) fn is_parked(&self, index: usize) -> bool {
        lock(&self.sleepers).contains(&index)
    }

    pub(crate) fn num_searching(&self) -> usize {
        num_searching(self.state.load(Ordering::SeqCst))
    }

    pub(crate) fn num_parked(&self) -> usize {
        lock(&self.sleepers).len()
    }
}
