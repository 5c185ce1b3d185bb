//! `cargo run --release -p gort-bench [-- --quick] [WORKLOAD...]`: gort on io_uring and
//! on epoll, tokio's multi-thread runtime (same worker count) and OS threads (and, on
//! the channel workloads, gort without its reactor), side by side on eleven workloads,
//! several alternating repetitions, medians and ratios.
//!
//! Every measurement runs in a child process (this binary with `--child`), so each
//! starts from a fresh heap and its peak RSS is its own; echo and churn start one more
//! process for the server (`--server`, pinned to core 0) while the child that loads it
//! pins itself to core 1. The echo servers and the load client are the ones
//! `benches/echo.rs` and `examples/echo_load.rs` use (`benches/support/`); the http
//! servers and the `wrk`/`h2load` runs are in `http.rs`.
//!
//! A workload is one [`Workload`] in `workloads::WORKLOADS`: its name, description,
//! columns, variants, the [`Contender`]s in its table (and, per variant, those without
//! a counterpart) and the function its child runs. Adding one is adding an entry there.
//!
//! Output: progress on stderr; a Markdown table on stdout and in
//! `target/gort-bench/results.md`; one SVG chart per workload beside it.

#[path = "../../benches/support/chart.rs"]
mod chart;
#[path = "../../benches/support/echo_client.rs"]
mod echo_client;
#[path = "../../benches/support/echo_servers.rs"]
mod echo_servers;
mod heap;
mod http;
mod workloads;

#[global_allocator]
static HEAP: heap::Counting = heap::Counting;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use workloads::WORKLOADS;

/// A contender: a runtime (or OS threads) that runs the workloads.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Contender {
    /// gort on io_uring.
    GortUring,
    /// gort on epoll.
    GortEpoll,
    /// tokio's multi-thread runtime.
    Tokio,
    /// One OS thread per unit of work.
    Threads,
    /// gort without the reactor: its workers park on a condition variable (no
    /// `gort::net`, no `gort::time`), to show what parking in the reactor costs where
    /// no I/O is done. Only the channel workloads run it.
    GortNoReactor,
}

impl Contender {
    /// Every contender, in the order the tables list them.
    pub const ALL: [Contender; 5] = [
        Contender::GortUring,
        Contender::GortEpoll,
        Contender::Tokio,
        Contender::Threads,
        Contender::GortNoReactor,
    ];

    /// Its name in the tables, in `--child` and in `--server` kinds.
    pub fn name(self) -> &'static str {
        match self {
            Contender::GortUring => "gort-uring",
            Contender::GortEpoll => "gort-epoll",
            Contender::Tokio => "tokio",
            Contender::Threads => "threads",
            Contender::GortNoReactor => "gort-noreactor",
        }
    }

    /// The contender called `name`.
    pub fn from_name(name: &str) -> Option<Contender> {
        Contender::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Contender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How big a pass is.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Size {
    /// The pass the README's figures come from: every workload, three repetitions.
    Full,
    /// One repetition of every workload, for a look while you work.
    Quick,
    /// The test suite's pass: every code path, tiny counts.
    Smoke,
}

/// A child's answer: metric name → value (the first is the primary metric).
pub type Metrics = Vec<(String, f64)>;

/// One workload: everything the harness needs to run it and to print its table. The
/// table of them is [`WORKLOADS`], in the order of the report.
pub struct Workload {
    /// Its name on the command line, after `--child`, and in its table's heading.
    pub name: &'static str,
    /// What it measures: the heading's sentence.
    pub description: &'static str,
    /// Its table's metric columns, the primary metric (charted, compared) first; the
    /// child prints its metrics in this order.
    pub columns: &'static [&'static str],
    /// Whether a bigger primary metric is better (a rate) rather than worse (a cost).
    pub higher_is_better: bool,
    /// The contenders in its table, in the order they run (reversed every other
    /// repetition).
    pub contenders: &'static [Contender],
    /// Its variants in a pass of this size, given `RLIMIT_NOFILE`'s hard limit (a
    /// variant that cannot run here is left out, with a line on stderr saying why).
    pub variants: fn(Size, u64) -> Vec<Variant>,
    /// Measures one variant for one contender, in the child process, from the
    /// variant's `args`.
    pub run: fn(Contender, &[String]) -> io::Result<Metrics>,
}

/// One variant of a workload: a group of rows in its table.
pub struct Variant {
    /// The variant column.
    pub label: String,
    /// What the child's `run` gets after the contender.
    pub args: Vec<String>,
    /// Contenders of the workload without a counterpart in this variant: nothing runs,
    /// their row says so.
    pub no_counterpart: &'static [Contender],
}

