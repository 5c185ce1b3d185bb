//! The eleven workloads, each measured in a child process (`--child WORKLOAD CONTENDER
//! ARGS...`), which prints `metric=value` lines, the primary metric first.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::echo_servers::{cpu_secs, start_server};
use crate::{echo_client, echo_servers, Contender, Metrics, Size, Variant, Workload};

/// The contenders of every table: gort on each backend, tokio, OS threads.
const RUNTIMES: &[Contender] = &[
    Contender::GortUring,
    Contender::GortEpoll,
    Contender::Tokio,
    Contender::Threads,
];

/// The channel workloads' contenders: [`RUNTIMES`] and gort without the reactor.
const CHANNELS: &[Contender] = &Contender::ALL;

/// The workloads, in the order of the report.
pub const WORKLOADS: [Workload; 11] = [
    Workload {
        name: "spawn",
        description: "spawn and join N no-op tasks (N/100 threads), from `block_on` or from a \
            spawned task; cost per unit and the process's peak RSS",
        columns: &["ns per unit", "peak RSS MB"],
        higher_is_better: false,
        contenders: RUNTIMES,
        variants: |size, _| {
            let n = units(size);
            vec![
                variant(format!("{n} tasks"), &[n, 0]),
                Variant {
                    // A thread spawning threads is the row above.
                    no_counterpart: &[Contender::Threads],
                    ..variant(format!("{n} tasks, from a task"), &[n, 1])
                },
            ]
        },
        run: run_spawn,
    },
    Workload {
        name: "yield",
        description: "T tasks (threads: T/100, at least 2) each yielding 1000 times \
            (`yield_now`; threads: `sched_yield`), spawned from a task; cost per yield",
        columns: &["ns per yield"],
        higher_is_better: false,
        contenders: RUNTIMES,
        variants: |size, _| {
            let t = units(size) / 1000;
            vec![variant(format!("{t} tasks x {YIELDS} yields"), &[t])]
        },
        run: run_yield,
    },
    Workload {
        name: "parked",
        description: "N tasks (N/100 threads) each parked on a channel receive: a futures \
            oneshot with the task detached, or a channel of its own with its handle kept; \
            resident bytes per unit",
        columns: &["bytes per unit"],
        higher_is_better: false,
        contenders: RUNTIMES,
        variants: |size, _| {
            let n = units(size);
            vec![
                variant(format!("{n} tasks, futures oneshot, detached"), &[n, 0]),
                Variant {
                    no_counterpart: &[Contender::Threads],
                    ..variant(
                        format!("{n} tasks, own bounded(1) channel (tokio: oneshot), handles kept"),
                        &[n, 1],
                    )
                },
            ]
        },
        run: |c, args| {
            let own = arg::<usize>(args, 1)? == 1;
            Ok(metrics(&[(
                "bytes_per_unit",
                parked(c, arg(args, 0)?, own)?,
            )]))
        },
    },
    Workload {
        name: "ping_pong",
        description:
            "N round trips (threads: N/20) between two tasks (threads) over two channels, \
            both sides spawned tasks, on 2 workers or 1",
        columns: &["ns per round trip"],
        higher_is_better: false,
        contenders: CHANNELS,
        variants: |size, _| {
            let n = units(size);
            vec![
                // tokio has no rendezvous (capacity-0) channel.
                Variant {
                    no_counterpart: &[Contender::Tokio],
                    ..variant("cap 0".into(), &[n, 0, WORKERS])
                },
                variant("cap 1".into(), &[n, 1, WORKERS]),
                // Two threads are two threads: the rows above.
                Variant {
                    no_counterpart: &[Contender::Tokio, Contender::Threads],
                    ..variant("cap 0, 1 worker".into(), &[n, 0, 1])
                },
                Variant {
                    no_counterpart: &[Contender::Threads],
                    ..variant("cap 1, 1 worker".into(), &[n, 1, 1])
                },
            ]
        },
        run: run_ping_pong,
    },
    Workload {
        name: "mpmc",
        description: "4 producers x 4 consumers, N messages (threads at capacity 0 and 1: N/10) \
            over one channel of capacity 0, 1 or 1024 (tokio: async-channel, which has no \
            capacity 0; threads: std sync_channel, receiver behind a Mutex)",
        columns: &["ns per message"],
        higher_is_better: false,
        contenders: CHANNELS,
        variants: |size, _| {
            let n = units(size);
            [0, 1, MPMC_CAP]
                .into_iter()
                .map(|cap| Variant {
                    // async-channel has no rendezvous (capacity-0) channel.
                    no_counterpart: if cap == 0 { &[Contender::Tokio] } else { &[] },
                    ..variant(format!("cap {cap}, {n} messages"), &[n, cap])
                })
                .collect()
        },
        run: run_mpmc,
    },
    Workload {
        name: "chan_size",
        description: "a `bounded(1)` channel of `u64` (tokio: `mpsc::channel(1)`; threads: std \
            `sync_channel(1)`), no runtime: heap bytes one takes (counted by the allocator, \
            1000 made) and resident bytes per channel with N held (allocator overhead \
            included)",
        columns: &["heap bytes per channel", "resident bytes per channel"],
        higher_is_better: false,
        // A channel is the same on either gort backend.
        contenders: &[Contender::GortEpoll, Contender::Tokio, Contender::Threads],
        variants: |size, _| counted(units(size), "channels"),
        run: |c, args| chan_size(c, arg(args, 0)?),
    },
    Workload {
        name: "echo",
        description: "server pinned to core 0 (one worker), load generator (gort on epoll, one \
            message in flight per connection, every byte checked) on core 1; server RSS per \
            connection while all are open",
        columns: &[
            "msg per server-CPU-s",
            "msg/s",
            "p50 us",
            "p99 us",
            "server bytes per conn",
        ],
        higher_is_better: true,
        contenders: RUNTIMES,
        variants: echo_variants,
        run: |c, args| echo(c, arg(args, 0)?, arg(args, 1)?, arg(args, 2)?),
    },
    Workload {
        name: "churn",
        description: "connect, one 64-byte round trip, close, 32 clients at a time against the \
            echo server on core 0",
        columns: &["conns per server-CPU-s", "conns/s"],
        higher_is_better: true,
        contenders: RUNTIMES,
        variants: |size, _| {
            vec![Variant {
                label: "32 clients".into(),
                args: vec![secs(size).to_owned()],
                no_counterpart: &[],
            }]
        },
        run: |c, args| churn(c, arg(args, 0)?),
    },
    Workload {
        name: "timers",
        description: "N sleeps with random deadlines in 0..200 ms (N/100 threads sleeping); \
            process CPU time per timer",
        columns: &["CPU ns per timer"],
        higher_is_better: false,
        contenders: RUNTIMES,
        variants: |size, _| counted(units(size), "sleeps"),
        run: run_timers,
    },
    Workload {
        name: "blocking",
        description: "N calls of a 20 us blocking function on the blocking pool (threads: one \
            thread per call, N/10)",
        columns: &["ns per call"],
        higher_is_better: false,
        contenders: RUNTIMES,
        variants: |size, _| counted(units(size) / 10, "calls"),
        run: run_blocking,
    },
    Workload {
        name: "http",
        description: "GET / answered `Hello, world!` by hyper (or axum) on one worker pinned to \
            core 0 (tokio: hyper-util's TokioIo/TokioExecutor/TokioTimer, the same settings); wrk \
            (HTTP/1.1) or h2load (HTTP/2, 10 streams per connection), one thread on core 1",
        columns: &["req per server-CPU-s", "req/s", "p50 us", "p99 us"],
        higher_is_better: true,
        contenders: RUNTIMES,
        variants: http_variants,
        run: |c, args| {
            let (app, tool): (String, String) = (arg(args, 0)?, arg(args, 1)?);
            crate::http::measure(&app, c, &tool, arg(args, 2)?, arg(args, 3)?)
        },
    },
];

