//! `Evented<S>`: a mio source registered with the driver, and the retry loop every
//! socket operation uses: wait for readiness, try, and on `WouldBlock` clear the
//! readiness that was seen and wait again.

use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use mio::Interest;

use crate::driver::{Direction, Driver, ScheduledIo};

pub(crate) struct Evented<S: mio::event::Source> {
    source: S,
    key: usize,
    io: Arc<ScheduledIo>,
    driver: Arc<Driver>,
}

impl<S: mio::event::Source> Evented<S> {
    /// Registers `source` with the current runtime's driver.
    pub(crate) fn new(mut source: S, interest: Interest) -> io::Result<Evented<S>> {
        let driver = Driver::current()?;
        let (key, io) = driver.register(&mut source, interest)?;
        Ok(Evented {
            source,
            key,
            io,
            driver,
        })
    }

    pub(crate) fn get(&self) -> &S {
        &self.source
    }

    /// Runs `op` once the source is ready in `direction`, until it stops returning
    /// `WouldBlock`. Spends one unit of the task's coop budget per completed operation.
    pub(crate) fn poll_io<R>(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let restore = ready!(gort_executor::coop::poll_proceed(cx));
        loop {
            let Poll::Ready(event) = self.io.poll_ready(direction, cx) else {
                gort_executor::task::set_wait_reason(gort_executor::task::WaitReason::Io);
                return Poll::Pending;
            };
            match op(&self.source) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear(event),
                res => {
                    restore.made_progress();
                    return Poll::Ready(res);
                }
            }
        }
    }

    /// Waits until the source is ready in `direction` (without an operation).
    pub(crate) fn poll_ready(&self, direction: Direction, cx: &mut Context<'_>) -> Poll<()> {
        self.io.poll_ready(direction, cx).map(drop)
    }
}

impl<S: mio::event::Source> Drop for Evented<S> {
    fn drop(&mut self) {
        self.driver.deregister(self.key, &mut self.source);
    }
}
