//! The nine workloads, each measured in a child process (`--child WORKLOAD CONTENDER
//! ARGS...`), which prints `metric=value` lines, the primary metric first.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::echo_servers::{cpu_secs, start_server};
use crate::{echo_client, echo_servers, Job, Metrics, Size};

pub const NAMES: [&str; 9] = [
    "spawn",
    "parked",
    "ping_pong",
    "mpmc",
    "echo",
    "churn",
    "timers",
    "blocking",
    "http",
];

/// Workers of the gort and tokio runtimes in the non-network workloads (the echo and
/// churn servers run one worker, pinned to core 0).
pub const WORKERS: usize = 2;

pub fn index(name: &str) -> usize {
    NAMES
        .iter()
        .position(|n| *n == name)
        .expect("known workload")
}

pub fn describe(w: usize) -> &'static str {
    [
        "spawn and join N tasks (N/100 threads); cost per unit and the process's peak RSS",
        "N tasks (N/100 threads) each parked on a channel receive; resident bytes per unit",
        "N round trips (threads: N/20) between two tasks (threads) over two channels",
        "4 producers x 4 consumers over one channel of capacity 1024 (tokio: async-channel; threads: std sync_channel, receiver behind a Mutex)",
        "server pinned to core 0 (one worker), load generator (gort on epoll, one message in flight per connection, every byte checked) on core 1; server RSS per connection while all are open",
        "connect, one 64-byte round trip, close, 32 clients at a time against the echo server on core 0",
        "N sleeps with random deadlines in 0..200 ms (N/100 threads sleeping); process CPU time per timer",
        "N calls of a 20 us blocking function on the blocking pool (threads: one thread per call, N/10)",
        "GET / answered `Hello, world!` by hyper (or axum) on one worker pinned to core 0 (tokio: hyper-util's TokioIo/TokioExecutor/TokioTimer, the same settings); wrk (HTTP/1.1) or h2load (HTTP/2, 10 streams per connection), one thread on core 1",
    ][w]
}

pub fn columns(w: usize) -> Vec<&'static str> {
    match NAMES[w] {
        "spawn" => vec!["ns per unit", "peak RSS MB"],
        "parked" => vec!["bytes per unit"],
        "ping_pong" => vec!["ns per round trip"],
        "mpmc" => vec!["ns per message"],
        "echo" => vec![
            "msg per server-CPU-s",
            "msg/s",
            "p50 us",
            "p99 us",
            "server bytes per conn",
        ],
        "churn" => vec!["conns per server-CPU-s", "conns/s"],
        "timers" => vec!["CPU ns per timer"],
        "http" => vec!["req per server-CPU-s", "req/s", "p50 us", "p99 us"],
        _ => vec!["ns per call"],
    }
}

pub fn primary_unit(w: usize) -> &'static str {
    columns(w)[0]
}

pub fn higher_is_better(w: usize) -> bool {
    matches!(NAMES[w], "echo" | "churn" | "http")
}