/// Workers of the gort and tokio runtimes in the non-network workloads (the echo and
/// churn servers run one worker, pinned to core 0).
pub const WORKERS: usize = 2;

/// N, the units of the non-network workloads.
fn units(size: Size) -> usize {
    match size {
        Size::Full => 1_000_000,
        Size::Quick => 200_000,
        Size::Smoke => 2_000,
    }
}

/// The measuring window of echo and churn, in seconds.
fn secs(size: Size) -> &'static str {
    match size {
        Size::Full => "2",
        Size::Quick => "1",
        Size::Smoke => "0.2",
    }
}

/// A variant every contender of its workload runs, with numeric arguments.
fn variant(label: String, args: &[usize]) -> Variant {
    Variant {
        label,
        args: args.iter().map(usize::to_string).collect(),
        no_counterpart: &[],
    }
}

/// The one variant of a workload whose only argument is its count, `n`.
fn counted(n: usize, what: &str) -> Vec<Variant> {
    vec![variant(format!("{n} {what}"), &[n])]
}

/// Named metrics, in the order given.
fn metrics(pairs: &[(&str, f64)]) -> Metrics {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Raises `RLIMIT_NOFILE` to its hard limit (children inherit it); returns the limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer / in-pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// The echo variants: connections x message size, where `RLIMIT_NOFILE` allows.
fn echo_variants(size: Size, nofile: u64) -> Vec<Variant> {
    let conns: &[usize] = match size {
        Size::Full => &[100, 1000, 10000],
        Size::Quick => &[100, 10000],
        Size::Smoke => &[10],
    };
    let sizes: &[usize] = match size {
        Size::Full => &[64, 4096],
        Size::Quick | Size::Smoke => &[64],
    };
    let mut v = Vec::new();
    for &c in conns {
        for &s in sizes {
            let label = format!("{c} conns x {s} B");
            // Server and client each hold one descriptor per connection.
            if (c as u64) + 64 > nofile {
                eprintln!(
                    "echo {label}: skipped, RLIMIT_NOFILE's hard limit is {nofile} \
                     (raise it with `ulimit -Hn`)"
                );
                continue;
            }
            v.push(Variant {
                label,
                args: vec![c.to_string(), s.to_string(), secs(size).to_owned()],
                no_counterpart: &[],
            });
        }
    }
    v
}

/// The http variants: hyper at 16/64/256 connections and axum at 64 (wrk), hyper over
/// HTTP/2 (h2load); each only where its load generator is installed.
fn http_variants(size: Size, _nofile: u64) -> Vec<Variant> {
    let secs = match size {
        Size::Full => "5",
        Size::Quick | Size::Smoke => "1",
    };
    let wrk: &[(&str, usize)] = match size {
        Size::Full => &[("hyper", 16), ("hyper", 64), ("hyper", 256), ("axum", 64)],
        Size::Quick => &[("hyper", 64), ("axum", 64)],
        Size::Smoke => &[("hyper", 4)],
    };
    let h2: &[usize] = match size {
        Size::Full => &[16, 64],
        Size::Quick | Size::Smoke => &[16],
    };
    let mut v = Vec::new();
    for (tool, pairs, pkg) in [
        ("wrk", wrk.to_vec(), "wrk"),
        (
            "h2load",
            h2.iter().map(|&c| ("hyper", c)).collect(),
            "nghttp2-client",
        ),
    ] {
        if !crate::http::have(tool) {
            eprintln!("http with {tool}: skipped, {tool} is not installed (apt-get install {pkg})");
            continue;
        }
        for (app, conns) in pairs {
            let proto = if tool == "wrk" { "HTTP/1.1" } else { "HTTP/2" };
            v.push(Variant {
                label: format!("{app}, {proto}, {conns} conns"),
                args: vec![
                    app.to_owned(),
                    tool.to_owned(),
                    conns.to_string(),
                    secs.to_owned(),
                ],
                // hyper has no thread-per-connection server.
                no_counterpart: &[Contender::Threads],
            });
        }
    }
    v
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> io::Result<T> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| bad(format!("argument {i} missing or bad in {args:?}")))
}

