//! Sockets shared by several tasks, sockets left behind by a computing worker, and
//! connection churn: the reactor wakes everyone who waits, submits what a busy worker
//! queued, and never spins. Every test runs on epoll and again on io_uring.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watchdog;
use gort::net::{TcpListener, TcpStream, UdpSocket};
use gort::time::timeout;

/// The tests that measure time or CPU run one at a time (the io_uring re-run counts as
/// one: its child runs them again).
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn timing() -> std::sync::MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long a woken waiter may take; the bug this guards against shows as the 3 s
/// timeout of the waiter that was never woken.
const PROMPT: Duration = Duration::from_secs(1);
const GIVE_UP: Duration = Duration::from_secs(3);

/// Waits until `n` tasks have said they are about to wait, then a little longer so
/// they are parked in the socket.
async fn until_waiting(ready: &AtomicUsize, n: usize) {
    while ready.load(Ordering::SeqCst) < n {
        gort::time::sleep(Duration::from_millis(1)).await;
    }
    gort::time::sleep(Duration::from_millis(50)).await;
}

#[gort::test(workers = 2, timeout = 20)]
async fn net_two_tasks_in_recv_from_on_one_udp_socket_each_get_a_datagram() {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    let ready = Arc::new(AtomicUsize::new(0));
    let sent_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let receivers: Vec<_> = (0..2)
        .map(|_| {
            let (sock, ready, sent_at) = (sock.clone(), ready.clone(), sent_at.clone());
            gort::spawn(async move {
                let mut buf = [0u8; 16];
                ready.fetch_add(1, Ordering::SeqCst);
                let (n, _) = timeout(GIVE_UP, sock.recv_from(&mut buf))
                    .await
                    .expect("a receiver was never woken")
                    .unwrap();
                let waited = sent_at.lock().unwrap().expect("sent").elapsed();
                (buf[..n].to_vec(), waited)
            })
        })
        .collect();
    until_waiting(&ready, 2).await;
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    *sent_at.lock().unwrap() = Some(Instant::now());
    peer.send_to(b"one", addr).await.unwrap();
    peer.send_to(b"two", addr).await.unwrap();
    let mut got = Vec::new();
    for r in receivers {
        let (data, waited) = r.await.unwrap();
        assert!(
            waited < PROMPT,
            "a datagram waited {waited:?} for its receiver"
        );
        got.push(data);
    }
    got.sort();
    assert_eq!(got, [b"one".to_vec(), b"two".to_vec()]);
}

#[gort::test(workers = 2, timeout = 20)]
async fn net_two_tasks_in_readable_on_one_tcp_stream_both_wake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let server = Arc::new(server);
    let ready = Arc::new(AtomicUsize::new(0));
    let watchers: Vec<_> = (0..2)
        .map(|_| {
            let (server, ready) = (server.clone(), ready.clone());
            gort::spawn(async move {
                ready.fetch_add(1, Ordering::SeqCst);
                timeout(GIVE_UP, server.readable())
                    .await
                    .expect("a readable() watcher was never woken")
                    .unwrap();
            })
        })
        .collect();
    until_waiting(&ready, 2).await;
    let t = Instant::now();
    client.write_all(b"x").await.unwrap();
    for w in watchers {
        w.await.unwrap();
    }
    assert!(t.elapsed() < PROMPT, "{:?}", t.elapsed());
    let mut b = [0u8; 1];
    assert_eq!(server.read(&mut b).await.unwrap(), 1);
}

/// One task in `read`, another in `readable()` on the same stream: both wake.
#[gort::test(workers = 2, timeout = 20)]
async fn net_reader_and_readable_watcher_on_one_stream_both_wake() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let server = Arc::new(server);
    let ready = Arc::new(AtomicUsize::new(0));
    let (s1, r1) = (server.clone(), ready.clone());
    let reader = gort::spawn(async move {
        let mut buf = [0u8; 8];
        r1.fetch_add(1, Ordering::SeqCst);
        timeout(GIVE_UP, s1.read(&mut buf))
            .await
            .expect("the reader was never woken")
            .unwrap()
    });
    let (s2, r2) = (server.clone(), ready.clone());
    let watcher = gort::spawn(async move {
        r2.fetch_add(1, Ordering::SeqCst);
        timeout(GIVE_UP, s2.readable())
            .await
            .expect("the watcher was never woken")
            .unwrap();
    });
    until_waiting(&ready, 2).await;
    let t = Instant::now();
    client.write_all(b"hello").await.unwrap();
    assert_eq!(reader.await.unwrap(), 5);
    watcher.await.unwrap();
    // (A timeout polls its future before it gives up: a waiter never woken would
    // still succeed, after GIVE_UP.)
    assert!(t.elapsed() < PROMPT, "{:?}", t.elapsed());
}

/// Two accept loops on one listener, each taking one connection: the second
/// connection is accepted by the loop still waiting, at once.
#[gort::test(workers = 2, timeout = 20)]
async fn net_two_accept_loops_share_one_listener() {
    let listener = Arc::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
    let addr = listener.local_addr().unwrap();
    let ready = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let (listener, ready) = (listener.clone(), ready.clone());
            gort::spawn(async move {
                ready.fetch_add(1, Ordering::SeqCst);
                let (s, _) = timeout(GIVE_UP, listener.accept())
                    .await
                    .expect("an accept loop was never woken")
                    .unwrap();
                (s, Instant::now())
            })
        })
        .collect();
    until_waiting(&ready, 2).await;
    let start = Instant::now();
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    for l in loops {
        let (_s, at) = l.await.unwrap();
        let took = at.duration_since(start);
        assert!(took < PROMPT, "a connection waited {took:?} to be accepted");
    }
}

