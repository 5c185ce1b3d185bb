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
    std::env::remove_var("GORT_WORKERS");

    std::env::set_var("GORT_MAX_BLOCKING", "-5");
    let msg = Runtime::new().unwrap_err().to_string();
    assert!(msg.contains("GORT_MAX_BLOCKING"), "{msg}");
    std::env::remove_var("GORT_MAX_BLOCKING");

    // Default: the available cores.
    let rt = Runtime::new().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(rt.metrics().num_workers(), cores);
}
