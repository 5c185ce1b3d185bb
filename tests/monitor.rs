//! The monitor: a task that blocks its worker (a sleep, a busy loop, an explicit
//! `block_in_place`) does not stall the other tasks of that worker beyond the
//! blocking threshold.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watchdog;
use gort::Runtime;

/// Ticks every ~10 ms (through the blocking pool: gort has no timers yet) until `stop`,
/// and returns the largest gap between ticks.
async fn ticker(stop: Arc<AtomicBool>) -> Duration {
    let mut last = Instant::now();
    let mut worst = Duration::ZERO;
    while !stop.load(Ordering::SeqCst) {
        gort::spawn_blocking(|| std::thread::sleep(Duration::from_millis(10)))
            .await
            .unwrap();
        let now = Instant::now();
        worst = worst.max(now - last);
        last = now;
    }
    worst
}

fn one_worker() -> Runtime {
    Runtime::builder()
        .workers(1)
        .blocking_threshold(Duration::from_millis(10))
        .build()
        .unwrap()
}

fn run_with_blocker(rt: &Runtime, blocker: impl FnOnce() + Send + 'static) -> Duration {
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let tick = gort::spawn(ticker(stop.clone()));
        // Let the ticker settle, then block the only worker for a second.
        gort::spawn_blocking(|| std::thread::sleep(Duration::from_millis(50)))
            .await
            .unwrap();
        gort::spawn(async move { blocker() }).await.unwrap();
        stop.store(true, Ordering::SeqCst);
        tick.await.unwrap()
    })
}

#[test]
fn rt_sleeping_task_does_not_stall_its_worker() {
    let _w = watchdog("rt_sleeping_task_does_not_stall_its_worker", 30);
    let rt = one_worker();
    let worst = run_with_blocker(&rt, || std::thread::sleep(Duration::from_secs(1)));
    assert!(
        worst < Duration::from_millis(50),
        "ticker stalled {worst:?}"
    );
    assert!(rt.metrics().num_handoffs() >= 1);
}

#[test]
fn rt_busy_looping_task_does_not_stall_its_worker() {
    let _w = watchdog("rt_busy_looping_task_does_not_stall_its_worker", 30);
    let rt = one_worker();
    let worst = run_with_blocker(&rt, || {
        let end = Instant::now() + Duration::from_secs(1);
        let mut x = 0u64;
        while Instant::now() < end {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    });
    assert!(
        worst < Duration::from_millis(50),
        "ticker stalled {worst:?}"
    );
}

#[test]
fn rt_handoff_threads_retire_and_stay_bounded() {
    let _w = watchdog("rt_handoff_threads_retire_and_stay_bounded", 30);
    let rt = Runtime::builder()
        .workers(2)
        .blocking_threshold(Duration::from_millis(10))
        .build()
        .unwrap();
    rt.block_on(async {
        // Five tasks block at once, with work queued behind them.
        let blockers: Vec<_> = (0..5)
            .map(|_| gort::spawn(async { std::thread::sleep(Duration::from_millis(200)) }))
            .collect();
        let others: Vec<_> = (0..50).map(|i| gort::spawn(async move { i })).collect();
        for (i, h) in others.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), i);
        }
        for b in blockers {
            b.await.unwrap();
        }
    });
    // Threads whose worker was handed off exit once their poll returns.
    let deadline = Instant::now() + Duration::from_secs(5);
    while rt.metrics().num_worker_threads() > 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(rt.metrics().num_worker_threads(), 2);
}

#[test]
fn rt_block_in_place_moves_the_other_tasks_at_once() {
    let _w = watchdog("rt_block_in_place_moves_the_other_tasks_at_once", 30);
    // Hand-offs by the monitor are off: only block_in_place can move the worker.
    let rt = Runtime::builder()
        .workers(1)
        .blocking_threshold(Duration::ZERO)
        .build()
        .unwrap();
    rt.block_on(async {
        let ran = Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        let blocker = gort::spawn(async move {
            // Queued behind us on the only worker.
            let other = gort::spawn(async move { r.store(true, Ordering::SeqCst) });
            let saw = gort::task::block_in_place(|| {
                let end = Instant::now() + Duration::from_secs(5);
                while !ran.load(Ordering::SeqCst) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(1));
                }
                ran.load(Ordering::SeqCst)
            });
            other.await.unwrap();
            saw
        });
        assert!(
            blocker.await.unwrap(),
            "the queued task did not run during block_in_place"
        );
    });
    assert_eq!(rt.metrics().num_handoffs(), 1);
    // Outside a worker it just runs the closure.
    assert_eq!(gort::task::block_in_place(|| 7), 7);
}

