//! The `http` workload: hyper (and axum) servers on gort and on tokio, loaded by `wrk`
//! (HTTP/1.1) and `h2load` (HTTP/2, h2c prior knowledge).
//!
//! Each server runs in its own process (`gort-bench --server http-APP-CONTENDER`),
//! pinned to core 0 with one worker; the load generator is pinned to core 1. Both
//! servers answer `GET /` with `Hello, world!` (13 bytes, `text/plain`), through the
//! same hyper-util auto builder with the same settings (`header_read_timeout` 30 s,
//! HTTP/2 keep-alive 60 s / 20 s, `TCP_NODELAY`), one task per connection: gort's
//! through `gort::hyper::serve`, tokio's written out with `TokioIo`/`TokioExecutor`/
//! `TokioTimer`, as hyper-util's docs show.
//!
//! The load generators are Debian packages: `apt-get install wrk nghttp2-client`.
//! Without them the workload is skipped with that hint.

use std::convert::Infallible;
use std::io::{self, Write};
use std::process::Command;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

use crate::echo_servers::{cpu_secs, pin_to, start_server};
use crate::{Contender, Metrics};

const BODY: &[u8] = b"Hello, world!";

/// Whether `tool` can be run (it prints its version or usage).
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg(if tool == "wrk" { "-v" } else { "--version" })
        .output()
        .is_ok()
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    Ok(res)
}

fn axum_app() -> axum::Router {
    axum::Router::new().route(
        "/",
        axum::routing::get(|| async { ([("content-type", "text/plain")], BODY) }),
    )
}

/// `--server http-{hyper|axum}-{gort-uring|gort-epoll|tokio}`: serves on core 0 until
/// killed, after printing its address.
pub fn serve(kind: &str) -> io::Result<()> {
    pin_to(0);
    let rest = kind.strip_prefix("http-").unwrap_or(kind);
    let (app, contender) = rest
        .split_once('-')
        .ok_or_else(|| io::Error::other(format!("bad server kind {kind}")))?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?);
    io::stdout().flush()?;
    let kind = match Contender::from_name(contender) {
        Some(Contender::GortUring) => Some(gort::DriverKind::Uring),
        Some(Contender::GortEpoll) => Some(gort::DriverKind::Epoll),
        Some(Contender::Tokio) => None,
        _ => return Err(io::Error::other(format!("no http server for {contender}"))),
    };
    match kind {
        Some(kind) => {
            let rt = gort::Runtime::builder().workers(1).driver(kind).build()?;
            rt.block_on(async move {
                let l = gort::net::TcpListener::from_std(listener)?;
                if app == "axum" {
                    let svc = gort::hyper::TowerToHyperService::new(axum_app());
                    gort::hyper::serve(l, svc).await
                } else {
                    gort::hyper::serve(l, hyper::service::service_fn(hello)).await
                }
            })
        }
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                listener.set_nonblocking(true)?;
                let l = tokio::net::TcpListener::from_std(listener)?;
                if app == "axum" {
                    let svc = hyper_util::service::TowerToHyperService::new(axum_app());
                    tokio_serve(l, svc).await
                } else {
                    tokio_serve(l, hyper::service::service_fn(hello)).await
                }
            })
        }
    }
}

