//! TCP: `TcpListener` and `TcpStream` on the reactor.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use super::evented::Evented;
use super::resolve;
use super::AcceptBackoff;
use crate::driver::Direction;

/// Pending connections the kernel queues per listener (Go and tokio use the system's
/// `somaxconn`, 4096 on current Linux; 1024 is plenty for a listener that accepts in
/// a loop, and within every kernel's limit).
const BACKLOG: i32 = 1024;
/// Spare room `read_owned` makes in a full buffer (one page).
const OWNED_READ_MIN: usize = 4096;

/// The deadline for one of `remaining` addresses still to try before `deadline`
/// (Go's `partialDeadline`): an equal share of what is left, at least 2 s or all that
/// is left if that is less. `None` once the deadline has passed.
fn partial_deadline(now: Instant, deadline: Instant, remaining: usize) -> Option<Instant> {
    const SANE_MINIMUM: Duration = Duration::from_secs(2);
    let left = deadline
        .checked_duration_since(now)
        .filter(|d| !d.is_zero())?;
    let share = left / u32::try_from(remaining.max(1)).unwrap_or(u32::MAX);
    let share = if share < SANE_MINIMUM {
        left.min(SANE_MINIMUM)
    } else {
        share
    };
    Some(now + share)
}

/// A TCP socket server, listening for connections.
pub struct TcpListener {
    io: Evented<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (a name is resolved on the blocking pool; each resolved address
    /// is tried in turn) with `SO_REUSEADDR` and a backlog of 1024.
    ///
    /// # Errors
    /// `AddrInUse` (with the address in the message) when the address is taken, and
    /// whatever else the OS reports for the last address tried.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is bound until the future completes.
    pub async fn bind<A: ToSocketAddrs + Send + 'static>(addr: A) -> io::Result<TcpListener> {
        let mut last = None;
        for addr in resolve(addr).await? {
            match bind_one(addr) {
                Ok(l) => return TcpListener::wrap(l, false),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Wraps a std listener (it is set non-blocking).
    ///
    /// # Errors
    /// When the listener cannot be registered with the driver, or there is no runtime.
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        TcpListener::wrap(listener, true)
    }

    /// `foreign`: the socket may be shared (see `Evented::foreign`).
    fn wrap(listener: std::net::TcpListener, foreign: bool) -> io::Result<TcpListener> {
        listener.set_nonblocking(true)?;
        let io = Evented::new(
            mio::net::TcpListener::from_std(listener),
            Interest::READABLE,
        )?;
        Ok(TcpListener {
            io: if foreign { io.foreign() } else { io },
        })
    }

    /// Accepts a connection.
    ///
    /// When the process is out of file descriptors (`EMFILE`, `ENFILE`) or the kernel
    /// out of memory for sockets, it waits (5 ms, doubling up to 500 ms) and tries again
    /// instead of spinning or failing, as Go's servers do; it recovers as soon as
    /// descriptors are free.
    ///
    /// # Errors
    /// Other errors of `accept(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe: a connection accepted by the kernel is returned by this call or
    /// stays queued for the next one.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let mut backoff = AcceptBackoff::new();
        loop {
            match self.io.io(Direction::Read, |l| l.accept()).await {
                // A socket that cannot be registered is closed here; the listener
                // goes on (out of memory or watches: the same back-off).
                Ok((stream, addr)) => match TcpStream::from_mio(stream) {
                    Ok(stream) => return Ok((stream, addr)),
                    Err(e) => backoff.after(e).await?,
                },
                Err(e) => backoff.after(e).await?,
            }
        }
    }

    /// The address it listens on.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// A stream of accepted connections.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming {
            listener: self,
            pending: None,
        }
    }
}

fn bind_one(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    if let Err(e) = socket.bind(&addr.into()) {
        if e.kind() == io::ErrorKind::AddrInUse {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("address {addr} is already in use"),
            ));
        }
        return Err(e);
    }
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("addr", &self.local_addr().ok())
            .finish()
    }
}

/// An `accept()` in progress, kept across polls of [`Incoming`].
type AcceptFuture<'a> =
    Pin<Box<dyn std::future::Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send + 'a>>;

/// Stream of [`TcpListener::incoming`].
pub struct Incoming<'a> {
    listener: &'a TcpListener,
    pending: Option<AcceptFuture<'a>>,
}

impl futures_core::Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let listener = self.listener;
        let fut = self
            .pending
            .get_or_insert_with(|| Box::pin(listener.accept()));
        let res = std::task::ready!(fut.as_mut().poll(cx));
        self.pending = None;
        Poll::Ready(Some(res.map(|(s, _)| s)))
    }
}

