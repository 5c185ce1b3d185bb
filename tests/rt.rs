//! The runtime core's behaviour: spawning, joining, aborting, panics, shutdown,
//! fairness, stealing and the blocking pool.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{flag, forever, panic_message, watchdog};
use gort::Runtime;

fn rt(workers: usize) -> Runtime {
    Runtime::builder().workers(workers).build().unwrap()
}

fn wait_no_alive_tasks(rt: &Runtime) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.metrics().num_alive_tasks() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rt.metrics().num_alive_tasks(), 0);
}

#[test]
fn rt_spawn_returns_output() {
    let _w = watchdog!(20);
    let rt = rt(2);
    let out = rt.block_on(async { gort::spawn(async { 40 + 2 }).await.unwrap() });
    assert_eq!(out, 42);
}

#[test]
fn rt_one_million_tasks_complete() {
    let _w = watchdog!(120);
    const N: usize = 1_000_000;
    let rt = rt(2);
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let sum = rt.block_on(async move {
        gort::spawn(async move {
            let handles: Vec<_> = (0..N)
                .map(|i| {
                    let d = d.clone();
                    gort::spawn(async move {
                        d.fetch_add(1, Ordering::Relaxed);
                        i as u64
                    })
                })
                .collect();
            let mut sum = 0u64;
            for h in handles {
                sum += h.await.unwrap();
            }
            sum
        })
        .await
        .unwrap()
    });
    assert_eq!(done.load(Ordering::Relaxed), N);
    assert_eq!(sum, (N as u64 - 1) * N as u64 / 2);
    // The outer task leaves the task list just after it wakes its joiner.
    wait_no_alive_tasks(&rt);
}

#[test]
fn rt_nested_spawns_complete() {
    let _w = watchdog!(30);
    fn tree(depth: u32) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>> {
        Box::pin(async move {
            if depth == 0 {
                return 1;
            }
            let a = gort::spawn(tree(depth - 1));
            let b = gort::spawn(tree(depth - 1));
            a.await.unwrap() + b.await.unwrap()
        })
    }
    let rt = rt(2);
    assert_eq!(rt.block_on(tree(12)), 1 << 12);
}

#[test]
fn rt_chained_spawn_deep() {
    let _w = watchdog!(30);
    fn chain(n: usize, tx: mpsc::Sender<()>) {
        if n == 0 {
            tx.send(()).unwrap();
            return;
        }
        gort::spawn(async move { chain(n - 1, tx) });
    }
    let rt = rt(2);
    let (tx, rx) = mpsc::channel();
    rt.spawn(async move { chain(100_000, tx) });
    rx.recv_timeout(Duration::from_secs(20)).unwrap();
}

#[test]
fn rt_handle_spawns_from_foreign_thread() {
    let _w = watchdog!(20);
    let rt = rt(2);
    let handle = rt.handle().clone();
    let out = std::thread::spawn(move || {
        let h = handle.spawn(async { gort::spawn(async { 7 }).await.unwrap() * 6 });
        // A plain thread may wait for a task with the handle's block_on.
        handle.block_on(h).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(out, 42);

    // `enter` makes the free function work on a foreign thread.
    let _g = rt.enter();
    let h = gort::spawn(async { 1 });
    assert_eq!(rt.block_on(h).unwrap(), 1);
}

#[test]
fn rt_spawn_outside_runtime_panics_with_guidance() {
    let err = std::panic::catch_unwind(|| {
        gort::spawn(async {});
    })
    .unwrap_err();
    let msg = panic_message(&*err);
    assert!(msg.contains("no current runtime"), "{msg}");
    assert!(msg.contains("#[gort::main]"), "{msg}");
}

#[test]
fn rt_block_on_inside_runtime_is_refused() {
    let _w = watchdog!(20);
    let rt = rt(1);
    let err = rt
        .block_on(async {
            gort::spawn(async {
                gort::Handle::current().block_on(async {});
            })
            .await
        })
        .unwrap_err();
    let msg = panic_message(&*err.into_panic());
    assert!(
        msg.contains("cannot block_on from inside a gort runtime"),
        "{msg}"
    );

    // block_on inside block_on as well.
    let handle = rt.handle().clone();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async move { handle.block_on(async {}) })
    }))
    .unwrap_err();
    assert!(panic_message(&*err).contains("cannot block_on"));
}

