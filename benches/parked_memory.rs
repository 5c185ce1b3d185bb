//! Resident memory per parked task: gort against tokio's multi-thread runtime and OS
//! threads (a plain `main`, no criterion: this measures bytes, not time).
//!
//! Each measurement runs in a child process (this executable re-run with
//! `--child CONTENDER`), so every one starts from a clean heap. The child builds its
//! runtime, reads `VmRSS` from `/proc/self/status`, starts N units that each park on a
//! channel receiver, waits until every unit has run up to its park (an atomic counter
//! bumped just before it blocks), reads `VmRSS` again and prints `(after - before) / N`.
//! Then it drops the senders, so every unit finishes, and exits.
//!
//! - gort and tokio (both [`WORKERS`] workers): N tasks, each awaiting a
//!   `futures::channel::oneshot::Receiver<()>`; the senders stay in a `Vec` owned by the
//!   spawning (`block_on`) code. The delta therefore includes, per task, the task itself,
//!   its oneshot channel, one `Sender` slot in the `Vec`, and the scheduler's queue
//!   space; the `JoinHandle`s are dropped (the tasks are detached).
//! - OS threads: N threads with the default stack, each blocked on a
//!   `std::sync::mpsc::Receiver<()>`; the delta includes the touched stack pages, the
//!   thread's TLS and bookkeeping, its channel and its `JoinHandle`. It does not include
//!   the kernel's own per-thread memory (kernel stack, `task_struct`), which `VmRSS`
//!   does not count, so it understates what a thread costs.
//!
//! The parent runs every contender [`ROUNDS`] times, alternating, and prints a Markdown
//! table of the medians (DESIGN.md's benchmark protocol) and writes an SVG chart.
//! Everything is bounded: a child that does not finish within [`CHILD_TIMEOUT`] is killed
//! and its run reported as failed.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures::channel::oneshot;

#[path = "support/chart.rs"]
mod chart;

/// Worker threads for both runtimes: one per core of the benchmark machines.
const WORKERS: usize = 2;
/// Parked tasks per runtime measurement.
const TASKS: usize = 1_000_000;
/// Parked threads per OS-thread measurement (10,000 default stacks stay well inside the
/// default `vm.max_map_count` and thread limits).
const THREADS: usize = 10_000;
/// Runs per contender; the table reports the median.
const ROUNDS: usize = 3;
/// How long a child may wait for its units to park before giving up.
const PARK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the parent lets a child run before killing it (spawning plus parking plus
/// teardown take a few seconds at most).
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);
/// How often waiters check their condition.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// The line a child prints its result on: `RESULT <n> <bytes per unit>`.
const RESULT_TAG: &str = "RESULT";

#[derive(Clone, Copy, PartialEq)]
enum Contender {
    Gort,
    Tokio,
    Threads,
}

impl Contender {
    const ALL: [Contender; 3] = [Contender::Gort, Contender::Tokio, Contender::Threads];

    fn name(self) -> &'static str {
        match self {
            Contender::Gort => "gort",
            Contender::Tokio => "tokio",
            Contender::Threads => "os_threads",
        }
    }

    fn units(self) -> usize {
        match self {
            Contender::Gort | Contender::Tokio => TASKS,
            Contender::Threads => THREADS,
        }
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; only `--child NAME` selects the child role.
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--child") {
        Some(i) => {
            let name = args.get(i + 1).map(String::as_str).unwrap_or("");
            match Contender::ALL.into_iter().find(|c| c.name() == name) {
                Some(c) => child(c),
                None => {
                    eprintln!("unknown contender {name:?}");
                    ExitCode::FAILURE
                }
            }
        }
        None => parent(),
    }
}

// ---------------------------------------------------------------------------------------
// child

/// This process's resident set size in bytes, from `/proc/self/status`.
fn vm_rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