impl fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming").finish_non_exhaustive()
    }
}

/// A TCP connection.
pub struct TcpStream {
    io: Evented<mio::net::TcpStream>,
}

impl TcpStream {
    fn from_mio(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        let io = Evented::new(stream, Interest::READABLE | Interest::WRITABLE)?;
        Ok(TcpStream {
            io: io.short_reads_drain(),
        })
    }

    fn connecting(stream: mio::net::TcpStream) -> io::Result<TcpStream> {
        let io = Evented::new_connecting(stream, Interest::READABLE | Interest::WRITABLE)?;
        Ok(TcpStream {
            io: io.short_reads_drain(),
        })
    }

    /// Connects to `addr` (a name is resolved on the blocking pool; each address is
    /// tried in turn).
    ///
    /// # Errors
    /// The last address's error (`ConnectionRefused`, ...).
    ///
    /// # Cancel safety
    /// Cancel safe: a half-open connection is closed when the future is dropped.
    pub async fn connect<A: ToSocketAddrs + Send + 'static>(addr: A) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in resolve(addr).await? {
            match TcpStream::connect_one(addr).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// [`connect`](Self::connect) with a time limit for the whole call (the lookup
    /// and every address tried).
    ///
    /// A name with several addresses splits what is left of the limit between the
    /// addresses not yet tried, Go's rule (`net.Dialer`'s partial deadline): each gets
    /// an equal share, but at least 2 s (or all that is left, if less). So a blackholed
    /// first address (a dead host, a dropped SYN) costs its share, not the whole limit.
    ///
    /// # Errors
    /// `TimedOut` when the limit passes first; otherwise the first address's error
    /// (Go's choice: the first address is the preferred one), which is `TimedOut` if
    /// its share ran out.
    ///
    /// # Cancel safety
    /// Cancel safe, as `connect`.
    pub async fn connect_timeout<A: ToSocketAddrs + Send + 'static>(
        addr: A,
        limit: Duration,
    ) -> io::Result<TcpStream> {
        let deadline = crate::driver::far_future(Instant::now(), limit);
        let addrs = crate::time::timeout_at(deadline, resolve(addr)).await??;
        let mut first = None;
        for (i, addr) in addrs.iter().enumerate() {
            let Some(share) = partial_deadline(Instant::now(), deadline, addrs.len() - i) else {
                return Err(io::ErrorKind::TimedOut.into()); // out of time, as Go says
            };
            match crate::time::timeout_at(share, TcpStream::connect_one(*addr)).await {
                Ok(Ok(s)) => return Ok(s),
                Ok(Err(e)) => first = first.or(Some(e)),
                Err(elapsed) => first = first.or(Some(elapsed.into())),
            }
        }
        Err(first.expect("resolve returns at least one address"))
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connecting(mio::net::TcpStream::connect(addr)?)?;
        // Writable means the handshake finished, one way or the other.
        stream.io.ready(Direction::Write).await;
        if let Some(e) = stream.io.get().take_error()? {
            return Err(e);
        }
        match stream.io.get().peer_addr() {
            Ok(_) => Ok(stream),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(stream
                .io
                .get()
                .take_error()?
                .unwrap_or_else(|| io::ErrorKind::ConnectionRefused.into())),
            Err(e) => Err(e),
        }
    }

    /// Waits until data is queued and copies it into `buf` without taking it: the
    /// next `read` returns the same bytes. `Ok(0)` once the peer closed its side.
    ///
    /// A `peek` returns at once while data is queued, even if it is the same data as
    /// last time: to wait for more, read it, or sleep between peeks.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    ///
    /// # Cancel safety
    /// Cancel safe: it takes nothing.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.peek(buf).await
    }

    /// Reads into `buf`; `Ok(0)` once the peer closed its side.
    ///
    /// # Errors
    /// `ConnectionReset` and other socket errors.
    ///
    /// # Cancel safety
    /// Cancel safe: no byte is read unless the call returns it.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read(buf).await
    }

    /// Writes some of `buf`.
    ///
    /// # Errors
    /// `BrokenPipe`/`ConnectionReset` once the peer is gone (never `SIGPIPE`).
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is written unless the call returns the count.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write(buf).await
    }

    /// Writes all of `buf`.
    ///
    /// # Errors
    /// As [`write`](Self::write); `WriteZero` if the socket accepts nothing.
    ///
    /// # Cancel safety
    /// Not cancel safe: part of `buf` may have been written.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.io.write_all(buf).await
    }

    /// Waits until the socket has something to read (data, end of stream or an error),
    /// without reading it. With [`try_read`](Self::try_read) this lets a connection
    /// hold no buffer while it is idle: wait first, then read into a buffer that lives
    /// only as long as the message.
    ///
    /// # Errors
    /// None today; `io::Result` leaves room for backends that report errors here.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.ready(Direction::Read).await;
        Ok(())
    }

    /// Reads without waiting; `WouldBlock` when nothing is there.
    ///
    /// # Errors
    /// `WouldBlock`, or as [`read`](Self::read).
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.try_read(buf)
    }

    /// Writes without waiting; `WouldBlock` when the socket buffer is full.
    ///
    /// # Errors
    /// `WouldBlock`, or as [`write`](Self::write).
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io
            .try_io(Direction::Write, |mut s| io::Write::write(&mut s, buf))
    }

    /// Reads into an owned buffer (its spare capacity after `len`), returning the
    /// buffer with the bytes appended. The shape io_uring needs (the kernel holds the
    /// buffer while the read is in flight); on epoll it costs nothing extra.
    ///
    /// # Errors
    /// As [`read`](Self::read); the buffer comes back either way.
    ///
    /// # Cancel safety
    /// Cancel safe: on io_uring, dropping the future cancels the `RECV`, the kernel
    /// keeps the buffer until the cancellation completes, and bytes it received in the
    /// meantime are kept for the next read. On epoll nothing is read unless returned.
    pub async fn read_owned(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        if buf.capacity() == buf.len() {
            buf.reserve(OWNED_READ_MIN);
        }
        self.io.read_owned(buf).await
    }

    /// Writes all of an owned buffer, returning it.
    ///
    /// # Errors
    /// As [`write_all`](Self::write_all); the buffer comes back either way.
    ///
    /// # Cancel safety
    /// Not cancel safe: part of the buffer may have been written.
    pub async fn write_all_owned(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        self.io.write_all_owned(buf).await
    }

    fn poll_read_priv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }

    fn poll_write_priv(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, buf)
    }

    /// Shuts down the read, write or both halves.
    ///
    /// # Errors
    /// As `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get().shutdown(how)
    }

    /// Disables Nagle's algorithm (send small writes at once).
    ///
    /// # Errors
    /// As `setsockopt(2)`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.get().set_nodelay(nodelay)
    }

    /// Whether Nagle's algorithm is off.
    ///
    /// # Errors
    /// As `getsockopt(2)`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get().nodelay()
    }

    /// The remote address.
    ///
    /// # Errors
    /// As `getpeername(2)`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// Splits into a read half and a write half that can live in two tasks. Dropping
    /// the write half shuts down the write direction.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let inner = Arc::new(self);
        (
            OwnedReadHalf {
                inner: inner.clone(),
            },
            OwnedWriteHalf { inner },
        )
    }
}

