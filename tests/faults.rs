//! The fault matrix: what a server meets in production, each survived with nothing
//! lost but what the fault itself takes. Peers that reset or close mid-transfer,
//! panics in every place user code runs, futures forgotten mid-flight, runtimes dropped
//! with operations in flight, a runtime inside a thread-local destructor, wakes from
//! another thread while the runtime drops. Every test runs on epoll and again on
//! io_uring. (Descriptor exhaustion is in `net_more.rs`, runtime drops with operations
//! in flight in `net_fds.rs`: they count descriptors, which tests beside them would
//! disturb.)

mod common;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use common::watchdog;
use gort::net::{TcpListener, TcpStream};

/// A connected pair: a gort stream and a std peer.
async fn pair() -> (TcpStream, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (s, _) = listener.accept().await.unwrap();
    (s, peer)
}

/// The peer resets the connection (`SO_LINGER` 0, then close) while a task reads and
/// another writes: each gets an error (or end of file), never a hang or a panic, and
/// the runtime goes on serving a fresh connection.
#[gort::test(workers = 2, timeout = 30)]
async fn fault_peer_reset_mid_read_and_mid_write() {
    let (s, peer) = pair().await;
    let s = Arc::new(s);
    let r = s.clone();
    let reader = gort::spawn(async move {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    });
    let w = s.clone();
    let writer = gort::spawn(async move {
        let chunk = vec![7u8; 64 * 1024];
        loop {
            w.write_all(&chunk).await?;
        }
        #[allow(unreachable_code)]
        io::Result::Ok(())
    });
    gort::time::sleep(Duration::from_millis(50)).await;
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    let werr = writer.await.unwrap().unwrap_err();
    assert!(
        matches!(
            werr.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{werr}"
    );
    match reader.await.unwrap() {
        Ok(()) => {}
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}"),
    }
    // Still serving.
    let (s2, mut p2) = pair().await;
    s2.write_all(b"alive").await.unwrap();
    let mut got = [0u8; 5];
    io::Read::read_exact(&mut p2, &mut got).unwrap();
    assert_eq!(&got, b"alive");
}

/// A 64 MiB `write_all` to a peer that reads 1 MiB and closes: the write fails with
/// `BrokenPipe`/`ConnectionReset` (no `SIGPIPE` kills the process) within a bound,
/// and the first MiB arrived intact.
#[gort::test(workers = 2, timeout = 60)]
async fn fault_peer_closes_mid_64mib_write() {
    let (s, mut peer) = pair().await;
    let data: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
    let expect = data[..1 << 20].to_vec();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; 1 << 20];
        io::Read::read_exact(&mut peer, &mut got).unwrap();
        drop(peer);
        got
    });
    let start = Instant::now();
    let err = s.write_all(&data).await.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(reader.join().unwrap() == expect, "the first MiB differs");
}

/// Panics wherever user code runs: a task's poll, its future's `Drop` (run when the
/// task is aborted), a waker's `wake`, a `spawn_blocking` closure, a `select!`
/// branch. Each ends its own task (or call) with a panic error; the runtime, its
/// workers and the channel involved go on.
#[gort::test(workers = 2, timeout = 30)]
async fn fault_panics_in_poll_drop_waker_blocking_and_select() {
    // In a poll.
    let e = gort::spawn(async { panic!("in a poll") })
        .await
        .unwrap_err();
    assert!(e.is_panic());
    // In a Drop, when the task is aborted.
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("in a drop");
        }
    }
    let t = gort::spawn(async {
        let _guard = PanicOnDrop;
        common::forever().await;
    });
    gort::time::sleep(Duration::from_millis(10)).await;
    t.abort();
    let e = t.await.unwrap_err();
    assert!(e.is_panic() || e.is_cancelled(), "{e}");
    // In a waker: a future that hands the channel a waker whose wake panics. The
    // panic surfaces in the sender's task, not in a worker's scheduling loop.
    struct PanickingWaker;
    impl Wake for PanickingWaker {
        fn wake(self: Arc<Self>) {
            panic!("in a waker");
        }
    }
    let (tx, rx) = gort::chan::bounded::<u32>(0);
    let rx = Arc::new(rx);
    let rx2 = rx.clone();
    let poller = std::thread::spawn(move || {
        // Register a receive with the panicking waker, then leave it registered.
        let waker = Waker::from(Arc::new(PanickingWaker));
        let mut cx = Context::from_waker(&waker);
        let mut recv = Box::pin(rx2.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        common::forget(recv);
    });
    poller.join().unwrap();
    let sender = gort::spawn(async move { tx.try_send(1) }).await;
    assert!(
        sender.as_ref().is_ok_and(|r| r.is_ok()) || sender.as_ref().is_err_and(|e| e.is_panic()),
        "{sender:?}"
    );
    // In spawn_blocking.
    let e = gort::spawn_blocking(|| panic!("in spawn_blocking"))
        .await
        .unwrap_err();
    assert!(e.is_panic());
    // In a select! branch.
    let (tx, rx) = gort::chan::bounded::<u32>(1);
    let rx = Arc::new(rx);
    let rx3 = rx.clone();
    let t = gort::spawn(async move {
        gort::select! {
            v = rx3.recv() => {
                if v == Some(1) {
                    panic!("in a select! branch");
                }
            }
        }
    });
    tx.send(1).await.unwrap();
    assert!(t.await.unwrap_err().is_panic());
    // The channel and the runtime still work.
    tx.send(2).await.unwrap();
    assert_eq!(rx.recv().await, Some(2));
    let sum: u32 = {
        let hs: Vec<_> = (0..100).map(|i| gort::spawn(async move { i })).collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await.unwrap();
        }
        sum
    };
    assert_eq!(sum, 4950);
}

