//! Timers: `sleep`, `timeout`, `interval` on the reactor.

mod common;

use std::time::{Duration, Instant};

use common::watchdog;
use gort::time;

#[gort::test(workers = 2, timeout = 20)]
async fn time_sleep_waits_at_least_its_duration() {
    let start = Instant::now();
    time::sleep(Duration::from_millis(30)).await;
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(30), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[gort::test(workers = 2, timeout = 20)]
async fn time_timers_fire_in_deadline_order() {
    let (tx, rx) = gort::chan::unbounded::<u64>();
    for ms in [50u64, 10, 40, 20, 30] {
        let tx = tx.clone();
        gort::spawn(async move {
            time::sleep(Duration::from_millis(ms)).await;
            tx.send(ms).await.unwrap();
        });
    }
    drop(tx);
    let mut got = Vec::new();
    while let Some(v) = rx.recv().await {
        got.push(v);
    }
    assert_eq!(got, [10, 20, 30, 40, 50]);
}

#[gort::test(workers = 2, timeout = 20)]
async fn time_timeout_cancels_the_slow_future() {
    let slow = time::timeout(
        Duration::from_millis(20),
        time::sleep(Duration::from_secs(10)),
    )
    .await;
    assert!(slow.is_err());
    let fast = time::timeout(Duration::from_secs(10), async { 5 }).await;
    assert_eq!(fast, Ok(5));
}

#[test]
fn time_dropped_sleeps_leave_no_timers() {
    let _w = watchdog!(20);
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(async {
        for _ in 0..1000 {
            let _ = time::timeout(
                Duration::from_millis(1),
                time::sleep(Duration::from_secs(60)),
            )
            .await;
        }
    });
    assert_eq!(rt.reactor().unwrap().num_timers(), 0);
}

#[test]
fn time_100k_concurrent_sleeps_complete() {
    let _w = watchdog!(60);
    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    let n = rt.block_on(async {
        let handles: Vec<_> = (0..100_000u64)
            .map(|i| {
                gort::spawn(async move { time::sleep(Duration::from_millis(10 + i % 50)).await })
            })
            .collect();
        let mut n = 0;
        for h in handles {
            h.await.unwrap();
            n += 1;
        }
        n
    });
    assert_eq!(n, 100_000);
    assert_eq!(rt.reactor().unwrap().num_timers(), 0);
}

#[gort::test(workers = 1, timeout = 20)]
async fn time_interval_ticks_and_skips_missed_ticks() {
    let period = Duration::from_millis(10);
    let mut iv = time::interval(period);
    let first = iv.tick().await;
    let second = iv.tick().await;
    assert_eq!(second - first, period);
    // Fall behind by 5.5 periods: the missed tick comes at once, but only one of them.
    // A catching-up interval would then hand out the other four at once, scheduled
    // one period apart; a skipping one waits for the next multiple of the period.
    // (Scheduled instants, not wall-clock times: nothing here depends on load.)
    std::thread::sleep(Duration::from_millis(55));
    let late = iv.tick().await;
    let after = iv.tick().await;
    assert_eq!(late - second, period, "the missed tick is the one due");
    assert!(
        after - late >= 4 * period,
        "missed ticks were handed out in a burst: {:?} after the late one",
        after - late
    );
}

/// A `sync::Context` deadline awaited in a task, as a server's request handler does:
/// it wakes on the runtime's own timers (a timer is pending in the reactor while it
/// waits), on time, and no private deadline thread is started for it.
#[test]
fn time_context_deadline_runs_on_the_runtime_timers() {
    let _w = watchdog!(20);
    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    let reactor = rt.reactor().expect("a runtime with the reactor").clone();
    rt.block_on(async move {
        let (tx, rx) = gort::chan::bounded::<()>(0);
        let handler = gort::spawn(async move {
            // Before the context: its deadline is 150 ms after its creation.
            let start = Instant::now();
            let (ctx, _cancel) =
                gort::sync::Context::background().with_timeout(Duration::from_millis(150));
            // The other branch never completes: only the deadline can end this.
            let err = gort::select! {
                err = ctx.done() => err,
                _ = rx.recv() => unreachable!("nobody sends"),
            };
            (err, start.elapsed())
        });
        time::sleep(Duration::from_millis(50)).await;
        assert!(
            reactor.num_timers() >= 1,
            "the deadline waits on the reactor's timers"
        );
        let (err, took) = handler.await.unwrap();
        drop(tx);
        assert_eq!(err, gort::sync::ContextError::DeadlineExceeded);
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    });
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    assert!(
        !threads.iter().any(|n| n == "gort-sync-deadline"),
        "a private deadline thread started: {threads:?}"
    );
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn time_every_test_again_on_io_uring() {
    let _w = watchdog!(240);
    common::rerun_all_on_io_uring("time_every_test_again_on_io_uring");
}
