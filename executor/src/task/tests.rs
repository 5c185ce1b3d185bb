//! The task cell and its state machine, single-threaded (these also run under Miri).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::testing::{poll_once, Sched};

/// Counts drops of its values.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);
struct Counted(Counter);
impl Drop for Counted {
    fn drop(&mut self) {
        (self.0).0.fetch_add(1, Ordering::SeqCst);
    }
}
impl Counter {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

struct CountingWaker(AtomicUsize);
impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pending on its first `n` polls, waking itself `wakes_per_poll` times each.
struct SelfWaking {
    polls_left: usize,
    wakes_per_poll: usize,
}
impl Future for SelfWaking {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.polls_left == 0 {
            return Poll::Ready(());
        }
        self.polls_left -= 1;
        for _ in 0..self.wakes_per_poll {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Stores its waker somewhere the test can reach, and stays pending.
/// The second field is only carried, to observe when the future is dropped.
struct Parked(
    Arc<std::sync::Mutex<Option<Waker>>>,
    #[allow(dead_code)] Option<Counted>,
);
impl Future for Parked {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn task_runs_to_completion_and_joins() {
    let s = Sched::new();
    let mut j = s.spawn(async { 7 });
    assert!(poll_once(&mut j).is_pending());
    assert_eq!(s.run_all(), 1);
    assert!(j.is_finished());
    assert!(matches!(poll_once(&mut j), Poll::Ready(Ok(7))));
    assert_eq!(s.0.owned.len(), 0);
    s.shutdown();
}

#[test]
fn task_woken_during_poll_is_requeued_once() {
    let s = Sched::new();
    let mut j = s.spawn(SelfWaking {
        polls_left: 2,
        wakes_per_poll: 3,
    });
    // Three wakes during one poll give one re-queue, not three.
    assert_eq!(s.pop().map(|t| t.run()), Some(()));
    assert_eq!(s.queued(), 1);
    assert_eq!(s.run_all(), 2);
    assert!(matches!(poll_once(&mut j), Poll::Ready(Ok(()))));
    s.shutdown();
}

#[test]
fn task_wake_of_idle_task_queues_it_and_clones_keep_it_alive() {
    let s = Sched::new();
    let slot = Arc::new(std::sync::Mutex::new(None));
    let drops = Counter::default();
    let j = s.spawn(Parked(slot.clone(), Some(Counted(drops.clone()))));
    s.run_all();
    let waker = slot.lock().unwrap().take().unwrap();
    let w2 = waker.clone();
    assert!(waker.will_wake(&w2));
    w2.wake_by_ref();
    w2.wake_by_ref(); // already notified: no second entry
    assert_eq!(s.queued(), 1);
    drop(j); // detach
    waker.wake(); // consumes its reference; already notified
    s.run_all(); // polls again, stores a new waker
    assert_eq!(drops.get(), 0);
    drop(w2);
    s.shutdown(); // cancels: the future (and its Counted) is dropped
    assert_eq!(drops.get(), 1);
    drop(slot.lock().unwrap().take()); // the last waker frees the cell
}

#[test]
fn task_abort_of_idle_task_cancels_it() {
    let s = Sched::new();
    let slot = Arc::new(std::sync::Mutex::new(None));
    let drops = Counter::default();
    let mut j = s.spawn(Parked(slot.clone(), Some(Counted(drops.clone()))));
    s.run_all();
    j.abort();
    assert_eq!(
        s.queued(),
        1,
        "abort of an idle task schedules the cancellation"
    );
    j.abort(); // idempotent
    assert_eq!(s.queued(), 1);
    s.run_all();
    assert_eq!(drops.get(), 1);
    match poll_once(&mut j) {
        Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
        _ => panic!("expected cancellation"),
    }
    drop(slot.lock().unwrap().take());
    s.shutdown();
}

#[test]
fn task_abort_before_first_poll_never_polls() {
    let s = Sched::new();
    let drops = Counter::default();
    let c = Counted(drops.clone());
    let mut j = s.spawn(async move {
        let _c = c;
        panic!("must not be polled");
    });
    j.abort();
    assert_eq!(s.queued(), 1, "already queued: no second entry");
    s.run_all();
    assert_eq!(drops.get(), 1);
    assert!(matches!(poll_once(&mut j), Poll::Ready(Err(e)) if e.is_cancelled()));
    s.shutdown();
}

#[test]
fn task_output_dropped_once_when_handle_dropped_first() {
    let s = Sched::new();
    let drops = Counter::default();
    let d = drops.clone();
    let j = s.spawn(async move { Counted(d) });
    drop(j);
    s.run_all();
    assert_eq!(drops.get(), 1);
    s.shutdown();
}

#[test]
fn task_output_dropped_once_when_handle_dropped_after() {
    let s = Sched::new();
    let drops = Counter::default();
    let d = drops.clone();
    let j = s.spawn(async move { Counted(d) });
    s.run_all();
    assert_eq!(drops.get(), 0, "the output waits for its handle");
    drop(j);
    assert_eq!(drops.get(), 1);
    s.shutdown();
}

#[test]
fn task_join_waker_is_woken_and_replaced() {
    let s = Sched::new();
    let mut j = s.spawn(async { 1 });
    let w1 = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let w2 = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let (k1, k2) = (Waker::from(w1.clone()), Waker::from(w2.clone()));
    assert!(Pin::new(&mut j)
        .poll(&mut Context::from_waker(&k1))
        .is_pending());
    // Same waker again: kept. Another waker: replaces it.
    assert!(Pin::new(&mut j)
        .poll(&mut Context::from_waker(&k1))
        .is_pending());
    assert!(Pin::new(&mut j)
        .poll(&mut Context::from_waker(&k2))
        .is_pending());
    s.run_all();
    assert_eq!(w1.0.load(Ordering::SeqCst), 0);
    assert_eq!(w2.0.load(Ordering::SeqCst), 1);
    assert!(matches!(
        Pin::new(&mut j).poll(&mut Context::from_waker(&k2)),
        Poll::Ready(Ok(1))
    ));
    s.shutdown();
}

#[test]
fn task_panic_becomes_join_error() {
    let s = Sched::new();
    let mut j = s.spawn(async {
        panic!("oops");
    });
    s.run_all();
    match poll_once(&mut j) {
        Poll::Ready(Err(e)) => {
            assert!(e.is_panic());
            assert_eq!(*e.into_panic().downcast::<&str>().unwrap(), "oops");
        }
        _ => panic!("expected a panic"),
    }
    s.shutdown();
}

#[test]
fn task_shutdown_cancels_idle_and_refuses_new() {
    let s = Sched::new();
    let slot = Arc::new(std::sync::Mutex::new(None));
    let drops = Counter::default();
    let mut parked = s.spawn(Parked(slot.clone(), Some(Counted(drops.clone()))));
    s.run_all();
    let mut queued = s.spawn(async { 1 });
    s.shutdown();
    assert_eq!(drops.get(), 1);
    assert!(matches!(poll_once(&mut parked), Poll::Ready(Err(e)) if e.is_cancelled()));
    assert!(matches!(poll_once(&mut queued), Poll::Ready(Err(e)) if e.is_cancelled()));
    // After closing, a new task is cancelled at once.
    let mut late = s.spawn(async { 2 });
    assert_eq!(s.queued(), 0);
    assert!(matches!(poll_once(&mut late), Poll::Ready(Err(e)) if e.is_cancelled()));
    // A stale waker is harmless.
    slot.lock().unwrap().take().unwrap().wake();
    assert_eq!(s.queued(), 0);
}

#[test]
fn task_header_stays_small() {
    // The header is on every task; growing it costs memory on every parked task (the
    // parked-memory benchmark). State, vtable, id, spawn location, and one word for
    // the owned-list key (`u32`) and the wait reason (one byte).
    assert_eq!(std::mem::size_of::<super::raw::Header>(), 40);
    // The owned-task list holds one of these per live task.
    assert_eq!(std::mem::size_of::<Option<super::Task>>(), 8);
}
