//! Descriptor leaks: futures dropped mid-flight (accept, read, connect, owned reads)
//! must not leave file descriptors behind. These tests count `/proc/self/fd`, so they
//! take one lock against each other (and against the child process's pipes): a test
//! binary of their own, so no other test's sockets come and go meanwhile.

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{echo_server, pattern, watchdog};
use gort::net::{TcpListener, TcpStream};

/// Held by every test here while it counts descriptors.
static FDS: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    FDS.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn net_dropped_accept_and_read_futures_leak_no_fds() {
    let _w = watchdog!(60);
    let _x = exclusive();
    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    rt.block_on(async {
        let addr = echo_server().await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        // Warm up lazily created threads and descriptors.
        let _ = gort::time::timeout(Duration::from_millis(1), listener.accept()).await;
        let before = fds();
        for _ in 0..200 {
            let _ = gort::time::timeout(Duration::from_micros(200), listener.accept()).await;
            let s = TcpStream::connect(addr).await.unwrap();
            let mut buf = [0u8; 8];
            let _ = gort::time::timeout(Duration::from_micros(200), s.read(&mut buf)).await;
            let _ = gort::time::timeout(Duration::from_micros(50), TcpStream::connect(addr)).await;
        }
        gort::time::sleep(Duration::from_millis(100)).await;
        let after = fds();
        assert!(after <= before + 2, "fds grew from {before} to {after}");
    });
}

/// Dropping `read_owned` while its read is in flight loses no byte (io_uring keeps what
/// a cancelled `RECV` received for the next read) and leaks no descriptor; nor does
/// dropping connections with an owned read in flight.
#[test]
fn net_dropped_owned_reads_lose_no_bytes_and_leak_no_fds() {
    let _w = watchdog!(60);
    let _x = exclusive();
    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    rt.block_on(owned_reads_body());
}

