//! The primitives driven by hand, one poll at a time, on one thread: every interleaving
//! of interest is spelled out, no runtime is involved, and these run under Miri
//! (`cargo +nightly miri test -p gort-executor --lib sync::`).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use super::future::*;

use super::*;

/// Counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Probe {
    count: Arc<CountingWaker>,
    waker: Waker,
}

impl Probe {
    fn new() -> Probe {
        let count = Arc::new(CountingWaker(AtomicUsize::new(0)));
        Probe {
            waker: Waker::from(count.clone()),
            count,
        }
    }

    fn wakes(&self) -> usize {
        self.count.0.load(Ordering::SeqCst)
    }

    fn poll<F: Future + ?Sized>(&self, f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut TaskContext::from_waker(&self.waker))
    }

    fn poll_unpin<F: Future + Unpin>(&self, f: &mut F) -> Poll<F::Output> {
        self.poll(Pin::new(f))
    }
}

/// Iterations of create-poll-drop loops: enough to show that nothing grows, small
/// enough for Miri.
const CHURN: usize = if cfg!(miri) { 50 } else { 5_000 };

// ---- Semaphore ----

#[test]
fn sync_semaphore_acquire_and_release_count_permits() {
    let p = Probe::new();
    let sem = Semaphore::new(3);
    let a = sem.try_acquire_many(2).unwrap();
    assert_eq!(sem.available_permits(), 1);
    let mut fut = sem.acquire();
    let Poll::Ready(Ok(b)) = p.poll_unpin(&mut fut) else {
        panic!("one permit is free")
    };
    assert_eq!(sem.available_permits(), 0);
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    drop(a);
    assert_eq!(sem.available_permits(), 2);
    b.forget();
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn sync_semaphore_large_request_blocks_later_small_ones() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let sem = Semaphore::new(1);
    let mut big = sem.acquire_many(2);
    let mut small = sem.acquire();
    assert!(p1.poll_unpin(&mut big).is_pending());
    // One permit is free, but `big` is queued first.
    assert!(p2.poll_unpin(&mut small).is_pending());
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
    sem.add_permits(1);
    assert_eq!((p1.wakes(), p2.wakes()), (1, 0));
    let Poll::Ready(Ok(permit)) = p1.poll_unpin(&mut big) else {
        panic!("granted")
    };
    assert_eq!(permit.num_permits(), 2);
    assert!(p2.poll_unpin(&mut small).is_pending());
    drop(permit);
    assert_eq!(p2.wakes(), 1);
    assert!(matches!(p2.poll_unpin(&mut small), Poll::Ready(Ok(_))));
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn sync_semaphore_dropping_a_granted_waiter_passes_its_permits_on() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let sem = Semaphore::new(0);
    let mut first = sem.acquire();
    let mut second = sem.acquire();
    assert!(p1.poll_unpin(&mut first).is_pending());
    assert!(p2.poll_unpin(&mut second).is_pending());
    sem.add_permits(1);
    assert_eq!(p1.wakes(), 1);
    // Granted, never observed: the permit must reach `second`.
    drop(first);
    assert_eq!(p2.wakes(), 1);
    let Poll::Ready(Ok(permit)) = p2.poll_unpin(&mut second) else {
        panic!("the permit was passed on")
    };
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
    assert_eq!(sem.slots_in_use(), 0);
}

#[test]
fn sync_semaphore_dropping_the_queued_head_lets_a_smaller_request_in() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let sem = Semaphore::new(1);
    let mut big = sem.acquire_many(2);
    let mut small = sem.acquire();
    assert!(p1.poll_unpin(&mut big).is_pending());
    assert!(p2.poll_unpin(&mut small).is_pending());
    drop(big);
    assert_eq!(p2.wakes(), 1);
    assert!(matches!(p2.poll_unpin(&mut small), Poll::Ready(Ok(_))));
}