#[test]
fn rt_no_handoff_when_threshold_is_zero() {
    let _w = watchdog("rt_no_handoff_when_threshold_is_zero", 30);
    let rt = Runtime::builder()
        .workers(1)
        .blocking_threshold(Duration::ZERO)
        .build()
        .unwrap();
    run_with_blocker(&rt, || std::thread::sleep(Duration::from_millis(100)));
    assert_eq!(rt.metrics().num_handoffs(), 0);
}

#[test]
fn rt_dump_lists_live_tasks_with_spawn_location_and_state() {
    let _w = watchdog("rt_dump_lists_live_tasks_with_spawn_location_and_state", 30);
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = gort::chan::bounded::<()>(0);
    let line = line!() + 1;
    let waiting = rt.spawn(async move { rx.recv().await });
    rt.block_on(gort::task::yield_now());
    std::thread::sleep(Duration::from_millis(20));
    let dump = rt.handle().dump();
    let me = dump
        .iter()
        .find(|t| t.id == waiting.id())
        .expect("the waiting task is listed");
    assert_eq!(me.state, gort::task::TaskState::Waiting);
    assert_eq!(me.spawned_at.file(), file!());
    assert_eq!(me.spawned_at.line(), line);
    let text = me.to_string();
    assert_eq!(me.wait, gort::task::WaitReason::ChanRecv);
    assert!(
        text.contains("[chan receive]") && text.contains("tests/monitor.rs"),
        "{text}"
    );
    drop(tx);
    assert_eq!(rt.block_on(waiting).unwrap(), None);
    // It leaves the list just after waking its joiner.
    let _g = rt.enter();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gort::runtime::dump().iter().any(|t| t.id == me.id) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(gort::runtime::dump().iter().all(|t| t.id != me.id));
}

#[path = "../benches/support/echo_client.rs"]
mod echo_client;

