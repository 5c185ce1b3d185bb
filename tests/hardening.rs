//! Hardening: each bug found by trying gort as a new user would, with a regression test
//! named for it, and bad input that must get a clear error instead of a panic or an
//! allocation the size of the input. Every test runs on epoll and again on io_uring.

mod common;

use std::io;
use std::time::Duration;

use common::watchdog;
use futures::{AsyncReadExt, AsyncSeekExt};

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("gort-hardening-{}-{name}", std::process::id()))
}

/// Each re-poll of a pending seek used to seek again: after reading 10 bytes,
/// `seek(Current(5))` landed on 15 in 11 of 50 tries (20, 25, 40, even 3955 otherwise).
#[gort::test(workers = 2, timeout = 60)]
async fn fs_seek_is_issued_once_however_often_it_is_polled() {
    let path = temp_path("seek");
    let data: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    gort::fs::write(&path, &data).await.unwrap();
    for attempt in 0..50 {
        let mut f = gort::fs::File::open(&path).await.unwrap();
        let mut head = [0u8; 10];
        f.read_exact(&mut head).await.unwrap();
        assert_eq!(head, data[..10]);
        let at = f.seek(io::SeekFrom::Current(5)).await.unwrap();
        assert_eq!(at, 15, "attempt {attempt}");
        let mut next = [0u8; 4];
        f.read_exact(&mut next).await.unwrap();
        assert_eq!(next, data[15..19], "attempt {attempt}");
        // And from the start, and from the end.
        assert_eq!(f.seek(io::SeekFrom::Start(100)).await.unwrap(), 100);
        assert_eq!(f.seek(io::SeekFrom::End(-96)).await.unwrap(), 4000);
        f.read_exact(&mut next).await.unwrap();
        assert_eq!(next, data[4000..4004]);
    }
    let mut f = gort::fs::File::open(&path).await.unwrap();
    let err = f.seek(io::SeekFrom::Current(i64::MIN)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    // The failed seek left the file usable.
    assert_eq!(f.seek(io::SeekFrom::Start(1)).await.unwrap(), 1);
    std::fs::remove_file(&path).unwrap();
}

/// A read that failed (`File::open("/")`, then `read`: `EISDIR`) left the file busy
/// with a finished job; the next read panicked with "JoinHandle polled after it
/// returned its output".
#[gort::test(workers = 2, timeout = 30)]
async fn fs_failed_read_leaves_the_file_usable() {
    let mut dir = gort::fs::File::open("/").await.unwrap();
    let mut buf = [0u8; 16];
    for _ in 0..3 {
        let err = dir.read(&mut buf).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EISDIR), "{err}");
    }
    // A file that hits its end, then grows, reads again (no sticky end of file).
    let path = temp_path("grow");
    gort::fs::write(&path, b"abc").await.unwrap();
    let mut f = gort::fs::File::open(&path).await.unwrap();
    let mut all = Vec::new();
    f.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"abc");
    assert_eq!(f.read(&mut buf).await.unwrap(), 0);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut w| io::Write::write_all(&mut w, b"de"))
        .unwrap();
    assert_eq!(f.read(&mut buf).await.unwrap(), 2);
    assert_eq!(&buf[..2], b"de");
    std::fs::remove_file(&path).unwrap();
}

/// `read_at(usize::MAX, ..)` aborted the process allocating a buffer of that size. It
/// must read what the file holds, allocating for that only; huge reads still arrive
/// whole.
#[gort::test(workers = 2, timeout = 60)]
async fn fs_read_at_huge_length_allocates_for_the_data_only() {
    let path = temp_path("read_at");
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    gort::fs::write(&path, &big).await.unwrap();
    let f = gort::fs::File::open(&path).await.unwrap();
    let all = f.read_at(usize::MAX, 0).await.unwrap();
    assert!(
        all == big,
        "read_at(usize::MAX) returned {} bytes",
        all.len()
    );
    assert!(all.capacity() < 2 * big.len(), "{}", all.capacity());
    let tail = f.read_at(usize::MAX, 4_999_990).await.unwrap();
    assert_eq!(tail, big[4_999_990..]);
    assert_eq!(f.read_at(3, 10).await.unwrap(), big[10..13]);
    assert!(f.read_at(usize::MAX, 6_000_000).await.unwrap().is_empty());
    assert!(f.read_at(0, 0).await.unwrap().is_empty());
    // Past what an offset can say: an error, not a read at the cursor (io_uring takes
    // an offset of -1 to mean "the cursor").
    for offset in [u64::MAX, i64::MAX as u64 + 1] {
        let err = f.read_at(16, offset).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = f.write_at(vec![1], offset).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }
    std::fs::remove_file(&path).unwrap();
}