#[test]
fn sync_semaphore_poll_and_drop_loop_loses_nothing_and_grows_nothing() {
    let p = Probe::new();
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut waiter = sem.acquire();
    assert!(p.poll_unpin(&mut waiter).is_pending());
    for _ in 0..CHURN {
        let mut fut = sem.acquire();
        assert!(p.poll_unpin(&mut fut).is_pending());
        drop(fut);
        assert_eq!(sem.num_waiters(), 1);
    }
    assert_eq!(sem.slots_in_use(), 1);
    drop(held);
    assert!(matches!(p.poll_unpin(&mut waiter), Poll::Ready(Ok(_))));
    assert_eq!(sem.slots_in_use(), 0);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn sync_semaphore_grant_then_drop_loop_keeps_every_permit() {
    let p = Probe::new();
    let sem = Semaphore::new(0);
    for _ in 0..CHURN {
        let mut fut = sem.acquire();
        assert!(p.poll_unpin(&mut fut).is_pending());
        sem.add_permits(1); // granted to `fut`, which never looks
        drop(fut); // ...and comes back
        assert_eq!(sem.available_permits(), 1);
        sem.try_acquire().unwrap().forget();
    }
    assert_eq!(sem.slots_in_use(), 0);
}

#[test]
fn sync_semaphore_close_fails_queued_waiters_but_not_granted_ones() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let sem = Semaphore::new(0);
    let mut granted = sem.acquire();
    let mut queued = sem.acquire_many(2);
    assert!(p1.poll_unpin(&mut granted).is_pending());
    assert!(p2.poll_unpin(&mut queued).is_pending());
    sem.add_permits(1);
    sem.close();
    assert!(sem.is_closed());
    assert_eq!(p2.wakes(), 1);
    assert!(matches!(p2.poll_unpin(&mut queued), Poll::Ready(Err(_))));
    assert!(matches!(p1.poll_unpin(&mut granted), Poll::Ready(Ok(_))));
    assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    let mut late = sem.acquire();
    assert!(matches!(p1.poll_unpin(&mut late), Poll::Ready(Err(_))));
}

#[test]
fn sync_semaphore_wakes_the_latest_waker() {
    let (old, new) = (Probe::new(), Probe::new());
    let sem = Semaphore::new(0);
    let mut fut = sem.acquire();
    assert!(old.poll_unpin(&mut fut).is_pending());
    assert!(new.poll_unpin(&mut fut).is_pending());
    sem.add_permits(1);
    assert_eq!((old.wakes(), new.wakes()), (0, 1));
}

#[test]
fn sync_semaphore_owned_permit_returns_to_the_arc() {
    let p = Probe::new();
    let sem = Arc::new(Semaphore::new(1));
    let mut fut = sem.clone().acquire_owned();
    let Poll::Ready(Ok(permit)) = p.poll_unpin(&mut fut) else {
        panic!("free")
    };
    assert!(Arc::ptr_eq(permit.semaphore(), &sem));
    assert!(sem.clone().try_acquire_many_owned(1).is_err());
    drop(permit);
    assert_eq!(sem.available_permits(), 1);
}

#[test]
fn sync_semaphore_add_permits_beyond_max_panics() {
    let sem = Semaphore::new(MAX_PERMITS);
    let r = catch_unwind(AssertUnwindSafe(|| sem.add_permits(1)));
    assert!(r.is_err());
    assert_eq!(sem.available_permits(), MAX_PERMITS);
}

// ---- Mutex ----

#[test]
fn sync_mutex_excludes_and_try_lock_respects_the_queue() {
    let p = Probe::new();
    let m = Mutex::new(5);
    let mut g = m.try_lock().unwrap();
    *g += 1;
    assert!(m.try_lock().is_err());
    let mut waiting = m.lock();
    assert!(p.poll_unpin(&mut waiting).is_pending());
    drop(g);
    assert_eq!(p.wakes(), 1);
    // The lock is handed to the queued waiter, not to a passer-by.
    assert!(m.try_lock().is_err());
    let Poll::Ready(g) = p.poll_unpin(&mut waiting) else {
        panic!("handed over")
    };
    assert_eq!(*g, 6);
    drop(g);
    drop(waiting);
    assert_eq!(m.into_inner(), 6);
}

#[test]
fn sync_mutex_serves_waiters_in_arrival_order() {
    const WAITERS: usize = 8;
    let m = Mutex::new(Vec::new());
    let held = m.try_lock().unwrap();
    let probes: Vec<Probe> = (0..WAITERS).map(|_| Probe::new()).collect();
    let mut futs: Vec<_> = (0..WAITERS).map(|_| m.lock()).collect();
    for (p, f) in probes.iter().zip(futs.iter_mut()) {
        assert!(p.poll_unpin(f).is_pending());
    }
    drop(held);
    for i in 0..WAITERS {
        // Everyone is polled; only the head gets in.
        let mut got = None;
        for (j, (p, f)) in probes.iter().zip(futs.iter_mut()).enumerate().skip(i) {
            if let Poll::Ready(mut g) = p.poll_unpin(f) {
                assert!(got.is_none(), "two holders");
                g.push(j);
                got = Some(g);
            }
        }
        assert!(got.is_some(), "waiter {i} was not served");
    }
    drop(futs);
    assert_eq!(m.into_inner(), (0..WAITERS).collect::<Vec<_>>());
}

