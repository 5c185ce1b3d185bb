//! `cargo run --release -p gort-bench [-- --quick] [WORKLOAD...]`: gort on io_uring and
//! on epoll, tokio's multi-thread runtime (same worker count) and OS threads, side by
//! side on nine workloads, several alternating repetitions, medians and ratios.
//!
//! Every measurement runs in a child process (this binary with `--child`), so each
//! starts from a fresh heap and its peak RSS is its own; echo and churn start one more
//! process for the server (`--server`, pinned to core 0) while the child that loads it
//! pins itself to core 1. The echo servers and the load client are the ones
//! `benches/echo.rs` and `examples/echo_load.rs` use (`benches/support/`); the http
//! servers and the `wrk`/`h2load` runs are in `http.rs`.
//!
//! Output: progress on stderr; a Markdown table on stdout and in
//! `target/gort-bench/results.md`; one SVG chart per workload beside it.

#[path = "../../benches/support/chart.rs"]
mod chart;
#[path = "../../benches/support/echo_client.rs"]
mod echo_client;
#[path = "../../benches/support/echo_servers.rs"]
mod echo_servers;
mod http;
mod workloads;

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The contenders, in the order they run within a repetition.
pub const CONTENDERS: [&str; 4] = ["gort-uring", "gort-epoll", "tokio", "threads"];

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
type Metrics = Vec<(String, f64)>;

/// (workload index, variant) → contender → its samples, or why it has none.
type Results = BTreeMap<(usize, String), BTreeMap<&'static str, Result<Vec<Metrics>, String>>>;

/// One measurement to run: a workload, its variant and a contender.
struct Job {
    workload: &'static str,
    variant: String,
    args: Vec<String>,
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
        match workloads::child(&args[1..]) {
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
                    workloads::NAMES.join(", ")
                );
                return Ok(());
            }
            w if workloads::NAMES.contains(&w) => filters.push(w.to_owned()),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "unknown argument {other:?}; workloads: {}",
                        workloads::NAMES.join(", ")
                    ),
                ))
            }
        }
    }
    let nofile = workloads::raise_nofile();
    let reps = match size {
        Size::Full => 3,
        Size::Quick | Size::Smoke => 1,
    };
    let jobs: Vec<Job> = workloads::jobs(size, nofile)
        .into_iter()
        .filter(|j| filters.is_empty() || filters.iter().any(|f| f == j.workload))
        .collect();
    let started = Instant::now();
    // (workload, variant) → contender → samples (or the failure).
    let mut results: Results = BTreeMap::new();
    let total = jobs.len() * CONTENDERS.len() * reps;
    let mut done = 0;
    for rep in 0..reps {
        for job in &jobs {
            // Alternate the order each repetition, so no contender always runs first.
            let mut order = CONTENDERS.to_vec();
            if rep % 2 == 1 {
                order.reverse();
            }
            for contender in order {
                done += 1;
                eprintln!(
                    "[{done}/{total} {:>4.0}s] rep {}/{reps} {} {}: {contender}",
                    started.elapsed().as_secs_f64(),
                    rep + 1,
                    job.workload,
                    job.variant
                );
                let key = (workloads::index(job.workload), job.variant.clone());
                let entry = results
                    .entry(key)
                    .or_default()
                    .entry(contender)
                    .or_insert(Ok(Vec::new()));
                let outcome = if workloads::skip(job.workload, &job.variant, contender) {
                    Err("n/a".to_owned())
                } else {
                    run_child(job, contender, size)
                };
                match (outcome, entry) {
                    (Ok(m), Ok(v)) => v.push(m),
                    (Err(e), entry @ Ok(_)) => {
                        if e != "n/a" {
                            eprintln!("  {contender} failed: {e}");
                        }
                        *entry = Err(e);
                    }
                    (_, Err(_)) => {}
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
fn run_child(job: &Job, contender: &str, size: Size) -> Result<Metrics, String> {
    let limit = match size {
        Size::Full => Duration::from_secs(180),
        Size::Quick | Size::Smoke => Duration::from_secs(90),
    };
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .arg("--child")
        .arg(job.workload)
        .arg(contender)
        .args(&job.args)
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
        let (name, unit) = (workloads::NAMES[w], workloads::primary_unit(w));
        let svg = chart::svg(&format!("gort-bench: {name} ({unit})"), unit, bars);
        std::fs::write(dir.join(format!("{name}.svg")), svg)?;
        bars.clear();
        Ok(())
    };
    for ((w, variant), by_contender) in results {
        if *w != last {
            flush_chart(last, &mut bars)?;
            last = *w;
            let name = workloads::NAMES[*w];
            md.push_str(&format!(
                "\n### {name}: {}\n\n| variant | contender | {} | x threads | x tokio |\n|---|---|{}---:|---:|\n",
                workloads::describe(*w),
                workloads::columns(*w).join(" | "),
                "---:|".repeat(workloads::columns(*w).len()),
            ));
        }
        let primary = |c: &str| -> Option<f64> {
            match by_contender.get(c) {
                Some(Ok(s)) if !s.is_empty() => Some(medians(s)[0].1),
                _ => None,
            }
        };
        let better = |v: f64, base: Option<f64>| match base {
            Some(b) if workloads::higher_is_better(*w) => format!("{:.2}", v / b),
            Some(b) => format!("{:.2}", b / v),
            None => "-".to_owned(),
        };
        for c in CONTENDERS {
            match by_contender.get(c) {
                Some(Ok(s)) if !s.is_empty() => {
                    let m = medians(s);
                    let cells: Vec<String> =
                        m.iter().map(|(_, v)| chart::format_value(*v)).collect();
                    md.push_str(&format!(
                        "| {variant} | {c} | {} | {} | {} |\n",
                        cells.join(" | "),
                        better(m[0].1, primary("threads")),
                        better(m[0].1, primary("tokio")),
                    ));
                    if m[0].1 > 0.0 {
                        bars.push(chart::Bar {
                            section: variant.clone(),
                            contender: c.to_owned(),
                            value: m[0].1,
                        });
                    }
                }
                Some(Err(e)) => {
                    if e == "n/a" {
                        md.push_str(&format!("| {variant} | {c} | n/a (no counterpart) |\n"));
                    } else {
                        md.push_str(&format!("| {variant} | {c} | **failed**: {e} |\n"));
                    }
                }
                _ => {}
            }
        }
    }
    flush_chart(last, &mut bars)?;
    std::fs::write(dir.join("results.md"), &md)?;
    Ok(md)
}