/// An echo server whose handler sleeps 100 ms for every message that starts with
/// 0xFF, on a 1-worker runtime.
fn blocking_echo_server(rt: &Runtime) -> std::net::SocketAddr {
    rt.block_on(async {
        let listener = gort::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        gort::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                gort::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        if buf[0] == 0xFF {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        if s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    })
}

fn p99_of_clients(client_rt: &Runtime, addr: std::net::SocketAddr, blocker: bool) -> u32 {
    let end = Instant::now() + Duration::from_millis(1500);
    let mut lat = client_rt.block_on(async move {
        let mut tasks: Vec<_> = (1..=20u8)
            .map(|seed| gort::spawn(echo_client::client(addr, 64, seed, end)))
            .collect();
        let blocking = blocker.then(|| gort::spawn(echo_client::client(addr, 64, 0xFF, end)));
        let mut all = Vec::new();
        for t in tasks.drain(..) {
            all.extend(t.await.unwrap().unwrap());
        }
        if let Some(b) = blocking {
            b.await.unwrap().unwrap();
        }
        all
    });
    lat.sort_unstable();
    lat[lat.len() * 99 / 100]
}

/// The echo server keeps serving its other connections while one handler blocks for
/// 100 ms at a time: their p99 stays far below the block (without the monitor it
/// would be at least 100 ms). The strict goal, p99 within 2x of unloaded, is measured
/// by `cargo bench --bench echo` (a timing ratio does not belong in a test).
#[test]
fn rt_echo_p99_survives_a_blocking_handler() {
    let _w = watchdog("rt_echo_p99_survives_a_blocking_handler", 60);
    let server = Runtime::builder().workers(1).build().unwrap();
    let client = Runtime::builder().workers(1).build().unwrap();
    let addr = blocking_echo_server(&server);
    let calm = p99_of_clients(&client, addr, false);
    let loaded = p99_of_clients(&client, addr, true);
    eprintln!(
        "echo p99: {calm} us unloaded, {loaded} us beside a handler blocking 100 ms at a time"
    );
    assert!(
        loaded < 50_000,
        "p99 {loaded} us: the blocking handler stalled its neighbours"
    );
    assert!(server.metrics().num_handoffs() >= 1);
}

/// Go's "all goroutines are asleep - deadlock!": two tasks each waiting for the
/// other's channel, and `block_on` waiting for one of them.
#[test]
fn rt_deadlock_is_reported_with_each_task_and_its_wait() {
    let _w = watchdog("rt_deadlock_is_reported_with_each_task_and_its_wait", 30);
    let rt = Runtime::builder().workers(2).build().unwrap();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let (tx1, rx1) = gort::chan::bounded::<u32>(0);
            let (tx2, rx2) = gort::chan::bounded::<u32>(0);
            let a = gort::spawn(async move {
                let v = rx1.recv().await;
                tx2.send(v.unwrap_or(0)).await.ok();
            });
            let _b = gort::spawn(async move {
                let v = rx2.recv().await;
                tx1.send(v.unwrap_or(0)).await.ok();
            });
            a.await.ok();
        })
    }))
    .expect_err("a deadlock must end block_on with a panic");
    let msg = common::panic_message(&*err);
    assert!(msg.contains("all tasks are asleep - deadlock!"), "{msg}");
    assert!(msg.contains("[chan receive]"), "{msg}");
    assert!(msg.contains("block_on [JoinHandle await]"), "{msg}");
    assert!(
        msg.contains("tests/monitor.rs"),
        "spawn locations missing: {msg}"
    );
    assert_eq!(msg.matches("[chan receive]").count(), 2, "{msg}");
}

/// A task parked on `accept` is waiting for the outside world, not deadlocked.
#[test]
fn rt_open_listener_is_not_a_deadlock() {
    let _w = watchdog("rt_open_listener_is_not_a_deadlock", 30);
    let rt = Runtime::builder().workers(1).build().unwrap();
    let listener = rt
        .block_on(gort::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = rt.spawn(async move { listener.accept().await.map(|_| ()) });
    let client = std::thread::spawn(move || {
        // Well past the deadlock grace period.
        std::thread::sleep(Duration::from_millis(1500));
        std::net::TcpStream::connect(addr).unwrap()
    });
    rt.block_on(server).unwrap().unwrap();
    drop(client.join().unwrap());
}

/// With the check off, a program woken by a plain thread (outside any gort call)
/// after a long pause just waits.
#[test]
fn rt_deadlock_detection_can_be_turned_off() {
    let _w = watchdog("rt_deadlock_detection_can_be_turned_off", 30);
    let rt = Runtime::builder()
        .workers(1)
        .deadlock_detection(false)
        .build()
        .unwrap();
    let (tx, rx) = gort::chan::bounded::<u32>(1);
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1200));
        tx.try_send(7).unwrap();
    });
    let task = rt.spawn(async move { rx.recv().await });
    assert_eq!(rt.block_on(task).unwrap(), Some(7));
    feeder.join().unwrap();
}

/// A plain thread that feeds a channel with `try_send`, pausing longer than the
/// deadlock grace period between values: after its first use the channel is known to
/// be shared with a thread, so the waiting task is not called deadlocked.
#[test]
fn rt_channel_fed_by_a_plain_thread_is_not_a_deadlock() {
    let _w = watchdog("rt_channel_fed_by_a_plain_thread_is_not_a_deadlock", 30);
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (tx, rx) = gort::chan::bounded::<u32>(4);
    let feeder = std::thread::spawn(move || {
        tx.try_send(1).unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        tx.try_send(2).unwrap();
    });
    let task = rt.spawn(async move {
        let a = rx.recv().await;
        let b = rx.recv().await;
        (a, b)
    });
    assert_eq!(rt.block_on(task).unwrap(), (Some(1), Some(2)));
    feeder.join().unwrap();
}