async fn owned_reads_body() {
    use std::io::Write;
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    const TOTAL: usize = 300_000;
    let data = pattern(TOTAL, 7);
    let sent = data.clone();
    // Pauses make many reads wait long enough for their 50 us timeout to drop them.
    let writer = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        for (i, chunk) in sent.chunks(997).enumerate() {
            s.write_all(chunk).unwrap();
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let (s, _) = listener.accept().await.unwrap();
    let mut got = Vec::with_capacity(TOTAL);
    let mut dropped = 0;
    while got.len() < TOTAL {
        let buf = Vec::with_capacity(1500);
        match gort::time::timeout(Duration::from_micros(50), s.read_owned(buf)).await {
            Ok((Ok(0), _)) => break,
            Ok((Ok(_), b)) => got.extend_from_slice(&b),
            Ok((Err(e), _)) => panic!("read_owned: {e}"),
            Err(_) => dropped += 1,
        }
    }
    writer.join().unwrap();
    assert_eq!(got.len(), TOTAL);
    assert!(got == data, "bytes lost or reordered around dropped reads");
    assert!(dropped > 10, "only {dropped} reads were dropped in flight");

    let echo = echo_server().await.unwrap();
    let warm = TcpStream::connect(echo).await.unwrap();
    drop(warm);
    gort::time::sleep(Duration::from_millis(20)).await;
    let before = fds();
    for _ in 0..200 {
        let c = TcpStream::connect(echo).await.unwrap();
        let r = gort::time::timeout(Duration::from_micros(100), c.read_owned(Vec::new())).await;
        assert!(r.is_err(), "nothing was sent, the read must time out");
        let (w, _) = c.write_all_owned(b"x".to_vec()).await;
        w.unwrap();
        drop(c);
    }
    gort::time::sleep(Duration::from_millis(100)).await;
    let after = fds();
    assert!(after <= before + 2, "fds grew from {before} to {after}");
    drop(s);
}

/// Dropping a runtime with operations in flight: on io_uring the driver's drop
/// leaked every orphaned operation (a pending `read_owned`'s buffer, a file read's
/// descriptor) rather than free memory the kernel might still write. It now cancels
/// them and waits for the kernel to let go. 20 runtimes, each dropped with ten 1 MiB
/// `read_owned`s and a read of an empty FIFO pending: RSS and descriptors stay flat.
#[test]
fn rt_drop_with_reads_in_flight_frees_their_buffers_and_fds() {
    let _w = watchdog!(120);
    let _x = exclusive();
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let rss = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    };
    let dir = std::env::temp_dir().join(format!("gort-drop-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // Held open for writing (O_RDWR never blocks on a FIFO), so opening it for
    // reading returns at once, and its reads wait for data that never comes.
    let _writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let round = || {
        let rt = gort::Runtime::builder().workers(2).build().unwrap();
        let clients = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut clients = Vec::new();
            for _ in 0..10 {
                clients.push(std::net::TcpStream::connect(addr).unwrap());
                let (s, _) = listener.accept().await.unwrap();
                gort::spawn(async move {
                    let mut buf = vec![1u8; 1 << 20];
                    buf.clear();
                    let _ = s.read_owned(buf).await;
                });
            }
            let file = gort::fs::File::open(&fifo).await.unwrap();
            gort::spawn(async move {
                let _ = file.read_at(1 << 20, 0).await;
            });
            // Let every read reach the kernel.
            gort::time::sleep(Duration::from_millis(30)).await;
            clients
        });
        drop(rt);
        drop(clients);
    };
    round();
    round();
    let (fds0, rss0) = (fds(), rss());
    for _ in 0..18 {
        round();
    }
    // The last runtime's threads may still be exiting (a blocking thread releases its
    // handle, and with it the driver's descriptors, as it goes): give them a second.
    let settle = std::time::Instant::now();
    while fds() > fds0 + 2 && settle.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (fds1, rss1) = (fds(), rss());
    assert!(fds1 <= fds0 + 2, "fds grew from {fds0} to {fds1}");
    // AddressSanitizer keeps freed memory in quarantine: RSS says nothing there (its
    // leak check does the job instead). `.ci/run` sets this variable for that step.
    let sanitized = std::env::var_os("GORT_SANITIZER").is_some();
    assert!(
        sanitized || rss1 < rss0 + (24 << 20),
        "RSS grew from {} MiB to {} MiB over 18 drops",
        rss0 >> 20,
        rss1 >> 20
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Dropping a runtime whose tasks wait in `accept`, in `connect` (to a listener whose
/// backlog is full, so the handshake never completes) and in reads: the drop returns
/// promptly and every descriptor is closed.
#[test]
fn fault_runtime_dropped_with_accepts_connects_and_reads_in_flight() {
    let _w = watchdog!(60);
    let _x = exclusive();
    let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    // A listener that never accepts, with the smallest backlog: later connects wait.
    let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    full.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    full.listen(0).unwrap();
    let full_addr = full.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&full_addr.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(50));
    let before = fds();
    for _ in 0..5 {
        let rt = gort::Runtime::builder().workers(2).build().unwrap();
        let peers = rt.block_on(async {
            let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
            for _ in 0..4 {
                let l = listener.clone();
                gort::spawn(async move {
                    let _ = l.accept().await;
                });
            }
            for _ in 0..4 {
                gort::spawn(async move {
                    let _ = TcpStream::connect(full_addr).await;
                });
            }
            let mut peers = Vec::new();
            for _ in 0..4 {
                let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let p = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
                let (s, _) = l.accept().await.unwrap();
                peers.push(p);
                gort::spawn(async move {
                    let mut buf = [0u8; 64];
                    let _ = s.read(&mut buf).await;
                    let _ = s.read_owned(Vec::with_capacity(1024)).await;
                });
            }
            gort::time::sleep(Duration::from_millis(30)).await;
            peers
        });
        let t = Instant::now();
        drop(rt);
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "drop took {:?}",
            t.elapsed()
        );
        drop(peers);
    }
    std::thread::sleep(Duration::from_millis(50));
    let after = fds();
    assert!(after <= before + 2, "fds grew from {before} to {after}");
    drop(fillers);
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn net_fds_every_test_again_on_io_uring() {
    let _w = watchdog!(240);
    let _x = exclusive();
    common::rerun_all_on_io_uring("net_fds_every_test_again_on_io_uring");
}
