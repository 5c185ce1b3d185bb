//! Unix domain stream sockets on the reactor.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use mio::Interest;

use super::evented::Evented;
use super::AcceptBackoff;
use crate::driver::Direction;

/// A Unix socket server.
pub struct UnixListener {
    io: Evented<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to the socket file `path` (which must not exist).
    ///
    /// # Errors
    /// `AddrInUse` when the file exists, and other errors of `bind(2)`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let io = Evented::new(mio::net::UnixListener::bind(path)?, Interest::READABLE)?;
        Ok(UnixListener { io })
    }

    /// Accepts a connection. Out of file descriptors or socket memory, it backs off
    /// and tries again, as [`TcpListener::accept`](super::TcpListener::accept) does.
    ///
    /// # Errors
    /// Other errors of `accept(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let mut backoff = AcceptBackoff::new();
        loop {
            match self.io.io(Direction::Read, |l| l.accept()).await {
                Ok((s, addr)) => match UnixStream::from_mio(s) {
                    Ok(s) => return Ok((s, addr)),
                    Err(e) => backoff.after(e).await?,
                },
                Err(e) => backoff.after(e).await?,
            }
        }
    }

    /// The bound address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }
}

impl fmt::Debug for UnixListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixListener").finish_non_exhaustive()
    }
}

/// A Unix stream connection.
pub struct UnixStream {
    io: Evented<mio::net::UnixStream>,
}

impl UnixStream {
    fn from_mio(s: mio::net::UnixStream) -> io::Result<UnixStream> {
        let io = Evented::new(s, Interest::READABLE | Interest::WRITABLE)?;
        Ok(UnixStream { io })
    }

    /// Connects to the socket file `path`.
    ///
    /// # Errors
    /// `NotFound`, `ConnectionRefused`, ...
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let s = UnixStream::from_mio(mio::net::UnixStream::connect(path)?)?;
        s.io.ready(Direction::Write).await;
        if let Some(e) = s.io.get().take_error()? {
            return Err(e);
        }
        Ok(s)
    }

    /// A connected pair.
    ///
    /// # Errors
    /// As `socketpair(2)`.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((UnixStream::from_mio(a)?, UnixStream::from_mio(b)?))
    }

    /// Reads into `buf`; `Ok(0)` once the peer closed.
    ///
    /// # Errors
    /// As `read(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.read(buf).await
    }

    /// Writes some of `buf`.
    ///
    /// # Errors
    /// As `write(2)`; `BrokenPipe` once the peer is gone.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write(buf).await
    }

    /// Writes all of `buf`.
    ///
    /// # Errors
    /// As [`write`](Self::write).
    ///
    /// # Cancel safety
    /// Not cancel safe: part of `buf` may have been written.
    pub async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        self.io.write_all(buf).await
    }

    /// Shuts down the read, write or both halves.
    ///
    /// # Errors
    /// As `shutdown(2)`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get().shutdown(how)
    }
}

raw_stream!(UnixStream);

impl fmt::Debug for UnixStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixStream").finish_non_exhaustive()
    }
}

impl AsyncRead for UnixStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_read(cx, buf)
    }
}

impl AsyncWrite for UnixStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.shutdown(Shutdown::Write))
    }
}