/// A variant a contender has no counterpart for.
pub fn skip(workload: &str, variant: &str, contender: &str) -> bool {
    // tokio has no rendezvous (capacity-0) channel; hyper has no thread-per-connection
    // server.
    (workload == "ping_pong" && variant == "cap 0" && contender == "tokio")
        || (workload == "http" && contender == "threads")
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

pub fn jobs(size: Size, nofile: u64) -> Vec<Job> {
    let n: usize = match size {
        Size::Full => 1_000_000,
        Size::Quick => 200_000,
        Size::Smoke => 2_000,
    };
    let secs = match size {
        Size::Full => "2",
        Size::Quick => "1",
        Size::Smoke => "0.2",
    };
    let job = |workload, variant: String, args: Vec<String>| Job {
        workload,
        variant,
        args,
    };
    let mut v = vec![
        job("spawn", format!("{n} tasks"), vec![n.to_string()]),
        job("parked", format!("{n} tasks"), vec![n.to_string()]),
    ];
    for cap in [0, 1] {
        v.push(job(
            "ping_pong",
            format!("cap {cap}"),
            vec![n.to_string(), cap.to_string()],
        ));
    }
    v.push(job("mpmc", format!("{n} messages"), vec![n.to_string()]));
    let conns: &[usize] = match size {
        Size::Full => &[100, 1000, 10000],
        Size::Quick => &[100, 10000],
        Size::Smoke => &[10],
    };
    let sizes: &[usize] = match size {
        Size::Full => &[64, 4096],
        Size::Quick | Size::Smoke => &[64],
    };
    for &c in conns {
        for &s in sizes {
            let variant = format!("{c} conns x {s} B");
            // Server and client each hold one descriptor per connection.
            if (c as u64) + 64 > nofile {
                eprintln!(
                    "echo {variant}: skipped, RLIMIT_NOFILE's hard limit is {nofile} \
                     (raise it with `ulimit -Hn`)"
                );
                continue;
            }
            v.push(job(
                "echo",
                variant,
                vec![c.to_string(), s.to_string(), secs.to_owned()],
            ));
        }
    }
    v.push(job("churn", "32 clients".into(), vec![secs.to_owned()]));
    http_jobs(size, &mut v);
    v.push(job("timers", format!("{n} sleeps"), vec![n.to_string()]));
    v.push(job(
        "blocking",
        format!("{} calls", n / 10),
        vec![(n / 10).to_string()],
    ));
    v
}

/// The http variants: hyper at 16/64/256 connections and axum at 64 (wrk), hyper over
/// HTTP/2 (h2load); each only where its load generator is installed.
fn http_jobs(size: Size, v: &mut Vec<Job>) {
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
            v.push(Job {
                workload: "http",
                variant: format!("{app}, {proto}, {conns} conns"),
                args: vec![
                    app.to_owned(),
                    tool.to_owned(),
                    conns.to_string(),
                    secs.to_owned(),
                ],
            });
        }
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> io::Result<T> {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| bad(format!("argument {i} missing or bad in {args:?}")))
}

