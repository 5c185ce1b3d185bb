//! hyper on gort: `cargo run --release --example hello_http [-- --addr 127.0.0.1:3000]`.
//!
//! `curl http://127.0.0.1:3000/` says hello in plain text, `/json` in JSON (with the
//! client's address), anything else is a 404. HTTP/1.1 and HTTP/2 (h2c prior
//! knowledge: `curl --http2-prior-knowledge`). Ctrl-C or SIGTERM stops it gracefully:
//! the listener closes, requests in flight finish.

use std::convert::Infallible;
use std::future::Future;
use std::io;

use gort::hyper::PeerAddr;
use gort::net::TcpListener;
use gort::signal::unix::{signal, SignalKind};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// The whole application: one function from request to response.
async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => text(StatusCode::OK, "Hello, world!\n"),
        (&Method::GET, "/json") => {
            let body = serde_json::json!({
                "message": "Hello, world!",
                "peer": peer.map(|p| p.to_string()),
            });
            let mut res = Response::new(Full::new(Bytes::from(body.to_string())));
            res.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            res
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// Completes on the first Ctrl-C or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled.
fn stop_signal() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        gort::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
        println!("hello_http: stopping");
    })
}

#[gort::main]
async fn main() -> io::Result<()> {
    let addr = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => DEFAULT_ADDR.to_owned(),
        [flag, addr] if flag == "--addr" => addr.clone(),
        _ => {
            eprintln!("usage: hello_http [--addr HOST:PORT]   (default {DEFAULT_ADDR})");
            std::process::exit(2);
        }
    };
    let stop = stop_signal()?;
    let listener = TcpListener::bind(addr).await?;
    println!(
        "hello_http listening on http://{} ({} driver); Ctrl-C to stop",
        listener.local_addr()?,
        gort::runtime::Driver::current()?.kind()
    );
    gort::hyper::serve(listener, hyper::service::service_fn(handle))
        .with_graceful_shutdown(stop)
        .await
}