/// The gort runtime for a gort contender, `workers` workers.
fn gort_rt(contender: Contender, workers: usize) -> io::Result<gort::Runtime> {
    let mut b = gort::Runtime::builder();
    b.workers(workers);
    match contender {
        Contender::GortUring => b.driver(gort::DriverKind::Uring),
        Contender::GortEpoll => b.driver(gort::DriverKind::Epoll),
        Contender::GortNoReactor => {
            b.park_with(|_| Ok(Box::new(gort::runtime::ThreadParker::new())))
        }
        other => return Err(bad(format!("{other} is not gort"))),
    };
    b.build()
}

fn tokio_rt(workers: usize) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
}

/// `VmRSS` or `VmHWM` of a process, in bytes.
fn proc_kb(pid: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        * 1024.0
}

fn cpu_secs_self() -> f64 {
    // SAFETY: rusage is plain integers; getrusage fills it.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn run_spawn(c: Contender, args: &[String]) -> io::Result<Metrics> {
    let (units, t) = spawn(c, arg(args, 0)?, arg::<usize>(args, 1)? == 1)?;
    Ok(metrics(&[
        ("ns_per_unit", t.as_nanos() as f64 / units as f64),
        ("peak_rss_mb", proc_kb("self", "VmHWM:") / 1e6),
    ]))
}

fn run_yield(c: Contender, args: &[String]) -> io::Result<Metrics> {
    let (units, t) = yields(c, arg(args, 0)?)?;
    Ok(metrics(&[(
        "ns_per_yield",
        t.as_nanos() as f64 / units as f64,
    )]))
}

fn run_ping_pong(c: Contender, args: &[String]) -> io::Result<Metrics> {
    let (n, cap, workers): (usize, usize, usize) = (arg(args, 0)?, arg(args, 1)?, arg(args, 2)?);
    let t = ping_pong(c, n, cap, workers)?;
    let units = ping_pong_units(c, n);
    Ok(metrics(&[(
        "ns_per_round_trip",
        t.as_nanos() as f64 / units as f64,
    )]))
}

