//! hyper 1.x on gort (feature `hyper`): servers with [`serve`], and the pieces to build
//! anything else hyper can do (clients, custom accept loops).
//!
//! - gort's [`TcpStream`], its owned halves and `UnixStream` implement
//!   `hyper::rt::Read` and `hyper::rt::Write` themselves: hand them to hyper as they
//!   are, no wrapper. Reads go into hyper's buffer without zero-filling it; writes are
//!   vectored.
//! - [`Io`] adapts any `futures::io::AsyncRead + AsyncWrite` (a TLS stream).
//! - [`Executor`] and [`Timer`] are hyper-util's `TokioExecutor` and `TokioTimer` for
//!   gort: give them to any hyper builder (`http2::Builder::new(Executor)`,
//!   `.timer(Timer)`).
//! - [`serve`] runs a server: HTTP/1.1 and HTTP/2 (h2c with prior knowledge) on one
//!   listener, one task per connection, upgrades, timeouts, graceful shutdown.
//!
//! A server, the way hyper's own examples write it for tokio:
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//! use hyper::{Request, Response};
//!
//! #[gort::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = gort::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     let service = hyper::service::service_fn(|_req: Request<Incoming>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hello\n"))))
//!     });
//!     gort::hyper::serve(listener, service)
//!         .with_graceful_shutdown(async { let _ = gort::signal::ctrl_c().await; })
//!         .await
//! }
//! ```
//!
//! A `tower::Service` (an axum `Router`) goes through [`TowerToHyperService`]:
//! `serve(listener, TowerToHyperService::new(router))`. Handlers find the client's
//! address in the request's extensions as [`PeerAddr`] (axum:
//! `Extension(PeerAddr(addr)): Extension<PeerAddr>`).

use std::error::Error as StdError;
use std::fmt;
use std::future::{poll_fn, Future, IntoFuture};
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;

use crate::net::{TcpListener, TcpStream};
use crate::sync::Context;
use crate::task::JoinSet;

pub use gort_netio::compat::hyper::{Executor, Io, Sleep, Timer};
pub use hyper_util::service::TowerToHyperService;

type BoxError = Box<dyn StdError + Send + Sync>;
type Signal = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The client's address, in every request's extensions when the server runs on
/// [`serve`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddr(pub SocketAddr);

/// Serves HTTP/1.1 and HTTP/2 on `listener` with `service`, one task per connection,
/// until the listener fails (or, with
/// [`with_graceful_shutdown`](Serve::with_graceful_shutdown), until asked to stop).
/// Await the returned [`Serve`] to run it.
///
/// Each connection gets a clone of `service`, and each request a [`PeerAddr`]
/// extension. The protocol is detected from the first bytes (HTTP/2 needs prior
/// knowledge, h2c: there is no TLS here, ALPN is the TLS layer's business). HTTP/1.1
/// upgrades (WebSocket) work. Defaults, each a method of [`Serve`]: a client has 30 s to
/// send a request's headers (`header_read_timeout`, Go's `ReadHeaderTimeout`; the
/// same limit applies first to a new connection's first bytes, so a first request may
/// take up to twice it); HTTP/2
/// connections are pinged after 60 s of silence and closed when the ping is not
/// answered within 20 s; a graceful shutdown waits 30 s at most for in-flight requests.
/// Accepted sockets get `TCP_NODELAY`, as in axum's and Go's servers.
///
/// # Errors
/// The awaited `Serve` returns the listener's error (an out-of-descriptors `accept`,
/// or a connection that failed before it was accepted, is not one: the listener
/// waits or skips it and goes on); the connections already accepted then live on,
/// detached. An error on one connection (a client that resets, a malformed request)
/// closes that connection only.
pub fn serve<S, B>(listener: TcpListener, service: S) -> Serve<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    Serve {
        listener,
        service,
        signal: None,
        header_read_timeout: Some(Duration::from_secs(30)),
        keep_alive_interval: Some(Duration::from_secs(60)),
        keep_alive_timeout: Duration::from_secs(20),
        grace: Duration::from_secs(30),
    }
}

/// A server being configured; `.await` it to run. Returned by [`serve`].
#[must_use = "a server does nothing until awaited"]
pub struct Serve<S> {
    listener: TcpListener,
    service: S,
    signal: Option<Signal>,
    header_read_timeout: Option<Duration>,
    keep_alive_interval: Option<Duration>,
    keep_alive_timeout: Duration,
    grace: Duration,
}

