//! gort: a Go-style runtime for Rust.
//!
//! Cheap tasks on per-core run queues with work stealing, a reactor that turns network
//! calls and timers into events, a blocking pool, Go's channels and `select!`, Go's
//! `sync` and `context`, a monitor that keeps a blocking task from stalling the others
//! and diagnoses deadlocks, and `#[gort::main]`. This crate only re-exports; the parts
//! live in `gort-executor`, `gort-netio` and `gort-macros`.
//!
//! | Go                     | gort                                        |
//! |------------------------|---------------------------------------------|
//! | `go f()`               | [`gort::spawn(async { .. })`](spawn)        |
//! | `runtime.Gosched()`    | [`task::yield_now().await`](task::yield_now) |
//! | `make(chan T)`         | [`chan::bounded(0)`](chan::bounded)          |
//! | `select { .. }`        | [`select!`]                                 |
//! | `time.Sleep(d)`        | [`time::sleep(d).await`](time::sleep)       |
//! | `net.Listen`           | [`net::TcpListener::bind`]                  |
//! | `GOMAXPROCS`           | `GORT_WORKERS` / [`Builder::workers`]       |
//! | `func main()`          | `#[gort::main] async fn main()`             |
//! | `go test -timeout 20s` | [`#[gort::test(timeout = 20)]`](test) `async fn ..()` |
//!
//! ```
//! #[gort::main]
//! async fn main() {
//!     let answer = gort::spawn(async { 6 * 7 }).await.unwrap();
//!     assert_eq!(answer, 42);
//! }
//! ```
//!
//! Tests run on a runtime of their own with [`#[gort::test]`](test), which takes
//! `workers = N` and `timeout = SECS` (or `timeout = "500ms"`), in any order. A test
//! still running when its timeout expires is a hang, and a hang is a bug: it writes
//! ``test `NAME` did not finish within 20 s: aborting (a hang is a bug)`` to stderr and
//! aborts the test binary, instead of hanging CI. A test that finishes, or panics,
//! disarms it at once (no polling, no delay).
//!
//! ```
//! #[gort::test(workers = 2, timeout = 20)]
//! async fn ping_pong() {
//!     let (tx, rx) = gort::chan::bounded(0);
//!     gort::spawn(async move { tx.send(1).await.unwrap() });
//!     assert_eq!(rx.recv().await, Some(1));
//! }
//! # fn main() {} // doctests do not run #[test] functions
//! ```

#![forbid(unsafe_code)]

mod rt;

#[cfg(feature = "hyper")]
pub mod hyper;

pub use gort_executor::chan;
pub use gort_executor::{spawn, spawn_blocking, Handle};
pub use gort_macros::{main, select, test};
pub use gort_netio::{fs, net, signal, time, DriverKind, Io};
pub use rt::{Builder, Runtime};

/// Tasks: join handles, errors, yielding and the cooperative budget.
pub mod task {
    pub use gort_executor::coop;
    pub use gort_executor::runtime::{block_in_place, JoinSet};
    pub use gort_executor::task::*;
}

/// Go's `sync` package (and `context`): `Mutex`, `RwLock`, `WaitGroup`, `Once`,
/// `OnceCell`, `Barrier`, `Semaphore`, `Notify`, `Context` and errgroup's `Group`, as
/// futures.
pub mod sync {
    pub use gort_executor::runtime::Group;
    pub use gort_executor::sync::*;
}

/// The runtime and its configuration.
pub mod runtime {
    pub use crate::rt::{Builder, Runtime};
    pub use gort_executor::park::{Park, ThreadParker, Unpark};
    pub use gort_executor::runtime::{
        block_in_place, dump, EnterGuard, Handle, RuntimeMetrics, DEFAULT_BLOCKING_KEEP_ALIVE,
        DEFAULT_BLOCKING_THRESHOLD, DEFAULT_MAX_BLOCKING_THREADS, ENV_DEBUG, ENV_MAX_BLOCKING,
        ENV_WORKERS, MAX_BLOCKING_THREADS, MAX_THREAD_STACK, MAX_WORKERS, MIN_THREAD_STACK,
        MONITOR_BUSY_TICK, MONITOR_MAX_TICK, MONITOR_MIN_TICK, REACTOR_UNWATCHED,
    };
    pub use gort_netio::Driver;
}