fn run_mpmc(c: Contender, args: &[String]) -> io::Result<Metrics> {
    let (n, cap): (usize, usize) = (arg(args, 0)?, arg(args, 1)?);
    let n = mpmc_units(c, n, cap);
    let t = mpmc(c, n, cap)?;
    Ok(metrics(&[(
        "ns_per_message",
        t.as_nanos() as f64 / n as f64,
    )]))
}

fn run_timers(c: Contender, args: &[String]) -> io::Result<Metrics> {
    let n: usize = arg(args, 0)?;
    let before = cpu_secs_self();
    let units = timers(c, n)?;
    let cpu = cpu_secs_self() - before;
    Ok(metrics(&[("cpu_ns_per_timer", cpu * 1e9 / units as f64)]))
}

fn run_blocking(c: Contender, args: &[String]) -> io::Result<Metrics> {
    let (units, t) = blocking(c, arg(args, 0)?)?;
    Ok(metrics(&[(
        "ns_per_call",
        t.as_nanos() as f64 / units as f64,
    )]))
}

/// The async contenders, so that a workload whose code is the same on gort and tokio
/// is written once. Channels differ and stay per runtime.
enum Rt {
    Gort(gort::Runtime),
    Tokio(tokio::runtime::Runtime),
}

/// A spawned task of either runtime (no boxing: the spawn workload counts every
/// allocation).
enum Join<T> {
    Gort(gort::task::JoinHandle<T>),
    Tokio(tokio::task::JoinHandle<T>),
}

impl Rt {
    /// `WORKERS` workers; gort on the contender's backend.
    fn new(contender: Contender) -> io::Result<Rt> {
        Rt::with_workers(contender, WORKERS)
    }

    fn with_workers(contender: Contender, workers: usize) -> io::Result<Rt> {
        Ok(if contender == Contender::Tokio {
            Rt::Tokio(tokio_rt(workers)?)
        } else {
            Rt::Gort(gort_rt(contender, workers)?)
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        match self {
            Rt::Gort(rt) => rt.block_on(f),
            Rt::Tokio(rt) => rt.block_on(f),
        }
    }

    fn spawn<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> Join<T> {
        match self {
            Rt::Gort(rt) => Join::Gort(rt.spawn(f)),
            Rt::Tokio(rt) => Join::Tokio(rt.spawn(f)),
        }
    }

    fn spawn_blocking<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Join<T> {
        match self {
            Rt::Gort(rt) => Join::Gort(rt.spawn_blocking(f)),
            Rt::Tokio(rt) => Join::Tokio(rt.spawn_blocking(f)),
        }
    }

    /// Spawns `n` tasks running `f()` and awaits them all, holding each runtime's own
    /// `JoinHandle`s (their `Vec` is part of the spawn workload's peak RSS, so no
    /// wider `Join`); from `block_on`, or with `from_task` from a spawned task (as a
    /// server's accept loop spawns).
    fn spawn_and_join<F>(
        &self,
        n: usize,
        from_task: bool,
        f: impl Fn() -> F + Send + 'static,
    ) -> io::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self {
            Rt::Gort(rt) => {
                let all = async move {
                    let hs: Vec<_> = (0..n).map(|_| gort::spawn(f())).collect();
                    for h in hs {
                        h.await?;
                    }
                    io::Result::Ok(())
                };
                if from_task {
                    rt.block_on(async { gort::spawn(all).await? })
                } else {
                    rt.block_on(all)
                }
            }
            Rt::Tokio(rt) => {
                let all = async move {
                    let hs: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
                    for h in hs {
                        h.await.map_err(io::Error::other)?;
                    }
                    io::Result::Ok(())
                };
                if from_task {
                    rt.block_on(async { tokio::spawn(all).await.map_err(io::Error::other)? })
                } else {
                    rt.block_on(all)
                }
            }
        }
    }

    /// A task that sleeps `d` on this runtime's timers.
    fn spawn_sleep(&self, d: Duration) -> Join<()> {
        match self {
            Rt::Gort(rt) => Join::Gort(rt.spawn(gort::time::sleep(d))),
            Rt::Tokio(rt) => Join::Tokio(rt.spawn(tokio::time::sleep(d))),
        }
    }
}

impl<T> Join<T> {
    async fn join(self) -> io::Result<T> {
        match self {
            Join::Gort(h) => h.await.map_err(io::Error::from),
            Join::Tokio(h) => h.await.map_err(io::Error::other),
        }
    }
}

/// Awaits every task.
async fn join_all<T>(tasks: Vec<Join<T>>) -> io::Result<Vec<T>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.join().await?);
    }
    Ok(out)
}

/// Joins OS threads.
fn join_threads<T>(threads: Vec<std::thread::JoinHandle<T>>) -> io::Result<Vec<T>> {
    threads
        .into_iter()
        .map(|h| h.join().map_err(|_| io::Error::other("thread panicked")))
        .collect()
}