#[test]
fn sync_mutex_lock_future_dropped_after_grant_passes_the_lock_on() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let m = Mutex::new(());
    let held = m.try_lock().unwrap();
    let mut a = m.lock();
    let mut b = m.lock();
    assert!(p1.poll_unpin(&mut a).is_pending());
    assert!(p2.poll_unpin(&mut b).is_pending());
    drop(held);
    drop(a);
    assert_eq!(p2.wakes(), 1);
    assert!(p2.poll_unpin(&mut b).is_ready());
    drop(b);
    assert!(m.try_lock().is_ok());
    assert_eq!(m.semaphore().slots_in_use(), 0);
}

#[test]
fn sync_mutex_owned_guard_and_get_mut() {
    let p = Probe::new();
    let mut m = Mutex::new(1);
    *m.get_mut() = 2;
    let m = Arc::new(m);
    let mut fut = m.clone().lock_owned();
    let Poll::Ready(mut g) = p.poll_unpin(&mut fut) else {
        panic!("free")
    };
    *g += 1;
    assert!(m.clone().try_lock_owned().is_err());
    drop(g);
    assert_eq!(*m.try_lock().unwrap(), 3);
    assert_eq!(format!("{m:?}"), "Mutex { data: 3 }");
}

// ---- RwLock ----

#[test]
fn sync_rwlock_readers_share_and_a_writer_is_alone() {
    let p = Probe::new();
    let l = RwLock::new(0);
    let r1 = l.try_read().unwrap();
    let r2 = l.try_read().unwrap();
    assert_eq!(*r1 + *r2, 0);
    assert!(l.try_write().is_err());
    let mut w = l.write();
    assert!(p.poll_unpin(&mut w).is_pending());
    drop(r1);
    assert!(p.poll_unpin(&mut w).is_pending());
    drop(r2);
    let Poll::Ready(mut g) = p.poll_unpin(&mut w) else {
        panic!("readers left")
    };
    *g = 7;
    assert!(l.try_read().is_err());
    drop(g);
    assert_eq!(*l.try_read().unwrap(), 7);
}

#[test]
fn sync_rwlock_queued_writer_blocks_later_readers() {
    let (pw, pr) = (Probe::new(), Probe::new());
    let l = RwLock::new(());
    let reader = l.try_read().unwrap();
    let mut w = l.write();
    assert!(pw.poll_unpin(&mut w).is_pending());
    // A reader arriving after the writer queues behind it.
    assert!(l.try_read().is_err());
    let mut r = l.read();
    assert!(pr.poll_unpin(&mut r).is_pending());
    drop(reader);
    assert_eq!((pw.wakes(), pr.wakes()), (1, 0));
    let Poll::Ready(wg) = pw.poll_unpin(&mut w) else {
        panic!("writer next")
    };
    // Downgrading lets the queued reader in without letting anyone write.
    let rg = wg.downgrade();
    assert_eq!(pr.wakes(), 1);
    assert!(pr.poll_unpin(&mut r).is_ready());
    assert!(l.try_write().is_err());
    drop(rg);
    drop(r);
    assert!(l.try_write().is_ok());
    assert_eq!(l.semaphore().available_permits(), MAX_READERS);
}

// ---- Notify ----

#[test]
fn sync_notify_one_stores_a_single_permit() {
    let p = Probe::new();
    let n = Notify::new();
    n.notify_one();
    n.notify_one();
    let mut a = n.notified();
    assert!(p.poll_unpin(&mut a).is_ready());
    let mut b = n.notified();
    assert!(p.poll_unpin(&mut b).is_pending());
}

