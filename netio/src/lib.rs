//! gort-netio: the reactor. Network calls and timers become events, so a task waiting
//! for I/O or time costs no thread.
//!
//! A runtime built with [`Io`] as its extension (`gort::Builder` is
//! `gort_executor::Builder<Io>`) has a [`Driver`] as its
//! [`Reactor`](gort_executor::reactor::Reactor): every worker then parks in the shared
//! driver (see `driver/mod.rs` for why one driver is shared) instead of on a plain
//! condition variable, and the monitor turns it when no worker has for a while. Two
//! backends: epoll through mio (the default, `driver/epoll.rs`) and io_uring
//! (`driver/uring/`; `GORT_DRIVER=uring` or `Builder::driver`, after a probe of every
//! feature and opcode it uses). TCP, UDP and
//! Unix stream sockets ([`net`]), timers ([`time`]), files ([`fs`]: native io_uring
//! reads, writes and syncs; the blocking pool on epoll, which cannot wait for files),
//! Unix signals ([`signal`]: a self-pipe and a dispatcher thread, the same on both
//! backends), and, behind features, hyper's and tokio's I/O traits on the streams
//! (`compat`, features `hyper` and `tokio-io`).
//!
//! # Why epoll is the default (measured, `cargo bench --bench echo`)
//!
//! Echo, messages per server-CPU-second ÷ tokio, 100 / 1000 connections: epoll 1.07 /
//! 0.94; io_uring with `read(&mut buf)` (readiness from the ring, then `recvfrom` and
//! `sendto` as on epoll) 1.02 / 0.92; io_uring with `read_owned`/`write_all_owned`
//! (native `RECV`/`SEND`, 0.05 system calls per message) 1.11 / 1.01. With the ordinary
//! API io_uring gains nothing, and a completion owed to a thread that computes waits
//! for its next return to user mode (a timer tick at most, see `driver/uring/mod.rs`),
//! where epoll waits for nothing; so io_uring is for programs that use the owned-buffer
//! API and ask for it.
//!
//! # Many waiters
//!
//! Every socket method takes `&self`, and every task waiting on a socket is woken by
//! its readiness, not only the last one to wait: two accept loops on one listener,
//! two `recv_from` on one `Arc<UdpSocket>`, a reader beside a `readable()` watcher
//! (`driver/io.rs`). The `poll_*` methods of `AsyncRead`/`AsyncWrite` keep one waker
//! per direction, as those traits expect.

#[cfg(any(feature = "hyper", feature = "tokio-io"))]
pub mod compat;
pub mod driver;
pub mod fs;
pub mod net;
pub mod signal;
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

/// gort-netio as the executor's [`Extension`](gort_executor::Extension): with it a
/// runtime's workers park in a new [`Driver`], the monitor watches it, and `gort::net`
/// and `gort::time` find it on every thread of the runtime. `gort::Builder` is
/// `gort_executor::Builder<Io>`.
///
/// The backend: the one forced with `Builder::driver` if any, else the environment
/// variable `GORT_DRIVER` (`uring` or `epoll`), else epoll (see the crate docs for why
/// io_uring is opt-in).
#[derive(Debug, Default)]
pub struct Io {
    forced: Option<DriverKind>,
}

impl gort_executor::Extension for Io {
    type Reactor = Driver;
    type Driver = DriverKind;

    fn set_driver(&mut self, kind: DriverKind) {
        self.forced = Some(kind);
    }

    /// # Errors
    /// `InvalidInput` for a bad `GORT_DRIVER`; io_uring's refusal when it was asked
    /// for; when the kernel refuses the epoll or eventfd descriptor.
    fn build(&mut self) -> io::Result<Option<Arc<Driver>>> {
        let kind = match self.forced {
            Some(k) => Some(k),
            None => match std::env::var("GORT_DRIVER") {
                Ok(v) if !v.is_empty() => Some(v.parse()?),
                _ => None,
            },
        };
        Driver::new(kind).map(Some)
    }

    fn driver(driver: &Driver) -> DriverKind {
        driver.kind()
    }
}
