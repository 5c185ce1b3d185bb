//! `gort::sync` on the real runtime: mutual exclusion and FIFO fairness under many
//! tasks, cancel safety under churn, RwLock sharing and writer progress, WaitGroup,
//! Once/OnceCell under concurrent callers, Barrier generations, Notify permits, and
//! Context trees with cancellation and deadlines.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use common::{panic_message, watchdog};
use futures::FutureExt;
use gort::sync::{
    Barrier, Context, ContextError, Mutex, Notify, Once, OnceCell, RwLock, Semaphore, WaitGroup,
};
use gort::task::yield_now;

/// Polls each future once, in order, from the calling task (so they queue in that
/// order, with this task's waker).
async fn poll_each_once<F: Future + Unpin>(futs: &mut [F]) {
    std::future::poll_fn(|cx: &mut TaskContext<'_>| {
        for f in futs.iter_mut() {
            assert!(Pin::new(f).poll(cx).is_pending(), "expected to wait");
        }
        Poll::Ready(())
    })
    .await
}

#[gort::test(workers = 2, timeout = 30)]
async fn sync_mutex_counter_10000_increments_across_50_tasks() {
    const TASKS: usize = 50;
    const EACH: usize = 200;
    let counter = Arc::new(Mutex::new(0usize));
    let inside = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            let (counter, inside) = (counter.clone(), inside.clone());
            gort::spawn(async move {
                for i in 0..EACH {
                    let mut g = counter.lock().await;
                    assert!(!inside.swap(true, Ordering::SeqCst), "two holders");
                    let v = *g;
                    if i % 16 == 0 {
                        yield_now().await; // hold the lock across a suspension
                    }
                    *g = v + 1;
                    inside.store(false, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*counter.lock().await, TASKS * EACH);
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_mutex_waiters_acquire_in_arrival_order() {
    const WAITERS: usize = 32;
    let m = Arc::new(Mutex::new(Vec::new()));
    let held = m.lock().await;
    let mut futs: Vec<_> = (0..WAITERS).map(|_| m.clone().lock_owned()).collect();
    poll_each_once(&mut futs).await;
    // Hand each queued future to its own task: they now wake different tasks, on
    // either worker, in whatever order the scheduler likes.
    let handles: Vec<_> = futs
        .into_iter()
        .enumerate()
        .map(|(i, fut)| {
            gort::spawn(async move {
                let mut g = fut.await;
                g.push(i);
                yield_now().await;
            })
        })
        .collect();
    for _ in 0..10 {
        yield_now().await;
    }
    drop(held);
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(*m.lock().await, (0..WAITERS).collect::<Vec<_>>());
}

#[gort::test(workers = 2, timeout = 30)]
async fn sync_dropped_lock_and_acquire_futures_lose_no_permits() {
    const PERMITS: usize = 3;
    const TASKS: usize = 8;
    const ROUNDS: usize = 2_000;
    let sem = Arc::new(Semaphore::new(PERMITS));
    let m = Arc::new(Mutex::new(0u64));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let (sem, m) = (sem.clone(), m.clone());
            gort::spawn(async move {
                for i in 0..ROUNDS {
                    match (t + i) % 4 {
                        // Start, poll once (queueing with this task's waker), drop.
                        0 => {
                            let mut a = sem.acquire_many(2);
                            let mut l = m.lock();
                            std::future::poll_fn(|cx| {
                                let _ = Pin::new(&mut a).poll(cx);
                                let _ = Pin::new(&mut l).poll(cx);
                                Poll::Ready(())
                            })
                            .await;
                            yield_now().await; // a release may grant them meanwhile
                        }
                        // Poll once with a no-op waker and drop.
                        1 => {
                            let _ = sem.acquire().now_or_never();
                            let _ = m.lock().now_or_never();
                        }
                        // Really acquire, hold across a yield, release.
                        2 => {
                            let p = sem.acquire().await.unwrap();
                            yield_now().await;
                            drop(p);
                        }
                        _ => {
                            *m.lock().await += 1;
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(sem.available_permits(), PERMITS);
    assert_eq!(sem.num_waiters(), 0);
    assert!(m.try_lock().is_ok(), "the mutex was left locked");
    // And both still work.
    drop(sem.acquire_many(PERMITS).await.unwrap());
    drop(m.lock().await);
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_rwlock_readers_share_and_writers_are_exclusive() {
    const READERS: usize = 8;
    let lock = Arc::new(RwLock::new(0usize));
    // Every reader waits at the barrier while holding its read guard: only possible if
    // the reads are shared.
    let all_in = Arc::new(Barrier::new(READERS));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (lock, all_in) = (lock.clone(), all_in.clone());
            gort::spawn(async move {
                let g = lock.read().await;
                all_in.wait().await;
                *g
            })
        })
        .collect();
    for r in readers {
        assert_eq!(r.await.unwrap(), 0);
    }
    let active = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..READERS)
        .map(|i| {
            let (lock, active) = (lock.clone(), active.clone());
            gort::spawn(async move {
                for _ in 0..100 {
                    if i % 2 == 0 {
                        let mut g = lock.write().await;
                        assert_eq!(active.fetch_add(1, Ordering::SeqCst), 0, "writer not alone");
                        *g += 1;
                        yield_now().await;
                        active.fetch_sub(1, Ordering::SeqCst);
                    } else {
                        let g = lock.read().await;
                        let _ = *g;
                        yield_now().await;
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(*lock.read().await, READERS / 2 * 100);
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_rwlock_writer_is_not_starved_by_a_stream_of_readers() {
    const READERS: usize = 4;
    /// Each reader stops after this many reads; a starved writer would see them all.
    const READS_EACH: usize = 100_000;
    let lock = Arc::new(RwLock::new(()));
    let written = Arc::new(AtomicBool::new(false));
    let reads_before_write = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (lock, written, before) =
                (lock.clone(), written.clone(), reads_before_write.clone());
            gort::spawn(async move {
                for _ in 0..READS_EACH {
                    if written.load(Ordering::SeqCst) {
                        return;
                    }
                    // Overlapping readers: each takes its guard and yields holding it,
                    // so some reader is always inside.
                    let g = lock.read().await;
                    before.fetch_add(1, Ordering::Relaxed);
                    yield_now().await;
                    drop(g);
                }
            })
        })
        .collect();
    // Let the stream start.
    while reads_before_write.load(Ordering::Relaxed) < READERS * 10 {
        yield_now().await;
    }
    let g = lock.write().await;
    written.store(true, Ordering::SeqCst);
    drop(g);
    for r in readers {
        r.await.unwrap();
    }
    let reads = reads_before_write.load(Ordering::Relaxed);
    assert!(
        reads < READERS * READS_EACH,
        "the writer only got in after every reader had finished ({reads} reads)"
    );
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_wait_group_waits_for_n_tasks() {
    const TASKS: usize = 100;
    let wg = WaitGroup::new();
    let finished = Arc::new(AtomicUsize::new(0));
    for i in 0..TASKS {
        wg.add(1);
        let (wg, finished) = (wg.clone(), finished.clone());
        gort::spawn(async move {
            for _ in 0..(i % 7) {
                yield_now().await;
            }
            finished.fetch_add(1, Ordering::SeqCst);
            wg.done();
        });
    }
    // Several waiters, one of them in another task.
    let other = {
        let (wg, finished) = (wg.clone(), finished.clone());
        gort::spawn(async move {
            wg.wait().await;
            finished.load(Ordering::SeqCst)
        })
    };
    wg.wait().await;
    assert_eq!(finished.load(Ordering::SeqCst), TASKS);
    assert_eq!(other.await.unwrap(), TASKS);
}

#[gort::test(timeout = 20)]
async fn sync_wait_group_negative_counter_panics() {
    let wg = WaitGroup::new();
    let err = gort::spawn(async move { wg.done() }).await.unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        panic_message(&*err.into_panic()),
        "sync: negative WaitGroup counter"
    );
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_once_runs_once_under_100_concurrent_callers() {
    const CALLERS: usize = 100;
    let once = Arc::new(Once::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (once, runs) = (once.clone(), runs.clone());
            gort::spawn(async move {
                let r = runs.clone();
                once.call_once(|| async move {
                    for _ in 0..5 {
                        yield_now().await; // others arrive meanwhile
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                })
                .await;
                // Nobody returns before the action completed.
                assert_eq!(runs.load(Ordering::SeqCst), 1);
                assert!(once.is_completed());
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_once_cell_get_or_init_runs_one_initialiser() {
    const CALLERS: usize = 100;
    let cell = Arc::new(OnceCell::new());
    let inits = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (cell, inits) = (cell.clone(), inits.clone());
            gort::spawn(async move {
                *cell
                    .get_or_init(|| async move {
                        inits.fetch_add(1, Ordering::SeqCst);
                        yield_now().await;
                        i
                    })
                    .await
            })
        })
        .collect();
    let mut seen = Vec::new();
    for h in handles {
        seen.push(h.await.unwrap());
    }
    assert_eq!(inits.load(Ordering::SeqCst), 1);
    assert!(seen.iter().all(|v| Some(v) == cell.get()));
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_barrier_releases_all_with_one_leader_per_generation() {
    const TASKS: usize = 10;
    const GENERATIONS: usize = 20;
    let barrier = Arc::new(Barrier::new(TASKS));
    let leaders: Arc<Vec<AtomicUsize>> =
        Arc::new((0..GENERATIONS).map(|_| AtomicUsize::new(0)).collect());
    let arrived: Arc<Vec<AtomicUsize>> =
        Arc::new((0..GENERATIONS).map(|_| AtomicUsize::new(0)).collect());
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            let (barrier, leaders, arrived) = (barrier.clone(), leaders.clone(), arrived.clone());
            gort::spawn(async move {
                for g in 0..GENERATIONS {
                    arrived[g].fetch_add(1, Ordering::SeqCst);
                    let r = barrier.wait().await;
                    // Released only once every task arrived in this generation.
                    assert_eq!(arrived[g].load(Ordering::SeqCst), TASKS);
                    if r.is_leader() {
                        leaders[g].fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    for (g, l) in leaders.iter().enumerate() {
        assert_eq!(l.load(Ordering::SeqCst), 1, "generation {g}");
    }
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_notify_permit_and_broadcast_semantics() {
    let n = Arc::new(Notify::new());
    // A notify_one before anyone waits is kept as the (single) permit.
    n.notify_one();
    n.notify_one();
    n.notified().await;
    assert!(n.notified().now_or_never().is_none(), "only one permit");
    // notify_one wakes one waiter at a time.
    const WAITERS: usize = 5;
    let woken = Arc::new(AtomicUsize::new(0));
    let mut futs: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (n, woken) = (n.clone(), woken.clone());
            Box::pin(async move {
                n.notified().await;
                woken.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    poll_each_once(&mut futs).await;
    let handles: Vec<_> = futs.into_iter().map(gort::spawn).collect();
    n.notify_one();
    while woken.load(Ordering::SeqCst) < 1 {
        yield_now().await;
    }
    for _ in 0..20 {
        yield_now().await;
    }
    assert_eq!(woken.load(Ordering::SeqCst), 1);
    // notify_waiters wakes the rest and stores nothing.
    n.notify_waiters();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(woken.load(Ordering::SeqCst), WAITERS);
    assert!(n.notified().now_or_never().is_none());
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_context_cancel_propagates_to_children_and_grandchildren() {
    let (root, cancel) = Context::background().with_cancel();
    let mut waiters = Vec::new();
    for _ in 0..4 {
        let (child, _h) = root.with_cancel();
        for _ in 0..4 {
            let (grandchild, _g) = child.with_cancel();
            waiters.push(gort::spawn(async move { grandchild.done().await }));
        }
        waiters.push(gort::spawn(async move { child.done().await }));
    }
    for _ in 0..10 {
        yield_now().await;
    }
    assert!(waiters.iter().all(|w| !w.is_finished()));
    cancel.cancel();
    for w in waiters {
        assert_eq!(w.await.unwrap(), ContextError::Canceled);
    }
    assert_eq!(root.err(), Some(ContextError::Canceled));
    assert_eq!(root.num_children(), 0);
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_context_dropped_children_unregister_from_a_long_lived_parent() {
    let (parent, _cancel) = Context::background().with_cancel();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let parent = parent.clone();
            gort::spawn(async move {
                for _ in 0..1_000 {
                    let (child, _h) = parent.with_timeout(Duration::from_secs(60));
                    let (grandchild, _g) = child.with_cancel();
                    // Park on it once (registers a deadline timer), then give up.
                    let _ = grandchild.done().now_or_never();
                    yield_now().await;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(parent.num_children(), 0);
    assert_eq!(parent.err(), None);
}

#[gort::test(workers = 2, timeout = 20)]
async fn sync_context_done_wakes_at_the_deadline() {
    const TIMEOUT: Duration = Duration::from_millis(50);
    let start = Instant::now();
    let (ctx, _h) = Context::background().with_timeout(TIMEOUT);
    let (child, _c) = ctx.with_cancel();
    assert_eq!(ctx.err(), None);
    // Nothing else polls `child`: only the deadline timer can wake it.
    let waiter = gort::spawn(async move { child.done().await });
    assert_eq!(waiter.await.unwrap(), ContextError::DeadlineExceeded);
    assert!(start.elapsed() >= TIMEOUT);
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    assert!(ctx.is_cancelled());
}

#[test]
fn sync_context_deadline_reported_once_passed() {
    let _w = watchdog!(20);
    const TIMEOUT: Duration = Duration::from_millis(20);
    let deadline = Instant::now() + TIMEOUT;
    let (ctx, cancel) = Context::background().with_deadline(deadline);
    let (child, _c) = ctx.with_cancel();
    assert_eq!(ctx.deadline(), Some(deadline));
    assert_eq!(child.deadline(), Some(deadline));
    assert_eq!(ctx.err(), None);
    std::thread::sleep(TIMEOUT);
    assert_eq!(child.err(), Some(ContextError::DeadlineExceeded));
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
    cancel.cancel(); // too late to change the reason
    assert_eq!(ctx.err(), Some(ContextError::DeadlineExceeded));
}

/// A `done()` parked inside a runtime (its deadline on the runtime's timers), then
/// moved out and awaited on a plain thread after the runtime is gone: the deadline
/// still ends the wait (the shared deadline thread takes over; the runtime's timer is
/// cancelled and does not keep the dropped runtime's reactor alive).
#[test]
#[allow(clippy::async_yields_async)] // handing the parked future out is the point
fn sync_context_done_moved_out_of_its_runtime_still_meets_its_deadline() {
    let _w = watchdog!(20);
    let (ctx, _cancel) = Context::background().with_timeout(Duration::from_millis(200));
    let ctx = &ctx;
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    let reactor = rt.reactor().expect("the reactor").clone();
    let mut done = rt.block_on(async move {
        let mut done = Box::pin(ctx.done());
        assert!(futures::poll!(done.as_mut()).is_pending());
        assert!(reactor.num_timers() >= 1, "parked on the runtime's timers");
        done
    });
    drop(rt);
    let start = Instant::now();
    let err = futures::executor::block_on(done.as_mut());
    assert_eq!(err, ContextError::DeadlineExceeded);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}