/// Dropping the leaf of a 1,000,000-deep chain of `with_cancel` overflowed the stack
/// and aborted the process: each scope's drop recursed into its parent's. The chain
/// also cancels from its root in one go, and every scope is released.
#[test]
fn context_million_deep_chain_drops_without_recursion() {
    let _w = watchdog!(120);
    const DEPTH: usize = 1_000_000;
    let root = gort::sync::Context::background().with_cancel();
    let (root_ctx, root_cancel) = root;
    let mut leaf = root_ctx.clone();
    for _ in 0..DEPTH {
        leaf = leaf.with_cancel().0;
    }
    assert!(leaf.err().is_none());
    assert_eq!(root_ctx.num_children(), 1);
    drop(leaf);
    assert_eq!(root_ctx.num_children(), 0, "the chain was not released");
    // Again, cancelled from the root while the leaf lives.
    let mut leaf = root_ctx.clone();
    for _ in 0..DEPTH {
        leaf = leaf.with_cancel().0;
    }
    root_cancel.cancel();
    assert_eq!(leaf.err(), Some(gort::sync::ContextError::Canceled));
    drop(leaf);
}

/// Every knob has a documented range; out of it, `build` fails with `InvalidInput`
/// naming the knob (never a panic deep inside, never an allocation the size of the
/// input). In range, the extremes work.
#[test]
fn builder_knobs_out_of_range_are_errors_naming_the_knob() {
    let _w = watchdog!(60);
    type Knob = fn(&mut gort::Builder);
    let bad: [(&str, Knob); 8] = [
        ("Builder::workers", |b| {
            b.workers(0);
        }),
        ("Builder::workers", |b| {
            b.workers(1025);
        }),
        ("Builder::workers", |b| {
            b.workers(usize::MAX);
        }),
        ("Builder::max_blocking_threads", |b| {
            b.max_blocking_threads(0);
        }),
        ("Builder::max_blocking_threads", |b| {
            b.max_blocking_threads(usize::MAX);
        }),
        ("Builder::thread_stack_size", |b| {
            b.thread_stack_size(1024);
        }),
        ("Builder::thread_stack_size", |b| {
            b.thread_stack_size(usize::MAX);
        }),
        ("Builder::blocking_threshold", |b| {
            b.blocking_threshold(Duration::from_micros(10));
        }),
    ];
    for (knob, set) in bad {
        let mut b = gort::Runtime::builder();
        set(&mut b);
        let err = b.build().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{knob}: {err}");
        assert!(err.to_string().contains(knob), "{knob}: {err}");
    }
    // The extremes in range.
    let rt = gort::Runtime::builder()
        .workers(1)
        .max_blocking_threads(gort::runtime::MAX_BLOCKING_THREADS)
        .thread_stack_size(gort::runtime::MIN_THREAD_STACK)
        .thread_keep_alive(Duration::MAX)
        .blocking_threshold(Duration::MAX)
        .build()
        .unwrap();
    let v = rt.block_on(async {
        gort::spawn_blocking(|| 5).await.unwrap() + gort::spawn(async { 1 }).await.unwrap()
    });
    assert_eq!(v, 6);
    rt.shutdown_timeout(Duration::MAX);
    let rt = gort::Runtime::builder()
        .workers(gort::runtime::MAX_WORKERS)
        .blocking_threshold(gort::runtime::MONITOR_MIN_TICK)
        .build()
        .unwrap();
    assert_eq!(rt.metrics().num_workers(), gort::runtime::MAX_WORKERS);
    drop(rt);
    // A channel as large as `usize` can say is bounded, and says so; it allocates
    // nothing up front for that capacity.
    let (tx, rx) = gort::chan::bounded::<u8>(usize::MAX);
    assert_eq!(tx.capacity(), Some(usize::MAX));
    assert_eq!(rx.capacity(), Some(usize::MAX));
    assert_eq!(gort::chan::unbounded::<u8>().0.capacity(), None);
    tx.try_send(1).unwrap();
    assert_eq!(rx.try_recv().unwrap(), 1);
}

