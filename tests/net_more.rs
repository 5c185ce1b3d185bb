//! UDP, Unix sockets, files, and accept under file-descriptor exhaustion.

mod common;

use std::io;
use std::time::{Duration, Instant};

use common::watchdog;
use futures::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use gort::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};

#[gort::test(workers = 2)]
async fn net_udp_send_to_recv_from_and_connected() {
    let _w = watchdog("net_udp_send_to_recv_from_and_connected", 20);
    let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let h = gort::spawn(async move {
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        b.send_to(&buf[..n], from).await.unwrap();
        b
    });
    a.send_to(b"datagram", ba).await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = a.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"datagram"[..], ba));
    let b = h.await.unwrap();
    a.connect(ba).await.unwrap();
    b.connect(aa).await.unwrap();
    a.send(b"connected").await.unwrap();
    let n = b.recv(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"connected");
    assert_eq!(a.peer_addr().unwrap(), ba);
}

#[gort::test(workers = 2)]
async fn net_unix_stream_echo_and_eof() {
    let _w = watchdog("net_unix_stream_echo_and_eof", 20);
    let dir = std::env::temp_dir().join(format!("gort-unix-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let server = gort::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 32];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
    });
    let mut c = UnixStream::connect(&path).await.unwrap();
    c.write_all(b"over unix").await.unwrap();
    let mut back = [0u8; 9];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"over unix");
    c.shutdown(std::net::Shutdown::Write).unwrap();
    server.await.unwrap();
    assert_eq!(c.read(&mut back).await.unwrap(), 0);
    let (p, q) = UnixStream::pair().unwrap();
    p.write_all(b"x").await.unwrap();
    assert_eq!(q.read(&mut back).await.unwrap(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[gort::test(workers = 2)]
async fn fs_write_sync_read_back_read_at_and_seek() {
    let _w = watchdog("fs_write_sync_read_back_read_at_and_seek", 30);
    let dir = std::env::temp_dir().join(format!("gort-fs-{}", std::process::id()));
    gort::fs::create_dir_all(&dir).await.unwrap();
    let path = dir.join("data.bin");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    {
        let mut f = gort::fs::File::create(&path).await.unwrap();
        f.write_all(&data).await.unwrap();
        f.sync_all().await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), data.len() as u64);
    }
    assert_eq!(gort::fs::read(&path).await.unwrap(), data);
    let mut f = gort::fs::File::open(&path).await.unwrap();
    let mut back = Vec::new();
    f.read_to_end(&mut back).await.unwrap();
    assert_eq!(back, data);
    assert_eq!(f.read_at(5, 1000).await.unwrap(), &data[1000..1005]);
    f.seek(std::io::SeekFrom::Start(10)).await.unwrap();
    let mut ten = [0u8; 10];
    f.read_exact(&mut ten).await.unwrap();
    assert_eq!(&ten, &data[10..20]);
    let renamed = dir.join("moved.bin");
    gort::fs::rename(&path, &renamed).await.unwrap();
    gort::fs::write(dir.join("t.txt"), "héllo").await.unwrap();
    assert_eq!(
        gort::fs::read_to_string(dir.join("t.txt")).await.unwrap(),
        "héllo"
    );
    gort::fs::remove_file(&renamed).await.unwrap();
    assert!(gort::fs::metadata(&renamed).await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run in a child process with a small `RLIMIT_NOFILE`: connections pile up until the
/// server cannot accept (EMFILE); accept must back off instead of spinning, and serve
/// again once descriptors are freed.
#[test]
fn net_accept_recovers_from_emfile_without_spinning() {
    let _w = watchdog("net_accept_recovers_from_emfile_without_spinning", 60);
    if std::env::var_os("GORT_EMFILE_CHILD").is_some() {
        emfile_child().unwrap();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "net_accept_recovers_from_emfile_without_spinning",
            "--exact",
            "--nocapture",
        ])
        .env("GORT_EMFILE_CHILD", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cpu_time() -> Duration {
    let mut ru: libc::rusage = unsafe_zeroed_rusage();
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn unsafe_zeroed_rusage() -> libc::rusage {
    // SAFETY: rusage is plain integers; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

fn emfile_child() -> io::Result<()> {
    const LIMIT: u64 = 128;
    let lim = libc::rlimit {
        rlim_cur: LIMIT,
        rlim_max: LIMIT,
    };
    // SAFETY: a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let rt = gort::Runtime::builder().workers(1).build()?;
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // The server accepts and holds every connection.
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let h2 = held.clone();
        gort::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((s, _)) => h2.lock().unwrap().push(s),
                    Err(e) => panic!("accept failed instead of backing off: {e}"),
                }
            }
        });
        // Clients from a plain thread with its own descriptors... in the same process,
        // so they exhaust the same limit: open until connect itself fails.
        let mut clients = Vec::new();
        for _ in 0..LIMIT * 2 {
            match std::net::TcpStream::connect(addr) {
                Ok(c) => clients.push(c),
                Err(_) => break,
            }
        }
        // The kernel completed handshakes the server cannot accept: it is at EMFILE.
        let cpu0 = cpu_time();
        gort::time::sleep(Duration::from_millis(500)).await;
        let spent = cpu_time() - cpu0;
        assert!(
            spent < Duration::from_millis(250),
            "accept spun: {spent:?} CPU in 500 ms"
        );
        // Free descriptors: drop the server's connections and most clients.
        held.lock().unwrap().clear();
        clients.truncate(4);
        let start = Instant::now();
        loop {
            let attempt =
                gort::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await;
            if let Ok(Ok(_)) = attempt {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "accept never recovered"
            );
        }
        // And the server accepts again.
        let before = held.lock().unwrap().len();
        let _c = TcpStream::connect(addr).await?;
        let start = Instant::now();
        while held.lock().unwrap().len() <= before {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no accept after recovery"
            );
            gort::time::sleep(Duration::from_millis(5)).await;
        }
        io::Result::Ok(())
    })
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn net_more_every_test_again_on_io_uring() {
    let _w = watchdog("net_more_every_test_again_on_io_uring", 240);
    common::rerun_all_on_io_uring("net_more_every_test_again_on_io_uring");
}
