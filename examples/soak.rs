//! Soak: mixed echo, channels and timers on one runtime for a long time, watching
//! that nothing drifts. Not a CI test (it runs for half an hour by default):
//!
//! ```text
//! cargo run --release --example soak -- [--minutes 30] [--driver epoll|uring]
//! ```
//!
//! What runs, all at once, until the time is up:
//! - an echo server and 64 client tasks over loopback, each sending messages of random
//!   sizes (1 B to 16 KiB) and checking every byte that comes back; every 1,000
//!   messages a client reconnects (connection churn);
//! - 16 ping-pong pairs over capacity-0 and capacity-1 channels, and a 4x4 MPMC
//!   channel with a checksum of everything sent and received;
//! - 200 tasks on `sleep`, `interval` and `timeout` loops, checking that no timer
//!   fires early;
//! - `spawn_blocking` calls, and short-lived tasks spawned and joined.
//!
//! Every 10 s it prints one line: counts so far, RSS, open descriptors, live tasks.
//! At the end it prints the RSS drift, the mean of the last five minutes' samples
//! against the mean of the five minutes after the warm-up (5 minutes in a run of 20 or
//! more, else 1), the same for the heap's live bytes (a counting allocator: a leak
//! shows there exactly), and exits non-zero on any error or on an RSS drift of 5% or
//! more.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gort::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    echoed: AtomicU64,
    reconnects: AtomicU64,
    pings: AtomicU64,
    mpmc: AtomicU64,
    ticks: AtomicU64,
    blocking: AtomicU64,
    spawned: AtomicU64,
    errors: AtomicU64,
}

#[path = "../benches/support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// xorshift: the same sizes every run, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn fail(counts: &Counts, what: impl std::fmt::Display) {
    counts.errors.fetch_add(1, Ordering::Relaxed);
    eprintln!("soak error: {what}");
}

