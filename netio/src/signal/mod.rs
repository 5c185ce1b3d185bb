//! Unix signals as events: [`ctrl_c`] and [`unix::signal`].
//!
//! # How a delivery reaches a task
//!
//! The first listener of a signal installs a handler for it (`sys.rs`, `sigaction`
//! with `SA_RESTART`). The handler does only what is async-signal-safe: it sets the
//! signal's pending flag and writes one byte to a non-blocking self-pipe. A dispatcher
//! thread, started with the first listener and parked in a blocking `read` of that
//! pipe, takes every pending flag and, for each, bumps the delivery count of every
//! listener of that signal and wakes its task. So the delivery path does not depend on
//! the I/O driver (it works the same on epoll and io_uring, and with several
//! runtimes in one process), and it costs one thread for the life of the process,
//! asleep until a signal comes.
//!
//! # Semantics (tokio's)
//!
//! - Every listener sees every delivery that happens while it exists; deliveries that
//!   come before a listener's `recv` is polled again are coalesced into one (signals
//!   are not queued, by the kernel either).
//! - Once a handler is installed for a signal it stays for the life of the process:
//!   dropping the last listener does not restore the default action (so a `ctrl_c()` in
//!   a loop never leaves a moment where Ctrl-C kills the process). A program that wants
//!   the second Ctrl-C to kill it exits on its own after the first.
//! - `SIGKILL`, `SIGSTOP`, `SIGILL`, `SIGFPE` and `SIGSEGV` cannot be listened for
//!   (`InvalidInput`).
//! - A signal that was ignored (`SIG_IGN`, as under `nohup`) is no longer ignored once
//!   listened for; a handler installed before gort's is called after gort's.
//! - A child made by `fork()` without `exec` gets no deliveries (the dispatcher
//!   thread is not copied by a fork).

#![deny(unsafe_code)] // sys.rs alone may use it

mod sys;

use std::fmt;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};

/// Completes when the process receives `SIGINT` (Ctrl-C). Go's
/// `signal.Notify(c, os.Interrupt)` followed by `<-c`.
///
/// The handler is installed when this is first polled, so a Ctrl-C that comes before
/// is not seen (and, with no handler yet, ends the process as usual).
///
/// # Errors
/// Only if the handler cannot be installed (`sigaction` or the dispatcher thread
/// failed).
///
/// # Cancel safety
/// Cancel safe; but a Ctrl-C between dropping one `ctrl_c()` and polling the next is
/// not seen by either. Keep a [`unix::Signal`] for a loop.
pub async fn ctrl_c() -> io::Result<()> {
    let mut sig = unix::signal(unix::SignalKind::interrupt())?;
    sig.recv().await;
    Ok(())
}

/// Unix signals: [`signal`](unix::signal), [`SignalKind`](unix::SignalKind) and
/// [`Signal`](unix::Signal).
pub mod unix {
    use super::*;

    /// A signal to listen for. tokio's names.
    #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
    pub struct SignalKind(libc::c_int);

    impl SignalKind {
        /// Any signal by number (`libc::SIGUSR1`, a real-time signal, ...).
        pub const fn from_raw(signum: libc::c_int) -> SignalKind {
            SignalKind(signum)
        }

        /// The signal's number.
        pub const fn as_raw_value(&self) -> libc::c_int {
            self.0
        }

        /// `SIGINT`: Ctrl-C at a terminal.
        pub const fn interrupt() -> SignalKind {
            SignalKind(libc::SIGINT)
        }

        /// `SIGTERM`: the polite request to stop (`kill`, systemd, Kubernetes).
        pub const fn terminate() -> SignalKind {
            SignalKind(libc::SIGTERM)
        }

        /// `SIGHUP`: the terminal went away; daemons reload their configuration.
        pub const fn hangup() -> SignalKind {
            SignalKind(libc::SIGHUP)
        }

        /// `SIGQUIT`: Ctrl-\ at a terminal.
        pub const fn quit() -> SignalKind {
            SignalKind(libc::SIGQUIT)
        }

        /// `SIGUSR1`.
        pub const fn user_defined1() -> SignalKind {
            SignalKind(libc::SIGUSR1)
        }

        /// `SIGUSR2`.
        pub const fn user_defined2() -> SignalKind {
            SignalKind(libc::SIGUSR2)
        }

        /// `SIGCHLD`: a child process stopped or exited.
        pub const fn child() -> SignalKind {
            SignalKind(libc::SIGCHLD)
        }

