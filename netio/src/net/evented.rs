//! `Evented<S>`: a mio source registered with the driver, and the retry loop every
//! socket operation uses: wait for readiness, try, and on `WouldBlock` clear the
//! readiness that was seen and wait again.
//!
//! Two flavours of each operation: the `poll_*` ones for the `AsyncRead`/`AsyncWrite`
//! impls (one waker per direction, the poll slot of `driver/io.rs`), and `async` ones
//! for the socket types' own methods, which keep a [`Waiter`] in their future so that
//! every task waiting on the socket is woken.

#![forbid(unsafe_code)]

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use mio::Interest;

use crate::driver::token::Token;
use crate::driver::uring;
use crate::driver::{Direction, Driver, ScheduledIo, Waiter};

pub(crate) struct Evented<S: mio::event::Source + std::os::fd::AsFd> {
    source: S,
    token: Token,
    io: Arc<ScheduledIo>,
    driver: Arc<Driver>,
    /// A read shorter than its buffer proves the socket empty (TCP, see `poll_read`).
    short_read_drains: bool,
    /// The socket may be shared with another process or descriptor (it came from
    /// `from_std`): never `shutdown(2)` it on drop (see `Drop`).
    foreign: bool,
}

impl<S: mio::event::Source + std::os::fd::AsRawFd + std::os::fd::AsFd> Evented<S> {
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
        let (token, io) = driver.register(&mut source, interest, connecting)?;
        Ok(Evented {
            source,
            token,
            io,
            driver,
            short_read_drains: false,
            foreign: false,
        })
    }

    /// Marks a socket gort did not create (`from_std`: inherited from systemd, passed
    /// over a Unix socket, `try_clone`d): dropping it closes only this descriptor.
    pub(crate) fn foreign(mut self) -> Self {
        self.foreign = true;
        self
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
    /// `WouldBlock`, waking through the direction's poll slot (for the `poll_*` trait
    /// methods). Spends one unit of the task's coop budget per completed operation.
    pub(crate) fn poll_io<R>(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        self.poll_io_with(direction, cx, None, op, |_| false)
    }

    /// [`poll_io`](Self::poll_io) as an `async` operation with a waiter of its own.
    pub(crate) async fn io<R>(
        &self,
        direction: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut waiter = self.io.waiter(direction);
        poll_fn(|cx| self.poll_io_with(direction, cx, Some(&mut waiter), &mut op, |_| false)).await
    }

    /// The retry loop. With `waiter`, the task waits in its own entry; without, in the
    /// direction's poll slot. Also clears the readiness it saw when `drained(&result)`
    /// says the operation emptied the socket (a short read), which saves the
    /// `WouldBlock` call that would otherwise find it out. A new arrival brings a new
    /// event; one that came meanwhile bumped the tick, and then the clear does nothing.
    pub(crate) fn poll_io_with<R>(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        mut waiter: Option<&mut Waiter<'_>>,
        mut op: impl FnMut(&S) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        let restore = ready!(gort_executor::coop::poll_proceed(cx));
        loop {
            let Poll::Ready(event) = self.io.poll_ready(direction, cx, waiter.as_deref_mut())
            else {
                self.driver.arm(self.token, direction);
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

    /// [`try_io`](Self::try_io) with [`poll_io_with`](Self::poll_io_with)'s short-read
    /// rule.
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

    /// Waits until the source is ready in `direction` (without an operation), in
    /// `waiter`'s entry or the poll slot.
    pub(crate) fn poll_ready(
        &self,
        direction: Direction,
        cx: &mut Context<'_>,
        mut waiter: Option<&mut Waiter<'_>>,
    ) -> Poll<()> {
        if direction == Direction::Read {
            // Bytes of an orphaned io_uring read come before anything readable now.
            ready!(self.io.poll_orphans(cx, waiter.as_deref_mut()));
        }
        let res = self.io.poll_ready(direction, cx, waiter).map(drop);
        if res.is_pending() {
            self.driver.arm(self.token, direction);
            gort_executor::task::set_wait_reason(gort_executor::task::WaitReason::Io);
        }
        res
    }

    /// [`poll_ready`](Self::poll_ready) as an `async` wait with a waiter of its own.
    pub(crate) async fn ready(&self, direction: Direction) {
        let mut waiter = self.io.waiter(direction);
        poll_fn(|cx| self.poll_ready(direction, cx, Some(&mut waiter))).await;
    }
}

/// Byte-stream operations shared by TCP and Unix streams.
impl<S: mio::event::Source + std::os::fd::AsRawFd + std::os::fd::AsFd> Evented<S>
where
    for<'a> &'a S: io::Read + io::Write,
{
    /// `AsyncRead::poll_read` (the poll slot).
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_with(cx, buf, None)
    }

    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        mut waiter: Option<&mut Waiter<'_>>,
    ) -> Poll<io::Result<usize>> {
        ready!(self.io.poll_orphans(cx, waiter.as_deref_mut()));
        if let Some(n) = self.io.take_stash(buf) {
            return Poll::Ready(Ok(n));
        }
        let len = buf.len();
        self.poll_io_with(
            Direction::Read,
            cx,
            waiter,
            |mut s| io::Read::read(&mut s, buf),
            |&n| self.drained_by(n, len),
        )
    }

    /// [`poll_read`](Self::poll_read) into uninitialised memory, without zero-filling
    /// it first (hyper's and tokio's read buffers): `recv(2)` through socket2, which
    /// takes `MaybeUninit` bytes. `Ok(n)` means `buf[..n]` is initialised.
    #[cfg_attr(not(any(feature = "hyper", feature = "tokio-io")), allow(dead_code))]
    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        ready!(self.io.poll_orphans(cx, None));
        if let Some(n) = self.io.take_stash_uninit(buf) {
            return Poll::Ready(Ok(n));
        }
        let len = buf.len();
        self.poll_io_with(
            Direction::Read,
            cx,
            None,
            |s| socket2::SockRef::from(s).recv(buf),
            |&n| self.drained_by(n, len),
        )
    }

    /// `AsyncWrite::poll_write_vectored` (the poll slot): one `writev(2)`.
    pub(crate) fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_io(Direction::Write, cx, |mut s| {
            io::Write::write_vectored(&mut s, bufs)
        })
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

    /// Waits for data and copies what is queued into `buf` without taking it.
    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize>
    where
        S: PeekSource,
    {
        let mut waiter = self.io.waiter(Direction::Read);
        poll_fn(|cx| {
            ready!(self.io.poll_orphans(cx, Some(&mut waiter)));
            if let Some(n) = self.io.peek_stash(buf) {
                return Poll::Ready(Ok(n));
            }
            self.poll_io_with(
                Direction::Read,
                cx,
                Some(&mut waiter),
                |s| s.peek(buf),
                |_| false,
            )
        })
        .await
    }

    pub(crate) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let mut waiter = self.io.waiter(Direction::Read);
        poll_fn(|cx| self.poll_read_with(cx, buf, Some(&mut waiter))).await
    }

    pub(crate) async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io(Direction::Write, |mut s| io::Write::write(&mut s, buf))
            .await
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
        let mut waiter = self.io.waiter(Direction::Read);
        poll_fn(|cx| self.io.poll_orphans(cx, Some(&mut waiter))).await;
        drop(waiter);
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