/// A read is armed on a worker that then computes for a second, while the other
/// worker sleeps in the reactor: the data is read within a few milliseconds of its
/// arrival, not after the computation (on io_uring the armed poll is queued, and a
/// worker submits its queue only when it parks).
#[test]
fn net_read_armed_before_a_long_computation_completes_on_the_idle_worker() {
    let _w = watchdog!(30);
    let _t = timing();
    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = std::net::TcpStream::connect(addr).unwrap();
    let (server, _) = rt.block_on(listener.accept()).unwrap();
    let spin = |d: Duration| {
        let end = Instant::now() + d;
        let mut x = 0u64;
        while Instant::now() < end {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    };
    let read_done = rt.spawn(async move {
        // First let the other worker settle into the reactor (a worker woken to search
        // would submit the queue when it parks again).
        spin(Duration::from_millis(30));
        // The reader wakes us, then arms its read; the wake-up puts us in this
        // worker's LIFO slot (no other worker is told), so we compute right after the
        // read was queued, on the same worker.
        let (armed_tx, armed) = gort::chan::bounded::<()>(1);
        let reader = gort::spawn(async move {
            armed_tx.send(()).await.unwrap();
            let mut buf = [0u8; 4];
            let n = server.read(&mut buf).await.unwrap();
            (n, Instant::now())
        });
        armed.recv().await.unwrap();
        spin(Duration::from_secs(1));
        reader.await.unwrap()
    });
    std::thread::sleep(Duration::from_millis(100));
    let sent = Instant::now();
    client.write_all(b"ping").unwrap();
    let (n, at) = rt.block_on(read_done).unwrap();
    assert_eq!(n, 4);
    let took = at.duration_since(sent);
    eprintln!("read completed {took:?} after the data arrived");
    assert!(
        took < Duration::from_millis(100),
        "the read waited {took:?} for a computing worker"
    );
}

/// CPU time of the threads named `name` in this process, from `/proc` (so other
/// tests running beside this one do not count).
fn threads_cpu(name: &str) -> Duration {
    let ticks_per_sec = 100; // USER_HZ on Linux
    let mut ticks = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != name {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // After the name: state is field 3; utime and stime are fields 14 and 15.
        ticks += fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
    }
    Duration::from_millis(ticks * 1000 / ticks_per_sec)
}

/// Ten seconds of connection churn against an echo server, with peers that close
/// mid-read, reset the connection, or leave without a word: every connection's
/// handler finishes, and afterwards the server's threads are idle (no worker spins on
/// a dead socket).
#[test]
fn net_churn_with_peers_closing_mid_read_finishes_every_connection() {
    let _w = watchdog!(90);
    let _t = timing();
    const NAME: &str = "gort-churn";
    const CHURN: Duration = Duration::from_secs(10);
    const CLIENTS: usize = 8;
    let rt = gort::Runtime::builder()
        .workers(2)
        .thread_name(NAME)
        .build()
        .unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let (a, f) = (accepted.clone(), finished.clone());
    rt.spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let f = f.clone();
            gort::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                f.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut rng = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut done = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let Ok(mut c) = std::net::TcpStream::connect(addr) else {
                        continue;
                    };
                    let len = 1 + (rng >> 8) as usize % 8192;
                    let msg = common::pattern(len, rng);
                    match rng % 4 {
                        // A whole exchange, every byte checked.
                        0 => {
                            c.write_all(&msg).unwrap();
                            let mut back = vec![0u8; len];
                            c.read_exact(&mut back).unwrap();
                            assert_eq!(back, msg);
                        }
                        // Part of a message, then gone while the server reads.
                        1 => {
                            let _ = c.write_all(&msg[..len / 2]);
                        }
                        // A reset in the middle of the exchange.
                        2 => {
                            let _ = c.write_all(&msg);
                            let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
                        }
                        // Connected, never a word.
                        _ => {}
                    }
                    drop(c);
                    done += 1;
                }
                done
            })
        })
        .collect();
    std::thread::sleep(CHURN);
    stop.store(true, Ordering::SeqCst);
    let connections: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (finished.load(Ordering::SeqCst) < connections
        || accepted.load(Ordering::SeqCst) < connections)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (acc, fin) = (
        accepted.load(Ordering::SeqCst),
        finished.load(Ordering::SeqCst),
    );
    eprintln!("churn: {connections} connections, {acc} accepted, {fin} finished");
    assert!(
        connections > 1000,
        "only {connections} connections in {CHURN:?}"
    );
    assert_eq!(acc, connections, "connections never accepted");
    assert_eq!(fin, connections, "handlers that never finished");
    let cpu0 = threads_cpu(NAME);
    std::thread::sleep(Duration::from_secs(1));
    let idle = threads_cpu(NAME) - cpu0;
    assert!(
        idle <= Duration::from_millis(100),
        "the idle server's workers used {idle:?} of CPU in 1 s: something spins"
    );
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn net_waiters_every_test_again_on_io_uring() {
    let _w = watchdog!(240);
    let _t = timing();
    common::rerun_all_on_io_uring("net_waiters_every_test_again_on_io_uring");
}
