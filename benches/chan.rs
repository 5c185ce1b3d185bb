//! Channel benchmarks: gort's channels against tokio's `mpsc`, `async-channel` (on
//! tokio) and `std::sync::mpsc` with OS threads.
//!
//! - `ping_pong`: two parties, N round trips over a pair of channels of capacity 0
//!   (Go's unbuffered) or 1. tokio's `mpsc` has no capacity 0; `async-channel` neither.
//! - `mpmc`: 4 producers × 4 consumers, M messages in all, capacity 0, 1 and 1024.
//!   `std::sync::mpsc` has one consumer, so its four consumer threads share the
//!   receiver behind a mutex.
//!
//! Protocol (DESIGN.md): every contender runs once per round, in the same order each
//! round, for `ROUNDS` rounds; the table gives the median per operation and the ratio
//! to tokio (ping_pong) or to the best other contender (mpmc). Every run checks its
//! result (the sum of what was received), so a broken channel cannot look fast.
//! `cargo bench --bench chan` (about a minute); `-- --quick` for a smoke-sized pass.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "support/chart.rs"]
mod chart;

const WORKERS: usize = 2;
const PRODUCERS: u64 = 4;
const CONSUMERS: u64 = 4;

struct Sizes {
    rounds: usize,
    ping_pongs: u64,
    messages: u64,
}

fn gort_rt() -> gort::Runtime {
    gort::Runtime::builder()
        .workers(WORKERS)
        .build()
        .expect("gort runtime")
}

/// gort without the reactor (workers park on a condition variable), to show what
/// parking in epoll costs on workloads that do no I/O.
fn gort_rt_no_reactor() -> gort::Runtime {
    gort::Runtime::builder()
        .workers(WORKERS)
        .park_with(|_| Ok(Box::new(gort::runtime::ThreadParker::new())))
        .build()
        .expect("gort runtime")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .build()
        .expect("tokio runtime")
}

fn timed(f: impl FnOnce() -> u64, expect: u64) -> Duration {
    let start = Instant::now();
    let got = f();
    let elapsed = start.elapsed();
    assert_eq!(got, expect, "wrong result: the benchmark is broken");
    elapsed
}

// ----- ping_pong -----

fn gort_ping_pong(rt: &gort::Runtime, cap: usize, n: u64) -> u64 {
    rt.block_on(async move {
        let (to_b, from_a) = gort::chan::bounded::<u64>(cap);
        let (to_a, from_b) = gort::chan::bounded::<u64>(cap);
        let b = gort::spawn(async move {
            while let Some(v) = from_a.recv().await {
                to_a.send(v + 1).await.expect("a is listening");
            }
        });
        let a = gort::spawn(async move {
            let mut sum = 0;
            for i in 0..n {
                to_b.send(i).await.expect("b is listening");
                sum += from_b.recv().await.expect("b answers") - i;
            }
            sum
        });
        let sum = a.await.expect("a");
        b.await.expect("b");
        sum
    })
}

fn tokio_ping_pong(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    rt.block_on(async move {
        let (to_b, mut from_a) = tokio::sync::mpsc::channel::<u64>(1);
        let (to_a, mut from_b) = tokio::sync::mpsc::channel::<u64>(1);
        let b = tokio::spawn(async move {
            while let Some(v) = from_a.recv().await {
                to_a.send(v + 1).await.expect("a is listening");
            }
        });
        let a = tokio::spawn(async move {
            let mut sum = 0;
            for i in 0..n {
                to_b.send(i).await.expect("b is listening");
                sum += from_b.recv().await.expect("b answers") - i;
            }
            sum
        });
        let sum = a.await.expect("a");
        b.await.expect("b");
        sum
    })
}

fn async_channel_ping_pong(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    rt.block_on(async move {
        let (to_b, from_a) = async_channel::bounded::<u64>(1);
        let (to_a, from_b) = async_channel::bounded::<u64>(1);
        let b = tokio::spawn(async move {
            while let Ok(v) = from_a.recv().await {
                to_a.send(v + 1).await.expect("a is listening");
            }
        });
        let a = tokio::spawn(async move {
            let mut sum = 0;
            for i in 0..n {
                to_b.send(i).await.expect("b is listening");
                sum += from_b.recv().await.expect("b answers") - i;
            }
            sum
        });
        let sum = a.await.expect("a");
        b.await.expect("b");
        sum
    })
}

fn std_ping_pong(cap: usize, n: u64) -> u64 {
    let (to_b, from_a) = std::sync::mpsc::sync_channel::<u64>(cap);
    let (to_a, from_b) = std::sync::mpsc::sync_channel::<u64>(cap);
    let b = std::thread::spawn(move || {
        while let Ok(v) = from_a.recv() {
            to_a.send(v + 1).expect("a is listening");
        }
    });
    let mut sum = 0;
    for i in 0..n {
        to_b.send(i).expect("b is listening");
        sum += from_b.recv().expect("b answers") - i;
    }
    drop(to_b);
    b.join().expect("b");
    sum
}

// ----- mpmc -----

fn expected_sum(m: u64) -> u64 {
    m * (m - 1) / 2
}