/// Spawns and joins `n` tasks (`n / 100` threads); returns the units and the time.
fn spawn(contender: Contender, n: usize, from_task: bool) -> io::Result<(usize, Duration)> {
    if contender == Contender::Threads {
        let n = (n / 100).max(1);
        let t = Instant::now();
        join_threads((0..n).map(|_| std::thread::spawn(|| {})).collect())?;
        return Ok((n, t.elapsed()));
    }
    let rt = Rt::new(contender)?;
    let t = Instant::now();
    rt.spawn_and_join(n, from_task, || async {})?;
    Ok((n, t.elapsed()))
}

/// Yields per task in the yield workload.
const YIELDS: usize = 1000;

/// `t` tasks (`t / 100` threads, at least 2) yielding [`YIELDS`] times each, spawned
/// from a task; returns the yields and the time.
fn yields(contender: Contender, t: usize) -> io::Result<(usize, Duration)> {
    if contender == Contender::Threads {
        let n = (t / 100).max(2);
        let start = Instant::now();
        join_threads(
            (0..n)
                .map(|_| {
                    std::thread::spawn(|| {
                        for _ in 0..YIELDS {
                            std::thread::yield_now();
                        }
                    })
                })
                .collect(),
        )?;
        return Ok((n * YIELDS, start.elapsed()));
    }
    let rt = Rt::new(contender)?;
    let start = Instant::now();
    match rt {
        Rt::Gort(_) => rt.spawn_and_join(t, true, || async {
            for _ in 0..YIELDS {
                gort::task::yield_now().await;
            }
        })?,
        Rt::Tokio(_) => rt.spawn_and_join(t, true, || async {
            for _ in 0..YIELDS {
                tokio::task::yield_now().await;
            }
        })?,
    }
    Ok((t * YIELDS, start.elapsed()))
}

/// Heap bytes one channel takes (counted, 1000 made) and resident bytes per channel
/// with `n` held.
fn chan_size(contender: Contender, n: usize) -> io::Result<Metrics> {
    fn both<P>(n: usize, make: impl Fn() -> P) -> Metrics {
        let heap_n = 1000;
        let mut v: Vec<P> = Vec::with_capacity(heap_n);
        let ((), heap) = crate::heap::counted(|| {
            for _ in 0..heap_n {
                v.push(make());
            }
        });
        drop(v);
        let mut v: Vec<P> = Vec::with_capacity(n);
        // SAFETY: the capacity is allocated; zero bytes are written into it only to
        // fault its pages in before the first reading, nothing is read as a `P`.
        unsafe { std::ptr::write_bytes(v.as_mut_ptr() as *mut u8, 0, n * size_of::<P>()) };
        let before = proc_kb("self", "VmRSS:");
        for _ in 0..n {
            v.push(make());
        }
        let after = proc_kb("self", "VmRSS:");
        drop(v);
        metrics(&[
            ("heap_bytes_per_channel", heap as f64 / heap_n as f64),
            ("resident_bytes_per_channel", (after - before) / n as f64),
        ])
    }
    Ok(match contender {
        Contender::Tokio => both(n, || tokio::sync::mpsc::channel::<u64>(1)),
        Contender::Threads => both(n, || std::sync::mpsc::sync_channel::<u64>(1)),
        _ => both(n, || gort::chan::bounded::<u64>(1)),
    })
}

/// Resident bytes per unit parked on a channel receive: a futures oneshot with the
/// task detached, or (`own`) a channel of its own with the `JoinHandle` kept (gort's
/// `bounded(1)`, tokio's `oneshot`).
fn parked(contender: Contender, n: usize, own: bool) -> io::Result<f64> {
    let ready = Arc::new(AtomicUsize::new(0));
    let wait_all = |units: usize| {
        while ready.load(Ordering::Acquire) < units {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    if contender == Contender::Threads {
        let n = (n / 100).max(1);
        let before = proc_kb("self", "VmRSS:");
        let mut txs = Vec::with_capacity(n);
        let mut hs = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let r = ready.clone();
            hs.push(std::thread::spawn(move || {
                r.fetch_add(1, Ordering::AcqRel);
                let _ = rx.recv();
            }));
            txs.push(tx);
        }
        wait_all(n);
        let after = proc_kb("self", "VmRSS:");
        drop(txs);
        join_threads(hs)?;
        return Ok((after - before) / n as f64);
    }
    let rt = Rt::new(contender)?;
    // Warm up the workers before the first reading.
    rt.block_on(rt.spawn(async {}).join())?;
    let before = proc_kb("self", "VmRSS:");
    if own {
        // Each task's channel and its handle kept (what a fan-out of workers that each
        // wait for their job holds).
        let mut hs = Vec::with_capacity(n);
        let after = match &rt {
            Rt::Gort(_) => {
                let mut txs = Vec::with_capacity(n);
                for _ in 0..n {
                    let (tx, rx) = gort::chan::bounded::<u64>(1);
                    let r = ready.clone();
                    hs.push(rt.spawn(async move {
                        r.fetch_add(1, Ordering::AcqRel);
                        let _ = rx.recv().await;
                    }));
                    txs.push(tx);
                }
                wait_all(n);
                proc_kb("self", "VmRSS:")
            }
            Rt::Tokio(_) => {
                let mut txs = Vec::with_capacity(n);
                for _ in 0..n {
                    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                    let r = ready.clone();
                    hs.push(rt.spawn(async move {
                        r.fetch_add(1, Ordering::AcqRel);
                        let _ = rx.await;
                    }));
                    txs.push(tx);
                }
                wait_all(n);
                proc_kb("self", "VmRSS:")
            }
        };
        rt.block_on(join_all(hs))?;
        return Ok((after - before) / n as f64);
    }
    let mut txs = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let r = ready.clone();
        // Detached: the JoinHandle is dropped.
        rt.spawn(async move {
            r.fetch_add(1, Ordering::AcqRel);
            let _ = rx.await;
        });
        txs.push(tx);
    }
    wait_all(n);
    let after = proc_kb("self", "VmRSS:");
    drop(txs);
    Ok((after - before) / n as f64)
}

