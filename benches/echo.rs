//! Echo servers compared by messages per second of *server CPU time*: gort (with and
//! without its monitor), tokio's multi-thread runtime, a thread-per-connection server,
//! and the floor (a runtime-less single-threaded mio loop), each with one worker,
//! pinned to core 0, while one load generator (gort, `benches/support/echo_client.rs`,
//! the same for every contender) runs on core 1.
//!
//! On a 2-core machine the load generator saturates before the server, so messages/s
//! alone mostly measures the client; user + system CPU time of the server process
//! (from `/proc/PID/stat`) over the measured window is the comparison DESIGN.md asks
//! for. Each server runs in a child process (this binary with `--server NAME`). Every
//! contender runs once per round, rounds alternate, the table gives medians.
//! `cargo bench --bench echo` (about 2 minutes); `-- --quick` for a short pass.
//!
//! Before and after a change, side by side: build this bench on the old tree and pass
//! its binary as `-- --baseline PATH`; its gort servers run as extra contenders
//! (`gort-epoll@base`, ...) in the same rounds, against the same load generator.
//! `--rounds N`, `--secs S`, `--servers a,b` and `--small` (100 x 64 B only) narrow
//! the run.

#[path = "support/echo_client.rs"]
mod echo_client;
#[path = "support/echo_servers.rs"]
mod echo_servers;

use echo_servers::{cpu_secs, pin_to, serve, start_server_from, BLOCK, BLOCK_MARK};

use std::io;
use std::time::{Duration, Instant};

const SERVERS: [&str; 7] = [
    "gort-uring",
    "gort-uring-owned",
    "gort-epoll",
    "tokio",
    "threads",
    "mio-floor",
    "uring-floor",
];
struct Sample {
    msgs_per_s: f64,
    msgs_per_cpu_s: f64,
    p50_us: u32,
    p99_us: u32,
}

/// A contender's server: `name` in the table; `kind` served by `exe`.
struct Server {
    name: String,
    kind: &'static str,
    exe: std::path::PathBuf,
}

fn measure(
    rt: &gort::Runtime,
    server: &Server,
    conns: usize,
    size: usize,
    secs: u64,
    blocker: bool,
) -> io::Result<Sample> {
    let (mut child, addr) = start_server_from(&server.exe, server.kind)?;
    let res = (|| {
        // Connect and warm up briefly, then measure a window of `secs`.
        let end = Instant::now() + Duration::from_millis(300) + Duration::from_secs(secs);
        let before = cpu_secs(child.id())?;
        let start = Instant::now();
        let mut lat: Vec<u32> = rt.block_on(async {
            // Seeds stay below the blocking mark.
            let tasks: Vec<_> = (0..conns)
                .map(|i| gort::spawn(echo_client::client(addr, size, (i % 250) as u8, end)))
                .collect();
            let blocking =
                blocker.then(|| gort::spawn(echo_client::client(addr, size, BLOCK_MARK, end)));
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.map_err(io::Error::from)??);
            }
            if let Some(b) = blocking {
                b.await.map_err(io::Error::from)??;
            }
            io::Result::Ok(all)
        })?;
        let wall = start.elapsed().as_secs_f64();
        let cpu = cpu_secs(child.id())? - before;
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        Ok(Sample {
            msgs_per_s: lat.len() as f64 / wall,
            msgs_per_cpu_s: lat.len() as f64 / cpu.max(1e-3),
            p50_us: pct(0.5),
            p99_us: pct(0.99),
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    res
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--server") {
        return serve(args.get(i + 1).map_or("gort", String::as_str));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (mut rounds, mut secs) = if quick { (1, 1) } else { (3, 3) };
    if let Some(v) = value("--rounds") {
        rounds = v.parse().map_err(|_| io::Error::other("--rounds N"))?;
    }
    if let Some(v) = value("--secs") {
        secs = v.parse().map_err(|_| io::Error::other("--secs S"))?;
    }
    let only: Option<Vec<String>> =
        value("--servers").map(|v| v.split(',').map(str::to_owned).collect());
    let me = std::env::current_exe()?;
    let mut servers: Vec<Server> = SERVERS
        .iter()
        .filter(|k| only.as_ref().is_none_or(|o| o.iter().any(|x| x == *k)))
        .map(|&kind| Server {
            name: kind.to_owned(),
            kind,
            exe: me.clone(),
        })
        .collect();
    if let Some(base) = value("--baseline") {
        let gort: Vec<&'static str> = servers
            .iter()
            .map(|s| s.kind)
            .filter(|k| k.starts_with("gort"))
            .collect();
        for kind in gort {
            servers.push(Server {
                name: format!("{kind}@base"),
                kind,
                exe: base.clone().into(),
            });
        }
    }
    pin_to(1);
    let rt = gort::Runtime::builder().workers(1).build()?;
    let all_workloads = [
        (100usize, 64usize, false),
        (1000, 1024, false),
        (100, 64, true),
    ];
    let workloads = if args.iter().any(|a| a == "--small") {
        &all_workloads[..1]
    } else {
        &all_workloads[..]
    };
    let mut results: Vec<(String, String, Vec<Sample>)> = Vec::new();
    for round in 0..rounds {
        for &(conns, size, blocker) in workloads {
            let w = if blocker {
                format!("{conns} conns x {size} B + 1 handler blocking {BLOCK:?} per message")
            } else {
                format!("{conns} conns x {size} B")
            };
            // Alternate the order between rounds, so no contender always goes first.
            let order: Vec<&Server> = if round % 2 == 0 {
                servers.iter().collect()
            } else {
                servers.iter().rev().collect()
            };
            for server in order {
                let kind = &server.name;
                eprintln!("round {}/{rounds}: {w}: {kind}", round + 1);
                let s = match measure(&rt, server, conns, size, secs, blocker) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("  {kind} failed: {e}");
                        continue;
                    }
                };
                match results.iter_mut().find(|(w2, k, _)| *w2 == w && k == kind) {
                    Some((_, _, v)) => v.push(s),
                    None => results.push((w.clone(), kind.clone(), vec![s])),
                }
            }
        }
    }
    println!("\n## echo: server on core 0 (1 worker), load generator on core 1; medians of {rounds} rounds of {secs} s\n");
    println!("| workload | server | msg/s | msg per server-CPU-s | ÷ tokio | p50 µs | p99 µs |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (w, kind, samples) in &results {
        let cpu = median(samples.iter().map(|s| s.msgs_per_cpu_s).collect());
        let tokio = results
            .iter()
            .find(|(w2, k, _)| w2 == w && *k == "tokio")
            .map(|(_, _, v)| median(v.iter().map(|s| s.msgs_per_cpu_s).collect()))
            .unwrap_or(f64::NAN);
        println!(
            "| {w} | {kind} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} |",
            median(samples.iter().map(|s| s.msgs_per_s).collect()),
            cpu,
            cpu / tokio,
            median(samples.iter().map(|s| s.p50_us as f64).collect()),
            median(samples.iter().map(|s| s.p99_us as f64).collect()),
        );
    }
    for server in &servers {
        if !results.iter().any(|(_, k, _)| *k == server.name) {
            println!("| (all) | {} | failed | | | | |", server.name);
        }
    }
    Ok(())
}
