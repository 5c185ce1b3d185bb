//! `JoinSet` and `Group` (errgroup), as a server's code uses them.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{flag, forever};
use gort::sync::{Context, Group};
use gort::task::JoinSet;

#[gort::test(workers = 2, timeout = 30)]
async fn join_set_returns_outputs_in_the_order_tasks_finish() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let mut set = JoinSet::new();
        for ms in [400u64, 10, 200] {
            set.spawn(async move {
                gort::time::sleep(Duration::from_millis(ms)).await;
                ms
            });
        }
        assert_eq!(set.len(), 3);
        assert!(set.try_join_next().is_none(), "nothing has finished yet");
        let mut order = Vec::new();
        while let Some(res) = set.join_next().await {
            order.push(res.unwrap());
        }
        assert_eq!(order, [10, 200, 400]);
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 30)]
async fn join_set_aborts_its_tasks_on_drop() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let mut dropped = Vec::new();
        let mut set = JoinSet::new();
        for _ in 0..10 {
            let (seen, guard) = flag();
            dropped.push(seen);
            set.spawn(async move {
                let _guard = guard;
                forever().await;
            });
        }
        gort::task::yield_now().await;
        drop(set);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dropped.iter().all(|f| f.load(Ordering::SeqCst)) {
            assert!(Instant::now() < deadline, "tasks outlived their JoinSet");
            gort::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 30)]
async fn join_set_abort_all_and_shutdown() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let mut set = JoinSet::new();
        let quick = set.spawn(async { 1 });
        for _ in 0..5 {
            set.spawn(async {
                forever().await;
                2
            });
        }
        while !quick.is_finished() {
            gort::task::yield_now().await;
        }
        set.abort_all();
        let (mut ok, mut cancelled) = (0, 0);
        while let Some(res) = set.join_next().await {
            match res {
                Ok(1) => ok += 1,
                Err(e) if e.is_cancelled() => cancelled += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((ok, cancelled), (1, 5));

        for _ in 0..3 {
            set.spawn(async {
                forever().await;
                0
            });
        }
        gort::time::timeout(Duration::from_secs(5), set.shutdown())
            .await
            .unwrap();
        assert!(set.is_empty());
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 60)]
async fn join_set_with_many_tasks_and_a_panic() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let mut set = JoinSet::new();
        for i in 0..10_000u64 {
            set.spawn(async move {
                if i % 7 == 0 {
                    gort::task::yield_now().await;
                }
                i
            });
        }
        let mut sum = 0;
        while let Some(res) = set.join_next().await {
            sum += res.unwrap();
        }
        assert_eq!(sum, 10_000 * 9_999 / 2);

        let mut set = JoinSet::new();
        set.spawn(async { panic!("boom") });
        set.spawn_blocking(|| ());
        let mut panics = 0;
        while let Some(res) = set.join_next().await {
            if let Err(e) = res {
                assert!(e.is_panic());
                panics += 1;
            }
        }
        assert_eq!(panics, 1);
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 30)]
async fn group_first_error_cancels_the_context_at_once_and_wait_returns_it() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let (mut group, ctx) = Group::<String>::with_context(&Context::background());
        let started = Instant::now();
        let stopped_at = Arc::new(std::sync::Mutex::new(Vec::new()));
        for _ in 0..4 {
            let ctx = ctx.clone();
            let stopped_at = stopped_at.clone();
            group.spawn(async move {
                // Workers that would run for a minute unless told to stop.
                gort::select! {
                    _ = ctx.done() => stopped_at.lock().unwrap().push(started.elapsed()),
                    _ = gort::time::sleep(Duration::from_secs(60)) => {}
                }
                Ok(())
            });
        }
        group.spawn(async {
            gort::time::sleep(Duration::from_millis(30)).await;
            Err("fetch failed".to_owned())
        });
        group.spawn(async {
            gort::time::sleep(Duration::from_millis(300)).await;
            Err("second error".to_owned())
        });
        let res = group.wait().await;
        assert_eq!(res, Err("fetch failed".to_owned()));
        assert!(ctx.is_cancelled());
        // Stopped by the first error (at 30 ms), not by `wait` ending (after the second
        // error, at 300 ms).
        let stopped_at = stopped_at.lock().unwrap().clone();
        assert_eq!(stopped_at.len(), 4);
        for t in stopped_at {
            assert!(
                t < Duration::from_millis(250),
                "a worker stopped only at {t:?}"
            );
        }
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 30)]
async fn group_without_errors_and_with_a_panic() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let mut group = Group::<std::io::Error>::new();
        let n = Arc::new(AtomicUsize::new(0));
        for _ in 0..100 {
            let n = n.clone();
            group.spawn(async move {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            });
        }
        group.wait().await.unwrap();
        assert_eq!(n.load(Ordering::SeqCst), 100);

        let (mut group, ctx) = Group::<()>::with_context(&Context::background());
        group.spawn(async { panic!("worker panicked") });
        let waiter = ctx.clone();
        group.spawn(async move {
            waiter.done().await; // cancelled by the panic
            Ok(())
        });
        let res = gort::spawn(group.wait()).await;
        let err = res.unwrap_err();
        assert!(err.is_panic());
        assert_eq!(common::panic_message(&*err.into_panic()), "worker panicked");
        assert!(ctx.is_cancelled());
    })
    .await
    .unwrap();
}
