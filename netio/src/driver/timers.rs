//! The runtime's timers: one ordered map of `(deadline, sequence) → waker` under a
//! mutex.
//!
//! Insert and cancel are O(log n) (a dropped `Sleep` removes its entry, so abandoned
//! timeouts cost nothing later), and the earliest deadline is the timeout of the
//! thread waiting in the backend. Whoever turns the driver fires what is due: a worker
//! sleeping in it, a busy worker's look every 61 ticks, the monitor when nobody else
//! has for `REACTOR_UNWATCHED`. Inserting a deadline earlier than the one the waiting
//! thread sleeps towards wakes it.
//!
//! A duration too large to add to `Instant::now()` (`Duration::MAX`) is far in the
//! future, as in Go and tokio: see [`far_future`].

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::lock;

/// A registered timer: its key in the map.
pub(crate) type TimerKey = (Instant, u64);

/// How long a wait with no timer and no timeout lasts before the waiting thread looks
/// again (it is woken earlier by anything that needs it): a deadline that fits any
/// `Instant`.
const FOREVER: Duration = Duration::from_secs(u32::MAX as u64);

#[derive(Default)]
pub(crate) struct Timers {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    map: BTreeMap<TimerKey, Waker>,
    next_seq: u64,
    /// The deadline the waiting thread sleeps towards, while one does.
    waiting_until: Option<Instant>,
}

/// `now + d`, or a deadline decades away when that does not fit an `Instant`.
pub(crate) fn far_future(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(FOREVER))
        .unwrap_or(now)
}

impl Timers {
    /// Before a blocking wait of at most `timeout`: the wait's real timeout (capped by
    /// the earliest timer), remembered so an earlier insert can wake the waiter.
    pub(crate) fn before_wait(&self, timeout: Option<Duration>) -> Option<Duration> {
        let now = Instant::now();
        let mut inner = lock(&self.inner);
        let until_timer = inner
            .map
            .keys()
            .next()
            .map(|(d, _)| d.saturating_duration_since(now));
        let t = match (timeout, until_timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        inner.waiting_until = match t {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(far_future(now, d)),
            None => Some(far_future(now, FOREVER)),
        };
        t
    }

    /// After that wait.
    pub(crate) fn after_wait(&self) {
        lock(&self.inner).waiting_until = None;
    }

    /// Wakes every timer whose deadline has passed.
    pub(crate) fn fire(&self) {
        self.fire_at(Instant::now);
    }

    /// [`fire`](Self::fire) with the clock as a parameter (the model test's).
    fn fire_at(&self, clock: impl FnOnce() -> Instant) {
        let due: Vec<Waker> = {
            let mut inner = lock(&self.inner);
            if inner.map.is_empty() {
                return;
            }
            let now = clock();
            let mut due = Vec::new();
            while let Some(entry) = inner.map.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            due
        };
        for w in due {
            w.wake();
        }
    }

    /// Adds a timer. True when the waiting thread sleeps past `deadline` and must be
    /// woken to shorten its wait.
    pub(crate) fn add(&self, deadline: Instant, waker: Waker) -> (TimerKey, bool) {
        let mut inner = lock(&self.inner);
        let key = (deadline, inner.next_seq);
        inner.next_seq += 1;
        inner.map.insert(key, waker);
        let wake = inner.waiting_until.is_some_and(|w| deadline < w);
        (key, wake)
    }

    /// Replaces a pending timer's waker; false when it already fired.
    pub(crate) fn update(&self, key: TimerKey, waker: &Waker) -> bool {
        let mut inner = lock(&self.inner);
        match inner.map.get_mut(&key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn cancel(&self, key: TimerKey) {
        let removed = lock(&self.inner).map.remove(&key);
        drop(removed);
    }

    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).map.len()
    }
}

#[cfg(test)]
mod tests {
    //! Random sequences of insert, update, cancel and fire against a model (a sorted
    //! list), on a virtual clock: every timer fires once, when due and not before, in
    //! deadline order, through the waker it was last given; cancelled ones never.

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    use proptest::prelude::*;

    /// Records which timer's waker was woken, in order.
    struct Probe(usize, Arc<std::sync::Mutex<Vec<usize>>>, Arc<AtomicUsize>);

    impl Wake for Probe {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
            self.2.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A timer due this many ms after the virtual now (0: due at once).
        Add(u16),
        /// Gives the n-th live timer a new waker.
        Update(usize),
        Cancel(usize),
        /// Moves the virtual clock on, then fires.
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u16..500).prop_map(Op::Add),
            1 => any::<usize>().prop_map(Op::Update),
            2 => any::<usize>().prop_map(Op::Cancel),
            3 => (0u16..300).prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn net_timers_match_model(ops in proptest::collection::vec(op(), 1..150)) {
            let timers = Timers::default();
            let base = Instant::now();
            let mut now_ms = 0u64;
            let woken = Arc::new(std::sync::Mutex::new(Vec::new()));
            let wakes = Arc::new(AtomicUsize::new(0));
            // Model: live timers as (deadline ms, seq, key, waker id), and the id the
            // next waker gets.
            let mut live: Vec<(u64, u64, TimerKey, usize)> = Vec::new();
            let mut next_id = 0usize;
            let mut seq = 0u64;
            let mut expect_woken = Vec::new();
            let waker = |id: usize| Waker::from(Arc::new(Probe(id, woken.clone(), wakes.clone())));
            for op in ops {
                match op {
                    Op::Add(after) => {
                        let at = now_ms + u64::from(after);
                        let (key, _) = timers.add(base + Duration::from_millis(at), waker(next_id));
                        live.push((at, seq, key, next_id));
                        seq += 1;
                        next_id += 1;
                    }
                    Op::Update(n) if !live.is_empty() => {
                        let i = n % live.len();
                        prop_assert!(timers.update(live[i].2, &waker(next_id)));
                        live[i].3 = next_id;
                        next_id += 1;
                    }
                    Op::Cancel(n) if !live.is_empty() => {
                        let (.., key, _) = live.remove(n % live.len());
                        timers.cancel(key);
                        // A cancelled timer is gone: updating it says so.
                        prop_assert!(!timers.update(key, &waker(usize::MAX)));
                    }
                    Op::Advance(ms) => {
                        now_ms += u64::from(ms);
                        timers.fire_at(|| base + Duration::from_millis(now_ms));
                        live.sort_by_key(|t| (t.0, t.1));
                        let due = live.iter().take_while(|t| t.0 <= now_ms).count();
                        expect_woken.extend(live.drain(..due).map(|t| t.3));
                    }
                    _ => {}
                }
                prop_assert_eq!(timers.len(), live.len());
                prop_assert_eq!(&*woken.lock().unwrap(), &expect_woken);
            }
            prop_assert_eq!(wakes.load(Ordering::SeqCst), expect_woken.len());
        }
    }
}