/// The gort runtime for a contender (`gort-uring` / `gort-epoll`), `workers` workers.
fn gort_rt(contender: &str, workers: usize) -> io::Result<gort::Runtime> {
    let kind = if contender == "gort-uring" {
        gort::DriverKind::Uring
    } else {
        gort::DriverKind::Epoll
    };
    gort::Runtime::builder()
        .workers(workers)
        .driver(kind)
        .build()
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

pub fn child(args: &[String]) -> io::Result<Metrics> {
    let (workload, contender) = (args[0].as_str(), args[1].as_str());
    let rest = &args[2..];
    let m = |pairs: &[(&str, f64)]| -> Metrics {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    };
    match workload {
        "spawn" => {
            let n: usize = arg(rest, 0)?;
            let (units, t) = spawn(contender, n)?;
            Ok(m(&[
                ("ns_per_unit", t.as_nanos() as f64 / units as f64),
                ("peak_rss_mb", proc_kb("self", "VmHWM:") / 1e6),
            ]))
        }
        "parked" => Ok(m(&[("bytes_per_unit", parked(contender, arg(rest, 0)?)?)])),
        "ping_pong" => {
            let (n, cap): (usize, usize) = (arg(rest, 0)?, arg(rest, 1)?);
            let t = ping_pong(contender, n, cap)?;
            let units = ping_pong_units(contender, n);
            Ok(m(&[(
                "ns_per_round_trip",
                t.as_nanos() as f64 / units as f64,
            )]))
        }
        "mpmc" => {
            let n: usize = arg(rest, 0)?;
            let t = mpmc(contender, n)?;
            Ok(m(&[("ns_per_message", t.as_nanos() as f64 / n as f64)]))
        }
        "echo" => echo(contender, arg(rest, 0)?, arg(rest, 1)?, arg(rest, 2)?),
        "churn" => churn(contender, arg(rest, 0)?),
        "http" => {
            let (app, tool): (String, String) = (arg(rest, 0)?, arg(rest, 1)?);
            crate::http::measure(&app, contender, &tool, arg(rest, 2)?, arg(rest, 3)?)
        }
        "timers" => {
            let n: usize = arg(rest, 0)?;
            let before = cpu_secs_self();
            let units = timers(contender, n)?;
            let cpu = cpu_secs_self() - before;
            Ok(m(&[("cpu_ns_per_timer", cpu * 1e9 / units as f64)]))
        }
        "blocking" => {
            let n: usize = arg(rest, 0)?;
            let (units, t) = blocking(contender, n)?;
            Ok(m(&[("ns_per_call", t.as_nanos() as f64 / units as f64)]))
        }
        _ => Err(bad(format!("unknown workload {workload}"))),
    }
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
    fn new(contender: &str) -> io::Result<Rt> {
        Ok(if contender == "tokio" {
            Rt::Tokio(tokio_rt(WORKERS)?)
        } else {
            Rt::Gort(gort_rt(contender, WORKERS)?)
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
    /// wider `Join`).
    fn spawn_and_join<F>(&self, n: usize, f: impl Fn() -> F) -> io::Result<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        match self {
            Rt::Gort(rt) => rt.block_on(async {
                let hs: Vec<_> = (0..n).map(|_| gort::spawn(f())).collect();
                for h in hs {
                    h.await?;
                }
                Ok(())
            }),
            Rt::Tokio(rt) => rt.block_on(async {
                let hs: Vec<_> = (0..n).map(|_| tokio::spawn(f())).collect();
                for h in hs {
                    h.await.map_err(io::Error::other)?;
                }
                Ok(())
            }),
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
fn spawn(contender: &str, n: usize) -> io::Result<(usize, Duration)> {
    if contender == "threads" {
        let n = (n / 100).max(1);
        let t = Instant::now();
        join_threads((0..n).map(|_| std::thread::spawn(|| {})).collect())?;
        return Ok((n, t.elapsed()));
    }
    let rt = Rt::new(contender)?;
    let t = Instant::now();
    rt.spawn_and_join(n, || async {})?;
    Ok((n, t.elapsed()))
}

/// Resident bytes per unit parked on a channel receive.
fn parked(contender: &str, n: usize) -> io::Result<f64> {
    let ready = Arc::new(AtomicUsize::new(0));
    let wait_all = |units: usize| {
        while ready.load(Ordering::Acquire) < units {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    if contender == "threads" {
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
fn ping_pong_units(contender: &str, n: usize) -> usize {
    if contender == "threads" {
        (n / 20).max(1)
    } else {
        n
    }
}

fn ping_pong(contender: &str, n: usize, cap: usize) -> io::Result<Duration> {
    let n = ping_pong_units(contender, n);
    match contender {
        "threads" => {
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
        "tokio" => {
            let rt = tokio_rt(WORKERS)?;
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
            let rt = gort_rt(contender, WORKERS)?;
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
const MPMC_CAP: usize = 1024;

fn mpmc(contender: &str, n: usize) -> io::Result<Duration> {
    let per = (n / MPMC_SIDES) as u64;
    let (sum, elapsed) = match contender {
        "threads" => {
            let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(MPMC_CAP);
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
        "tokio" => mpmc_async::<AsyncChannel>(&Rt::new(contender)?, per)?,
        _ => mpmc_async::<GortChan>(&Rt::new(contender)?, per)?,
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
fn mpmc_async<C: Mpmc>(rt: &Rt, per: u64) -> io::Result<(u64, Duration)> {
    rt.block_on(async {
        let (tx, rx) = C::bounded(MPMC_CAP);
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

fn echo(contender: &str, conns: usize, size: usize, secs: f64) -> io::Result<Metrics> {
    let rt = client_rt()?;
    let (mut server, addr) = start_server(contender)?;
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

fn churn(contender: &str, secs: f64) -> io::Result<Metrics> {
    let rt = client_rt()?;
    let (mut server, addr) = start_server(contender)?;
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

fn timers(contender: &str, n: usize) -> io::Result<usize> {
    if contender == "threads" {
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

fn blocking(contender: &str, n: usize) -> io::Result<(usize, Duration)> {
    if contender == "threads" {
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
