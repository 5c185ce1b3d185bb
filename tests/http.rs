//! hyper and axum on gort, with hyper's client on gort as the other side: both sides
//! of every exchange are gort tasks on real loopback sockets, on epoll and (re-run)
//! io_uring.

mod common;

#[allow(dead_code)] // the example's `main` is not used here, its router is
#[path = "../examples/axum_app.rs"]
mod axum_app;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{pattern, watchdog};
use gort::hyper::{PeerAddr, TowerToHyperService};
use gort::net::{TcpListener, TcpStream};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};

type Body = Full<Bytes>;

/// The test server's routes: `GET /hello`, `POST /echo` (the body back), `GET /peer`
/// (the client's address, from `PeerAddr`), `GET /wait` (until `release` is notified).
#[derive(Clone, Default)]
struct Routes {
    release: Arc<gort::sync::Notify>,
    in_flight: Arc<AtomicUsize>,
    barrier: Option<Arc<gort::sync::Barrier>>,
}

impl Routes {
    async fn handle(self, req: Request<Incoming>) -> Result<Response<Body>, hyper::Error> {
        let peer = req.extensions().get::<PeerAddr>().copied();
        let body = match (req.method(), req.uri().path()) {
            (&Method::GET, "/hello") => Bytes::from_static(b"hello"),
            (&Method::POST, "/echo") => req.into_body().collect().await?.to_bytes(),
            (&Method::GET, "/peer") => Bytes::from(peer.expect("PeerAddr").0.to_string()),
            (&Method::GET, "/wait") => {
                // Made before it is counted, so a `notify_waiters` after the count
                // is seen.
                let released = self.release.notified();
                self.in_flight.fetch_add(1, Ordering::SeqCst);
                released.await;
                Bytes::from_static(b"released")
            }
            (&Method::GET, "/upgrade") => {
                // HTTP/1.1 upgrade (what a WebSocket handshake does): answer 101, then
                // echo raw bytes on the upgraded connection in a task of its own.
                let on_upgrade = hyper::upgrade::on(req);
                gort::spawn(async move {
                    let mut io = on_upgrade.await.expect("upgrade");
                    let mut buf = [0u8; 1024];
                    loop {
                        let n = read_some(&mut io, &mut buf).await;
                        if n == 0 {
                            return;
                        }
                        write_all(&mut io, &buf[..n]).await;
                    }
                });
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                res.headers_mut()
                    .insert("upgrade", hyper::header::HeaderValue::from_static("echo"));
                res.headers_mut().insert(
                    "connection",
                    hyper::header::HeaderValue::from_static("upgrade"),
                );
                return Ok(res);
            }
            (&Method::GET, "/together") => {
                // 100 streams meet here: only concurrent streams get through.
                let barrier = self.barrier.clone().expect("barrier");
                gort::time::timeout(Duration::from_secs(20), barrier.wait())
                    .await
                    .expect("the streams were not concurrent");
                Bytes::from_static(b"together")
            }
            _ => {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::NOT_FOUND;
                return Ok(res);
            }
        };
        Ok(Response::new(Full::new(body)))
    }
}

fn service(
    routes: Routes,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = hyper::Error,
    Future = impl Send,
> + Clone
       + Send
       + Sync
       + 'static {
    hyper::service::service_fn(move |req| routes.clone().handle(req))
}

