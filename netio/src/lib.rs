//! gort-netio: the reactor. Network calls and timers become events, so a task waiting
//! for I/O or time costs no thread.
//!
//! Installed into a runtime with [`install`]: every worker then parks in the shared
//! driver (see `driver/mod.rs` for why one driver is shared) instead of on a plain
//! condition variable. This version drives epoll through mio: TCP, UDP and Unix stream
//! sockets ([`net`]), timers ([`time`]), and files on the blocking pool ([`fs`], since
//! epoll cannot wait for regular files). The io_uring backend is the next step.

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
    /// epoll, through mio.
    Epoll,
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriverKind::Epoll => "epoll",
        })
    }
}

/// Makes `builder`'s workers park in a new driver and attaches the driver to the
/// runtime, so `gort::net` and `gort::time` work on every thread of it.
///
/// # Errors
/// When the kernel refuses the epoll or eventfd descriptor.
pub fn install(builder: &mut gort_executor::Builder) -> io::Result<Arc<Driver>> {
    let driver = Driver::new()?;
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