/// Waits until `parked` reaches `n`, or fails after [`PARK_TIMEOUT`].
fn wait_parked(parked: &AtomicUsize, n: usize) -> Result<(), String> {
    let deadline = Instant::now() + PARK_TIMEOUT;
    loop {
        let now = parked.load(Ordering::Acquire);
        if now == n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "only {now} of {n} units parked in {PARK_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Waits until `finished` reaches `n` after the senders dropped, so the run checks that
/// every unit really was parked on its own channel and woke from it.
fn wait_finished(finished: &AtomicUsize, n: usize) -> Result<(), String> {
    wait_parked(finished, n).map_err(|e| format!("after waking: {e}"))
}

fn child(c: Contender) -> ExitCode {
    let n = c.units();
    let parked = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let result = match c {
        Contender::Gort => {
            let rt = gort::Runtime::builder()
                .workers(WORKERS)
                .build()
                .expect("build gort runtime");
            // Warm up: the first task brings up whatever the runtime allocates lazily.
            rt.block_on(async { gort::spawn(async {}).await.expect("warm-up task") });
            let before = vm_rss();
            let senders = rt.block_on(async {
                (0..n)
                    .map(|_| {
                        let (tx, rx) = oneshot::channel::<()>();
                        let (parked, finished) = (parked.clone(), finished.clone());
                        gort::spawn(async move {
                            parked.fetch_add(1, Ordering::Release);
                            // Woken by the sender's drop: `Err(Canceled)`.
                            let _ = rx.await;
                            finished.fetch_add(1, Ordering::Release);
                        });
                        tx
                    })
                    .collect::<Vec<_>>()
            });
            measure(before, n, &parked, &finished, senders)
        }
        Contender::Tokio => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .build()
                .expect("build tokio runtime");
            rt.block_on(async { tokio::spawn(async {}).await.expect("warm-up task") });
            let before = vm_rss();
            let senders = rt.block_on(async {
                (0..n)
                    .map(|_| {
                        let (tx, rx) = oneshot::channel::<()>();
                        let (parked, finished) = (parked.clone(), finished.clone());
                        tokio::spawn(async move {
                            parked.fetch_add(1, Ordering::Release);
                            let _ = rx.await;
                            finished.fetch_add(1, Ordering::Release);
                        });
                        tx
                    })
                    .collect::<Vec<_>>()
            });
            measure(before, n, &parked, &finished, senders)
        }
        Contender::Threads => {
            let before = vm_rss();
            let mut senders = Vec::with_capacity(n);
            let mut handles = Vec::with_capacity(n);
            for _ in 0..n {
                let (tx, rx) = mpsc::channel::<()>();
                let (parked, finished) = (parked.clone(), finished.clone());
                handles.push(std::thread::spawn(move || {
                    parked.fetch_add(1, Ordering::Release);
                    // Woken by the sender's drop: `Err(RecvError)`.
                    let _ = rx.recv();
                    finished.fetch_add(1, Ordering::Release);
                }));
                senders.push(tx);
            }
            let result = measure(before, n, &parked, &finished, senders);
            for h in handles {
                h.join().expect("parked thread panicked");
            }
            result
        }
    };
    match result {
        Ok(per_unit) => {
            println!("{RESULT_TAG} {n} {per_unit:.1}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{}: {err}", c.name());
            ExitCode::FAILURE
        }
    }
}

/// Waits for the `n` units to park, reads the RSS growth since `before`, then releases
/// them by dropping `senders` and checks that they all finish. Returns bytes per unit.
fn measure<S>(
    before: usize,
    n: usize,
    parked: &AtomicUsize,
    finished: &AtomicUsize,
    senders: Vec<S>,
) -> Result<f64, String> {
    wait_parked(parked, n)?;
    let after = vm_rss();
    if finished.load(Ordering::Acquire) != 0 {
        return Err("a unit finished while its sender was alive".to_owned());
    }
    drop(senders);
    wait_finished(finished, n)?;
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

// ---------------------------------------------------------------------------------------
// parent

/// Runs one child measurement, bounded by [`CHILD_TIMEOUT`].
fn run_child(c: Contender) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(["--child", c.name()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn child: {e}"))?;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        match child.try_wait().map_err(|e| format!("wait: {e}"))? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("killed after {CHILD_TIMEOUT:?}"));
            }
            None => std::thread::sleep(POLL_INTERVAL),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .map_err(|e| format!("read child output: {e}"))?;
    }
    if !status.success() {
        return Err(format!("child exited with {status}"));
    }
    let fields: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_TAG))
        .ok_or_else(|| format!("no result line in {out:?}"))?
        .split_whitespace()
        .collect();
    match fields.as_slice() {
        [n, bytes] if n.parse() == Ok(c.units()) => bytes
            .parse()
            .map_err(|e| format!("bad result {bytes:?}: {e}")),
        _ => Err(format!("bad result line in {out:?}")),
    }
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    match xs.len() {
        0 => None,
        len if len % 2 == 1 => Some(xs[mid]),
        _ => Some((xs[mid - 1] + xs[mid]) / 2.0),
    }
}

fn parent() -> ExitCode {
    let started = Instant::now();
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); Contender::ALL.len()];
    let mut failed = false;
    for round in 1..=ROUNDS {
        for (i, c) in Contender::ALL.into_iter().enumerate() {
            match run_child(c) {
                Ok(bytes) => {
                    println!(
                        "round {round}: {:<10} N={:<9} {bytes:.1} bytes/unit",
                        c.name(),
                        c.units()
                    );
                    runs[i].push(bytes);
                }
                Err(err) => {
                    eprintln!("round {round}: {} failed: {err}", c.name());
                    failed = true;
                }
            }
        }
    }

    let medians: Vec<Option<f64>> = runs.iter().cloned().map(median).collect();
    let tokio_median = medians[1];
    println!("\n## parked_memory: resident bytes per parked unit (median of {ROUNDS})\n");
    println!("| contender | N | median bytes/unit | ratio to tokio | runs |");
    println!("|---|---:|---:|---:|---|");
    let mut bars = Vec::new();
    for (i, c) in Contender::ALL.into_iter().enumerate() {
        let runs_text: Vec<String> = runs[i].iter().map(|b| format!("{b:.0}")).collect();
        let (m, ratio) = match (medians[i], tokio_median) {
            (Some(m), Some(t)) if t > 0.0 => (format!("{m:.0}"), format!("{:.2}", m / t)),
            (Some(m), _) => (format!("{m:.0}"), "-".to_owned()),
            (None, _) => ("failed".to_owned(), "-".to_owned()),
        };
        println!(
            "| {} | {} | {m} | {ratio} | {} |",
            c.name(),
            c.units(),
            runs_text.join(", ")
        );
        if let Some(m) = medians[i] {
            bars.push(chart::Bar {
                section: "parked".to_owned(),
                contender: c.name().to_owned(),
                value: m,
            });
        }
    }
    println!(
        "\n(os_threads: per thread, user-space RSS only; total {:.1?})",
        started.elapsed()
    );

    if !bars.is_empty() {
        let path = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from)
            .join("parked_memory.svg");
        let svg = chart::svg("parked_memory: RSS per parked unit", "bytes", &bars);
        match std::fs::write(&path, svg) {
            Ok(()) => println!("chart: {}", path.display()),
            Err(err) => eprintln!("could not write {}: {err}", path.display()),
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
