//! Unix signals sent to this very process with `kill(2)`: every listener of a signal sees
//! each delivery, listeners of other signals do not, on epoll and (re-run) io_uring.
//! One binary of its own: a signal is process-wide.

mod common;

use std::time::Duration;

use common::watchdog;
use futures::StreamExt;
use gort::signal::unix::{signal, SignalKind};

/// `kill(2)` of this very process, as an operator's `kill -USR1 PID` does (the
/// `kill` binary is not in every container).
fn kill(signum: libc::c_int) {
    // SAFETY: `kill` with our own pid and a valid signal number has no memory effects.
    let rc = unsafe { libc::kill(libc::getpid(), signum) };
    assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
}

#[gort::test(workers = 2, timeout = 60)]
async fn signal_reaches_every_listener_and_only_its_own() {
    let mut a = signal(SignalKind::user_defined1()).unwrap();
    let mut b = signal(SignalKind::user_defined1()).unwrap();
    let mut other = signal(SignalKind::user_defined2()).unwrap();
    // Listeners in tasks of their own, as a server has them (one per subsystem); each
    // says when it has seen a delivery, so the next is sent only after (two signals
    // before a listener looks again are one, by design: they are not queued).
    let (seen_tx, seen_rx) = gort::chan::unbounded::<usize>();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let mut s = signal(SignalKind::user_defined1()).unwrap();
            let seen = seen_tx.clone();
            gort::spawn(async move {
                for round in 0..2 {
                    s.recv().await.unwrap();
                    seen.send(round).await.unwrap();
                }
            })
        })
        .collect();
    let limit = Duration::from_secs(10);
    for round in 0..2 {
        kill(libc::SIGUSR1);
        gort::time::timeout(limit, a.recv())
            .await
            .unwrap_or_else(|_| panic!("round {round}: listener a saw nothing"));
        gort::time::timeout(limit, b.next())
            .await
            .unwrap_or_else(|_| panic!("round {round}: listener b (as a Stream) saw nothing"));
        for _ in 0..3 {
            let got = gort::time::timeout(limit, seen_rx.recv())
                .await
                .unwrap_or_else(|_| panic!("round {round}: a task's listener saw nothing"));
            assert_eq!(got, Some(round));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let none = gort::time::timeout(Duration::from_millis(200), other.recv()).await;
    assert!(none.is_err(), "SIGUSR2's listener woke for SIGUSR1");
}

#[gort::test(workers = 2, timeout = 60)]
async fn signal_ctrl_c_completes_on_sigint() {
    // A listener made first, so that the handler is installed before any SIGINT is
    // sent (without one, SIGINT ends the process).
    let _keep = signal(SignalKind::interrupt()).unwrap();
    let waiting = gort::spawn(gort::signal::ctrl_c());
    // `ctrl_c` installs its listener when first polled: send until it has seen one.
    let done = gort::time::timeout(Duration::from_secs(10), async {
        while !waiting.is_finished() {
            kill(libc::SIGINT);
            gort::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(done.is_ok(), "ctrl_c() never completed");
    waiting.await.unwrap().unwrap();
}

#[test]
fn signal_refuses_what_cannot_be_handled() {
    for bad in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -1, 1000] {
        let err = signal(SignalKind::from_raw(bad)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "signal {bad}");
    }
    // Needs no runtime.
    let s = signal(SignalKind::hangup()).unwrap();
    assert_eq!(s.kind(), SignalKind::hangup());
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn signal_every_test_again_on_io_uring() {
    let _w = watchdog!(120);
    common::rerun_all_on_io_uring("signal_every_test_again_on_io_uring");
}