#[test]
fn rt_panic_in_task_is_caught_and_worker_survives() {
    let _w = watchdog!(20);
    let rt = rt(1);
    rt.block_on(async {
        let err = gort::spawn(async {
            panic!("boom");
        })
        .await
        .unwrap_err();
        assert!(err.is_panic() && !err.is_cancelled());
        assert!(err.to_string().contains("boom"), "{err}");
        assert_eq!(panic_message(&*err.into_panic()), "boom");
        // The single worker is still there.
        assert_eq!(gort::spawn(async { 5 }).await.unwrap(), 5);
    });
}

struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("drop boom");
        }
    }
}

#[test]
fn rt_panic_in_task_drop_is_caught() {
    let _w = watchdog!(20);
    let rt = rt(1);
    rt.block_on(async {
        // The future's Drop panics when it completes.
        let err = gort::spawn(async {
            let _p = PanicOnDrop;
        })
        .await
        .unwrap_err();
        assert!(err.is_panic());

        // ... and when it is aborted (after its first poll created the guard).
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let h = gort::spawn(async move {
            let _p = PanicOnDrop;
            s.store(true, Ordering::SeqCst);
            forever().await
        });
        while !started.load(Ordering::SeqCst) {
            gort::task::yield_now().await;
        }
        h.abort();
        assert!(h.await.unwrap_err().is_panic());

        // An output whose Drop panics, never read.
        drop(gort::spawn(async { PanicOnDrop }));
        gort::task::yield_now().await;

        assert_eq!(gort::spawn(async { 1 }).await.unwrap(), 1);
    });
}

#[test]
fn rt_panic_in_spawn_blocking_is_join_error() {
    let _w = watchdog!(20);
    let rt = rt(1);
    rt.block_on(async {
        let err = gort::spawn_blocking(|| panic!("blocking boom"))
            .await
            .unwrap_err();
        assert!(err.is_panic());
        assert_eq!(panic_message(&*err.into_panic()), "blocking boom");
        assert_eq!(gort::spawn_blocking(|| 3).await.unwrap(), 3);
    });
}

#[test]
fn rt_abort_before_first_poll() {
    let _w = watchdog!(20);
    let rt = rt(1);
    rt.block_on(async {
        gort::spawn(async {
            let polled = Arc::new(AtomicBool::new(false));
            let p = polled.clone();
            let (dropped, guard) = flag();
            // Spawned from the only worker: it cannot run before we yield.
            let h = gort::spawn(async move {
                let _g = guard;
                p.store(true, Ordering::SeqCst);
            });
            h.abort();
            let err = h.await.unwrap_err();
            assert!(err.is_cancelled());
            assert!(!polled.load(Ordering::SeqCst));
            assert!(dropped.load(Ordering::SeqCst));
        })
        .await
        .unwrap();
    });
}

#[test]
fn rt_abort_while_pending_drops_future() {
    let _w = watchdog!(20);
    let rt = rt(2);
    rt.block_on(async {
        let (dropped, guard) = flag();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let h = gort::spawn(async move {
            let _g = guard;
            s.store(true, Ordering::SeqCst);
            forever().await
        });
        while !started.load(Ordering::SeqCst) {
            gort::task::yield_now().await;
        }
        let abort = h.abort_handle();
        abort.abort();
        let err = h.await.unwrap_err();
        assert!(err.is_cancelled(), "{err:?}");
        assert!(dropped.load(Ordering::SeqCst));
        assert!(abort.is_finished());
    });
}

#[test]
fn rt_abort_after_completion_keeps_output() {
    let _w = watchdog!(20);
    let rt = rt(2);
    rt.block_on(async {
        let h = gort::spawn(async { "done" });
        while !h.is_finished() {
            gort::task::yield_now().await;
        }
        h.abort();
        assert_eq!(h.await.unwrap(), "done");
    });
}

