//! The epoll backend, through mio: one epoll instance shared by every worker.
//!
//! Sources are registered edge-triggered for the interest their type needs, with a
//! [`Token`] carrying their slab key and generation; events are turned into readiness
//! bits for the driver to OR into the source's `ScheduledIo`. The thread that holds
//! [`Waiting`] (the driver's holder) blocks in `epoll_wait`; any thread ends that wait
//! through the registered `mio::Waker` (an eventfd).

#![forbid(unsafe_code)]

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use mio::{Events, Interest, Poll, Registry};

use super::io as rd;
use super::token::Token;

/// Events taken per `epoll_wait`: enough to drain a busy server's burst in one call.
const EVENTS_PER_TURN: usize = 1024;

pub(crate) struct Epoll {
    registry: Registry,
    waker: mio::Waker,
    /// The waiting side; its lock is the driver's holder lock on this backend.
    pub(crate) waiting: Mutex<Waiting>,
}

/// What only the thread waiting in epoll touches.
pub(crate) struct Waiting {
    poll: Poll,
    events: Events,
}

impl Epoll {
    /// # Errors
    /// When the kernel refuses the epoll or eventfd descriptor (e.g. `EMFILE`).
    pub(crate) fn new() -> io::Result<Epoll> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), Token::WAKE.mio())?;
        Ok(Epoll {
            registry,
            waker,
            waiting: Mutex::new(Waiting {
                poll,
                events: Events::with_capacity(EVENTS_PER_TURN),
            }),
        })
    }

    pub(crate) fn register(
        &self,
        source: &mut impl mio::event::Source,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.registry.register(source, token.mio(), interest)
    }

    pub(crate) fn deregister(&self, source: &mut impl mio::event::Source) {
        // The fd is closed right after; a failure here changes nothing.
        let _ = self.registry.deregister(source);
    }

    /// Waits up to `timeout` for events (`epoll_wait`).
    pub(crate) fn wait(w: &mut Waiting, timeout: Option<Duration>) {
        // EINTR and friends: treat as a spurious wake-up; the caller loops.
        let _ = w.poll.poll(&mut w.events, timeout);
    }

    /// Hands each source event of the last wait to `on_event` as
    /// `(token, readiness bits)`.
    pub(crate) fn for_each_event(w: &Waiting, mut on_event: impl FnMut(Token, usize)) {
        for event in w.events.iter() {
            let token = Token::from_mio(event.token());
            if token == Token::WAKE {
                continue;
            }
            let mut bits = 0;
            if event.is_readable() {
                bits |= rd::READABLE;
            }
            if event.is_writable() {
                bits |= rd::WRITABLE;
            }
            if event.is_read_closed() {
                bits |= rd::READ_CLOSED;
            }
            if event.is_write_closed() {
                bits |= rd::WRITE_CLOSED;
            }
            if event.is_error() {
                bits |= rd::ERROR;
            }
            on_event(token, bits);
        }
    }

    /// Whether the last wait returned no event at all.
    pub(crate) fn was_empty(w: &Waiting) -> bool {
        w.events.is_empty()
    }

    /// Ends the holder's wait from another thread.
    pub(crate) fn wake(&self) {
        let _ = self.waker.wake();
    }
}
