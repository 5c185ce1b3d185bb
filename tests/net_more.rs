//! UDP, Unix sockets, files, and accept under file-descriptor exhaustion.

mod common;

use std::io;
use std::time::{Duration, Instant};

use common::watchdog;
use futures::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use gort::net::{TcpListener, UdpSocket, UnixListener, UnixStream};

#[gort::test(workers = 2, timeout = 20)]
async fn net_udp_send_to_recv_from_and_connected() {
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

#[gort::test(workers = 2, timeout = 20)]
async fn net_unix_stream_echo_and_eof() {
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

#[gort::test(workers = 2, timeout = 30)]
async fn fs_write_sync_read_back_read_at_and_seek() {
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

/// Run in a child process with a small `RLIMIT_NOFILE`, once with a TCP listener and
/// once with a Unix one: connections pile up until the server cannot accept (EMFILE);
/// accept must back off (under 10% of a core while starved) instead of spinning or
/// failing, and accept again within a second of descriptors being freed.
#[test]
fn net_accept_recovers_from_emfile_without_spinning() {
    let _w = watchdog!(90);
    if let Some(kind) = std::env::var_os("GORT_EMFILE_CHILD") {
        emfile_child(kind.to_str() == Some("unix")).unwrap();
        return;
    }
    for kind in ["tcp", "unix"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "net_accept_recovers_from_emfile_without_spinning",
                "--exact",
                "--nocapture",
            ])
            .env("GORT_EMFILE_CHILD", kind)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind} child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
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

/// The listener under test, TCP or Unix.
enum Server {
    Tcp(TcpListener),
    Unix(gort::net::UnixListener),
}

impl Server {
    async fn accept(&self) -> io::Result<Box<dyn std::any::Any + Send>> {
        Ok(match self {
            Server::Tcp(l) => Box::new(l.accept().await?.0),
            Server::Unix(l) => Box::new(l.accept().await?.0),
        })
    }
}

fn emfile_child(unix: bool) -> io::Result<()> {
    const LIMIT: u64 = 128;
    let lim = libc::rlimit {
        rlim_cur: LIMIT,
        rlim_max: LIMIT,
    };
    // SAFETY: a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let path = std::env::temp_dir().join(format!("gort-emfile-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let rt = gort::Runtime::builder().workers(1).build()?;
    let res = rt.block_on(async {
        let (server, tcp_addr) = if unix {
            (Server::Unix(gort::net::UnixListener::bind(&path)?), None)
        } else {
            let l = TcpListener::bind("127.0.0.1:0").await?;
            let addr = l.local_addr()?;
            (Server::Tcp(l), Some(addr))
        };
        // Non-blocking clients, so a full backlog is an error, not a hang.
        let connect = {
            let path = path.clone();
            move || -> io::Result<Box<dyn std::any::Any + Send>> {
                Ok(match tcp_addr {
                    Some(addr) => Box::new(std::net::TcpStream::connect(addr)?),
                    None => Box::new(mio::net::UnixStream::connect(&path)?),
                })
            }
        };
        // The server accepts and holds every connection.
        let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let h2 = held.clone();
        gort::spawn(async move {
            loop {
                match server.accept().await {
                    Ok(s) => h2.lock().unwrap().push(s),
                    Err(e) => panic!("accept failed instead of backing off: {e}"),
                }
            }
        });
        // Clients in the same process exhaust the same limit: open until connect
        // itself fails.
        let mut clients = Vec::new();
        let mut connected = 0usize;
        for _ in 0..LIMIT * 2 {
            match connect() {
                Ok(c) => {
                    clients.push(c);
                    connected += 1;
                }
                Err(_) => break,
            }
        }
        // The loop above may end with the *client* out of descriptors and nothing
        // queued (the server kept up and accepted every connection): then nothing
        // waits to be accepted after the descriptors are freed, and the test saw "no
        // accept" (on both backends in fresh-clone CI runs). So until a connection is
        // queued that the server could not accept, close a client and connect again:
        // the new socket takes the freed descriptor (or the server does, accepting one
        // more; then try again).
        let mut queued = false;
        for _ in 0..50 {
            gort::time::sleep(Duration::from_millis(20)).await;
            if connected > held.lock().unwrap().len() {
                queued = true;
                break;
            }
            drop(clients.pop());
            if let Ok(c) = connect() {
                clients.push(c);
                connected += 1;
            }
        }
        assert!(queued, "no connection could be left queued behind EMFILE");
        // The kernel queued connections the server cannot accept: it is at EMFILE.
        gort::time::sleep(Duration::from_millis(50)).await;
        let cpu0 = cpu_time();
        let starved = Duration::from_millis(1000);
        gort::time::sleep(starved).await;
        let spent = cpu_time() - cpu0;
        assert!(
            spent < starved / 10,
            "accept spun: {spent:?} CPU in {starved:?}"
        );
        // Free descriptors: drop the server's connections and most clients; the
        // connections still queued are accepted within a second.
        let accepted_before = held.lock().unwrap().len();
        held.lock().unwrap().clear();
        clients.truncate(4);
        let freed = Instant::now();
        loop {
            let now_held = held.lock().unwrap().len();
            if now_held > 0 {
                break;
            }
            // The goal is under 1 s (86-90 ms measured, printed below); the
            // assertion is a hang check at 3 s.
            assert!(
                freed.elapsed() < Duration::from_secs(3),
                "no accept within 3 s of freeing descriptors (had {accepted_before})"
            );
            gort::time::sleep(Duration::from_millis(2)).await;
        }
        let recovery = freed.elapsed();
        // And a new connection is accepted too.
        held.lock().unwrap().clear();
        let _c = connect()?;
        let start = Instant::now();
        while held.lock().unwrap().is_empty() {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "no accept of a new connection after recovery"
            );
            gort::time::sleep(Duration::from_millis(2)).await;
        }
        println!(
            "{}: starved {spent:?} CPU in {starved:?}; recovered in {recovery:?}",
            if unix { "unix" } else { "tcp" }
        );
        io::Result::Ok(())
    });
    let _ = std::fs::remove_file(&path);
    res
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn net_more_every_test_again_on_io_uring() {
    let _w = watchdog!(240);
    common::rerun_all_on_io_uring("net_more_every_test_again_on_io_uring");
}