/// One read through hyper's I/O traits (an upgraded connection has only those).
async fn read_some(io: &mut (impl hyper::rt::Read + Unpin), buf: &mut [u8]) -> usize {
    std::future::poll_fn(|cx| {
        let mut rb = hyper::rt::ReadBuf::new(buf);
        match std::pin::Pin::new(&mut *io).poll_read(cx, rb.unfilled()) {
            std::task::Poll::Ready(res) => {
                res.unwrap();
                std::task::Poll::Ready(rb.filled().len())
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .await
}

async fn write_all(io: &mut (impl hyper::rt::Write + Unpin), mut buf: &[u8]) {
    while !buf.is_empty() {
        let n = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *io).poll_write(cx, buf))
            .await
            .unwrap();
        buf = &buf[n..];
    }
}

/// A server on a loopback port, running as a task until the test ends.
async fn start(routes: Routes) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    gort::spawn(gort::hyper::serve(listener, service(routes)).into_future());
    addr
}

/// An HTTP/1.1 client connection (hyper's client on a gort `TcpStream`).
async fn client_h1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
    gort::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// hyper's client wants `ready()` before each request on a connection (the previous
/// exchange must be wound up first), as its docs show.
async fn send(
    client: &mut hyper::client::conn::http1::SendRequest<Body>,
    req: Request<Body>,
) -> Response<Incoming> {
    client.ready().await.unwrap();
    client.send_request(req).await.unwrap()
}

/// Whether the server closes `stream` (EOF or an error) within `limit`, whatever it
/// sends before.
async fn closed_within(stream: &TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    gort::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn body_of(res: Response<Incoming>) -> Bytes {
    res.into_body().collect().await.unwrap().to_bytes()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[gort::test(workers = 2, timeout = 60)]
async fn http_get_and_post_1mib_echoed_and_checked() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let addr = start(Routes::default()).await;
        let mut client = client_h1(addr).await;
        let res = send(&mut client, get("/hello")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body_of(res).await, "hello");

        let data = pattern(1 << 20, 7);
        let req = Request::post("/echo")
            .header("host", "localhost")
            .body(Full::new(Bytes::from(data.clone())))
            .unwrap();
        let res = send(&mut client, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        let got = body_of(res).await;
        assert_eq!(got.len(), data.len());
        assert!(got == data, "the echoed body differs");

        let res = send(&mut client, get("/missing")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 60)]
async fn http_upgrade_hands_the_connection_to_the_handler() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let addr = start(Routes::default()).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut client, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
        gort::spawn(conn.with_upgrades());
        let req = Request::get("/upgrade")
            .header("host", "localhost")
            .header("connection", "upgrade")
            .header("upgrade", "echo")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = send(&mut client, req).await;
        assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
        let mut io = hyper::upgrade::on(res).await.unwrap();
        let data = pattern(100_000, 5);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        for chunk in data.chunks(10_000) {
            write_all(&mut io, chunk).await;
            let want = got.len() + chunk.len();
            while got.len() < want {
                let n = read_some(&mut io, &mut buf).await;
                assert!(n > 0, "the upgraded connection closed");
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert!(got == data, "echoed bytes differ");
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 120)]
async fn http_1000_keep_alive_requests_on_one_connection() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let addr = start(Routes::default()).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let local = stream.local_addr().unwrap();
        let (mut client, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
        let conn = gort::spawn(conn);
        for i in 0..1000 {
            let res = send(&mut client, get("/peer")).await;
            assert_eq!(res.status(), StatusCode::OK, "request {i}");
            // The server saw this very connection every time: one socket, kept alive.
            assert_eq!(body_of(res).await, local.to_string(), "request {i}");
        }
        drop(client);
        conn.await.unwrap().unwrap();
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 60)]
async fn http2_100_concurrent_streams_on_one_connection() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let routes = Routes {
            barrier: Some(Arc::new(gort::sync::Barrier::new(100))),
            ..Routes::default()
        };
        let addr = start(routes).await;
        let stream = TcpStream::connect(addr).await.unwrap();
        let (client, conn) = hyper::client::conn::http2::Builder::new(gort::hyper::Executor)
            .timer(gort::hyper::Timer)
            .handshake::<_, Body>(stream)
            .await
            .unwrap();
        gort::spawn(conn);
        let mut set = gort::task::JoinSet::new();
        for _ in 0..100 {
            let mut client = client.clone();
            set.spawn(async move {
                let res = client.send_request(get("/together")).await.unwrap();
                assert_eq!(res.version(), hyper::Version::HTTP_2);
                assert_eq!(res.status(), StatusCode::OK);
                body_of(res).await
            });
        }
        let mut n = 0;
        while let Some(body) = set.join_next().await {
            assert_eq!(body.unwrap(), "together");
            n += 1;
        }
        assert_eq!(n, 100);
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 30)]
async fn http_header_read_timeout_closes_a_client_that_sends_half_a_request() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limit = Duration::from_millis(300);
        gort::spawn(
            gort::hyper::serve(listener, service(Routes::default()))
                .header_read_timeout(Some(limit))
                .into_future(),
        );
        // Before the connect: the server's timer may start before `connect` returns.
        let started = Instant::now();
        let stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        // Whatever the server says (hyper sends nothing, or a 408), it then closes.
        assert!(
            closed_within(&stream, Duration::from_secs(10)).await,
            "the half request was not timed out in 10 s"
        );
        let took = started.elapsed();
        assert!(
            took >= limit - Duration::from_millis(20),
            "closed after {took:?}"
        );

        // A complete request on a fresh connection is still served.
        let mut client = client_h1(addr).await;
        let res = send(&mut client, get("/hello")).await;
        assert_eq!(body_of(res).await, "hello");
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 30)]
async fn http_header_read_timeout_also_closes_a_silent_client_and_a_partial_http2_preface() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limit = Duration::from_millis(300);
        gort::spawn(
            gort::hyper::serve(listener, service(Routes::default()))
                .header_read_timeout(Some(limit))
                .into_future(),
        );
        // hyper-util reads up to 24 bytes to tell HTTP/1 from HTTP/2 before hyper's own
        // header timer starts: these two never get that far.
        for first in [&b""[..], b"PRI * HTTP/2"] {
            let started = Instant::now();
            let stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(first).await.unwrap();
            assert!(
                closed_within(&stream, Duration::from_secs(10)).await,
                "{first:?}: the connection stayed open"
            );
            assert!(started.elapsed() >= limit, "{first:?}: closed early");
        }
        // The whole preface, then a request over HTTP/2, is served.
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut h2, conn) = hyper::client::conn::http2::Builder::new(gort::hyper::Executor)
            .timer(gort::hyper::Timer)
            .handshake::<_, Body>(stream)
            .await
            .unwrap();
        gort::spawn(conn);
        let res = h2.send_request(get("/hello")).await.unwrap();
        assert_eq!(body_of(res).await, "hello");
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 60)]
async fn http_graceful_shutdown_finishes_in_flight_and_refuses_new() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let routes = Routes::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = gort::chan::bounded::<()>(1);
        let server = gort::spawn(
            gort::hyper::serve(listener, service(routes.clone()))
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.recv().await;
                })
                .into_future(),
        );
        // An idle keep-alive connection and one with a request in flight.
        let mut idle = client_h1(addr).await;
        let res = send(&mut idle, get("/hello")).await;
        assert_eq!(body_of(res).await, "hello");
        let mut busy = client_h1(addr).await;
        let in_flight = gort::spawn(async move {
            let res = send(&mut busy, get("/wait")).await;
            body_of(res).await
        });
        while routes.in_flight.load(Ordering::SeqCst) == 0 {
            gort::time::sleep(Duration::from_millis(5)).await;
        }

        stop_tx.send(()).await.unwrap();
        // New connections are refused once the listener is closed.
        let refused = gort::time::timeout(Duration::from_secs(5), async {
            loop {
                match TcpStream::connect(addr).await {
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
                    // Accepted into the backlog (or reset) while the listener closes.
                    _ => gort::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
        .await;
        // (On io_uring this failed 1 run in 3 until a dropped socket was shut down: the
        // listener's poll, armed by a worker then asleep, kept it listening.)
        assert!(refused.is_ok(), "the listener was not closed");
        assert!(!server.is_finished(), "returned with a request in flight");

        routes.release.notify_waiters();
        assert_eq!(in_flight.await.unwrap(), "released");
        let res = gort::time::timeout(Duration::from_secs(10), server).await;
        res.expect("serve did not return after the last request")
            .unwrap()
            .unwrap();
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 60)]
async fn http_graceful_shutdown_is_bounded_by_the_grace_period() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let routes = Routes::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = gort::chan::bounded::<()>(1);
        let server = gort::spawn(
            gort::hyper::serve(listener, service(routes.clone()))
                .shutdown_grace(Duration::from_millis(200))
                .with_graceful_shutdown(async move {
                    let _ = stop_rx.recv().await;
                })
                .into_future(),
        );
        let mut busy = client_h1(addr).await;
        let stuck = gort::spawn(async move { busy.send_request(get("/wait")).await });
        while routes.in_flight.load(Ordering::SeqCst) == 0 {
            gort::time::sleep(Duration::from_millis(5)).await;
        }
        stop_tx.send(()).await.unwrap();
        let res = gort::time::timeout(Duration::from_secs(10), server).await;
        res.expect("the grace period did not bound the shutdown")
            .unwrap()
            .unwrap();
        // The request that never finished was dropped with its connection.
        let outcome = gort::time::timeout(Duration::from_secs(10), stuck).await;
        assert!(outcome.expect("client not told").unwrap().is_err());
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 60)]
async fn http_axum_example_routes_answer() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum_app::app(axum_app::AppState::default());
        gort::spawn(gort::hyper::serve(listener, TowerToHyperService::new(app)).into_future());
        let stream = TcpStream::connect(addr).await.unwrap();
        let local = stream.local_addr().unwrap();
        let (mut c, conn) = hyper::client::conn::http1::handshake(stream).await.unwrap();
        gort::spawn(conn);
        let json = |method: Method, path: &str, body: &str| {
            Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap()
        };

        let res = send(&mut c, get("/notes")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body_of(res).await, "[]");

        let res = send(
            &mut c,
            json(Method::POST, "/notes", r#"{"text":"buy milk"}"#),
        )
        .await;
        assert_eq!(res.status(), StatusCode::CREATED);
        let note: axum_app::Note = serde_json::from_slice(&body_of(res).await).unwrap();
        assert_eq!(note.text, "buy milk");

        let res = send(&mut c, get(&format!("/notes/{}", note.id))).await;
        assert_eq!(res.status(), StatusCode::OK);
        let again: axum_app::Note = serde_json::from_slice(&body_of(res).await).unwrap();
        assert_eq!(again, note);

        let res = send(&mut c, get("/notes")).await;
        let all: Vec<axum_app::Note> = serde_json::from_slice(&body_of(res).await).unwrap();
        assert_eq!(all, vec![note.clone()]);

        let res = send(&mut c, json(Method::POST, "/notes", "not json")).await;
        assert!(res.status().is_client_error(), "{}", res.status());
        body_of(res).await;

        let res = send(&mut c, get("/whoami")).await;
        assert_eq!(body_of(res).await, format!("{local}\n"));

        let del = |path: String| {
            Request::delete(path)
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        let res = send(&mut c, del(format!("/notes/{}", note.id))).await;
        assert_eq!(res.status(), StatusCode::NO_CONTENT);
        body_of(res).await;
        let res = send(&mut c, del(format!("/notes/{}", note.id))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        body_of(res).await;
        let res = send(&mut c, get("/notes/999")).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    })
    .await
    .unwrap();
}

