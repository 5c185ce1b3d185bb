//! Scheduler micro-benchmarks: gort against tokio's multi-thread runtime and OS threads.
//!
//! Every workload is one criterion group with the contenders side by side, so their
//! ratios come from one run on one (noisy, 2-core) machine, as DESIGN.md's benchmark
//! protocol asks:
//!
//! - `spawn_many`: from inside a task, spawn N no-op tasks, then await every handle.
//! - `chained_spawn`: each task spawns the next, N deep; the last reports over a channel.
//! - `yield_many`: T tasks each yield R times.
//!
//! Both runtimes get [`WORKERS`] workers and are built once, outside the timed loop.
//! OS threads run far smaller N (a thread costs microseconds, not nanoseconds), so every
//! benchmark declares `Throughput::Elements(N)` and the per-element times are what compare.
//! Each iteration checks its own result (tasks completed, hops made, yields done) so a
//! broken runtime cannot look fast.
//!
//! Sampling is `Flat` with few samples and a short measurement: one iteration takes tens
//! of milliseconds, and the whole file must finish in a few minutes on 2 cores. After the
//! groups, `summary` prints a Markdown table of criterion's *median* per iteration and per
//! element with the gort/tokio ratio, and writes `rt_summary.svg` next to criterion's data.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use criterion::measurement::WallTime;
use criterion::{criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput};

#[path = "support/chart.rs"]
mod chart;

/// Worker threads for both runtimes: one per core of the benchmark machines.
const WORKERS: usize = 2;
/// `spawn_many` size for the runtimes; 1,000,000 makes one iteration take most of a
/// second, too long for ten samples on 2 cores. Per-element times are what compare.
const SPAWN_TASKS: usize = 100_000;
/// `spawn_many` size for OS threads (`std::thread::spawn` + `join`).
const SPAWN_THREADS: usize = 1_000;
/// `chained_spawn` depth for the runtimes.
const CHAIN_TASKS: usize = 100_000;
/// `chained_spawn` depth for OS threads.
const CHAIN_THREADS: usize = 1_000;
/// `yield_many`: this many tasks ...
const YIELD_TASKS: usize = 1_000;
/// ... each yielding this many times (the same for both runtimes).
const YIELD_ROUNDS: usize = 1_000;
/// How long an iteration may wait for a completion message before the benchmark fails
/// instead of hanging (a healthy iteration takes well under a second).
const DONE_TIMEOUT: Duration = Duration::from_secs(60);

/// Criterion's name for each contender; the summary looks results up by them.
const GORT: &str = "gort";
const TOKIO: &str = "tokio";
const THREADS: &str = "os_threads";

/// When this process started benchmarking: the summary ignores criterion results older
/// than this (left over from an earlier or filtered run).
static START: LazyLock<SystemTime> = LazyLock::new(SystemTime::now);

fn gort_rt() -> gort::Runtime {
    gort::Runtime::builder()
        .workers(WORKERS)
        .build()
        .expect("build gort runtime")
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .build()
        .expect("build tokio runtime")
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    LazyLock::force(&START);
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    g
}

fn elements(n: usize) -> Throughput {
    Throughput::Elements(n as u64)
}

// ---------------------------------------------------------------------------------------
// spawn_many

