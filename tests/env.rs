//! `GORT_WORKERS` / `GORT_MAX_BLOCKING`. A test binary of its own: the environment is
//! process-wide, so no other test may run beside these.

use gort::Runtime;

#[test]
fn rt_env_workers_sets_count_and_bad_values_are_clear_errors() {
    std::env::set_var("GORT_WORKERS", "3");
    let rt = Runtime::new().unwrap();
    assert_eq!(rt.metrics().num_workers(), 3);
    drop(rt);

    // An explicit builder value wins over the environment.
    let rt = Runtime::builder().workers(1).build().unwrap();
    assert_eq!(rt.metrics().num_workers(), 1);
    drop(rt);

    std::env::set_var("GORT_WORKERS", "lots");
    let err = Runtime::new().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(
        msg.contains("GORT_WORKERS") && msg.contains("lots"),
        "{msg}"
    );

    std::env::set_var("GORT_WORKERS", "0");
    assert!(Runtime::new().is_err());
    // Too many: `GORT_WORKERS=65535` panicked deep inside the scheduler ("too many
    // workers"), and 18446744073709551615 allocated until 4 GiB of RSS. Both are the
    // error that names the variable and its range.
    for huge in ["65535", "1025", "18446744073709551615"] {
        std::env::set_var("GORT_WORKERS", huge);
        let err = Runtime::new().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(
            msg.contains("GORT_WORKERS") && msg.contains("1..=1024"),
            "{msg}"
        );
    }
    std::env::set_var("GORT_WORKERS", "1024");
    assert_eq!(Runtime::new().unwrap().metrics().num_workers(), 1024);
    std::env::remove_var("GORT_WORKERS");
    std::env::set_var("GORT_MAX_BLOCKING", "100001");
    let msg = Runtime::new().unwrap_err().to_string();
    assert!(msg.contains("GORT_MAX_BLOCKING"), "{msg}");
    std::env::remove_var("GORT_MAX_BLOCKING");
    std::env::set_var("GORT_DEBUG", "schedtrace=18446744073709551615");
    drop(Runtime::new().unwrap());
    std::env::remove_var("GORT_DEBUG");

    std::env::set_var("GORT_MAX_BLOCKING", "-5");
    let msg = Runtime::new().unwrap_err().to_string();
    assert!(msg.contains("GORT_MAX_BLOCKING"), "{msg}");
    std::env::remove_var("GORT_MAX_BLOCKING");

    // GORT_DRIVER picks the backend; the builder's choice wins; bad values are errors.
    std::env::set_var("GORT_DRIVER", "io-uring-please");
    let err = Runtime::new().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("GORT_DRIVER"), "{err}");
    std::env::set_var("GORT_DRIVER", "epoll");
    assert_eq!(
        Runtime::new().unwrap().driver(),
        Some(gort::DriverKind::Epoll)
    );
    let uring = Runtime::builder().driver(gort::DriverKind::Uring).build();
    std::env::set_var("GORT_DRIVER", "uring");
    match uring {
        Ok(rt) => {
            assert_eq!(rt.driver(), Some(gort::DriverKind::Uring));
            assert_eq!(
                Runtime::new().unwrap().driver(),
                Some(gort::DriverKind::Uring)
            );
            let rt = Runtime::builder()
                .driver(gort::DriverKind::Epoll)
                .build()
                .unwrap();
            assert_eq!(rt.driver(), Some(gort::DriverKind::Epoll));
        }
        // A kernel or container without io_uring: forcing it is a clear error.
        Err(e) => assert!(Runtime::new().unwrap_err().to_string() == e.to_string()),
    }
    std::env::remove_var("GORT_DRIVER");
    // Default: epoll (see gort_netio's docs for why, measured).
    assert_eq!(
        Runtime::new().unwrap().driver(),
        Some(gort::DriverKind::Epoll)
    );

    // Default: the available cores.
    let rt = Runtime::new().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(rt.metrics().num_workers(), cores);
}

/// `GORT_DEBUG=schedtrace=MS` prints Go-style scheduler lines to stderr. Run in a child
/// process (this same test binary) so the environment and stderr are its own.
#[test]
fn rt_schedtrace_prints_scheduler_lines() {
    if std::env::var_os("GORT_SCHEDTRACE_CHILD").is_some() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        rt.block_on(async {
            gort::spawn_blocking(|| std::thread::sleep(std::time::Duration::from_millis(150)))
                .await
                .unwrap();
        });
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "rt_schedtrace_prints_scheduler_lines",
            "--exact",
            "--nocapture",
        ])
        .env("GORT_SCHEDTRACE_CHILD", "1")
        // The other test of this binary changes these meanwhile.
        .env_remove("GORT_WORKERS")
        .env_remove("GORT_MAX_BLOCKING")
        .env("GORT_DEBUG", "schedtrace=20")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("gort: ") && l.contains("workers=2"))
        .unwrap_or_else(|| panic!("no schedtrace line in:\n{stderr}"));
    for field in [
        "threads=",
        "idle=",
        "searching=",
        "handoffs=",
        "monitor_turns=",
        "globalq=",
        "localq=[",
        "blocking=",
        "tasks=",
        "timers=",
        "io=",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
}
