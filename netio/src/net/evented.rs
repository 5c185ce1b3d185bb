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

    /// Tries `op` once without waiting: `WouldBlock` (and the readiness cleared) when
    /// the source is not ready.
    pub(crate) fn try_io<R>(
        &self,
        direction: Direction,
        op: impl FnOnce(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let Some(event) = self.io.ready_now(direction) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let res = op(&self.source);
        if matches!(&res, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.io.clear(event);
        }
        res
    }

    /// Waits until the source is ready in `direction` (without an operation).
    pub(crate) fn poll_ready(&self, direction: Direction, cx: &mut Context<'_>) -> Poll<()> {
        self.io.poll_ready(direction, cx).map(drop)
    }
}

/// Byte-stream operations shared by TCP and Unix streams.
impl<S: mio::event::Source> Evented<S>
where
    for<'a> &'a S: io::Read + io::Write,
{
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(Direction::Read, cx, |mut s| io::Read::read(&mut s, buf))
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_io(Direction::Write, cx, |mut s| io::Write::write(&mut s, buf))
    }

    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_read(cx, buf)).await
    }

    pub(crate) async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_write(cx, buf)).await
    }

    pub(crate) async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            buf = &buf[n..];
        }
        Ok(())
    }
}

impl<S: mio::event::Source> Drop for Evented<S> {
    fn drop(&mut self) {
        self.driver.deregister(self.key, &mut self.source);
    }
}