/// Support for the macros; not a public API.
#[doc(hidden)]
pub mod __private {
    use super::Runtime;

    pub use gort_executor::chan::__select as select;

    fn builder(workers: Option<usize>) -> super::Builder {
        let mut b = Runtime::builder();
        if let Some(n) = workers {
            b.workers(n);
        }
        b
    }

    /// `#[gort::main]`: a configuration error (such as a bad `GORT_WORKERS`) ends the
    /// program with the message and exit status 1, not a backtrace.
    pub fn runtime_for_main(workers: Option<usize>) -> Runtime {
        match builder(workers).build() {
            Ok(rt) => rt,
            Err(err) => {
                eprintln!("gort: cannot start the runtime: {err}");
                std::process::exit(1);
            }
        }
    }

    /// `#[gort::test]`: a configuration error fails the test.
    #[track_caller]
    pub fn runtime_for_test(workers: Option<usize>) -> Runtime {
        match builder(workers).build() {
            Ok(rt) => rt,
            Err(err) => panic!("gort: cannot start the runtime: {err}"),
        }
    }

    pub use timeout::TestTimeout;

    mod timeout {
        use std::sync::{Arc, Condvar, Mutex, PoisonError};
        use std::thread::JoinHandle;
        use std::time::Duration;

        /// `#[gort::test(timeout = ..)]`: aborts the whole process, naming the test, if
        /// the guard is still alive after `limit` (a hang is a bug, and a hung test
        /// would otherwise hang CI). Dropping the guard, at the end of the test or while
        /// a panic unwinds it, disarms it: the watchdog thread sleeps on a condition
        /// variable until then, so a test that finishes pays one thread start and one
        /// wake-up, and no polling.
        #[must_use = "the watchdog is disarmed as soon as the guard is dropped"]
        pub struct TestTimeout {
            shared: Arc<Shared>,
            thread: Option<JoinHandle<()>>,
        }

        struct Shared {
            done: Mutex<bool>,
            finished: Condvar,
        }

        impl TestTimeout {
            /// Arms the watchdog for the test `name` in module `module_path` (as
            /// `module_path!()` writes it: the crate first, which the test harness
            /// leaves out of a test's name, and so does the message).
            pub fn arm(module_path: &'static str, name: &'static str, limit: Duration) -> Self {
                let shared = Arc::new(Shared {
                    done: Mutex::new(false),
                    finished: Condvar::new(),
                });
                let watched = Arc::clone(&shared);
                let thread = std::thread::Builder::new()
                    .name("gort-timeout".into())
                    .spawn(move || {
                        let done = watched.done.lock().unwrap_or_else(PoisonError::into_inner);
                        // `wait_timeout_while` sleeps again after a spurious wake-up,
                        // for what is left of `limit`.
                        let (done, _) = watched
                            .finished
                            .wait_timeout_while(done, limit, |done| !*done)
                            .unwrap_or_else(PoisonError::into_inner);
                        if !*done {
                            expire(module_path, name, limit);
                        }
                    })
                    .unwrap_or_else(|err| {
                        panic!("gort: cannot start the watchdog thread of a test timeout: {err}")
                    });
                TestTimeout {
                    shared,
                    thread: Some(thread),
                }
            }
        }

        impl Drop for TestTimeout {
            fn drop(&mut self) {
                *self
                    .shared
                    .done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = true;
                self.shared.finished.notify_one();
                // Joined, so no watchdog thread outlives its test (tests that count
                // this process's threads do not see it); it is awake already.
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
        }

        #[cold]
        fn expire(module_path: &str, name: &str, limit: Duration) -> ! {
            let test = match module_path.split_once("::") {
                Some((_crate, module)) => format!("{module}::{name}"),
                None => name.to_owned(),
            };
            let limit = if limit.subsec_nanos() == 0 {
                format!("{} s", limit.as_secs())
            } else {
                format!("{} ms", limit.as_millis())
            };
            // Straight to the descriptor: `eprintln!` from a test (and from the
            // threads it starts) is captured by the harness, and the capture is lost
            // with the abort.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "test `{test}` did not finish within {limit}: aborting (a hang is a bug)"
            );
            std::process::abort();
        }
    }
}
