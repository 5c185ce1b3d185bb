//! TCP on the reactor (epoll): echo with every byte checked, many connections,
//! half-close, reset, address in use, readiness noticed while another worker is busy.

mod common;

use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{echo_server, pattern, watchdog};
use futures::AsyncReadExt;
use gort::net::{TcpListener, TcpStream};

#[gort::test(workers = 2, timeout = 60)]
async fn net_echo_random_sizes_up_to_1mib_every_byte_checked() {
    let addr = echo_server().await.unwrap();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    for (i, len) in [1usize, 7, 4096, 65_537, 300_000, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, i as u64 + 1);
        let mut w = vec![0u8; len];
        // Write and read concurrently: a 1 MiB write does not fit in socket buffers.
        let (rd, wr) = stream.into_split();
        let writer = gort::spawn({
            let data = data.clone();
            async move {
                wr.write_all(&data).await.unwrap();
                wr
            }
        });
        let mut got = 0;
        while got < len {
            let n = rd.read(&mut w[got..]).await.unwrap();
            assert!(n > 0, "closed early");
            got += n;
        }
        assert!(w == data, "echo of {len} bytes differs");
        drop(writer.await.unwrap());
        drop(rd);
        // A fresh connection for the next size.
        stream = TcpStream::connect(addr).await.unwrap();
    }
}