#[test]
fn sync_notify_one_wakes_the_longest_waiter_only() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let n = Notify::new();
    let mut a = n.notified();
    let mut b = n.notified();
    assert!(p1.poll_unpin(&mut a).is_pending());
    assert!(p2.poll_unpin(&mut b).is_pending());
    n.notify_one();
    assert_eq!((p1.wakes(), p2.wakes()), (1, 0));
    assert!(p2.poll_unpin(&mut b).is_pending());
    assert!(p1.poll_unpin(&mut a).is_ready());
}

#[test]
fn sync_notify_dropped_waiter_passes_its_notification_on() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let n = Notify::new();
    let mut a = n.notified();
    let mut b = n.notified();
    assert!(p1.poll_unpin(&mut a).is_pending());
    assert!(p2.poll_unpin(&mut b).is_pending());
    n.notify_one();
    drop(a);
    assert_eq!(p2.wakes(), 1);
    assert!(p2.poll_unpin(&mut b).is_ready());
    // With nobody left to pass it to, it becomes the permit.
    let mut c = n.notified();
    assert!(p1.poll_unpin(&mut c).is_pending());
    n.notify_one();
    drop(c);
    let mut d = n.notified();
    assert!(p1.poll_unpin(&mut d).is_ready());
    assert_eq!(n.slots_in_use(), 0);
}

#[test]
fn sync_notify_waiters_wakes_all_created_before_and_stores_nothing() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let n = Notify::new();
    let mut polled = n.notified();
    let mut unpolled = n.notified();
    assert!(p1.poll_unpin(&mut polled).is_pending());
    n.notify_waiters();
    assert_eq!(p1.wakes(), 1);
    assert!(p1.poll_unpin(&mut polled).is_ready());
    assert!(p2.poll_unpin(&mut unpolled).is_ready());
    let mut after = n.notified();
    assert!(p2.poll_unpin(&mut after).is_pending());
}

#[test]
fn sync_notify_poll_and_drop_loop_grows_nothing() {
    let p = Probe::new();
    let n = Notify::new();
    for _ in 0..CHURN {
        let mut f = n.notified();
        assert!(p.poll_unpin(&mut f).is_pending());
    }
    assert_eq!(n.slots_in_use(), 0);
    let mut f = n.notified();
    assert!(p.poll_unpin(&mut f).is_pending());
}

// ---- WaitGroup ----

#[test]
fn sync_wait_group_releases_waiters_at_zero_and_is_reusable() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let wg = WaitGroup::new();
    let mut at_zero = wg.wait();
    assert!(p1.poll_unpin(&mut at_zero).is_ready());
    wg.add(2);
    let mut a = wg.wait();
    let mut b = wg.wait();
    assert!(p1.poll_unpin(&mut a).is_pending());
    assert!(p2.poll_unpin(&mut b).is_pending());
    wg.done();
    assert_eq!(p1.wakes(), 0);
    wg.clone().done();
    assert_eq!((p1.wakes(), p2.wakes()), (1, 1));
    // Reused before `b` runs: `b` was released at zero and still completes.
    wg.add(1);
    assert!(p1.poll_unpin(&mut a).is_ready());
    assert!(p2.poll_unpin(&mut b).is_ready());
    let mut c = wg.wait();
    assert!(p1.poll_unpin(&mut c).is_pending());
    drop(c);
    assert_eq!(wg.slots_in_use(), 0);
    assert_eq!(wg.count(), 1);
}

#[test]
fn sync_wait_group_negative_counter_panics_like_go() {
    let wg = WaitGroup::new();
    wg.add(1);
    wg.done();
    let err = catch_unwind(AssertUnwindSafe(|| wg.done())).unwrap_err();
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert_eq!(msg, "sync: negative WaitGroup counter");
    // The counter is unchanged and the group still works.
    assert_eq!(wg.count(), 0);
    wg.add(1);
    wg.done();
}

// ---- Barrier ----

#[test]
fn sync_barrier_one_leader_per_generation_and_reuse() {
    let probes: Vec<Probe> = (0..3).map(|_| Probe::new()).collect();
    let b = Barrier::new(3);
    for _generation in 0..3 {
        let mut a = b.wait();
        let mut c = b.wait();
        assert!(probes[0].poll_unpin(&mut a).is_pending());
        assert!(probes[1].poll_unpin(&mut c).is_pending());
        let mut last = b.wait();
        let Poll::Ready(r) = probes[2].poll_unpin(&mut last) else {
            panic!("third arrival releases")
        };
        assert!(r.is_leader());
        let Poll::Ready(ra) = probes[0].poll_unpin(&mut a) else {
            panic!("released")
        };
        let Poll::Ready(rc) = probes[1].poll_unpin(&mut c) else {
            panic!("released")
        };
        assert!(!ra.is_leader() && !rc.is_leader());
    }
}