raw_stream!(TcpStream);

impl OwnedReadHalf {
    /// The stream both halves share (the I/O bridges).
    #[cfg_attr(not(any(feature = "hyper", feature = "tokio-io")), allow(dead_code))]
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.inner
    }
}

impl OwnedWriteHalf {
    /// The stream both halves share (the I/O bridges).
    #[cfg_attr(not(any(feature = "hyper", feature = "tokio-io")), allow(dead_code))]
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.inner
    }
}

impl std::os::fd::AsFd for TcpStream {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl std::os::fd::AsFd for TcpListener {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.io.get().as_fd()
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local_addr().ok())
            .field("peer", &self.peer_addr().ok())
            .finish()
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // no user-space buffer
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown(Shutdown::Write))
    }
}

/// The read half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf {
    inner: Arc<TcpStream>,
}

/// The write half of [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedWriteHalf {
    inner: Arc<TcpStream>,
}

impl OwnedReadHalf {
    /// See [`TcpStream::read`].
    ///
    /// # Errors
    /// As `TcpStream::read`.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).await
    }
}

impl OwnedWriteHalf {
    /// See [`TcpStream::write_all`].
    ///
    /// # Errors
    /// As `TcpStream::write_all`.
    ///
    /// # Cancel safety
    /// Not cancel safe.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).await
    }
}

impl Drop for OwnedWriteHalf {
    fn drop(&mut self) {
        let _ = self.inner.shutdown(Shutdown::Write);
    }
}

impl AsyncRead for OwnedReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_read_priv(cx, buf)
    }
}

impl AsyncWrite for OwnedWriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_write_priv(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.inner.io.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.inner.shutdown(Shutdown::Write))
    }
}