/// Round trips a contender makes of the `n` asked (threads: `n / 20`, at ~40 us each).
fn ping_pong_units(contender: Contender, n: usize) -> usize {
    if contender == Contender::Threads {
        (n / 20).max(1)
    } else {
        n
    }
}

fn ping_pong(contender: Contender, n: usize, cap: usize, workers: usize) -> io::Result<Duration> {
    let n = ping_pong_units(contender, n);
    match contender {
        Contender::Threads => {
            let (tx1, rx1) = std::sync::mpsc::sync_channel::<u64>(cap);
            let (tx2, rx2) = std::sync::mpsc::sync_channel::<u64>(cap);
            let t = Instant::now();
            let echo = std::thread::spawn(move || {
                while let Ok(v) = rx1.recv() {
                    if tx2.send(v).is_err() {
                        break;
                    }
                }
            });
            for i in 0..n as u64 {
                tx1.send(i).map_err(io::Error::other)?;
                rx2.recv().map_err(io::Error::other)?;
            }
            drop(tx1);
            let _ = echo.join();
            Ok(t.elapsed())
        }
        Contender::Tokio => {
            let rt = tokio_rt(workers)?;
            rt.block_on(async {
                let (tx1, mut rx1) = tokio::sync::mpsc::channel::<u64>(cap.max(1));
                let (tx2, mut rx2) = tokio::sync::mpsc::channel::<u64>(cap.max(1));
                let t = Instant::now();
                let echo = tokio::spawn(async move {
                    while let Some(v) = rx1.recv().await {
                        if tx2.send(v).await.is_err() {
                            break;
                        }
                    }
                });
                let main = tokio::spawn(async move {
                    for i in 0..n as u64 {
                        tx1.send(i).await.map_err(io::Error::other)?;
                        rx2.recv().await.ok_or_else(|| io::Error::other("closed"))?;
                    }
                    io::Result::Ok(())
                });
                main.await.map_err(io::Error::other)??;
                echo.await.map_err(io::Error::other)?;
                Ok(t.elapsed())
            })
        }
        _ => {
            let rt = gort_rt(contender, workers)?;
            rt.block_on(async {
                let (tx1, rx1) = gort::chan::bounded::<u64>(cap);
                let (tx2, rx2) = gort::chan::bounded::<u64>(cap);
                let t = Instant::now();
                let echo = gort::spawn(async move {
                    while let Some(v) = rx1.recv().await {
                        if tx2.send(v).await.is_err() {
                            break;
                        }
                    }
                });
                let main = gort::spawn(async move {
                    for i in 0..n as u64 {
                        tx1.send(i).await.map_err(io::Error::other)?;
                        rx2.recv().await.ok_or_else(|| io::Error::other("closed"))?;
                    }
                    io::Result::Ok(())
                });
                main.await.map_err(io::Error::from)??;
                echo.await.map_err(io::Error::from)?;
                Ok(t.elapsed())
            })
        }
    }
}

/// A bounded MPMC channel of either runtime's world, for [`mpmc`].
trait Mpmc {
    type Tx: Clone + Send + 'static;
    type Rx: Clone + Send + 'static;
    fn bounded(cap: usize) -> (Self::Tx, Self::Rx);
    fn send(tx: &Self::Tx, v: u64) -> impl std::future::Future<Output = ()> + Send;
    fn recv(rx: &Self::Rx) -> impl std::future::Future<Output = Option<u64>> + Send;
}

/// gort's own channel.
struct GortChan;

