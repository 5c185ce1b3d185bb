//! gort-netio: the reactor. Network calls and timers become events, so a task waiting
//! for I/O or time costs no thread.
//!
//! Installed into a runtime with [`install`]: every worker then parks in the shared
//! driver (see `driver/mod.rs` for why one driver is shared) instead of on a plain
//! condition variable. Two backends: epoll through mio (the default) and io_uring
//! (`driver/uring.rs`; `GORT_DRIVER=uring` or `Builder::driver`, after a probe of every
//! feature and opcode it uses). TCP, UDP and
//! Unix stream sockets ([`net`]), timers ([`time`]), files ([`fs`]: native io_uring
//! reads, writes and syncs; the blocking pool on epoll, which cannot wait for files).
//!
//! # Why epoll is the default (measured, `cargo bench --bench echo`)
//!
//! The io_uring backend shares one ring between the workers, so a completion's task
//! work belongs to whichever thread submitted the request, and the kernel interrupts
//! that thread (`TWA_SIGNAL`) for every completion: `perf` shows the echo server's
//! time going to `irqentry_exit_to_user_mode`/`task_work_run`. Echo, 100 connections
//! x 64 B, messages per server-CPU-second: epoll 0.97x tokio, io_uring 0.50x with
//! readiness (`read(&mut buf)`), 0.81x with the owned-buffer API (`read_owned`),
//! while a single-threaded io_uring loop with `DEFER_TASKRUN` reaches 1.03x. The cure
//! is one ring per worker with `SINGLE_ISSUER | DEFER_TASKRUN` (task work then runs
//! only when the owner asks); until then io_uring is opt-in.

pub mod driver;
pub mod fs;
pub mod net;
pub mod time;

use std::io;
use std::sync::Arc;

pub use driver::Driver;

/// Which backend the runtime's driver uses.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DriverKind {
    /// io_uring.
    Uring,
    /// epoll, through mio.
    Epoll,
}

impl std::str::FromStr for DriverKind {
    type Err = io::Error;

    /// `uring` (or `io_uring`) or `epoll`.
    fn from_str(s: &str) -> io::Result<DriverKind> {
        match s {
            "uring" | "io_uring" => Ok(DriverKind::Uring),
            "epoll" => Ok(DriverKind::Epoll),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("GORT_DRIVER={s:?}: expected `uring` or `epoll`"),
            )),
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriverKind::Uring => "io_uring",
            DriverKind::Epoll => "epoll",
        })
    }
}

/// Makes `builder`'s workers park in a new driver and attaches the driver to the
/// runtime, so `gort::net` and `gort::time` work on every thread of it.
///
/// The backend: `kind` if given, else the environment variable `GORT_DRIVER`
/// (`uring` or `epoll`), else io_uring when the kernel offers it, else epoll.
///
/// # Errors
/// `InvalidInput` for a bad `GORT_DRIVER`; io_uring's refusal when it was asked for;
/// when the kernel refuses the epoll or eventfd descriptor.
pub fn install(
    builder: &mut gort_executor::Builder,
    kind: Option<DriverKind>,
) -> io::Result<Arc<Driver>> {
    let kind = match kind {
        Some(k) => Some(k),
        None => match std::env::var("GORT_DRIVER") {
            Ok(v) if !v.is_empty() => Some(v.parse()?),
            _ => None,
        },
    };
    let driver = Driver::new(kind)?;
    let d = driver.clone();
    builder.park_with(move |_| Ok(Box::new(driver::DriverPark::new(d.clone())) as _));
    builder.extension(Arc::new(driver.clone()));
    // While timers or sockets are registered, something outside the scheduler may
    // still wake a task: no deadlock then.
    let d = driver.clone();
    builder.idle_probe(move || d.num_timers() > 0 || d.num_sources() > 0);
    let d = driver.clone();
    builder.trace_with(move || format!("timers={} io={}", d.num_timers(), d.num_sources()));
    Ok(driver)
}