#[test]
fn rt_abort_races_completion_many_times() {
    let _w = watchdog!(60);
    let rt = rt(2);
    rt.block_on(async {
        for i in 0..10_000u32 {
            let h = gort::spawn(async move {
                if i % 2 == 0 {
                    gort::task::yield_now().await;
                }
                i
            });
            if i % 3 == 0 {
                gort::task::yield_now().await;
            }
            h.abort();
            match h.await {
                Ok(v) => assert_eq!(v, i),
                Err(e) => assert!(e.is_cancelled()),
            }
        }
    });
    wait_no_alive_tasks(&rt);
}

#[test]
fn rt_dropped_join_handle_detaches() {
    let _w = watchdog!(20);
    let rt = rt(2);
    let (tx, rx) = mpsc::channel();
    rt.block_on(async move {
        drop(gort::spawn(async move {
            gort::task::yield_now().await;
            tx.send(9).unwrap();
        }));
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 9);
}

#[test]
fn rt_shutdown_drops_pending_futures_and_returns() {
    let _w = watchdog!(30);
    let rt = rt(2);
    let mut flags = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..1000 {
        let (dropped, guard) = flag();
        flags.push(dropped);
        handles.push(rt.spawn(async move {
            let _g = guard;
            forever().await
        }));
    }
    // Some never polled, some parked on a waker nobody holds.
    rt.block_on(gort::task::yield_now());
    // A task whose Drop spawns must not panic or hang shutdown.
    rt.spawn(async {
        struct SpawnOnDrop;
        impl Drop for SpawnOnDrop {
            fn drop(&mut self) {
                drop(gort::spawn(async {}));
            }
        }
        let _s = SpawnOnDrop;
        forever().await
    });
    drop(rt);
    assert!(flags.iter().all(|f| f.load(Ordering::SeqCst)));
    let rt2 = Runtime::builder().workers(1).build().unwrap();
    for h in handles {
        assert!(rt2.block_on(h).unwrap_err().is_cancelled());
    }
}

#[test]
fn rt_shutdown_timeout_is_bounded_by_blocking_work() {
    let _w = watchdog!(30);
    let rt = rt(1);
    let (tx, rx) = mpsc::channel::<()>();
    rt.spawn_blocking(move || {
        // Blocks until the test ends (the sender is dropped).
        let _ = rx.recv();
    });
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(100));
    assert!(start.elapsed() < Duration::from_secs(5));
    drop(tx);
}