async fn echo_server() -> io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    gort::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            gort::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn echo_client(id: u64, addr: std::net::SocketAddr, c: Arc<Counts>, stop: Arc<AtomicBool>) {
    let mut rng = Rng(id * 2_654_435_761 + 1);
    while !stop.load(Ordering::Relaxed) {
        let s = match TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                fail(&c, format!("connect: {e}"));
                gort::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        for _ in 0..1000 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let len = 1 + (rng.next() % (16 * 1024)) as usize;
            let seed = rng.next() as u8;
            let msg: Vec<u8> = (0..len).map(|i| seed.wrapping_add(i as u8)).collect();
            if let Err(e) = s.write_all(&msg).await {
                fail(&c, format!("write: {e}"));
                break;
            }
            let mut got = vec![0u8; len];
            let mut have = 0;
            while have < len {
                match s.read(&mut got[have..]).await {
                    Ok(0) => break,
                    Ok(n) => have += n,
                    Err(e) => {
                        fail(&c, format!("read: {e}"));
                        break;
                    }
                }
            }
            if got != msg {
                fail(&c, format!("client {id}: echoed bytes differ"));
                break;
            }
            c.echoed.fetch_add(1, Ordering::Relaxed);
        }
        c.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

async fn ping_pong(cap: usize, c: Arc<Counts>, stop: Arc<AtomicBool>) {
    let (to_b, from_a) = gort::chan::bounded::<u64>(cap);
    let (to_a, from_b) = gort::chan::bounded::<u64>(cap);
    let b = gort::spawn(async move {
        while let Some(v) = from_a.recv().await {
            if to_a.send(v + 1).await.is_err() {
                return;
            }
        }
    });
    let mut v = 0;
    while !stop.load(Ordering::Relaxed) {
        to_b.send(v).await.unwrap();
        let back = from_b.recv().await.unwrap();
        if back != v + 1 {
            fail(&c, format!("ping-pong: sent {v}, got {back}"));
        }
        v = back;
        c.pings.fetch_add(1, Ordering::Relaxed);
    }
    drop(to_b);
    let _ = b.await;
}

async fn mpmc_round(c: Arc<Counts>) {
    const PER: u64 = 10_000;
    let (tx, rx) = gort::chan::bounded::<u64>(1024);
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let tx = tx.clone();
            gort::spawn(async move {
                for i in 0..PER {
                    tx.send(p * PER + i).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumers: Vec<_> = (0..4)
        .map(|_| {
            let rx = rx.clone();
            gort::spawn(async move {
                let mut sum = 0u64;
                let mut n = 0u64;
                while let Some(v) = rx.recv().await {
                    sum += v;
                    n += 1;
                }
                (sum, n)
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let (mut sum, mut n) = (0, 0);
    for k in consumers {
        let (s, m) = k.await.unwrap();
        sum += s;
        n += m;
    }
    let total = 4 * PER;
    if n != total || sum != total * (total - 1) / 2 {
        fail(&c, format!("mpmc: {n} messages, sum {sum}"));
    }
    c.mpmc.fetch_add(n, Ordering::Relaxed);
}

async fn timers(id: u64, c: Arc<Counts>, stop: Arc<AtomicBool>) {
    let period = Duration::from_millis(5 + id % 20);
    let mut iv = gort::time::interval(period);
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        match id % 3 {
            0 => gort::time::sleep(period).await,
            1 => {
                iv.tick().await;
            }
            _ => {
                let r = gort::time::timeout(period, std::future::pending::<()>()).await;
                if r.is_ok() {
                    fail(&c, "a pending future completed");
                }
            }
        }
        if id % 3 != 1 && start.elapsed() < period {
            fail(
                &c,
                format!("timer {id} fired early: {:?} < {period:?}", start.elapsed()),
            );
        }
        c.ticks.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() -> io::Result<()> {
    let mut minutes = 30u64;
    let mut driver = None;
    let mut args = std::env::args().skip(1);
    while let Some(k) = args.next() {
        let v = args.next().unwrap_or_default();
        match k.as_str() {
            "--minutes" => minutes = v.parse().map_err(|_| io::ErrorKind::InvalidInput)?,
            "--driver" => {
                driver = Some(match v.as_str() {
                    "uring" => gort::DriverKind::Uring,
                    _ => gort::DriverKind::Epoll,
                })
            }
            _ => {
                eprintln!("usage: soak [--minutes N] [--driver epoll|uring]");
                std::process::exit(2);
            }
        }
    }
    let mut b = gort::Runtime::builder();
    if let Some(d) = driver {
        b.driver(d);
    }
    let rt = b.build()?;
    println!(
        "soak: {minutes} min on {:?}, {} workers",
        rt.driver(),
        rt.metrics().num_workers()
    );
    let c = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let total = Duration::from_secs(minutes * 60);
    // RSS climbs for the first minutes as the allocator's per-thread arenas fill (seen:
    // 10 to 17 MiB over 4 minutes, flat after): the baseline starts after 5 minutes of
    // a long run, 1 of a short one.
    let warm_up = if total >= Duration::from_secs(20 * 60) {
        Duration::from_secs(300)
    } else {
        Duration::from_secs(60).min(total / 2)
    };
    let res = rt.block_on({
        let c = c.clone();
        let stop = stop.clone();
        let metrics = rt.metrics();
        async move {
            let addr = echo_server().await?;
            let mut work = Vec::new();
            for id in 0..64 {
                work.push(gort::spawn(echo_client(id, addr, c.clone(), stop.clone())));
            }
            for i in 0..16 {
                work.push(gort::spawn(ping_pong(i % 2, c.clone(), stop.clone())));
            }
            for id in 0..200 {
                work.push(gort::spawn(timers(id, c.clone(), stop.clone())));
            }
            {
                let (c, stop) = (c.clone(), stop.clone());
                work.push(gort::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        mpmc_round(c.clone()).await;
                        let v = gort::spawn_blocking(|| 2 + 2).await.unwrap();
                        assert_eq!(v, 4);
                        c.blocking.fetch_add(1, Ordering::Relaxed);
                        let hs: Vec<_> = (0..100u64).map(|i| gort::spawn(async move { i })).collect();
                        for (i, h) in hs.into_iter().enumerate() {
                            if h.await.unwrap() != i as u64 {
                                fail(&c, "a join returned the wrong value");
                            }
                        }
                        c.spawned.fetch_add(100, Ordering::Relaxed);
                    }
                }));
            }
            let start = Instant::now();
            let mut baseline = None;
            let mut samples = Vec::new();
            let mut heap = Vec::new();
            while start.elapsed() < total {
                gort::time::sleep(Duration::from_secs(10)).await;
                let rss = rss_bytes();
                let live = counting_alloc::live_bytes();
                if baseline.is_none() && start.elapsed() >= warm_up {
                    // The first sample after the warm-up.
                    baseline = Some(samples.len());
                }
                samples.push(rss);
                heap.push(live);
                println!(
                    "{:>5} s  echoed {:>10}  reconnects {:>7}  pings {:>11}  mpmc {:>10}  ticks {:>9}  blocking {:>6}  spawned {:>9}  errors {}  rss {:>6} KiB  heap {:>6} KiB  fds {:>4}  tasks {}",
                    start.elapsed().as_secs(),
                    c.echoed.load(Ordering::Relaxed),
                    c.reconnects.load(Ordering::Relaxed),
                    c.pings.load(Ordering::Relaxed),
                    c.mpmc.load(Ordering::Relaxed),
                    c.ticks.load(Ordering::Relaxed),
                    c.blocking.load(Ordering::Relaxed),
                    c.spawned.load(Ordering::Relaxed),
                    c.errors.load(Ordering::Relaxed),
                    rss / 1024,
                    live / 1024,
                    open_fds(),
                    metrics.num_alive_tasks(),
                );
            }
            stop.store(true, Ordering::Relaxed);
            for w in work {
                let _ = gort::time::timeout(Duration::from_secs(10), w).await;
            }
            // RSS moves by a few MiB from sample to sample as the allocator's caches
            // fill and empty: compare the mean of the five minutes after the warm-up
            // with the mean of the last five (30 samples each; a quarter of the run
            // each when it is shorter), not two single samples.
            let per_minute = 30.min(samples.len() / 4).max(1);
            let from = baseline.unwrap_or(0);
            let mean = |w: &[u64]| w.iter().sum::<u64>() / w.len().max(1) as u64;
            let base = mean(&samples[from..(from + per_minute).min(samples.len())]);
            let end = mean(&samples[samples.len().saturating_sub(per_minute)..]);
            let drift = (end as f64 - base as f64) / base.max(1) as f64 * 100.0;
            let peak = samples.iter().copied().max().unwrap_or(0);
            let heap_base = mean(&heap[from..(from + per_minute).min(heap.len())]);
            let heap_end = mean(&heap[heap.len().saturating_sub(per_minute)..]);
            let heap_drift = (heap_end as f64 - heap_base as f64) / heap_base.max(1) as f64 * 100.0;
            println!(
                "soak done: {minutes} min, errors {}, mean RSS after warm-up {} KiB, at the end {} KiB (drift {drift:+.2}%), peak {} KiB; live heap {} KiB -> {} KiB ({heap_drift:+.2}%)",
                c.errors.load(Ordering::Relaxed),
                base / 1024,
                end / 1024,
                peak / 1024,
                heap_base / 1024,
                heap_end / 1024
            );
            io::Result::Ok(drift)
        }
    });
    let drift = res?;
    if c.errors.load(Ordering::Relaxed) > 0 || drift >= 5.0 {
        std::process::exit(1);
    }
    Ok(())
}