/// Sockets that can `peek` (`MSG_PEEK`).
pub(crate) trait PeekSource {
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl PeekSource for mio::net::TcpStream {
    fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        mio::net::TcpStream::peek(self, buf)
    }
}

impl<S: mio::event::Source + std::os::fd::AsFd> Drop for Evented<S> {
    fn drop(&mut self) {
        if self.driver.deregister(self.token, &mut self.source) && !self.foreign {
            // io_uring, with a poll armed on the socket: the poll holds a reference to
            // the socket until its cancellation completes, and the kernel completes it
            // as task work of the thread that submitted the poll, which may be a worker
            // asleep on a futex for seconds (`COOP_TASKRUN` sends it no interrupt).
            // Until then `close` would close nothing: a listener would go on accepting
            // into its backlog, a stream would send no FIN. Shutting the socket down
            // ends the connection (or the listening) now; the descriptor itself is
            // closed below as always. `shutdown` acts on the socket, not the
            // descriptor, so sockets that came from `from_std` (a systemd socket, a
            // descriptor shared with another process) are left alone: for them the
            // close still waits for that task work. A `dup` the user made of a socket
            // gort created is shut down too (on io_uring only).
            let _ = socket2::SockRef::from(&self.source).shutdown(std::net::Shutdown::Both);
        }
    }
}