#[gort::test(workers = 2, timeout = 60)]
async fn net_1000_concurrent_connections() {
    let addr = echo_server().await.unwrap();
    let clients: Vec<_> = (0..1000u64)
        .map(|i| {
            gort::spawn(async move {
                let mut s = TcpStream::connect(addr).await?;
                let msg = pattern(64, i + 1);
                s.write_all(&msg).await?;
                let mut back = vec![0u8; 64];
                s.read_exact(&mut back).await?;
                assert_eq!(back, msg);
                io::Result::Ok(())
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap().unwrap();
    }
}

#[gort::test(workers = 2, timeout = 20)]
async fn net_half_close_and_read_after_peer_closed_returns_zero() {
    let addr = echo_server().await.unwrap();
    let s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"last words").await.unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    // The server echoes, sees EOF, closes: we read the echo, then 0.
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"last words");
    assert_eq!(s.read(&mut buf).await.unwrap(), 0);
}

#[gort::test(workers = 2, timeout = 20)]
async fn net_reset_and_write_to_closed_peer_are_errors_not_sigpipe() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    // SO_LINGER 0 makes close send RST.
    socket2::SockRef::from(&server)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(server);
    let mut err = None;
    for _ in 0..100 {
        match client.write_all(&[0u8; 65536]).await {
            Ok(()) => gort::time::sleep(Duration::from_millis(1)).await,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("writing to a closed peer must fail");
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{e:?}"
    );
}

#[gort::test]
async fn net_address_in_use_is_a_clear_error() {
    let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = a.local_addr().unwrap();
    let err = TcpListener::bind(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[gort::test]
async fn net_connect_refused_and_timeout() {
    // A port nobody listens on: bind, note it, close.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    let ok = TcpStream::connect_timeout(addr, Duration::from_secs(5)).await;
    assert!(ok.is_err());
}

/// DESIGN.md's case: one worker runs a CPU-heavy task while a socket becomes readable;
/// the other worker, parked in the shared driver, notices and runs the reader.
#[test]
fn net_readiness_noticed_while_other_worker_busy() {
    let _w = watchdog!(30);
    // No hand-offs: only the shared driver can make this work.
    let rt = gort::Runtime::builder()
        .workers(2)
        .blocking_threshold(Duration::ZERO)
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        // The calm baseline: the same read with nothing else running.
        let calm = {
            let reader = gort::spawn(async move {
                let mut buf = [0u8; 4];
                let n = server.read(&mut buf).await.unwrap();
                (server, n, Instant::now())
            });
            std::thread::sleep(Duration::from_millis(50));
            use std::io::Write;
            let sent = Instant::now();
            client.write_all(b"ping").unwrap();
            let (s, n, read_at) = reader.await.unwrap();
            assert_eq!(n, 4);
            server = s;
            read_at.duration_since(sent)
        };
        let busy_done = Arc::new(AtomicBool::new(false));
        let b = busy_done.clone();
        let busy = gort::spawn(async move {
            let end = Instant::now() + Duration::from_millis(500);
            while Instant::now() < end {
                std::hint::spin_loop();
            }
            b.store(true, Ordering::SeqCst);
        });
        let reader = gort::spawn(async move {
            let mut buf = [0u8; 4];
            let n = server.read(&mut buf).await.unwrap();
            (n, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(50));
        use std::io::Write;
        let sent = Instant::now();
        client.write_all(b"ping").unwrap();
        let (n, read_at) = reader.await.unwrap();
        assert_eq!(n, 4);
        // At most half the 500 ms spin, however loaded the machine.
        let bound = common::bound_from_calm(
            calm,
            20,
            Duration::from_millis(100),
            Duration::from_millis(250),
        );
        assert!(
            read_at.duration_since(sent) < bound,
            "readiness waited {:?} for the busy worker (calm: {calm:?})",
            read_at.duration_since(sent)
        );
        assert!(
            !busy_done.load(Ordering::SeqCst),
            "the read waited for the busy task to finish"
        );
        busy.await.unwrap();
    });
}

#[gort::test(workers = 2, timeout = 20)]
async fn net_owned_buffer_read_and_write() {
    let addr = echo_server().await.unwrap();
    let s = TcpStream::connect(addr).await.unwrap();
    let (res, back) = s.write_all_owned(b"owned bytes".to_vec()).await;
    res.unwrap();
    assert_eq!(back, b"owned bytes");
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(b">");
    while buf.len() < 12 {
        let (res, b) = s.read_owned(buf).await;
        assert!(res.unwrap() > 0);
        buf = b;
    }
    assert_eq!(buf, b">owned bytes");
}

#[gort::test(workers = 2, timeout = 20)]
async fn net_readable_then_try_read_and_try_write() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = TcpStream::connect(addr).await.unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        server.try_read(&mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );
    assert_eq!(client.try_write(b"ping").unwrap(), 4);
    server.readable().await.unwrap();
    assert_eq!(server.try_read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"ping");
    drop(client);
    server.readable().await.unwrap();
    assert_eq!(server.try_read(&mut buf).unwrap(), 0);
}

/// A readiness event owed to a thread that computes: the reader's wait was armed by the
/// only worker, which then spins for a second without a system call. The monitor hands
/// its queue to a fresh thread (a second task waits behind the spinner), which must run
/// the reader well before the spin ends. On io_uring the poll's completion is task
/// work of the spinning thread (`COOP_TASKRUN`: no interrupt for it); the timer tick's
/// return to user mode runs it.
#[test]
fn net_read_completes_while_the_thread_that_armed_it_computes() {
    let _w = watchdog!(30);
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // The calm baseline: the same read, the worker parked.
        let (server, calm) = {
            let reader = gort::spawn(async move {
                let mut buf = [0u8; 4];
                let n = server.read(&mut buf).await.unwrap();
                (server, n, Instant::now())
            });
            gort::time::sleep(Duration::from_millis(50)).await;
            use std::io::Write;
            let sent = Instant::now();
            client.write_all(b"ping").unwrap();
            let (s, n, read_at) = reader.await.unwrap();
            assert_eq!(n, 4);
            (s, read_at.duration_since(sent))
        };
        let reader = gort::spawn(async move {
            let mut buf = [0u8; 4];
            let n = server.read(&mut buf).await.unwrap();
            (n, Instant::now())
        });
        // The worker runs the reader up to its wait, then parks (submitting the wait).
        gort::time::sleep(Duration::from_millis(50)).await;
        let spin = Duration::from_secs(1);
        let spinner = gort::spawn(async move {
            let end = Instant::now() + spin;
            while Instant::now() < end {
                std::hint::spin_loop();
            }
        });
        let queued = gort::spawn(async {});
        std::thread::sleep(Duration::from_millis(100));
        use std::io::Write;
        let sent = Instant::now();
        client.write_all(b"ping").unwrap();
        let (n, read_at) = reader.await.unwrap();
        assert_eq!(n, 4);
        if std::env::var_os("GORT_TEST_VERBOSE").is_some() {
            eprintln!("read {:?} after the write", read_at.duration_since(sent));
        }
        // At most half the 1 s spin, however loaded the machine.
        let bound = common::bound_from_calm(
            calm,
            20,
            Duration::from_millis(150),
            Duration::from_millis(500),
        );
        assert!(
            read_at.duration_since(sent) < bound,
            "the read waited {:?} for the spinning thread (calm: {calm:?})",
            read_at.duration_since(sent)
        );
        queued.await.unwrap();
        spinner.await.unwrap();
    });
}