#[test]
fn sync_barrier_dropped_waiter_withdraws_its_arrival() {
    let p = Probe::new();
    let b = Barrier::new(2);
    let mut quitter = b.wait();
    assert!(p.poll_unpin(&mut quitter).is_pending());
    assert_eq!(b.arrived(), 1);
    drop(quitter);
    assert_eq!(b.arrived(), 0);
    let mut x = b.wait();
    assert!(p.poll_unpin(&mut x).is_pending(), "one task is not two");
    let mut y = b.wait();
    assert!(p.poll_unpin(&mut y).is_ready());
    assert!(p.poll_unpin(&mut x).is_ready());
}

// ---- Once / OnceCell ----

#[test]
fn sync_once_cell_runs_one_initialiser_while_others_wait() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let cell = OnceCell::new();
    let gate = Notify::new();
    let runs = AtomicUsize::new(0);
    let init = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        gate.notified().await;
        42
    };
    let mut first = pin!(cell.get_or_init(init));
    let mut second = pin!(cell.get_or_init(init));
    assert!(p1.poll(first.as_mut()).is_pending());
    assert!(p2.poll(second.as_mut()).is_pending());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(matches!(cell.set(1), Err(SetError::Initializing(1))));
    gate.notify_one();
    assert_eq!(p1.poll(first.as_mut()), Poll::Ready(&42));
    assert_eq!(p2.wakes(), 1);
    assert_eq!(p2.poll(second.as_mut()), Poll::Ready(&42));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(matches!(cell.set(1), Err(SetError::AlreadyInitialized(1))));
}

#[test]
fn sync_once_cell_cancelled_or_failed_initialiser_lets_the_next_one_run() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let cell = OnceCell::new();
    let mut next = pin!(cell.get_or_try_init(|| async { Err::<u8, &str>("no") }));
    {
        let mut doomed = pin!(cell.get_or_init(std::future::pending::<u8>));
        assert!(p1.poll(doomed.as_mut()).is_pending());
        assert!(p2.poll(next.as_mut()).is_pending());
    } // `doomed` is dropped mid-initialisation: `next` gets its turn.
    assert_eq!(p2.wakes(), 1);
    assert_eq!(p2.poll(next.as_mut()), Poll::Ready(Err("no")));
    assert!(cell.get().is_none(), "a failed initialiser stores nothing");
    let mut ok = pin!(cell.get_or_try_init(|| async { Ok::<u8, &str>(3) }));
    assert_eq!(p1.poll(ok.as_mut()), Poll::Ready(Ok(&3)));
    assert!(matches!(cell.set(4), Err(SetError::AlreadyInitialized(4))));
}