        /// `SIGPIPE`: a write to a pipe or socket with no reader.
        pub const fn pipe() -> SignalKind {
            SignalKind(libc::SIGPIPE)
        }

        /// `SIGALRM`.
        pub const fn alarm() -> SignalKind {
            SignalKind(libc::SIGALRM)
        }

        /// `SIGWINCH`: the terminal's size changed.
        pub const fn window_change() -> SignalKind {
            SignalKind(libc::SIGWINCH)
        }
    }

    impl From<libc::c_int> for SignalKind {
        fn from(signum: libc::c_int) -> SignalKind {
            SignalKind(signum)
        }
    }

    /// Starts listening for `kind`: every delivery from now on is seen by
    /// [`Signal::recv`] (coalesced while nobody polls). Need not be called inside a
    /// runtime.
    ///
    /// # Errors
    /// `InvalidInput` for a signal that cannot be handled (`SIGKILL`, `SIGSTOP`,
    /// `SIGILL`, `SIGFPE`, `SIGSEGV`) or a number out of range; an OS error if the handler or
    /// the dispatcher thread cannot be set up.
    pub fn signal(kind: SignalKind) -> io::Result<Signal> {
        let signum = kind.0;
        sys::check(signum)?;
        let shared = Arc::new(Listener {
            delivered: AtomicU64::new(0),
            waker: Mutex::new(None),
        });
        {
            let mut reg = registry();
            sys::install(signum)?;
            let slot = &mut reg.listeners[signum as usize];
            slot.retain(|w| w.strong_count() > 0);
            slot.push(Arc::downgrade(&shared));
        }
        Ok(Signal {
            kind,
            shared,
            seen: 0,
        })
    }

    /// A stream of deliveries of one signal. Go's `chan os.Signal` after
    /// `signal.Notify`.
    pub struct Signal {
        kind: SignalKind,
        shared: Arc<Listener>,
        /// Deliveries already returned.
        seen: u64,
    }

    impl Signal {
        /// Waits for the next delivery. `None` never comes today (the dispatcher lives
        /// as long as the process); it is there so that the stream can end.
        ///
        /// # Cancel safety
        /// Cancel safe: a delivery that came while the future was pending is returned
        /// by the next `recv`.
        pub async fn recv(&mut self) -> Option<()> {
            poll_fn(|cx| self.poll_recv(cx)).await
        }

        /// [`recv`](Self::recv) as a poll function.
        pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
            if self.take() {
                return Poll::Ready(Some(()));
            }
            {
                let mut w = lock(&self.shared.waker);
                match &mut *w {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
            }
            // A delivery between the first check and the waker's store is seen here.
            if self.take() {
                return Poll::Ready(Some(()));
            }
            gort_executor::task::set_wait_reason(gort_executor::task::WaitReason::Signal);
            Poll::Pending
        }

        fn take(&mut self) -> bool {
            let delivered = self.shared.delivered.load(Ordering::Acquire);
            if delivered == self.seen {
                return false;
            }
            self.seen = delivered;
            true
        }

        /// The signal this listens for.
        pub fn kind(&self) -> SignalKind {
            self.kind
        }
    }

    impl futures_core::Stream for Signal {
        type Item = ();

        fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
            self.get_mut().poll_recv(cx)
        }
    }

    impl fmt::Debug for Signal {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Signal").field("kind", &self.kind).finish()
        }
    }
}

/// One listener's side of the dispatcher: how many deliveries it has been sent, and
/// the task to wake.
struct Listener {
    delivered: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

/// Every listener, by signal number. Taken by `signal` and the dispatcher thread,
/// never by the signal handler.
struct Registry {
    listeners: Vec<Vec<Weak<Listener>>>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        listeners: Vec::new(),
    });
    let mut reg = lock(&REGISTRY);
    if reg.listeners.is_empty() {
        reg.listeners = (0..sys::NSIG).map(|_| Vec::new()).collect();
    }
    reg
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The dispatcher thread's work after the pipe said "something came": each pending
/// signal bumps and wakes its listeners.
fn dispatch(signum: usize) {
    let wakers: Vec<Waker> = {
        let mut reg = registry();
        let slot = &mut reg.listeners[signum];
        slot.retain(|w| w.strong_count() > 0);
        slot.iter()
            .filter_map(Weak::upgrade)
            .filter_map(|l| {
                l.delivered.fetch_add(1, Ordering::AcqRel);
                lock(&l.waker).take()
            })
            .collect()
    };
    // Woken outside the registry's lock: a waker may run arbitrary code.
    for w in wakers {
        w.wake();
    }
}
