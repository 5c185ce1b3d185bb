//! What a blocking task does to its neighbours: a 10 ms ticker shares a one-worker
//! runtime with a task that blocks for 1 s (`std::thread::sleep`, then a busy loop).
//! Prints the ticker's worst gap for gort (monitor on), gort with hand-offs off, and
//! tokio's multi-thread runtime with one worker. `cargo bench --bench blocking_ticker`
//! (about 10 s).
//!
//! The ticker sleeps through the blocking pool of its runtime (`spawn_blocking`) so the
//! same code runs on both runtimes; neither has a timer involved.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);
const BLOCK: Duration = Duration::from_secs(1);

fn block(kind: &str) {
    match kind {
        "sleep" => std::thread::sleep(BLOCK),
        _ => {
            let end = Instant::now() + BLOCK;
            let mut x = 0u64;
            while Instant::now() < end {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
    }
}

fn gort_worst_gap(kind: &'static str, threshold: Duration) -> Duration {
    let rt = gort::Runtime::builder()
        .workers(1)
        .blocking_threshold(threshold)
        .build()
        .expect("gort runtime");
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let ticker = gort::spawn(async move {
            let (mut last, mut worst) = (Instant::now(), Duration::ZERO);
            while !s.load(Ordering::SeqCst) {
                gort::spawn_blocking(|| std::thread::sleep(TICK))
                    .await
                    .expect("tick");
                let now = Instant::now();
                worst = worst.max(now - last);
                last = now;
            }
            worst
        });
        gort::spawn_blocking(|| std::thread::sleep(5 * TICK))
            .await
            .expect("settle");
        gort::spawn(async move { block(kind) })
            .await
            .expect("blocker");
        stop.store(true, Ordering::SeqCst);
        ticker.await.expect("ticker")
    })
}

fn tokio_worst_gap(kind: &'static str) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let ticker = tokio::spawn(async move {
            let (mut last, mut worst) = (Instant::now(), Duration::ZERO);
            while !s.load(Ordering::SeqCst) {
                tokio::task::spawn_blocking(|| std::thread::sleep(TICK))
                    .await
                    .expect("tick");
                let now = Instant::now();
                worst = worst.max(now - last);
                last = now;
            }
            worst
        });
        tokio::task::spawn_blocking(|| std::thread::sleep(5 * TICK))
            .await
            .expect("settle");
        tokio::spawn(async move { block(kind) })
            .await
            .expect("blocker");
        stop.store(true, Ordering::SeqCst);
        ticker.await.expect("ticker")
    })
}

fn main() {
    println!("\n## blocking_ticker: worst gap of a {TICK:?} ticker while a neighbour blocks its only worker for {BLOCK:?}\n");
    println!("| blocker | gort (monitor, 10 ms) | gort (hand-offs off) | tokio (1 worker) |");
    println!("|---|---:|---:|---:|");
    for kind in ["sleep", "busy loop"] {
        eprintln!("blocking_ticker: {kind}");
        let on = gort_worst_gap(kind, Duration::from_millis(10));
        let off = gort_worst_gap(kind, Duration::ZERO);
        let tokio = tokio_worst_gap(kind);
        println!(
            "| {kind} | {:.1} ms | {:.1} ms | {:.1} ms |",
            on.as_secs_f64() * 1e3,
            off.as_secs_f64() * 1e3,
            tokio.as_secs_f64() * 1e3
        );
    }
}