#[test]
fn rt_yield_now_lets_others_run() {
    let _w = watchdog!(20);
    let rt = rt(1);
    rt.block_on(async {
        gort::spawn(async {
            let flag = Arc::new(AtomicBool::new(false));
            let f = flag.clone();
            gort::spawn(async move { f.store(true, Ordering::SeqCst) });
            // On one worker, the other task only runs if we yield.
            while !flag.load(Ordering::SeqCst) {
                gort::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    });
}

#[test]
fn rt_coop_budget_preempts_always_ready_task() {
    let _w = watchdog!(20);
    let rt = rt(1);
    rt.block_on(async {
        gort::spawn(async {
            let flag = Arc::new(AtomicBool::new(false));
            let f = flag.clone();
            gort::spawn(async move { f.store(true, Ordering::SeqCst) });
            // Never awaits anything that is pending by itself; only the budget makes
            // room for the other task.
            let mut spins = 0u64;
            while !flag.load(Ordering::SeqCst) {
                gort::task::consume_budget().await;
                spins += 1;
            }
            assert!(spins >= 1);
        })
        .await
        .unwrap();
    });
}

#[test]
fn rt_lifo_ping_pong_does_not_starve_queue() {
    let _w = watchdog!(20);
    use futures::channel::mpsc::unbounded;
    use futures::StreamExt;
    let rt = rt(1);
    rt.block_on(async {
        gort::spawn(async {
            let (a_tx, mut a_rx) = unbounded::<u32>();
            let (b_tx, mut b_rx) = unbounded::<u32>();
            let stop = Arc::new(AtomicBool::new(false));
            let (s1, s2) = (stop.clone(), stop.clone());
            let a_tx2 = a_tx.clone();
            // Two tasks that wake each other forever: each wake lands in the LIFO slot.
            gort::spawn(async move {
                while let Some(v) = a_rx.next().await {
                    if s1.load(Ordering::SeqCst) {
                        break;
                    }
                    let _ = b_tx.unbounded_send(v + 1);
                }
            });
            gort::spawn(async move {
                while let Some(v) = b_rx.next().await {
                    if s2.load(Ordering::SeqCst) {
                        break;
                    }
                    let _ = a_tx2.unbounded_send(v + 1);
                }
            });
            a_tx.unbounded_send(0).unwrap();
            // This task sits in the run queue; it must still get its turn.
            gort::spawn(async move { stop.store(true, Ordering::SeqCst) })
                .await
                .unwrap();
            drop(a_tx);
        })
        .await
        .unwrap();
    });
}

#[test]
fn rt_idle_worker_steals_from_busy_one() {
    let _w = watchdog!(30);
    let rt = rt(2);
    rt.block_on(async {
        gort::spawn(async {
            let done = Arc::new(AtomicUsize::new(0));
            for _ in 0..10 {
                let d = done.clone();
                gort::spawn(async move {
                    d.fetch_add(1, Ordering::SeqCst);
                });
            }
            // Block this worker: its queued tasks (all but the LIFO one) can only run if
            // the other worker steals them.
            let deadline = Instant::now() + Duration::from_secs(10);
            while done.load(Ordering::SeqCst) < 9 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            assert!(done.load(Ordering::SeqCst) >= 9, "no stealing happened");
        })
        .await
        .unwrap();
    });
}

#[test]
fn rt_waker_will_wake_same_task() {
    let _w = watchdog!(20);
    let rt = rt(1);
    rt.block_on(async {
        gort::spawn(async {
            let w1 = std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await;
            gort::task::yield_now().await;
            let w2 = std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await;
            assert!(w1.will_wake(&w2));
            let other = gort::spawn(async {
                std::future::poll_fn(|cx| std::task::Poll::Ready(cx.waker().clone())).await
            })
            .await
            .unwrap();
            assert!(!w1.will_wake(&other));
        })
        .await
        .unwrap();
    });
}

#[test]
fn rt_blocking_pool_caps_and_retires_threads() {
    let _w = watchdog!(30);
    let rt = Runtime::builder()
        .workers(1)
        .max_blocking_threads(2)
        .thread_keep_alive(Duration::from_millis(100))
        .build()
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (running, peak) = (running.clone(), peak.clone());
                gort::spawn_blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(
        peak.load(Ordering::SeqCst),
        2,
        "the cap was not reached or exceeded"
    );
    assert!(rt.metrics().num_blocking_threads() <= 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.metrics().num_blocking_threads() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        rt.metrics().num_blocking_threads(),
        0,
        "idle threads did not retire"
    );
}

#[test]
fn rt_abort_queued_blocking_task_cancels_it() {
    let _w = watchdog!(20);
    let rt = Runtime::builder()
        .workers(1)
        .max_blocking_threads(1)
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, rx) = mpsc::channel::<()>();
        let busy = gort::spawn_blocking(move || rx.recv().ok());
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let queued = gort::spawn_blocking(move || r.store(true, Ordering::SeqCst));
        queued.abort();
        tx.send(()).unwrap();
        busy.await.unwrap();
        assert!(queued.await.unwrap_err().is_cancelled());
        assert!(!ran.load(Ordering::SeqCst));
    });
}

#[test]
fn rt_worker_count_and_thread_name_apply() {
    let _w = watchdog!(20);
    let rt = Runtime::builder()
        .workers(3)
        .thread_name("custom-name")
        .build()
        .unwrap();
    assert_eq!(rt.metrics().num_workers(), 3);
    let name = rt.block_on(async {
        gort::spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap()
    });
    assert_eq!(name.as_deref(), Some("custom-name"));
}

