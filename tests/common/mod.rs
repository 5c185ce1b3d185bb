//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `let _w = watchdog!(secs);` at the top of a plain `#[test]` (one that builds its own
/// runtime, or needs none): aborts the whole test process if the test is still running
/// after `secs` seconds, with a message naming it, so a hung test fails loudly instead
/// of hanging CI. Keep the guard until the test is done. A `#[gort::test]` says
/// `#[gort::test(timeout = secs)]` instead; both are `gort::__private::TestTimeout`.
#[allow(unused_macros)] // not every test file has a plain #[test]
macro_rules! watchdog {
    ($secs:expr) => {{
        // The test's path, from the type name of a function declared inside it.
        fn here() {}
        $crate::common::watchdog_at(::std::any::type_name_of_val(&here), $secs)
    }};
}
#[allow(unused_imports)]
pub(crate) use watchdog;

/// `watchdog!`'s guard for the function `here` (`crate::path::test_name::here`).
pub fn watchdog_at(here: &'static str, secs: u64) -> gort::__private::TestTimeout {
    let test = here.strip_suffix("::here").unwrap_or(here);
    let (module_path, name) = test.rsplit_once("::").unwrap_or(("", test));
    gort::__private::TestTimeout::arm(module_path, name, Duration::from_secs(secs))
}

/// The bound for a latency measured beside a disturbance (a blocked worker, a busy
/// loop): `factor` times the same latency measured calm in the same test, at least
/// `floor`, and at most `cap`, which must be well below the delay the bug under test
/// causes (half of it, say). A loaded machine raises the calm figure and so the bound,
/// instead of failing a fixed one; a slow one still fails on the bug.
pub fn bound_from_calm(calm: Duration, factor: u32, floor: Duration, cap: Duration) -> Duration {
    (calm * factor).max(floor).min(cap)
}

/// Sets its flag when dropped: proves a future was dropped.
pub struct DropFlag(pub Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub fn flag() -> (Arc<AtomicBool>, DropFlag) {
    let f = Arc::new(AtomicBool::new(false));
    (f.clone(), DropFlag(f))
}

/// A future that never completes.
pub async fn forever() {
    std::future::pending::<()>().await
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic>".to_owned()
    }
}

/// Runs every test of this test binary again in a child process whose runtimes use
/// io_uring (`GORT_DRIVER=uring`), so each networking test covers both backends.
/// In the child it does nothing. Where io_uring is unavailable it says so on stderr and
/// passes, unless `GORT_REQUIRE_URING=1`, which makes that a failure (for machines
/// known to have io_uring, so that its coverage cannot vanish silently).
#[allow(dead_code)]
pub fn rerun_all_on_io_uring(this_test: &str) {
    if std::env::var_os("GORT_DRIVER").is_some() {
        return;
    }
    if let Err(e) = gort::Runtime::builder()
        .workers(1)
        .driver(gort::DriverKind::Uring)
        .build()
    {
        assert!(
            std::env::var_os("GORT_REQUIRE_URING").is_none_or(|v| v != "1"),
            "GORT_REQUIRE_URING=1 but io_uring is unavailable here: {e}"
        );
        eprintln!("io_uring unavailable here ({e}): these tests ran on epoll only");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--skip", this_test, "--test-threads", "2"])
        .env("GORT_DRIVER", "uring")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "on io_uring:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("test result: ok"), "{stdout}");
}

/// A gort echo server on a loopback port (64 KiB reads, `write_all` back).
#[allow(dead_code)]
pub async fn echo_server() -> std::io::Result<std::net::SocketAddr> {
    let listener = gort::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    gort::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            gort::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(addr)
}

/// Deterministic pseudo-random bytes.
#[allow(dead_code)]
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `mem::forget`, but the forgotten value stays reachable from a static, so
/// LeakSanitizer (the CI's ASan step) does not report the leak the test asked for. Its
/// destructor never runs, exactly as with `mem::forget`: what the runtime sees is the
/// same. Whatever the value keeps alive (its buffer, the driver behind an `Arc`) is
/// reachable through it, as it would be had the user kept the value forever.
pub fn forget<T>(value: T) {
    static FORGOTTEN: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
    let leaked: &mut T = Box::leak(Box::new(value));
    FORGOTTEN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(leaked as *mut T as usize);
}
