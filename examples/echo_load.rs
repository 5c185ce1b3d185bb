//! Load generator for any TCP echo server:
//! `cargo run --release --example echo_load -- [--addr 127.0.0.1:7878] [--conns 100]
//! [--size 64] [--secs 5]`.
//!
//! Each connection keeps one message in flight: write `size` bytes, read them back,
//! check every byte, record the round trip. Stops by itself after `--secs`. Prints
//! messages/s, MB/s and p50/p99/p99.9 latency. Loopback only in this project's use.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[path = "../benches/support/echo_client.rs"]
mod echo_client;

use echo_client::client;

struct Args {
    addr: SocketAddr,
    conns: usize,
    size: usize,
    secs: u64,
}

fn parse() -> io::Result<Args> {
    let mut a = Args {
        addr: "127.0.0.1:7878".parse().expect("literal"),
        conns: 100,
        size: 64,
        secs: 5,
    };
    let bad = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| bad(format!("{k} needs a value")))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| bad(format!("{k} {v:?}: {e}")));
        match k.as_str() {
            "--addr" => a.addr = v.parse().map_err(|e| bad(format!("--addr {v:?}: {e}")))?,
            "--conns" => a.conns = num(&v)? as usize,
            "--size" => a.size = num(&v)? as usize,
            "--secs" => a.secs = num(&v)?,
            _ => return Err(bad(format!("unknown argument {k:?}"))),
        }
    }
    if a.conns == 0 || a.size == 0 {
        return Err(bad("--conns and --size must be positive".into()));
    }
    Ok(a)
}

fn main() -> io::Result<()> {
    let a = parse()?;
    let rt = gort::Runtime::new()?;
    let end = Instant::now() + Duration::from_secs(a.secs);
    let start = Instant::now();
    let mut lat: Vec<u32> = rt.block_on(async {
        let tasks: Vec<_> = (0..a.conns)
            .map(|i| gort::spawn(client(a.addr, a.size, i as u8, end)))
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.map_err(io::Error::from)??);
        }
        io::Result::Ok(all)
    })?;
    let secs = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let msgs = lat.len() as f64 / secs;
    println!(
        "{} conns x {} B for {:.1} s: {:.0} msg/s, {:.2} MB/s, latency p50 {} us, p99 {} us, p99.9 {} us (every byte checked)",
        a.conns,
        a.size,
        secs,
        msgs,
        msgs * a.size as f64 * 2.0 / 1e6,
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
    Ok(())
}