#[gort::test(workers = 1)]
async fn rt_test_macro_runs_on_a_runtime() {
    assert_eq!(gort::Handle::current().metrics().num_workers(), 1);
    assert_eq!(gort::spawn(async { 2 }).await.unwrap(), 2);
}

#[gort::test]
async fn rt_test_macro_supports_question_mark() -> Result<(), std::io::Error> {
    let v = gort::spawn(async { 3 }).await?;
    assert_eq!(v, 3);
    Ok(())
}

/// A blocking closure waiting in `Handle::block_on` for a timer while the runtime
/// drops: the workers that turned the reactor are gone, so the dropping thread turns it,
/// the timer fires, the closure returns, and so does the drop.
#[test]
fn rt_drop_returns_while_a_blocking_closure_sleeps_in_block_on() {
    let _w = watchdog!(30);
    let rt = Runtime::builder().workers(2).build().unwrap();
    let handle = rt.handle().clone();
    let (started_tx, started) = std::sync::mpsc::channel();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        handle.block_on(gort::time::sleep(Duration::from_millis(300)));
        d.store(true, Ordering::SeqCst);
    });
    started.recv().unwrap();
    let t = Instant::now();
    drop(rt);
    assert!(
        done.load(Ordering::SeqCst),
        "drop returned before the closure"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

/// `shutdown_timeout` bounds the same wait.
#[test]
fn rt_shutdown_timeout_bounds_a_blocking_closure_in_block_on() {
    let _w = watchdog!(30);
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handle = rt.handle().clone();
    let (started_tx, started) = std::sync::mpsc::channel();
    rt.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        handle.block_on(gort::time::sleep(Duration::from_secs(3)));
    });
    started.recv().unwrap();
    let t = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(200));
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// A blocking closure that owns the runtime and drops it: the drop does not wait for
/// the closure's own thread.
#[test]
fn rt_drop_from_a_blocking_closure_returns() {
    let _w = watchdog!(30);
    let rt = Runtime::builder().workers(2).build().unwrap();
    let handle = rt.handle().clone();
    // A task that is cancelled by the drop, and a second blocking closure it waits for.
    let (pending_dropped, guard) = common::flag();
    rt.spawn(async move {
        let _g = guard;
        common::forever().await;
    });
    let other = Arc::new(AtomicBool::new(false));
    let o = other.clone();
    rt.spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(100));
        o.store(true, Ordering::SeqCst);
    });
    let (tx, rx) = std::sync::mpsc::channel();
    handle.spawn_blocking(move || {
        drop(rt);
        tx.send(()).unwrap();
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("dropping the runtime from its own blocking pool hung");
    assert!(pending_dropped.load(Ordering::SeqCst));
    assert!(
        other.load(Ordering::SeqCst),
        "the other closure was not waited for"
    );
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`): the
/// shutdown tests wait on the reactor's timers.
#[test]
fn rt_every_test_again_on_io_uring() {
    let _w = watchdog!(240);
    common::rerun_all_on_io_uring("rt_every_test_again_on_io_uring");
}

/// A task stuck in its poll on a std channel whose sender is a blocking closure
/// waiting on a timer: while the drop waits for the stuck worker, it turns the
/// reactor, the timer fires, the closure sends, the poll returns, the drop returns.
#[test]
fn rt_drop_returns_while_a_stuck_poll_waits_on_a_closure_waiting_on_a_timer() {
    let _w = watchdog!(30);
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handle = rt.handle().clone();
    let (tx, rx) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    rt.spawn(async move {
        started_tx.send(()).unwrap();
        let _ = rx.recv();
    });
    started.recv().unwrap();
    let (running_tx, running) = mpsc::channel::<()>();
    rt.spawn_blocking(move || {
        running_tx.send(()).unwrap();
        handle.block_on(gort::time::sleep(Duration::from_millis(200)));
        let _ = tx.send(());
    });
    // Running, so the drop cannot cancel it (and drop the sender) instead.
    running.recv().unwrap();
    let t = Instant::now();
    drop(rt);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(100),
        "the closure was not waited for"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}