/// `sleep`, `timeout` and `interval` of `Duration::MAX` panicked with "overflow when
/// adding duration to instant"; Go and tokio treat a huge duration as "far in the
/// future". So does a huge `Context::with_timeout`.
#[gort::test(workers = 1, timeout = 30)]
async fn time_duration_max_means_far_in_the_future() {
    let r = gort::time::timeout(Duration::MAX, async { 7 }).await;
    assert_eq!(r.unwrap(), 7);
    let slept =
        gort::time::timeout(Duration::from_millis(20), gort::time::sleep(Duration::MAX)).await;
    assert!(slept.is_err(), "sleep(Duration::MAX) ended");
    let mut iv = gort::time::interval(Duration::MAX);
    iv.tick().await; // The first tick is at once.
    let second = gort::time::timeout(Duration::from_millis(20), iv.tick()).await;
    assert!(second.is_err(), "interval(Duration::MAX) ticked twice");
    // A tiny period far behind (ten million missed ticks) still moves on.
    let mut iv = gort::time::interval(Duration::from_nanos(1));
    iv.tick().await;
    std::thread::sleep(Duration::from_millis(10));
    let a = iv.tick().await;
    let b = iv.tick().await;
    assert!(b > a);
    let (ctx, _cancel) = gort::sync::Context::background().with_timeout(Duration::MAX);
    assert!(ctx.err().is_none());
    let waited = gort::time::timeout(Duration::from_millis(20), ctx.done()).await;
    assert!(waited.is_err(), "a Duration::MAX context ended");
}

/// `rt1.block_on(handle_of_a_task_on_rt2)` where the rt2 task sleeps 1.5 s: rt1
/// panicked with the deadlock report after 500 ms, its check looking at one runtime
/// only. Also a channel shared by two runtimes: the sender's runtime wakes the other.
#[test]
fn deadlock_check_sees_a_task_of_another_runtime_that_will_wake_it() {
    let _w = watchdog!(30);
    let rt1 = gort::Runtime::builder().workers(1).build().unwrap();
    let rt2 = gort::Runtime::builder().workers(1).build().unwrap();
    let task = rt2.spawn(async {
        gort::time::sleep(Duration::from_millis(1500)).await;
        7
    });
    assert_eq!(rt1.block_on(task).unwrap(), 7);
    let (tx, rx) = gort::chan::bounded::<u32>(0);
    let receiver = rt1.spawn(async move { rx.recv().await });
    rt2.spawn(async move {
        gort::time::sleep(Duration::from_millis(1200)).await;
        tx.send(9).await.unwrap();
    });
    assert_eq!(rt1.block_on(receiver).unwrap(), Some(9));
}

/// `submit_now` took `EBUSY` for success and gave up after 100 `EAGAIN`s, forgetting
/// that entries were queued: a cancellation dropped on a thread outside the workers
/// then sat in the submission queue while the worker slept in the ring, and the
/// kernel kept the socket open. Refused submissions are now retried for a second,
/// then left flagged for the monitor. The proof is the peer seeing the close.
/// io_uring only (on epoll there is no submission to refuse): runs in the rerun.
#[test]
fn uring_refused_submissions_are_retried_and_never_forgotten() {
    let _w = watchdog!(60);
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    if rt.driver() != Some(gort::DriverKind::Uring) {
        eprintln!("epoll: no submissions to refuse (the io_uring rerun covers this test)");
        return;
    }
    let driver = rt.reactor().unwrap().clone();
    for (errno, refusals, within, retried) in [
        (libc::EAGAIN, 20, Duration::from_millis(900), true),
        (libc::EBUSY, 20, Duration::from_millis(900), true),
        // Past the second of patience: flagged, and the monitor has it submitted.
        (libc::EAGAIN, 1_000_000, Duration::from_secs(3), false),
    ] {
        let give_ups = driver.num_submit_give_ups();
        let (server, mut client) = rt.block_on(async {
            let listener = gort::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            (listener.accept().await.unwrap().0, client)
        });
        rt.block_on(async {
            // A native RECV submitted from this (non-worker) thread, then dropped here
            // by the timeout: its cancellation is what the kernel must take.
            let read = gort::time::timeout(
                Duration::from_millis(50),
                server.read_owned(Vec::with_capacity(64)),
            );
            driver.refuse_next_submits(refusals, errno);
            assert!(read.await.is_err(), "nothing was sent");
            // The drop itself got the cancellation to the kernel, retrying, rather
            // than leaving it to a later flush; past its patience it gave up once.
            assert_eq!(
                driver.num_submit_give_ups() - give_ups,
                u64::from(!retried),
                "errno {errno} x{refusals}"
            );
        });
        let dropped = std::time::Instant::now();
        drop(server);
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let n = io::Read::read(&mut client, &mut [0u8; 8]).unwrap();
        let took = dropped.elapsed();
        driver.refuse_next_submits(0, 0);
        assert_eq!(n, 0);
        assert!(
            took < within,
            "errno {errno} x{refusals}: the peer saw the close after {took:?}"
        );
    }
}