/// hyper's I/O traits on a Unix stream pair and through the `Io` adapter (a
/// futures-io stream, as a TLS stream would be): one request each.
#[gort::test(workers = 2, timeout = 60)]
async fn http_over_unix_stream_and_the_io_adapter() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let (a, b) = gort::net::UnixStream::pair().unwrap();
        let (c, d) = gort::net::UnixStream::pair().unwrap();
        for (server_io, client_io, adapted) in [(a, b, false), (c, d, true)] {
            let svc = service(Routes::default());
            let server = gort::spawn(async move {
                let builder = hyper::server::conn::http1::Builder::new();
                if adapted {
                    builder
                        .serve_connection(gort::hyper::Io::new(server_io), svc)
                        .await
                } else {
                    builder.serve_connection(server_io, svc).await
                }
            });
            let (mut client, conn) = if adapted {
                let (s, c) = hyper::client::conn::http1::handshake(gort::hyper::Io::new(client_io))
                    .await
                    .unwrap();
                (s, gort::spawn(c))
            } else {
                let (s, c) = hyper::client::conn::http1::handshake(client_io)
                    .await
                    .unwrap();
                (s, gort::spawn(c))
            };
            let data = pattern(200_000, 3);
            let req = Request::post("/echo")
                .header("host", "localhost")
                .body(Full::new(Bytes::from(data.clone())))
                .unwrap();
            let res = send(&mut client, req).await;
            assert!(body_of(res).await == data, "adapted={adapted}");
            drop(client);
            conn.await.unwrap().unwrap();
            server.await.unwrap().unwrap();
        }
    })
    .await
    .unwrap();
}

#[test]
fn http_timer_reset_moves_the_sleep_instead_of_replacing_it() {
    use hyper::rt::Timer as _;
    let rt = gort::Runtime::new().unwrap();
    rt.block_on(async {
        let timer = gort::hyper::Timer;
        let mut sleep = timer.sleep(Duration::from_secs(3600));
        let before: *const () = std::ptr::from_ref(&*sleep).cast();
        let soon = Instant::now() + Duration::from_millis(20);
        timer.reset(&mut sleep, soon);
        let after: *const () = std::ptr::from_ref(&*sleep).cast();
        assert_eq!(before, after, "reset allocated a new sleep");
        gort::time::timeout(Duration::from_secs(5), sleep)
            .await
            .expect("the reset deadline did not fire");
        assert!(Instant::now() >= soon);
    });
}

fn _assert_sleep_is_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<gort::hyper::Sleep>();
    is::<gort::hyper::Executor>();
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn http_every_test_again_on_io_uring() {
    let _w = watchdog!(300);
    common::rerun_all_on_io_uring("http_every_test_again_on_io_uring");
}