/// An io_uring request belongs to the thread that submitted it. Here a plain thread
/// submits an owned read (it polls the future once inside `Handle::block_on`), hands
/// the future to a runtime task and exits; the read must still complete with the
/// bytes sent afterwards (not fail with `ECANCELED`, nor hang).
#[test]
fn net_owned_read_outlives_the_thread_that_submitted_it() {
    let _w = watchdog!(30);
    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    let (server, mut client) = rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Arc::new(server), client)
    });
    let handle = rt.handle().clone();
    // The thread returns the JoinHandle (awaited below), on purpose.
    #[allow(clippy::async_yields_async)]
    let task = std::thread::spawn(move || {
        handle.block_on(async move {
            let s = server.clone();
            let mut read = Box::pin(async move { s.read_owned(Vec::with_capacity(64)).await });
            assert!(futures::poll!(read.as_mut()).is_pending());
            gort::spawn(read)
        })
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    use std::io::Write;
    client.write_all(b"after").unwrap();
    let (res, buf) = rt.block_on(task).unwrap();
    assert_eq!(res.unwrap(), 5);
    assert_eq!(buf, b"after");
}

/// Many connections at once through the owned-buffer API with reads dropped mid-flight
/// on both workers: 40 connections, 100 messages each of random size, every byte
/// echoed back in order (on io_uring: native `RECV`/`SEND`, stashes and orphans under
/// contention).
#[gort::test(workers = 2)]
async fn net_owned_echo_with_dropped_reads_on_many_connections() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    gort::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            gort::spawn(async move {
                let mut buf = Vec::with_capacity(2048);
                loop {
                    buf.clear();
                    let r = gort::time::timeout(Duration::from_micros(30), s.read_owned(buf));
                    let (res, b) = match r.await {
                        Ok(done) => done,
                        // Dropped mid-flight: its bytes, if any, come with the next read.
                        Err(_) => (Ok(usize::MAX), Vec::with_capacity(2048)),
                    };
                    buf = b;
                    match res {
                        Ok(usize::MAX) => continue,
                        Ok(0) => {
                            eprintln!("SERVER read 0");
                            return;
                        }
                        Err(e) => {
                            eprintln!("SERVER read err {e:?}");
                            return;
                        }
                        Ok(_) => {}
                    }
                    let (res, b) = s.write_all_owned(buf).await;
                    buf = b;
                    if let Err(e) = res {
                        eprintln!("SERVER write err {e:?}");
                        return;
                    }
                }
            });
        }
    });
    let clients: Vec<_> = (0..40u64)
        .map(|c| {
            gort::spawn(async move {
                let s = TcpStream::connect(addr).await.unwrap();
                for m in 0..100u64 {
                    let len = 1 + ((c * 7919 + m * 104_729) % 3000) as usize;
                    let msg = pattern(len, c * 1000 + m);
                    let (res, _) = s.write_all_owned(msg.clone()).await;
                    res.unwrap();
                    let mut got = Vec::with_capacity(len);
                    while got.len() < len {
                        let (res, b) = s.read_owned(got).await;
                        got = b;
                        assert!(res.unwrap() > 0, "server closed early");
                    }
                    assert!(got == msg, "connection {c} message {m}: bytes differ");
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn net_every_test_again_on_io_uring() {
    let _w = watchdog!(240);
    common::rerun_all_on_io_uring("net_every_test_again_on_io_uring");
}
