//! `Evented<S>`: a mio source registered with the driver, and the retry loop every
//! socket operation uses: wait for readiness, try, and on `WouldBlock` clear the
//! readiness that was seen and wait again.

#![forbid(unsafe_code)]

use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use mio::Interest;

use crate::driver::uring;
use crate::driver::{Direction, Driver, ScheduledIo};

pub(crate) struct Evented<S: mio::event::Source> {
    source: S,
    key: usize,
    io: Arc<ScheduledIo>,
    driver: Arc<Driver>,
    /// A read shorter than its buffer proves the socket empty (TCP, see `poll_read`).
    short_read_drains: bool,
}

impl<S: mio::event::Source + std::os::fd::AsRawFd> Evented<S> {
    /// Registers `source` with the current runtime's driver.
    pub(crate) fn new(source: S, interest: Interest) -> io::Result<Evented<S>> {
        Evented::register(source, interest, false)
    }

    /// Registers a socket whose non-blocking `connect` is in progress (not writable
    /// until the handshake ends).
    pub(crate) fn new_connecting(source: S, interest: Interest) -> io::Result<Evented<S>> {
        Evented::register(source, interest, true)
    }

    fn register(mut source: S, interest: Interest, connecting: bool) -> io::Result<Evented<S>> {
        let driver = Driver::current()?;
        let (key, io) = driver.register(&mut source, interest, connecting)?;
        Ok(Evented {
            source,
            key,
            io,
            driver,
            short_read_drains: false,
        })
    }

    /// Lets a short read clear readiness (TCP streams: a `recv` returns all that is
    /// queued up to the buffer's size). Not for Unix streams, whose reads stop at a
    /// message carrying file descriptors or credentials with more data queued.
    pub(crate) fn short_reads_drain(mut self) -> Self {
        self.short_read_drains = true;
        self
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
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_drains(direction, cx, op, |_| false)
    }

    /// [`poll_io`](Self::poll_io), also clearing the readiness it saw when
    /// `drained(&result)` says the operation emptied the socket (a short read), which
    /// saves the `WouldBlock` call that would otherwise find it out. A new arrival
    /// brings a new event; one that came meanwhile bumped the tick, and then the clear
    /// does nothing.
    pub(crate) fn poll_io_drains<R>(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&S) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        let restore = ready!(gort_executor::coop::poll_proceed(cx));
        loop {
            let Poll::Ready(event) = self.io.poll_ready(direction, cx) else {
                self.driver.arm(self.key, direction);
                gort_executor::task::set_wait_reason(gort_executor::task::WaitReason::Io);
                return Poll::Pending;
            };
            match op(&self.source) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear(event),
                res => {
                    if matches!(&res, Ok(r) if drained(r)) {
                        self.io.clear(event);
                    }
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
        self.try_io_drains(direction, op, |_| false)
    }

    /// [`try_io`](Self::try_io) with [`poll_io_drains`](Self::poll_io_drains)'s rule.
    pub(crate) fn try_io_drains<R>(
        &self,
        direction: Direction,
        op: impl FnOnce(&S) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let Some(event) = self.io.ready_now(direction) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let res = op(&self.source);
        match &res {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.io.clear(event),
            Ok(r) if drained(r) => self.io.clear(event),
            _ => {}
        }
        res
    }

    /// Waits until the source is ready in `direction` (without an operation).
    pub(crate) fn poll_ready(&self, direction: Direction, cx: &mut Context<'_>) -> Poll<()> {
        if direction == Direction::Read {
            // Bytes of an orphaned io_uring read come before anything readable now.
            ready!(self.io.poll_orphans(cx));
        }
        let res = self.io.poll_ready(direction, cx).map(drop);
        if res.is_pending() {
            self.driver.arm(self.key, direction);
        }
        res
    }
}

/// Byte-stream operations shared by TCP and Unix streams.
impl<S: mio::event::Source + std::os::fd::AsRawFd + std::os::fd::AsFd> Evented<S>
where
    for<'a> &'a S: io::Read + io::Write,
{
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.io.poll_orphans(cx));
        if let Some(n) = self.io.take_stash(buf) {
            return Poll::Ready(Ok(n));
        }
        let len = buf.len();
        self.poll_io_drains(
            Direction::Read,
            cx,
            |mut s| io::Read::read(&mut s, buf),
            |&n| self.drained_by(n, len),
        )
    }

    /// A read of `n` bytes into a `len`-byte buffer emptied the socket.
    fn drained_by(&self, n: usize, len: usize) -> bool {
        self.short_read_drains && n > 0 && n < len
    }

    /// `try_read` with the same short-read rule as [`poll_read`](Self::poll_read).
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        if self.io.has_orphans() {
            // An orphaned io_uring read may still bring earlier bytes.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if let Some(n) = self.io.take_stash(buf) {
            return Ok(n);
        }
        let len = buf.len();
        self.try_io_drains(
            Direction::Read,
            |mut s| io::Read::read(&mut s, buf),
            |&n| self.drained_by(n, len),
        )
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

/// Owned-buffer operations: native `RECV`/`SEND` on io_uring, the readiness loop on
/// epoll.
impl<S: mio::event::Source + std::os::fd::AsRawFd + std::os::fd::AsFd> Evented<S>
where
    for<'a> &'a S: io::Read + io::Write,
{
    /// Reads into `buf`'s spare capacity (which must not be empty), appending.
    pub(crate) async fn read_owned(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        std::future::poll_fn(|cx| self.io.poll_orphans(cx)).await;
        let start = buf.len();
        if self.driver.uring().is_none() || self.io.has_stash() {
            buf.resize(buf.capacity(), 0);
            let res = self.read(&mut buf[start..]).await;
            buf.truncate(start + *res.as_ref().unwrap_or(&0));
            return (res, buf);
        }
        let fd = std::os::fd::AsFd::as_fd(&self.source);
        uring::recv(&self.driver, fd, &self.io, buf).await
    }

    /// Writes all of `buf`.
    pub(crate) async fn write_all_owned(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        if self.driver.uring().is_none() {
            let res = self.write_all(&buf).await;
            return (res, buf);
        }
        let fd = std::os::fd::AsFd::as_fd(&self.source);
        uring::send_all(&self.driver, fd, buf).await
    }
}

impl<S: mio::event::Source> Drop for Evented<S> {
    fn drop(&mut self) {
        self.driver.deregister(self.key, &mut self.source);
    }
}