impl Mpmc for GortChan {
    type Tx = gort::chan::Sender<u64>;
    type Rx = gort::chan::Receiver<u64>;
    fn bounded(cap: usize) -> (Self::Tx, Self::Rx) {
        gort::chan::bounded(cap)
    }
    async fn send(tx: &Self::Tx, v: u64) {
        let _ = tx.send(v).await;
    }
    async fn recv(rx: &Self::Rx) -> Option<u64> {
        rx.recv().await
    }
}

/// tokio has no MPMC channel: async-channel, the usual choice beside it.
struct AsyncChannel;

impl Mpmc for AsyncChannel {
    type Tx = async_channel::Sender<u64>;
    type Rx = async_channel::Receiver<u64>;
    fn bounded(cap: usize) -> (Self::Tx, Self::Rx) {
        async_channel::bounded(cap)
    }
    async fn send(tx: &Self::Tx, v: u64) {
        let _ = tx.send(v).await;
    }
    async fn recv(rx: &Self::Rx) -> Option<u64> {
        rx.recv().await.ok()
    }
}

/// Producers and consumers of the MPMC workload.
const MPMC_SIDES: usize = 4;
/// The MPMC workload's buffered capacity (beside 0 and 1).
const MPMC_CAP: usize = 1024;

/// Messages a contender sends of the `n` asked: threads send `n / 10` through a channel
/// of capacity 0 or 1 (about 5-10 us each); every contender at least two per producer.
fn mpmc_units(contender: Contender, n: usize, cap: usize) -> usize {
    let n = if contender == Contender::Threads && cap < 2 {
        n / 10
    } else {
        n
    };
    n.max(2 * MPMC_SIDES)
}

fn mpmc(contender: Contender, n: usize, cap: usize) -> io::Result<Duration> {
    let per = (n / MPMC_SIDES) as u64;
    let (sum, elapsed) = match contender {
        Contender::Threads => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(cap);
            let rx = Arc::new(std::sync::Mutex::new(rx));
            let t = Instant::now();
            let ps: Vec<_> = (0..MPMC_SIDES)
                .map(|_| {
                    let tx = tx.clone();
                    std::thread::spawn(move || {
                        for i in 0..per {
                            let _ = tx.send(i);
                        }
                    })
                })
                .collect();
            drop(tx);
            let cs: Vec<_> = (0..MPMC_SIDES)
                .map(|_| {
                    let rx = rx.clone();
                    std::thread::spawn(move || {
                        let mut sum = 0u64;
                        while let Ok(v) = rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            sum += v;
                        }
                        sum
                    })
                })
                .collect();
            join_threads(ps)?;
            let sum = join_threads(cs)?.into_iter().sum();
            (sum, t.elapsed())
        }
        Contender::Tokio => mpmc_async::<AsyncChannel>(&Rt::new(contender)?, per, cap)?,
        _ => mpmc_async::<GortChan>(&Rt::new(contender)?, per, cap)?,
    };
    // Every value 0..per from each producer, exactly once.
    let want = MPMC_SIDES as u64 * (per * (per - 1) / 2);
    if sum != want {
        return Err(io::Error::other(format!(
            "sum {sum} != {want}: lost or duplicated"
        )));
    }
    Ok(elapsed)
}

/// The MPMC workload on an async runtime: the sum received and the time.
fn mpmc_async<C: Mpmc>(rt: &Rt, per: u64, cap: usize) -> io::Result<(u64, Duration)> {
    rt.block_on(async {
        let (tx, rx) = C::bounded(cap);
        let t = Instant::now();
        let ps: Vec<_> = (0..MPMC_SIDES)
            .map(|_| {
                let tx = tx.clone();
                rt.spawn(async move {
                    for i in 0..per {
                        C::send(&tx, i).await;
                    }
                })
            })
            .collect();
        drop(tx);
        let cs: Vec<_> = (0..MPMC_SIDES)
            .map(|_| {
                let rx = rx.clone();
                rt.spawn(async move {
                    let mut sum = 0u64;
                    while let Some(v) = C::recv(&rx).await {
                        sum += v;
                    }
                    sum
                })
            })
            .collect();
        join_all(ps).await?;
        let sum = join_all(cs).await?.into_iter().sum();
        Ok((sum, t.elapsed()))
    })
}

/// The load generator's runtime: gort on epoll, one worker, on core 1 (the same for
/// every contender).
fn client_rt() -> io::Result<gort::Runtime> {
    echo_servers::pin_to(1);
    gort::Runtime::builder()
        .workers(1)
        .driver(gort::DriverKind::Epoll)
        .build()
}