/// What `gort::hyper::serve` does, on tokio: the same builder and settings.
async fn tokio_serve<S, B>(l: tokio::net::TcpListener, svc: S) -> io::Result<()>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(Duration::from_secs(30)));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = std::sync::Arc::new(builder);
    loop {
        let (stream, _) = l.accept().await?;
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let svc = svc.clone();
        tokio::spawn(async move {
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Runs the load generator (`wrk -t1 -cCONNS`, or `h2load -t1 -cCONNS -mSTREAMS`) for
/// `secs` against `http-APP-CONTENDER`, on core 1.
pub fn measure(
    app: &str,
    contender: Contender,
    tool: &str,
    conns: usize,
    secs: u64,
) -> io::Result<Metrics> {
    pin_to(1);
    let (mut server, addr) = start_server(&format!("http-{app}-{contender}"))?;
    let res = (|| {
        let url = format!("http://{addr}/");
        // Warm up: the first connections, the allocator, the page cache.
        let _ = Command::new(tool)
            .args(load_args(tool, conns, 1, &url, None))
            .output()?;
        let c0 = cpu_secs(server.id())?;
        let log =
            std::env::temp_dir().join(format!("gort-bench-h2load-{}.log", std::process::id()));
        let out = Command::new(tool)
            .args(load_args(tool, conns, secs, &url, Some(&log)))
            .output()?;
        let cpu = cpu_secs(server.id())? - c0;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{tool} failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let parsed = if tool == "wrk" {
            parse_wrk(&text)
        } else {
            parse_h2load(&text, &log)
        };
        let _ = std::fs::remove_file(&log);
        let (requests, per_sec, p50, p99) = parsed?;
        if requests == 0.0 {
            return Err(io::Error::other(format!(
                "{tool}: no request completed: {text}"
            )));
        }
        Ok(vec![
            ("req_per_server_cpu_s".to_owned(), requests / cpu.max(1e-3)),
            ("req_per_s".to_owned(), per_sec),
            ("p50_us".to_owned(), p50),
            ("p99_us".to_owned(), p99),
        ])
    })();
    let _ = server.kill();
    let _ = server.wait();
    res
}

fn load_args(
    tool: &str,
    conns: usize,
    secs: u64,
    url: &str,
    log: Option<&std::path::Path>,
) -> Vec<String> {
    let mut a: Vec<String> = if tool == "wrk" {
        vec![
            "-t1".into(),
            format!("-c{conns}"),
            format!("-d{secs}s"),
            "--latency".into(),
        ]
    } else {
        // 10 streams in flight per connection, for `secs` seconds.
        vec![
            "-t1".into(),
            format!("-c{conns}"),
            "-m10".into(),
            format!("-D{secs}"),
        ]
    };
    if let Some(log) = log {
        if tool != "wrk" {
            a.push(format!("--log-file={}", log.display()));
        }
    }
    a.push(url.to_owned());
    a
}

/// wrk's `N requests in Ts`, `Requests/sec: R` and its latency distribution.
fn parse_wrk(text: &str) -> io::Result<(f64, f64, f64, f64)> {
    let bad = || io::Error::other(format!("cannot read wrk's output: {text}"));
    let requests = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .map(|(n, _)| n.trim().to_owned())
        })
        .and_then(|n| n.parse::<f64>().ok())
        .ok_or_else(bad)?;
    let per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(bad)?;
    let pct = |p: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| wrk_duration_us(v.trim()))
            .ok_or_else(bad)
    };
    Ok((requests, per_sec, pct("50%")?, pct("99%")?))
}

/// `812.00us`, `1.23ms`, `2.00s` in microseconds.
fn wrk_duration_us(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}

/// h2load's `requests: N total, N started, N done, N succeeded`, `finished in Ts, R
/// req/s`, and the percentiles from its per-request log (start, status, microseconds).
fn parse_h2load(text: &str, log: &std::path::Path) -> io::Result<(f64, f64, f64, f64)> {
    let bad = || io::Error::other(format!("cannot read h2load's output: {text}"));
    let succeeded = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("requests:"))
        .and_then(|l| {
            l.split(',')
                .find(|f| f.contains("succeeded"))
                .map(str::to_owned)
        })
        .and_then(|f| {
            f.split_whitespace()
                .next()
                .and_then(|n| n.parse::<f64>().ok())
        })
        .ok_or_else(bad)?;
    let per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("finished in "))
        .and_then(|l| l.split(',').nth(1).map(str::to_owned))
        .and_then(|f| f.trim().strip_suffix("req/s").map(|n| n.trim().to_owned()))
        .and_then(|n| n.parse::<f64>().ok())
        .ok_or_else(bad)?;
    let mut lat: Vec<f64> = std::fs::read_to_string(log)?
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.trim().parse::<f64>().ok())
        .collect();
    if lat.is_empty() {
        return Err(bad());
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    Ok((succeeded, per_sec, pct(0.5), pct(0.99)))
}