/// `mem::forget` of pending read futures (the readiness read and, on io_uring, a
/// native `RECV` with its buffer): nothing is freed under the kernel (the forgotten
/// buffer is leaked, not reused), and the stream goes on reading and closing.
#[gort::test(workers = 2, timeout = 30)]
async fn fault_forgotten_pending_reads() {
    let (s, mut peer) = pair().await;
    {
        let mut buf = [0u8; 16];
        let mut read = Box::pin(s.read(&mut buf));
        let waker = futures::task::noop_waker();
        assert!(read
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        common::forget(read);
    }
    {
        let mut owned = Box::pin(s.read_owned(Vec::with_capacity(64)));
        let waker = futures::task::noop_waker();
        assert!(owned
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        common::forget(owned);
    }
    io::Write::write_all(&mut peer, b"after").unwrap();
    // On epoll nothing holds a forgotten read: the bytes come to this one. On io_uring
    // the forgotten RECV may take them into its own (leaked) buffer: this read then
    // sees a prefix of them or nothing, never other bytes.
    let epoll = gort::Handle::current()
        .reactor::<gort::runtime::Driver>()
        .is_some_and(|d| d.kind() == gort::DriverKind::Epoll);
    let mut got = [0u8; 5];
    if epoll {
        // No time limit (the test's timeout bounds a hang): the bytes must come.
        let n = s.read(&mut got).await.unwrap();
        assert!(n > 0);
        assert_eq!(&got[..n], &b"after"[..n]);
    } else if let Ok(n) = gort::time::timeout(Duration::from_millis(300), s.read(&mut got)).await {
        let n = n.unwrap();
        assert_eq!(&got[..n], &b"after"[..n]);
    }
    s.write_all(b"still").await.unwrap();
    let mut back = [0u8; 5];
    io::Read::read_exact(&mut peer, &mut back).unwrap();
    assert_eq!(&back, b"still");
}

/// A runtime built, used and dropped inside a thread-local's destructor (a library
/// that keeps a runtime per thread): no panic about destroyed thread-locals, no abort.
#[test]
fn fault_runtime_inside_a_thread_local_destructor() {
    let _w = watchdog!(30);
    struct UsesRuntimeOnDrop(Arc<AtomicUsize>);
    impl Drop for UsesRuntimeOnDrop {
        fn drop(&mut self) {
            let rt = gort::Runtime::builder().workers(1).build().unwrap();
            let v = rt.block_on(async {
                gort::time::sleep(Duration::from_millis(1)).await;
                gort::spawn(async { 21 * 2 }).await.unwrap()
            });
            self.0.store(v, Ordering::SeqCst);
        }
    }
    struct HoldsRuntime(Option<gort::Runtime>, Arc<AtomicUsize>);
    impl Drop for HoldsRuntime {
        fn drop(&mut self) {
            let rt = self.0.take().unwrap();
            let v = rt.block_on(rt.spawn(async { 7 })).unwrap();
            self.1.store(v, Ordering::SeqCst);
            drop(rt);
        }
    }
    thread_local! {
        static BUILDS: std::cell::RefCell<Option<UsesRuntimeOnDrop>> = const { std::cell::RefCell::new(None) };
        static HOLDS: std::cell::RefCell<Option<HoldsRuntime>> = const { std::cell::RefCell::new(None) };
    }
    let built = Arc::new(AtomicUsize::new(0));
    let held = Arc::new(AtomicUsize::new(0));
    let (b, h) = (built.clone(), held.clone());
    std::thread::spawn(move || {
        BUILDS.with(|c| *c.borrow_mut() = Some(UsesRuntimeOnDrop(b)));
        let rt = gort::Runtime::builder().workers(1).build().unwrap();
        rt.block_on(async { gort::time::sleep(Duration::from_millis(1)).await });
        HOLDS.with(|c| *c.borrow_mut() = Some(HoldsRuntime(Some(rt), h)));
    })
    .join()
    .expect("the thread's destructors panicked");
    assert_eq!(built.load(Ordering::SeqCst), 42);
    assert_eq!(held.load(Ordering::SeqCst), 7);
}

/// Wakers held by plain threads, woken over and over while the runtime drops and
/// after: no crash, no hang; a wake after the drop does nothing.
#[test]
fn fault_cross_thread_wakes_while_the_runtime_drops() {
    let _w = watchdog!(60);
    /// Parks its task forever, publishing the task's waker.
    struct Publish(Arc<Mutex<Vec<Waker>>>);
    impl std::future::Future for Publish {
        type Output = ();
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.0.lock().unwrap().push(cx.waker().clone());
            Poll::Pending
        }
    }
    for _ in 0..20 {
        let rt = gort::Runtime::builder().workers(2).build().unwrap();
        let wakers = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..50 {
            rt.spawn(Publish(wakers.clone()));
        }
        while wakers.lock().unwrap().len() < 50 {
            std::thread::yield_now();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let wakers_now: Vec<Waker> = wakers.lock().unwrap().clone();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (w, stop) = (wakers_now.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) || n < 1000 {
                        for waker in &w {
                            waker.wake_by_ref();
                        }
                        n += 1;
                    }
                    // After the drop: still harmless.
                    for waker in w {
                        waker.wake();
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(5));
        let t = Instant::now();
        drop(rt);
        assert!(t.elapsed() < Duration::from_secs(5));
        stop.store(true, Ordering::Relaxed);
        for th in threads {
            th.join().expect("a waking thread panicked");
        }
        drop(wakers);
    }
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn faults_every_test_again_on_io_uring() {
    let _w = watchdog!(240);
    common::rerun_all_on_io_uring("faults_every_test_again_on_io_uring");
}