fn echo(contender: Contender, conns: usize, size: usize, secs: f64) -> io::Result<Metrics> {
    let rt = client_rt()?;
    let (mut server, addr) = start_server(contender.name())?;
    let pid = server.id().to_string();
    let res = (|| {
        let base_rss = proc_kb(&pid, "VmRSS:");
        let warm = Duration::from_millis(300);
        let window = Duration::from_secs_f64(secs);
        let mut rss = 0.0;
        let mut cpu = 0.0;
        let mut wall = 0.0;
        let lat = rt.block_on(async {
            // CPU and wall time cover the whole run, connection set-up included (the
            // same for every contender).
            let ramp = Duration::from_millis(conns as u64 / 4);
            let c0 = cpu_secs(server.id())?;
            let t0 = Instant::now();
            let end = t0 + warm + ramp + window;
            let tasks: Vec<_> = (0..conns)
                .map(|i| gort::spawn(echo_client::client(addr, size, (i % 250) as u8, end)))
                .collect();
            // Sample the server's memory once every connection is open and busy.
            gort::time::sleep(warm + ramp).await;
            rss = proc_kb(&pid, "VmRSS:");
            let mut all: Vec<u32> = Vec::new();
            for t in tasks {
                all.extend(t.await.map_err(io::Error::from)??);
            }
            cpu = cpu_secs(server.id())? - c0;
            wall = t0.elapsed().as_secs_f64();
            io::Result::Ok(all)
        })?;
        let mut lat = lat;
        if lat.is_empty() {
            return Err(io::Error::other("no round trip completed"));
        }
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64;
        let total = lat.len() as f64;
        Ok(vec![
            ("msg_per_server_cpu_s".to_owned(), total / cpu.max(1e-3)),
            ("msg_per_s".to_owned(), total / wall.max(1e-3)),
            ("p50_us".to_owned(), pct(0.5)),
            ("p99_us".to_owned(), pct(0.99)),
            (
                "server_bytes_per_conn".to_owned(),
                ((rss - base_rss) / conns as f64).max(0.0),
            ),
        ])
    })();
    let _ = server.kill();
    let _ = server.wait();
    res
}

fn churn(contender: Contender, secs: f64) -> io::Result<Metrics> {
    let rt = client_rt()?;
    let (mut server, addr) = start_server(contender.name())?;
    let res = rt.block_on(async {
        let c0 = cpu_secs(server.id())?;
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs_f64(secs);
        let done = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let done = done.clone();
                gort::spawn(async move {
                    let msg = [7u8; 64];
                    let mut back = [0u8; 64];
                    while Instant::now() < end {
                        let s = gort::net::TcpStream::connect(addr).await?;
                        s.write_all(&msg).await?;
                        let mut got = 0;
                        while got < 64 {
                            match s.read(&mut back[got..]).await? {
                                0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                                n => got += n,
                            }
                        }
                        if back != msg {
                            return Err(io::Error::other("echoed bytes differ"));
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    io::Result::Ok(())
                })
            })
            .collect();
        for t in tasks {
            t.await.map_err(io::Error::from)??;
        }
        let cpu = cpu_secs(server.id())? - c0;
        let wall = t0.elapsed().as_secs_f64();
        let n = done.load(Ordering::Relaxed) as f64;
        io::Result::Ok(vec![
            ("conns_per_server_cpu_s".to_owned(), n / cpu.max(1e-3)),
            ("conns_per_s".to_owned(), n / wall),
        ])
    });
    let _ = server.kill();
    let _ = server.wait();
    res
}

/// A small deterministic generator (xorshift) for the deadlines.
fn deadlines(n: usize) -> impl Iterator<Item = Duration> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Duration::from_micros(x % 200_000)
    })
}

fn timers(contender: Contender, n: usize) -> io::Result<usize> {
    if contender == Contender::Threads {
        let n = (n / 100).max(1);
        join_threads(
            deadlines(n)
                .map(|d| std::thread::spawn(move || std::thread::sleep(d)))
                .collect(),
        )?;
        return Ok(n);
    }
    let rt = Rt::new(contender)?;
    rt.block_on(async { join_all(deadlines(n).map(|d| rt.spawn_sleep(d)).collect()).await })?;
    Ok(n)
}

/// The short blocking function: 20 us of sleep (a stand-in for a quick syscall).
fn short_blocking() {
    std::thread::sleep(Duration::from_micros(20));
}

fn blocking(contender: Contender, n: usize) -> io::Result<(usize, Duration)> {
    if contender == Contender::Threads {
        let n = (n / 10).max(1);
        let t = Instant::now();
        join_threads((0..n).map(|_| std::thread::spawn(short_blocking)).collect())?;
        return Ok((n, t.elapsed()));
    }
    let rt = Rt::new(contender)?;
    let t = Instant::now();
    rt.block_on(async {
        join_all((0..n).map(|_| rt.spawn_blocking(short_blocking)).collect()).await
    })?;
    Ok((n, t.elapsed()))
}
