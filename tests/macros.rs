//! `#[gort::main]` / `#[gort::test]` misuse is a compile error that points at the
//! mistake; correct uses compile and run. `timeout = ..` aborts a hung test and costs a
//! finished one nothing.

use std::time::{Duration, Instant};

#[test]
fn rt_macro_errors_point_at_the_mistake() {
    // The expected messages are the stable compiler's; the sanitizer step of
    // `.ci/run` builds with nightly, whose wording differs.
    if std::env::var_os("GORT_SANITIZER").is_some() {
        eprintln!("GORT_SANITIZER is set (a nightly build): compile-error messages not compared");
        return;
    }
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass_*.rs");
    t.compile_fail("tests/ui/fail_*.rs");
}

/// The child's side of the timeout tests: a test that hangs, under `timeout = 1` or
/// `timeout = "300ms"`. Ignored, and it returns at once unless the parent asked for
/// the hang (`GORT_TEST_HANG`), so `cargo test -- --include-ignored` cannot abort the
/// whole binary.
#[gort::test(timeout = 1)]
#[ignore = "run by timeout_expired_aborts_naming_the_test, in a child process"]
async fn hangs_under_timeout_1() {
    if std::env::var_os("GORT_TEST_HANG").is_some() {
        std::future::pending::<()>().await;
    }
}

#[gort::test(timeout = "300ms", workers = 1)]
#[ignore = "run by timeout_expired_aborts_naming_the_test, in a child process"]
async fn hangs_under_timeout_300ms() {
    if std::env::var_os("GORT_TEST_HANG").is_some() {
        // A worker stuck in a blocking call: the watchdog does not need the runtime.
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Runs the ignored test `name` of this binary in a child process that is asked to
/// hang; returns its exit status, stderr and how long it ran. Killed after 60 s.
fn run_hanging_child(name: &str) -> (std::process::ExitStatus, String, Duration) {
    use std::io::Read as _;
    let start = Instant::now();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--nocapture"])
        .env("GORT_TEST_HANG", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{name}` under a timeout was still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr, took)
}

/// A hanging `#[gort::test(timeout = ..)]` aborts the process (SIGABRT), after its
/// timeout and not before, with a message naming the test and the limit.
#[test]
fn timeout_expired_aborts_naming_the_test() {
    use std::os::unix::process::ExitStatusExt as _;
    for (name, limit, shown) in [
        ("hangs_under_timeout_1", Duration::from_secs(1), "1 s"),
        (
            "hangs_under_timeout_300ms",
            Duration::from_millis(300),
            "300 ms",
        ),
    ] {
        let (status, stderr, took) = run_hanging_child(name);
        assert_eq!(
            status.signal(),
            Some(libc::SIGABRT),
            "`{name}` ended with {status}, not by abort; stderr:\n{stderr}"
        );
        let message =
            format!("test `{name}` did not finish within {shown}: aborting (a hang is a bug)");
        assert!(
            stderr.contains(&message),
            "`{name}`: no {message:?} on stderr:\n{stderr}"
        );
        assert!(
            took >= limit,
            "`{name}` aborted after {took:?}, before {limit:?}"
        );
    }
}

#[gort::test]
async fn finishes_without_timeout() {
    gort::spawn(async {}).await.unwrap();
}

#[gort::test(timeout = 600)]
async fn finishes_under_timeout_600() {
    gort::spawn(async {}).await.unwrap();
}

#[gort::test(workers = 1, timeout = "600s")]
#[should_panic(expected = "panics under a timeout")]
async fn panics_under_timeout_600() {
    gort::task::yield_now().await;
    panic!("panics under a timeout");
}

#[gort::test(timeout = 600)]
async fn returns_result_under_timeout_600() -> std::io::Result<()> {
    let v = gort::spawn(async { 2 }).await?;
    assert_eq!(v, 2);
    Ok(())
}

/// A test under a 10-minute timeout that finishes, or panics, returns at once: the
/// watchdog is disarmed, and its thread gone, when the test function returns. 100 of
/// them take about as long as 100 without a timeout; a watchdog that had to notice the
/// end by polling every 20 ms would add a second.
#[test]
fn timeout_does_not_delay_a_test_that_finishes() {
    let start = Instant::now();
    for _ in 0..100 {
        finishes_without_timeout();
    }
    let calm = start.elapsed();
    let start = Instant::now();
    for _ in 0..100 {
        finishes_under_timeout_600();
    }
    let took = start.elapsed();
    eprintln!("100 tests: {calm:?} without a timeout, {took:?} with one");
    let bound = (calm * 3).max(Duration::from_millis(300));
    assert!(
        took < bound,
        "100 tests under a timeout took {took:?}, over {bound:?}"
    );

    let start = Instant::now();
    returns_result_under_timeout_600().unwrap();
    assert!(std::panic::catch_unwind(panics_under_timeout_600).is_err());
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
