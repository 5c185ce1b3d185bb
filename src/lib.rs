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
//!
//! ```
//! #[gort::main]
//! async fn main() {
//!     let answer = gort::spawn(async { 6 * 7 }).await.unwrap();
//!     assert_eq!(answer, 42);
//! }
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
}
