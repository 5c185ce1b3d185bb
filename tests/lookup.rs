//! `lookup_host`, and `connect_timeout` across several addresses (Go's split
//! deadline), on epoll and (re-run) io_uring.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpStream as StdStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use common::watchdog;
use gort::net::{lookup_host, TcpListener, TcpStream};

#[test]
fn lookup_host_literals_never_touch_the_blocking_pool() {
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(async {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:443".parse().unwrap();
        let one = |it: std::vec::IntoIter<SocketAddr>| it.collect::<Vec<_>>();
        assert_eq!(one(lookup_host(v4).await.unwrap()), [v4]);
        assert_eq!(one(lookup_host("127.0.0.1:80").await.unwrap()), [v4]);
        assert_eq!(
            one(lookup_host("[::1]:443".to_owned()).await.unwrap()),
            [v6]
        );
        assert_eq!(one(lookup_host(("127.0.0.1", 80)).await.unwrap()), [v4]);
        assert_eq!(
            one(lookup_host(("::1".to_owned(), 443)).await.unwrap()),
            [v6]
        );
        assert_eq!(
            one(lookup_host((Ipv4Addr::LOCALHOST, 80)).await.unwrap()),
            [v4]
        );
        static BOTH: [SocketAddr; 2] = [
            SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 80)),
            SocketAddr::V6(std::net::SocketAddrV6::new(
                std::net::Ipv6Addr::LOCALHOST,
                443,
                0,
                0,
            )),
        ];
        assert_eq!(one(lookup_host(&BOTH[..]).await.unwrap()), [v4, v6]);
    });
    assert_eq!(
        rt.metrics().num_blocking_threads(),
        0,
        "a literal address went to the blocking pool"
    );
    // A name does go there (`localhost` resolves from /etc/hosts, no network).
    rt.block_on(async {
        let addrs: Vec<_> = lookup_host(("localhost", 80)).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    });
    assert!(rt.metrics().num_blocking_threads() >= 1);
    let err = rt
        .block_on(lookup_host("not an address"))
        .expect_err("a malformed address resolved");
    assert_ne!(err.kind(), std::io::ErrorKind::Other, "{err}");
}

/// A loopback address that swallows SYNs: a listener with a backlog of 0 whose queue
/// is full and never accepted from. The kernel drops further SYNs, so a connect hangs
/// there as it would to a dead host.
struct Blackhole {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _queued: Vec<StdStream>,
}

fn blackhole() -> Blackhole {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    s.listen(0).unwrap();
    let addr = s.local_addr().unwrap().as_socket().unwrap();
    let mut queued = Vec::new();
    for _ in 0..4 {
        match StdStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(c) => queued.push(c),
            Err(_) => break, // full
        }
    }
    Blackhole {
        addr,
        _listener: s,
        _queued: queued,
    }
}

/// Two addresses for one "name", in this order (a resolver's answer).
struct Name(Vec<SocketAddr>);

impl ToSocketAddrs for Name {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
        Ok(self.0.clone().into_iter())
    }
}

#[gort::test(workers = 2, timeout = 60)]
async fn lookup_connect_timeout_splits_the_deadline_between_addresses() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let hole = blackhole();
        // The blackhole is one: a connect to it alone times out.
        let started = Instant::now();
        let err = TcpStream::connect_timeout(hole.addr, Duration::from_millis(300))
            .await
            .expect_err("the blackhole accepted a connection");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() >= Duration::from_millis(280));

        let good = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let good_addr = good.local_addr().unwrap();
        // 3 s for two addresses: the blackhole gets 2 s (half, raised to Go's 2 s
        // minimum), the good one the rest. Spending it all on the first would fail.
        let started = Instant::now();
        let s =
            TcpStream::connect_timeout(Name(vec![hole.addr, good_addr]), Duration::from_secs(3))
                .await
                .expect("the second address was never tried");
        let took = started.elapsed();
        assert_eq!(s.peer_addr().unwrap(), good_addr);
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(2900),
            "connected after {took:?}"
        );
        let (_, _) = good.accept().await.unwrap();
    })
    .await
    .unwrap();
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn lookup_every_test_again_on_io_uring() {
    let _w = watchdog!(120);
    common::rerun_all_on_io_uring("lookup_every_test_again_on_io_uring");
}