impl<S> Serve<S> {
    /// Stops the server when `signal` completes: the listener is closed at once (new
    /// connections are refused), every connection finishes the requests it has begun
    /// (HTTP/1.1 closes after the response in flight, HTTP/2 sends `GOAWAY`), and the
    /// server returns `Ok(())` when the last one closes, or after the
    /// [grace period](Self::shutdown_grace), when the rest are dropped. (HTTP/2
    /// requests run in tasks of their own, spawned through [`Executor`] as hyper
    /// does on tokio: a request still running when its connection is dropped runs
    /// on, detached, as it would with hyper-util on tokio.)
    pub fn with_graceful_shutdown<F>(mut self, signal: F) -> Serve<S>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.signal = Some(Box::pin(signal));
        self
    }

    /// How long a client may take to send a request's headers (HTTP/1), from the
    /// connection's start or the end of the previous response; `None` for no limit.
    /// Default 30 s.
    pub fn header_read_timeout(mut self, limit: Option<Duration>) -> Serve<S> {
        self.header_read_timeout = limit;
        self
    }

    /// HTTP/2: after this long without a frame the server pings the client, and
    /// closes the connection if the ping is not answered within `timeout`. `None` for
    /// no pings. Default 60 s and 20 s.
    pub fn http2_keep_alive(mut self, interval: Option<Duration>, timeout: Duration) -> Serve<S> {
        self.keep_alive_interval = interval;
        self.keep_alive_timeout = timeout;
        self
    }

    /// The longest a graceful shutdown waits for in-flight requests. Default 30 s.
    pub fn shutdown_grace(mut self, grace: Duration) -> Serve<S> {
        self.grace = grace;
        self
    }

    /// The address the server listens on.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl<S, B> IntoFuture for Serve<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Output = io::Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl<S, B> Serve<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    fn builder(&self) -> auto::Builder<Executor> {
        let mut builder = auto::Builder::new(Executor);
        builder
            .http1()
            .timer(Timer)
            .header_read_timeout(self.header_read_timeout);
        builder
            .http2()
            .timer(Timer)
            .keep_alive_interval(self.keep_alive_interval)
            .keep_alive_timeout(self.keep_alive_timeout);
        builder
    }

    async fn run(self) -> io::Result<()> {
        let builder = Arc::new(self.builder());
        // Cancelled when the shutdown signal comes: every connection watches it.
        let (stop, stop_handle) = Context::background().with_cancel();
        let mut connections = JoinSet::new();
        let mut signal = self.signal;
        let listener = self.listener;
        loop {
            // Finished connections leave the set as we go, so it holds live ones only.
            while connections.try_join_next().is_some() {}
            let accepted = {
                let mut accept = pin!(listener.accept());
                poll_fn(|cx| {
                    if let Some(sig) = signal.as_mut() {
                        if sig.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(None);
                        }
                    }
                    accept.as_mut().poll(cx).map(Some)
                })
                .await
            };
            let Some(accepted) = accepted else { break };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // The listener failed: the connections it made live on (Go's
                    // `Serve` returns and leaves them too).
                    connections.detach_all();
                    return Err(e);
                }
            };
            let _ = stream.set_nodelay(true);
            let service = WithPeer {
                inner: self.service.clone(),
                peer: PeerAddr(peer),
            };
            let builder = builder.clone();
            let stop = stop.clone();
            let first_bytes_limit = self.header_read_timeout;
            connections.spawn(async move {
                if let Some(limit) = first_bytes_limit {
                    // hyper's header timer starts only once hyper-util has told HTTP/1
                    // from HTTP/2 by the first bytes: a client that sends nothing, or
                    // part of the HTTP/2 preface, would hold its connection forever.
                    let ready = crate::time::timeout(limit, protocol_bytes(&stream));
                    if !matches!(first(ready, stop.done()).await, Some(Ok(true))) {
                        return;
                    }
                }
                let conn = builder.serve_connection_with_upgrades(stream, service);
                let mut conn = pin!(conn);
                let mut stopping = pin!(stop.done());
                let mut asked = false;
                // A connection error concerns that client only: dropped.
                let _ = poll_fn(|cx| {
                    if !asked && stopping.as_mut().poll(cx).is_ready() {
                        conn.as_mut().graceful_shutdown();
                        asked = true;
                    }
                    conn.as_mut().poll(cx)
                })
                .await;
            });
        }
        // Shutting down: refuse new connections, let the others finish.
        drop(listener);
        stop_handle.cancel();
        let drained = crate::time::timeout(self.grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            connections.shutdown().await;
        }
        Ok(())
    }
}

/// Whether the connection's first bytes are queued: enough to tell HTTP/1 from
/// HTTP/2 (a byte that differs from the HTTP/2 preface, or the whole preface).
/// `false` when the client closed first.
async fn protocol_bytes(stream: &TcpStream) -> bool {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    let mut pause = Duration::from_millis(10);
    loop {
        match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n == PREFACE.len() || buf[..n] != PREFACE[..n] => return true,
            // Part of the preface: a peek returns at once while bytes are queued, so
            // wait for the rest, less and less often (real clients send the preface
            // in one segment; this is for those that do not, or stall on purpose).
            Ok(_) => {
                crate::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// `a`'s output, or `None` if `b` completes first.
async fn first<A: Future, B: Future>(a: A, b: B) -> Option<A::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        b.as_mut().poll(cx).map(|_| None)
    })
    .await
}

impl<S> fmt::Debug for Serve<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serve")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("graceful", &self.signal.is_some())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// A connection's service: the user's, with [`PeerAddr`] put into every request.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: PeerAddr,
}

impl<S: Service<Request<Incoming>>> Service<Request<Incoming>> for WithPeer<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        self.inner.call(req)
    }
}