/// A datagram larger than the buffer was cut with no way to know: `peek_len` now
/// gives its whole length first (and the cut is documented, as `recvfrom(2)`'s).
#[gort::test(workers = 2, timeout = 30)]
async fn udp_peek_len_tells_the_whole_datagram_size_before_it_is_cut() {
    let rx = gort::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tx = gort::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = rx.local_addr().unwrap();
    let big: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let peek = gort::spawn(async move {
        let n = rx.peek_len().await.unwrap();
        let mut buf = vec![0u8; n];
        let (got, _) = rx.recv_from(&mut buf).await.unwrap();
        assert_eq!(got, n);
        let mut small = [0u8; 100];
        let (cut, _) = rx.recv_from(&mut small).await.unwrap();
        assert_eq!(cut, 100, "a longer datagram is cut to the buffer");
        assert_eq!(rx.peek_len().await.unwrap(), 0, "an empty datagram");
        (buf, small)
    });
    tx.send_to(&big, to).await.unwrap();
    tx.send_to(&big[..500], to).await.unwrap();
    tx.send_to(&[], to).await.unwrap();
    let (whole, small) = peek.await.unwrap();
    assert_eq!(whole, big);
    assert_eq!(small[..], big[..100]);
}

/// Enter guards nest: each restores the runtime before it, also for the same runtime
/// twice; one dropped out of order panics instead of leaving the wrong runtime
/// current. (The slot they share has no destructor now, so a runtime can be entered
/// from inside another thread-local's destructor: see `tests/faults.rs`.)
#[test]
fn enter_guards_restore_in_order_and_refuse_out_of_order() {
    let _w = watchdog!(30);
    // Told apart by their worker counts.
    let rt0 = gort::Runtime::builder().workers(1).build().unwrap();
    let rt1 = gort::Runtime::builder().workers(3).build().unwrap();
    let id = |h: &gort::Handle| h.metrics().num_workers();
    assert!(gort::Handle::try_current().is_none());
    {
        let _g0 = rt0.enter();
        let a = rt1.enter();
        let b = rt1.enter();
        assert_eq!(id(&gort::Handle::current()), 3);
        drop(b);
        assert_eq!(id(&gort::Handle::current()), 3);
        drop(a);
        let now = gort::Handle::try_current().expect("rt0 is current again");
        assert_eq!(id(&now), id(rt0.handle()));
        // Spawning goes to rt0.
        let t = gort::spawn(async { 5 });
        assert_eq!(rt0.block_on(t).unwrap(), 5);
    }
    assert!(
        gort::Handle::try_current().is_none(),
        "a runtime stayed current"
    );
    let out_of_order = std::thread::spawn(move || {
        let a = rt0.enter();
        let b = rt1.enter();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(a)));
        common::forget(b);
        res.is_err()
    })
    .join()
    .unwrap();
    assert!(out_of_order, "dropping the outer guard first must panic");
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn hardening_every_test_again_on_io_uring() {
    let _w = watchdog!(240);
    common::rerun_all_on_io_uring("hardening_every_test_again_on_io_uring");
}
