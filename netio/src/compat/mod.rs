//! I/O bridges: other crates' I/O traits on gort's streams. The orphan rule puts them
//! in the crate that defines the streams; the facade re-exports what users name.
//!
//! - `hyper` (feature `hyper`): `hyper::rt::Read`/`Write` on [`TcpStream`], its owned
//!   halves and [`UnixStream`], and [`hyper::Io`], the adapter for any
//!   `futures::io::AsyncRead + AsyncWrite` (a TLS stream).
//! - `tokio` (feature `tokio-io`): `tokio::io::AsyncRead`/`AsyncWrite` on the same
//!   streams, for tokio-util codecs, tokio-rustls and tokio-tungstenite.
//!
//! Both read straight into the caller's uninitialised buffer (`recv(2)` through
//! socket2, see `Evented::poll_read_uninit`): hyper hands a fresh 8 KiB or larger
//! cursor per read, and zero-filling it first would cost a memset per read. The two
//! `unsafe` steps of each trait (viewing the unfilled part as `MaybeUninit` bytes, and
//! declaring the bytes `recv` wrote initialised) are in this module only.
//!
//! [`TcpStream`]: crate::net::TcpStream
//! [`UnixStream`]: crate::net::UnixStream

/// `impl $trait for` each stream: the read half of tokio's `AsyncRead` and hyper's
/// `rt::Read`, which differ only in their buffer type (`$buf`). Each module supplies
/// its own `read_into` for that buffer.
#[cfg(any(feature = "hyper", feature = "tokio-io"))]
macro_rules! impl_read {
    ($trait:path, $buf:ty; $($ty:ty => |$s:ident| $stream:expr),+ $(,)?) => {$(
        impl $trait for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: $buf,
            ) -> Poll<io::Result<()>> {
                let $s = &*self;
                read_into($stream, cx, buf)
            }
        }
    )+};
}

/// `impl $trait for` each stream, for tokio's `AsyncWrite` and hyper's `rt::Write`:
/// the same five methods with the same signatures, written once for both. Writes go
/// straight to the socket (no user-space buffer, so flushing is immediate).
#[cfg(any(feature = "hyper", feature = "tokio-io"))]
macro_rules! impl_write {
    ($trait:path; $($ty:ty => |$s:ident| $stream:expr),+ $(,)?) => {$(
        impl $trait for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                RawStream::poll_write($stream, cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                RawStream::poll_write_vectored($stream, cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(())) // no user-space buffer
            }

            fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $s = &*self;
                Poll::Ready($stream.shutdown_write())
            }
        }
    )+};
}

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-io")]
mod tokio;