fn gort_mpmc(rt: &gort::Runtime, cap: usize, m: u64) -> u64 {
    rt.block_on(async move {
        let (tx, rx) = gort::chan::bounded::<u64>(cap);
        let per = m / PRODUCERS;
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            gort::spawn(async move {
                for i in 0..per {
                    tx.send(p * per + i).await.expect("consumers alive");
                }
            });
        }
        drop(tx);
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let rx = rx.clone();
                gort::spawn(async move {
                    let mut sum = 0;
                    while let Some(v) = rx.recv().await {
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        drop(rx);
        let mut sum = 0;
        for c in consumers {
            sum += c.await.expect("consumer");
        }
        sum
    })
}

fn async_channel_mpmc(rt: &tokio::runtime::Runtime, cap: usize, m: u64) -> u64 {
    rt.block_on(async move {
        let (tx, rx) = async_channel::bounded::<u64>(cap);
        let per = m / PRODUCERS;
        for p in 0..PRODUCERS {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    tx.send(p * per + i).await.expect("consumers alive");
                }
            });
        }
        drop(tx);
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let mut sum = 0;
                    while let Ok(v) = rx.recv().await {
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        drop(rx);
        let mut sum = 0;
        for c in consumers {
            sum += c.await.expect("consumer");
        }
        sum
    })
}

fn std_mpmc(cap: usize, m: u64) -> u64 {
    let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(cap);
    let rx = Arc::new(Mutex::new(rx));
    let per = m / PRODUCERS;
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    tx.send(p * per + i).expect("consumers alive");
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                let mut sum = 0;
                loop {
                    let next = rx.lock().expect("no panics").recv();
                    match next {
                        Ok(v) => sum += v,
                        Err(_) => return sum,
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().expect("producer");
    }
    consumers
        .into_iter()
        .map(|c| c.join().expect("consumer"))
        .sum()
}

// ----- harness -----

/// (workload, contender, nanoseconds per operation of each round)
type Results = Vec<(String, String, Vec<f64>)>;

fn record(results: &mut Results, workload: &str, contender: &str, ns: f64) {
    match results
        .iter_mut()
        .find(|(w, c, _)| w == workload && c == contender)
    {
        Some((_, _, v)) => v.push(ns),
        None => results.push((workload.to_owned(), contender.to_owned(), vec![ns])),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            rounds: 1,
            ping_pongs: 2_000,
            messages: 4_000,
        }
    } else {
        Sizes {
            rounds: 5,
            ping_pongs: 100_000,
            messages: 400_000,
        }
    };
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |w: &str| filter.as_deref().is_none_or(|f| w.contains(f));
    let grt = gort_rt();
    let grt_plain = gort_rt_no_reactor();
    let trt = tokio_rt();
    let mut results: Results = Vec::new();
    let n = sizes.ping_pongs;
    let m = sizes.messages;

    for round in 0..sizes.rounds {
        eprintln!("round {}/{}", round + 1, sizes.rounds);
        for cap in [0usize, 1] {
            let w = format!("ping_pong cap {cap}");
            if !wanted(&w) {
                continue;
            }
            let per = |d: Duration| d.as_nanos() as f64 / n as f64;
            record(
                &mut results,
                &w,
                "gort",
                per(timed(|| gort_ping_pong(&grt, cap, n), n)),
            );
            record(
                &mut results,
                &w,
                "gort, no reactor",
                per(timed(|| gort_ping_pong(&grt_plain, cap, n), n)),
            );
            if cap == 1 {
                record(
                    &mut results,
                    &w,
                    "tokio mpsc",
                    per(timed(|| tokio_ping_pong(&trt, n), n)),
                );
                record(
                    &mut results,
                    &w,
                    "async-channel",
                    per(timed(|| async_channel_ping_pong(&trt, n), n)),
                );
            }
            record(
                &mut results,
                &w,
                "std mpsc + threads",
                per(timed(|| std_ping_pong(cap, n), n)),
            );
        }
        for cap in [0usize, 1, 1024] {
            let w = format!("mpmc 4x4 cap {cap}");
            if !wanted(&w) {
                continue;
            }
            let per = |d: Duration| d.as_nanos() as f64 / m as f64;
            let want = expected_sum(m);
            record(
                &mut results,
                &w,
                "gort",
                per(timed(|| gort_mpmc(&grt, cap, m), want)),
            );
            if cap > 0 {
                record(
                    &mut results,
                    &w,
                    "async-channel",
                    per(timed(|| async_channel_mpmc(&trt, cap, m), want)),
                );
            }
            record(
                &mut results,
                &w,
                "std mpsc + threads",
                per(timed(|| std_mpmc(cap, m), want)),
            );
        }
    }

    println!(
        "\n## chan: median ns per operation ({} rounds, {WORKERS} workers)\n",
        sizes.rounds
    );
    println!("| workload | contender | median ns/op | gort ÷ this |");
    println!("|---|---|---:|---:|");
    let mut bars = Vec::new();
    for (w, c, v) in &results {
        let med = median(v);
        let gort = results
            .iter()
            .find(|(w2, c2, _)| w2 == w && c2 == "gort")
            .map(|(_, _, v)| median(v))
            .unwrap_or(f64::NAN);
        println!("| {w} | {c} | {med:.0} | {:.2} |", gort / med);
        bars.push(chart::Bar {
            section: w.clone(),
            contender: c.clone(),
            value: med,
        });
    }
    if !quick {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let path = dir.join("chan_bench.svg");
        if std::fs::create_dir_all(&dir).is_ok()
            && std::fs::write(
                &path,
                chart::svg(
                    "gort channels: ns per operation (lower is better)",
                    "ns",
                    &bars,
                ),
            )
            .is_ok()
        {
            println!("\nchart: {}", path.display());
        }
    }
}