/// What one contender gave for one variant over the repetitions.
enum Outcome {
    /// One set of metrics per repetition so far.
    Samples(Vec<Metrics>),
    /// The variant has no counterpart for the contender.
    NoCounterpart,
    /// A repetition failed (and the rest were not kept).
    Failed(String),
}

/// (workload index, variant) → contender → what it gave.
type Results = BTreeMap<(usize, String), BTreeMap<Contender, Outcome>>;

/// One measurement to run: a workload and its variant, for each contender in turn.
struct Job {
    workload: usize,
    variant: Variant,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--server") {
        let kind = args.get(1).map_or("gort-epoll", String::as_str);
        let served = if kind.starts_with("http-") {
            http::serve(kind)
        } else {
            echo_servers::serve(kind)
        };
        if let Err(e) = served {
            eprintln!("server {kind}: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--child") {
        match child(&args[1..]) {
            Ok(m) => {
                for (k, v) in m {
                    println!("{k}={v}");
                }
            }
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1);
            }
        }
        return;
    }
    if let Err(e) = run(&args) {
        eprintln!("gort-bench: {e}");
        std::process::exit(1);
    }
}

/// `--child WORKLOAD CONTENDER ARGS...`: one measurement.
fn child(args: &[String]) -> io::Result<Metrics> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    let workload = args.first().ok_or_else(|| bad("no workload"))?;
    let w = WORKLOADS
        .iter()
        .find(|w| w.name == workload)
        .ok_or_else(|| bad(&format!("unknown workload {workload}")))?;
    let contender = args.get(1).ok_or_else(|| bad("no contender"))?;
    let c = Contender::from_name(contender)
        .filter(|c| w.contenders.contains(c))
        .ok_or_else(|| bad(&format!("{workload} has no contender {contender}")))?;
    (w.run)(c, &args[2..])
}

fn names() -> String {
    WORKLOADS
        .iter()
        .map(|w| w.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn run(args: &[String]) -> io::Result<()> {
    let mut size = Size::Full;
    let mut filters = Vec::new();
    for a in args {
        match a.as_str() {
            "--quick" => size = Size::Quick,
            "--smoke" => size = Size::Smoke,
            "-h" | "--help" => {
                println!(
                    "usage: gort-bench [--quick] [WORKLOAD...]\nworkloads: {}",
                    names()
                );
                return Ok(());
            }
            w if WORKLOADS.iter().any(|wl| wl.name == w) => filters.push(w.to_owned()),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("unknown argument {other:?}; workloads: {}", names()),
                ))
            }
        }
    }
    let nofile = workloads::raise_nofile();
    let reps = match size {
        Size::Full => 3,
        Size::Quick | Size::Smoke => 1,
    };
    let jobs: Vec<Job> = WORKLOADS
        .iter()
        .enumerate()
        .filter(|(_, w)| filters.is_empty() || filters.iter().any(|f| f == w.name))
        .flat_map(|(i, w)| {
            (w.variants)(size, nofile)
                .into_iter()
                .map(move |variant| Job {
                    workload: i,
                    variant,
                })
        })
        .collect();
    let started = Instant::now();
    let mut results: Results = BTreeMap::new();
    let total = jobs
        .iter()
        .map(|j| WORKLOADS[j.workload].contenders.len())
        .sum::<usize>()
        * reps;
    let mut done = 0;
    for rep in 0..reps {
        for job in &jobs {
            let w = &WORKLOADS[job.workload];
            // Alternate the order each repetition, so no contender always runs first.
            let mut order = w.contenders.to_vec();
            if rep % 2 == 1 {
                order.reverse();
            }
            for contender in order {
                done += 1;
                eprintln!(
                    "[{done}/{total} {:>4.0}s] rep {}/{reps} {} {}: {contender}",
                    started.elapsed().as_secs_f64(),
                    rep + 1,
                    w.name,
                    job.variant.label
                );
                let entry = results
                    .entry((job.workload, job.variant.label.clone()))
                    .or_default()
                    .entry(contender)
                    .or_insert(Outcome::Samples(Vec::new()));
                if job.variant.no_counterpart.contains(&contender) {
                    *entry = Outcome::NoCounterpart;
                    continue;
                }
                let Outcome::Samples(samples) = entry else {
                    continue;
                };
                match run_child(w, &job.variant, contender, size) {
                    Ok(m) => samples.push(m),
                    Err(e) => {
                        eprintln!("  {contender} failed: {e}");
                        *entry = Outcome::Failed(e);
                    }
                }
            }
        }
    }
    let md = report(&results, reps, size, nofile)?;
    println!("{md}");
    eprintln!(
        "done in {:.0} s; table and charts in target/gort-bench/",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs one measurement in a child process, with a time limit.
fn run_child(
    w: &Workload,
    variant: &Variant,
    contender: Contender,
    size: Size,
) -> Result<Metrics, String> {
    let limit = match size {
        Size::Full => Duration::from_secs(180),
        Size::Quick | Size::Smoke => Duration::from_secs(90),
    };
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--child")
        .arg(w.name)
        .arg(contender.name())
        .args(&variant.args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {limit:?}"));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        let last = err.lines().last().unwrap_or("").trim().to_owned();
        return Err(format!("{status}: {last}"));
    }
    let metrics: Metrics = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.trim().parse().ok()?)))
        .collect();
    if metrics.is_empty() {
        return Err(format!("no figures in {out:?}"));
    }
    Ok(metrics)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Medians of each metric over the samples.