fn spawn_many(c: &mut Criterion) {
    let mut g = group(c, "spawn_many");

    let rt = gort_rt();
    g.throughput(elements(SPAWN_TASKS));
    g.bench_function(GORT, |b| {
        b.iter(|| {
            let done = rt.block_on(async {
                gort::spawn(async {
                    let handles: Vec<_> = (0..SPAWN_TASKS)
                        .map(|_| gort::spawn(async { 1usize }))
                        .collect();
                    let mut done = 0;
                    for h in handles {
                        done += h.await.expect("no-op task failed");
                    }
                    done
                })
                .await
                .expect("spawner task failed")
            });
            assert_eq!(done, SPAWN_TASKS);
        })
    });
    drop(rt);

    let rt = tokio_rt();
    g.bench_function(TOKIO, |b| {
        b.iter(|| {
            let done = rt.block_on(async {
                tokio::spawn(async {
                    let handles: Vec<_> = (0..SPAWN_TASKS)
                        .map(|_| tokio::spawn(async { 1usize }))
                        .collect();
                    let mut done = 0;
                    for h in handles {
                        done += h.await.expect("no-op task failed");
                    }
                    done
                })
                .await
                .expect("spawner task failed")
            });
            assert_eq!(done, SPAWN_TASKS);
        })
    });
    drop(rt);

    g.throughput(elements(SPAWN_THREADS));
    g.bench_function(THREADS, |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..SPAWN_THREADS)
                .map(|_| std::thread::spawn(|| 1usize))
                .collect();
            let done: usize = handles
                .into_iter()
                .map(|h| h.join().expect("no-op thread failed"))
                .sum();
            assert_eq!(done, SPAWN_THREADS);
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// chained_spawn

/// Runs as task number `hops` of the chain; spawns the next unless `left` is zero, in
/// which case it reports the length of the chain.
fn gort_chain(left: usize, hops: usize, done: mpsc::Sender<usize>) {
    if left == 0 {
        done.send(hops).expect("benchmark stopped waiting");
    } else {
        gort::spawn(async move { gort_chain(left - 1, hops + 1, done) });
    }
}

fn tokio_chain(left: usize, hops: usize, done: mpsc::Sender<usize>) {
    if left == 0 {
        done.send(hops).expect("benchmark stopped waiting");
    } else {
        tokio::spawn(async move { tokio_chain(left - 1, hops + 1, done) });
    }
}

fn thread_chain(left: usize, hops: usize, done: mpsc::Sender<usize>) {
    if left == 0 {
        done.send(hops).expect("benchmark stopped waiting");
    } else {
        std::thread::spawn(move || thread_chain(left - 1, hops + 1, done));
    }
}

/// Starts a chain of `depth` links with `start` (which runs the first link itself) and
/// waits, bounded, for its report.
fn run_chain(depth: usize, start: impl FnOnce(mpsc::Sender<usize>)) {
    let (tx, rx) = mpsc::channel();
    start(tx);
    let hops = rx
        .recv_timeout(DONE_TIMEOUT)
        .expect("chain did not finish in time");
    assert_eq!(hops, depth);
}

fn chained_spawn(c: &mut Criterion) {
    let mut g = group(c, "chained_spawn");

    let rt = gort_rt();
    g.throughput(elements(CHAIN_TASKS));
    g.bench_function(GORT, |b| {
        b.iter(|| {
            run_chain(CHAIN_TASKS, |tx| {
                rt.spawn(async move { gort_chain(CHAIN_TASKS - 1, 1, tx) });
            })
        })
    });
    drop(rt);

    let rt = tokio_rt();
    g.bench_function(TOKIO, |b| {
        b.iter(|| {
            run_chain(CHAIN_TASKS, |tx| {
                rt.spawn(async move { tokio_chain(CHAIN_TASKS - 1, 1, tx) });
            })
        })
    });
    drop(rt);

    g.throughput(elements(CHAIN_THREADS));
    g.bench_function(THREADS, |b| {
        b.iter(|| {
            run_chain(CHAIN_THREADS, |tx| {
                std::thread::spawn(move || thread_chain(CHAIN_THREADS - 1, 1, tx));
            })
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// yield_many
//
// No OS-thread contender: `std::thread::yield_now` is a `sched_yield` that returns at
// once when no other thread is runnable on the core, so it measures a syscall rather than
// a switch to another unit of work, and 1,000 threads would mostly measure spawning.

fn yield_many(c: &mut Criterion) {
    let mut g = group(c, "yield_many");
    g.throughput(elements(YIELD_TASKS * YIELD_ROUNDS));

    let rt = gort_rt();
    g.bench_function(GORT, |b| {
        b.iter(|| {
            let yields = rt.block_on(async {
                let handles: Vec<_> = (0..YIELD_TASKS)
                    .map(|_| {
                        gort::spawn(async {
                            for _ in 0..YIELD_ROUNDS {
                                gort::task::yield_now().await;
                            }
                            YIELD_ROUNDS
                        })
                    })
                    .collect();
                let mut yields = 0;
                for h in handles {
                    yields += h.await.expect("yielding task failed");
                }
                yields
            });
            assert_eq!(yields, YIELD_TASKS * YIELD_ROUNDS);
        })
    });
    drop(rt);

    let rt = tokio_rt();
    g.bench_function(TOKIO, |b| {
        b.iter(|| {
            let yields = rt.block_on(async {
                let handles: Vec<_> = (0..YIELD_TASKS)
                    .map(|_| {
                        tokio::spawn(async {
                            for _ in 0..YIELD_ROUNDS {
                                tokio::task::yield_now().await;
                            }
                            YIELD_ROUNDS
                        })
                    })
                    .collect();
                let mut yields = 0;
                for h in handles {
                    yields += h.await.expect("yielding task failed");
                }
                yields
            });
            assert_eq!(yields, YIELD_TASKS * YIELD_ROUNDS);
        })
    });
    drop(rt);
    g.finish();
}

// ---------------------------------------------------------------------------------------
// summary

/// Every benchmark above with its element count, in table order.
const CASES: [(&str, &str, usize); 8] = [
    ("spawn_many", GORT, SPAWN_TASKS),
    ("spawn_many", TOKIO, SPAWN_TASKS),
    ("spawn_many", THREADS, SPAWN_THREADS),
    ("chained_spawn", GORT, CHAIN_TASKS),
    ("chained_spawn", TOKIO, CHAIN_TASKS),
    ("chained_spawn", THREADS, CHAIN_THREADS),
    ("yield_many", GORT, YIELD_TASKS * YIELD_ROUNDS),
    ("yield_many", TOKIO, YIELD_TASKS * YIELD_ROUNDS),
];

/// Where criterion keeps its data, found the way criterion finds it (short of asking
/// `cargo metadata`: `cargo bench` runs this binary from the workspace root).
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("criterion")
}

/// Criterion's median time per iteration (ns) for one benchmark, if this run measured it.
fn median_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_home()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= *START;
    if !fresh {
        return None;
    }
    // `{"mean":{...},"median":{"confidence_interval":{...},"point_estimate":123.4,...},...}`
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
    json.pointer("/median/point_estimate")?.as_f64()
}

fn summary(_: &mut Criterion) {
    let measured: Vec<_> = CASES
        .iter()
        .filter_map(|&(group, id, n)| Some((group, id, n, median_ns(group, id)?)))
        .collect();
    if measured.is_empty() {
        // Test mode (`cargo test --benches`), a filter that matched nothing, `--list`...
        return;
    }
    let per_element = |group: &str, id: &str| {
        measured
            .iter()
            .find(|m| m.0 == group && m.1 == id)
            .map(|m| m.3 / m.2 as f64)
    };
    println!("\n## rt: criterion medians\n");
    println!("| workload | contender | N | median / iter | median / element | ratio to tokio |");
    println!("|---|---|---:|---:|---:|---:|");
    let mut bars = Vec::new();
    for &(group, id, n, ns) in &measured {
        let each = ns / n as f64;
        let ratio =
            per_element(group, TOKIO).map_or("-".to_owned(), |t| format!("{:.2}", each / t));
        println!(
            "| {group} | {id} | {n} | {:.3} ms | {} ns | {ratio} |",
            ns / 1e6,
            chart::format_value(each)
        );
        bars.push(chart::Bar {
            section: group.to_owned(),
            contender: id.to_owned(),
            value: each,
        });
    }
    let path = criterion_home().join("rt_summary.svg");
    let svg = chart::svg("rt: median time per element", "ns", &bars);
    match std::fs::write(&path, svg) {
        Ok(()) => println!("\nchart: {}", path.display()),
        Err(err) => eprintln!("could not write {}: {err}", path.display()),
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Every group in order, then the summary; what `criterion_group!` would write, by hand
/// so that the function carries a doc comment.
fn benches() {
    let mut c = config().configure_from_args();
    spawn_many(&mut c);
    chained_spawn(&mut c);
    yield_many(&mut c);
    summary(&mut c);
}

criterion_main!(benches);
