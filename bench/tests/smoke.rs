//! `gort-bench --smoke`: every workload and contender at tiny sizes, so the harness
//! cannot rot. Checks that each workload produced a table and no contender failed
//! (gort on io_uring may fail only where the kernel refuses io_uring).

#[test]
fn every_workload_runs_for_every_contender() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gort-bench"))
        .arg("--smoke")
        .output()
        .expect("run gort-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for w in [
        "spawn",
        "yield",
        "parked",
        "ping_pong",
        "mpmc",
        "chan_size",
        "echo",
        "churn",
        "timers",
        "blocking",
    ] {
        assert!(
            stdout.contains(&format!("### {w}:")),
            "no {w} table:\n{stdout}"
        );
    }
    let uring_ok = gort::Runtime::builder()
        .workers(1)
        .driver(gort::DriverKind::Uring)
        .build()
        .is_ok();
    for line in stdout.lines().filter(|l| l.contains("**failed**")) {
        assert!(
            !uring_ok && line.contains("| gort-uring |"),
            "a contender failed: {line}\n{stderr}"
        );
    }
    // Progress went to stderr, one line per measurement.
    assert!(stderr.contains("] rep 1/1 echo"), "{stderr}");
    assert!(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/gort-bench/echo.svg")
        .exists());
}