fn medians(samples: &[Metrics]) -> Metrics {
    samples[0]
        .iter()
        .map(|(k, _)| {
            let vals = samples
                .iter()
                .filter_map(|m| m.iter().find(|(k2, _)| k2 == k).map(|(_, v)| *v))
                .collect();
            (k.clone(), median(vals))
        })
        .collect()
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {}", kernel.trim())
}

fn report(results: &Results, reps: usize, size: Size, nofile: u64) -> io::Result<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/gort-bench");
    std::fs::create_dir_all(&dir)?;
    let mut md = format!(
        "## gort-bench ({size:?} pass): {}; {} workers for gort and tokio; medians of {reps} \
         alternating repetitions; RLIMIT_NOFILE {nofile}\n",
        machine(),
        workloads::WORKERS,
    );
    let mut last = usize::MAX;
    let mut bars: Vec<chart::Bar> = Vec::new();
    let flush_chart = |w: usize, bars: &mut Vec<chart::Bar>| -> io::Result<()> {
        if bars.is_empty() {
            return Ok(());
        }
        let (name, unit) = (WORKLOADS[w].name, WORKLOADS[w].columns[0]);
        let svg = chart::svg(&format!("gort-bench: {name} ({unit})"), unit, bars);
        std::fs::write(dir.join(format!("{name}.svg")), svg)?;
        bars.clear();
        Ok(())
    };
    for ((w, variant), by_contender) in results {
        let workload = &WORKLOADS[*w];
        if *w != last {
            flush_chart(last, &mut bars)?;
            last = *w;
            md.push_str(&format!(
                "\n### {}: {}\n\n| variant | contender | {} | x threads | x tokio |\n|---|---|{}---:|---:|\n",
                workload.name,
                workload.description,
                workload.columns.join(" | "),
                "---:|".repeat(workload.columns.len()),
            ));
        }
        let primary = |c: Contender| -> Option<f64> {
            match by_contender.get(&c) {
                Some(Outcome::Samples(s)) if !s.is_empty() => Some(medians(s)[0].1),
                _ => None,
            }
        };
        let better = |v: f64, base: Option<f64>| match base {
            Some(b) if workload.higher_is_better => format!("{:.2}", v / b),
            Some(b) => format!("{:.2}", b / v),
            None => "-".to_owned(),
        };
        for &c in workload.contenders {
            match by_contender.get(&c) {
                Some(Outcome::Samples(s)) if !s.is_empty() => {
                    let m = medians(s);
                    let cells: Vec<String> =
                        m.iter().map(|(_, v)| chart::format_value(*v)).collect();
                    md.push_str(&format!(
                        "| {variant} | {c} | {} | {} | {} |\n",
                        cells.join(" | "),
                        better(m[0].1, primary(Contender::Threads)),
                        better(m[0].1, primary(Contender::Tokio)),
                    ));
                    if m[0].1 > 0.0 {
                        bars.push(chart::Bar {
                            section: variant.clone(),
                            contender: c.name().to_owned(),
                            value: m[0].1,
                        });
                    }
                }
                Some(Outcome::NoCounterpart) => {
                    md.push_str(&format!("| {variant} | {c} | n/a (no counterpart) |\n"));
                }
                Some(Outcome::Failed(e)) => {
                    md.push_str(&format!("| {variant} | {c} | **failed**: {e} |\n"));
                }
                _ => {}
            }
        }
    }
    flush_chart(last, &mut bars)?;
    std::fs::write(dir.join("results.md"), &md)?;
    Ok(md)
}