#[test]
fn sync_once_runs_its_action_once() {
    let p = Probe::new();
    let once = Once::new();
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let mut f = pin!(once.call_once(|| async {
            runs.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(p.poll(f.as_mut()).is_ready());
    }
    assert!(once.is_completed());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

// ---- Context ----

#[test]
fn sync_context_cancel_reaches_children_and_grandchildren() {
    let (p1, p2) = (Probe::new(), Probe::new());
    let (parent, cancel) = Context::background().with_cancel();
    let (child, _c) = parent.with_cancel();
    let (grandchild, _g) = child.with_cancel();
    let (sibling, sibling_cancel) = parent.with_cancel();
    let mut done = grandchild.done();
    let mut sib_done = sibling.done();
    assert!(p1.poll_unpin(&mut done).is_pending());
    assert!(p2.poll_unpin(&mut sib_done).is_pending());
    sibling_cancel.cancel();
    assert!(p2.poll_unpin(&mut sib_done).is_ready());
    assert_eq!(parent.err(), None);
    assert_eq!(p1.wakes(), 0);
    cancel.cancel();
    assert_eq!(p1.wakes(), 1);
    assert_eq!(
        p1.poll_unpin(&mut done),
        Poll::Ready(ContextError::Canceled)
    );
    for ctx in [&parent, &child, &grandchild] {
        assert_eq!(ctx.err(), Some(ContextError::Canceled));
    }
    let (late, _l) = child.with_cancel();
    assert!(
        late.is_cancelled(),
        "a child of a cancelled context is born cancelled"
    );
    assert_eq!(child.num_children(), 0);
}

#[test]
fn sync_context_dropping_children_unregisters_them() {
    let (parent, _cancel) = Context::background().with_cancel();
    for _ in 0..CHURN {
        let (child, _h) = parent.with_cancel();
        let (grandchild, _g) = child.with_cancel();
        assert_eq!(parent.num_children(), 1);
        drop(child);
        // The grandchild keeps its parent registered.
        assert_eq!(parent.num_children(), 1);
        drop(grandchild);
        assert_eq!(parent.num_children(), 0);
    }
    let (child, handle) = parent.with_cancel();
    let clone = child.clone();
    drop(child);
    assert_eq!(parent.num_children(), 1);
    drop(clone);
    assert_eq!(parent.num_children(), 0);
    // A handle outliving its context is harmless.
    handle.cancel();
    assert!(handle.is_cancelled());
    assert_eq!(parent.err(), None);
}

#[test]
fn sync_context_reports_a_passed_deadline_down_the_tree() {
    let p = Probe::new();
    let (ctx, handle) = Context::background().with_deadline(Instant::now());
    let (child, _c) = ctx.with_cancel();
    assert_eq!(child.deadline(), ctx.deadline());
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
    let mut done = child.done();
    assert_eq!(
        p.poll_unpin(&mut done),
        Poll::Ready(ContextError::DeadlineExceeded)
    );
    // A later cancel does not change the first error.
    handle.cancel();
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
}

#[test]
fn sync_context_deadline_is_the_earliest_in_the_chain() {
    let far = Duration::from_secs(3600);
    let (outer, _o) = Context::background().with_timeout(far);
    let (inner, _i) = outer.with_timeout(far * 2);
    assert_eq!(inner.deadline(), outer.deadline());
    let (tighter, _t) = outer.with_timeout(Duration::from_secs(1));
    assert!(tighter.deadline() < outer.deadline());
    assert!(!tighter.is_cancelled());
    let (none, _n) = Context::background().with_timeout(Duration::MAX);
    assert_eq!(none.deadline(), None);
}

#[test]
fn sync_context_background_is_never_done() {
    let p = Probe::new();
    let bg = Context::background();
    assert_eq!(bg.err(), None);
    let mut done = bg.done();
    assert!(p.poll_unpin(&mut done).is_pending());
    assert_eq!(format!("{bg:?}"), "Context::background()");
    assert_eq!(ContextError::Canceled.to_string(), "context canceled");
    assert_eq!(
        ContextError::DeadlineExceeded.to_string(),
        "context deadline exceeded"
    );
}

// ---- Thread-safety of the public types ----

#[test]
fn sync_futures_and_guards_are_send_so_tasks_can_hold_them() {
    use std::cell::Cell;
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    fn send_value<T: Send>(_: &T) {}

    send::<Acquire<'static>>();
    send::<AcquireOwned>();
    send::<SemaphorePermit<'static>>();
    send::<Lock<'static, Vec<u8>>>();
    send::<LockOwned<Vec<u8>>>();
    send::<MutexGuard<'static, Vec<u8>>>();
    sync::<MutexGuard<'static, Vec<u8>>>();
    // `Cell` is `Send` but not `Sync`: a mutex makes it shareable, its guard still moves.
    sync::<Mutex<Cell<u8>>>();
    send::<MutexGuard<'static, Cell<u8>>>();
    send::<OwnedMutexGuard<Cell<u8>>>();
    send::<Read<'static, u8>>();
    send::<Write<'static, u8>>();
    send::<RwLockReadGuard<'static, u8>>();
    send::<RwLockWriteGuard<'static, u8>>();
    send::<Notified<'static>>();
    send::<Wait<'static>>();
    send::<BarrierWait<'static>>();
    send::<Done<'static>>();
    // As before the runtime timer: `ctx.done().catch_unwind()` keeps compiling.
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    unwind_safe::<Done<'static>>();
    send::<Context>();
    sync::<Context>();
    send::<CancelHandle>();
    sync::<WaitGroup>();
    sync::<OnceCell<u8>>();

    let cell = OnceCell::<u8>::new();
    send_value(&cell.get_or_init(|| async { 1 }));
    let once = Once::new();
    send_value(&once.call_once(|| async {}));
}
