//! What a blocking task does to its neighbours: a ticker shares a one-worker runtime
//! with a task that blocks that worker for 1 s (`std::thread::sleep`, then a busy
//! loop). Three tickers, written as users write them:
//! - `sleep`: a task looping on the runtime's own `sleep(10 ms)`;
//! - `echo`: a plain-thread client sending 64 B every 10 ms to an echo server task on
//!   the runtime (the gap is its worst round trip plus the 10 ms pause);
//! - `spawn_blocking`: a task looping on `spawn_blocking(|| thread::sleep(10 ms))`,
//!   whose wake-ups come from a blocking thread, not the reactor.
//!
//! Prints the ticker's worst gap for gort (monitor on), gort with hand-offs off, and
//! tokio's multi-thread runtime with one worker, plus how often gort's monitor had to
//! turn the reactor. `cargo bench --bench blocking_ticker` (about 30 s).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TICK: Duration = Duration::from_millis(10);
const BLOCK: Duration = Duration::from_secs(1);
const SETTLE: Duration = Duration::from_millis(50);

#[derive(Clone, Copy)]
enum Blocker {
    Sleep,
    Spin,
}

impl Blocker {
    fn run(self) {
        match self {
            Blocker::Sleep => std::thread::sleep(BLOCK),
            Blocker::Spin => {
                let end = Instant::now() + BLOCK;
                let mut x = 0u64;
                while Instant::now() < end {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Blocker::Sleep => "thread::sleep",
            Blocker::Spin => "busy loop",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ticker {
    Sleep,
    Echo,
    SpawnBlocking,
}

impl Ticker {
    fn name(self) -> &'static str {
        match self {
            Ticker::Sleep => "sleep(10 ms) loop",
            Ticker::Echo => "echo every 10 ms (plain-thread client)",
            Ticker::SpawnBlocking => "spawn_blocking(sleep 10 ms) loop",
        }
    }
}

/// The `sleep` and `spawn_blocking` tickers, on either runtime (`sleep` and
/// `blocking` are its own): ticks until `stop`, returns the worst gap. The echo ticker
/// is measured by its client instead (zero here).
async fn tick_loop<S, SF, B, BF>(
    ticker: Ticker,
    stop: Arc<AtomicBool>,
    sleep: S,
    blocking: B,
) -> Duration
where
    S: Fn() -> SF,
    SF: std::future::Future<Output = ()>,
    B: Fn() -> BF,
    BF: std::future::Future<Output = ()>,
{
    let (mut last, mut worst) = (Instant::now(), Duration::ZERO);
    while !stop.load(Ordering::SeqCst) {
        match ticker {
            Ticker::Sleep => sleep().await,
            Ticker::SpawnBlocking => blocking().await,
            Ticker::Echo => return Duration::ZERO,
        }
        let now = Instant::now();
        worst = worst.max(now - last);
        last = now;
    }
    worst
}

/// The client side of the echo ticker: round trips every `TICK` until `stop`; the
/// worst gap between the starts of two round trips.
fn echo_client(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> Duration {
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let (mut last, mut worst) = (Instant::now(), Duration::ZERO);
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        c.write_all(&[1u8; 64]).expect("write");
        c.read_exact(&mut buf).expect("read");
        let now = Instant::now();
        worst = worst.max(now - last);
        last = now;
        std::thread::sleep(TICK);
    }
    worst
}

fn gort_worst_gap(ticker: Ticker, blocker: Blocker, threshold: Duration) -> (Duration, u64) {
    let rt = gort::Runtime::builder()
        .workers(1)
        .blocking_threshold(threshold)
        .build()
        .expect("gort runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let client = (ticker == Ticker::Echo).then(|| {
        let addr = rt.block_on(async {
            let l = gort::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            gort::spawn(async move {
                let (s, _) = l.accept().await.expect("accept");
                let mut buf = vec![0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            addr
        });
        let stop = stop.clone();
        std::thread::spawn(move || echo_client(addr, stop))
    });
    let s = stop.clone();
    let worst = rt.block_on(async move {
        let ticks = gort::spawn(tick_loop(
            ticker,
            s,
            || gort::time::sleep(TICK),
            || async {
                gort::spawn_blocking(|| std::thread::sleep(TICK))
                    .await
                    .expect("tick")
            },
        ));
        gort::time::sleep(SETTLE).await;
        gort::spawn(async move { blocker.run() })
            .await
            .expect("blocker");
        stop.store(true, Ordering::SeqCst);
        ticks.await.expect("ticker")
    });
    let worst = match client {
        Some(c) => c.join().expect("client"),
        None => worst,
    };
    (worst, rt.metrics().num_monitor_reactor_turns())
}

fn tokio_worst_gap(ticker: Ticker, blocker: Blocker) -> Duration {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let client = (ticker == Ticker::Echo).then(|| {
        let addr = rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = l.local_addr().expect("addr");
            tokio::spawn(async move {
                let (mut s, _) = l.accept().await.expect("accept");
                let mut buf = vec![0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            addr
        });
        let stop = stop.clone();
        std::thread::spawn(move || echo_client(addr, stop))
    });
    let s = stop.clone();
    let worst = rt.block_on(async move {
        let ticks = tokio::spawn(tick_loop(
            ticker,
            s,
            || tokio::time::sleep(TICK),
            || async {
                tokio::task::spawn_blocking(|| std::thread::sleep(TICK))
                    .await
                    .expect("tick")
            },
        ));
        tokio::time::sleep(SETTLE).await;
        tokio::spawn(async move { blocker.run() })
            .await
            .expect("blocker");
        stop.store(true, Ordering::SeqCst);
        ticks.await.expect("ticker")
    });
    match client {
        Some(c) => c.join().expect("client"),
        None => worst,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let driver = gort::Runtime::new()
        .ok()
        .and_then(|rt| rt.driver())
        .map_or("none".to_owned(), |d| d.to_string());
    println!(
        "\n## blocking_ticker: worst gap of a {TICK:?} ticker while a neighbour blocks its only worker for {BLOCK:?} (gort on {driver})\n"
    );
    println!("| ticker | blocker | gort (monitor, 10 ms) | monitor reactor turns | gort (hand-offs off) | tokio (1 worker) |");
    println!("|---|---|---:|---:|---:|---:|");
    for ticker in [Ticker::Sleep, Ticker::Echo, Ticker::SpawnBlocking] {
        for blocker in [Blocker::Sleep, Blocker::Spin] {
            eprintln!("blocking_ticker: {} / {}", ticker.name(), blocker.name());
            let (on, turns) = gort_worst_gap(ticker, blocker, Duration::from_millis(10));
            let (off, _) = gort_worst_gap(ticker, blocker, Duration::ZERO);
            let tokio = tokio_worst_gap(ticker, blocker);
            println!(
                "| {} | {} | {} | {turns} | {} | {} |",
                ticker.name(),
                blocker.name(),
                ms(on),
                ms(off),
                ms(tokio)
            );
        }
    }
}
