//! `tokio::io::AsyncRead` and `tokio::io::AsyncWrite` on gort's streams (feature
//! `tokio-io`): tokio-util's codecs (`Framed`), tokio-rustls and tokio-tungstenite run
//! on gort with these, because they only call the traits.
//!
//! What still needs a tokio runtime: a library that calls `tokio::spawn`,
//! `tokio::time::sleep`/`timeout` or opens `tokio::net` sockets itself (reqwest, tonic's
//! transport, hyper-util's legacy client with its `TokioExecutor`/`TokioTimer`). Those
//! panic on gort's threads with tokio's message "there is no reactor running, must be
//! called from the context of a Tokio 1.x runtime". Give such a library gort's
//! executor and timer where it takes them (`gort::hyper::Executor`, `gort::hyper::Timer`),
//! or run it on a tokio runtime of its own.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::ReadBuf;

use crate::net::{OwnedReadHalf, OwnedWriteHalf, RawStream, TcpStream, UnixStream};

/// tokio's read: `recv(2)` into the buffer's unfilled memory, no zero-fill.
fn read_into(
    stream: &impl RawStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: `poll_read_uninit` only writes bytes into the slice; it never
    // de-initialises memory that was initialised.
    let unfilled = unsafe { buf.unfilled_mut() };
    let n = ready!(stream.poll_read_uninit(cx, unfilled))?;
    // SAFETY: `poll_read_uninit` returned `Ok(n)`: the first `n` unfilled bytes are
    // initialised now.
    unsafe { buf.assume_init(n) };
    buf.advance(n);
    Poll::Ready(Ok(()))
}

macro_rules! tokio_read {
    ($ty:ty, |$s:ident| $stream:expr) => {
        impl tokio::io::AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let $s = &*self;
                read_into($stream, cx, buf)
            }
        }
    };
}

macro_rules! tokio_write {
    ($ty:ty, |$s:ident| $stream:expr) => {
        impl tokio::io::AsyncWrite for $ty {
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
    };
}

tokio_read!(TcpStream, |s| s);
tokio_write!(TcpStream, |s| s);
tokio_read!(OwnedReadHalf, |s| s.stream());
tokio_write!(OwnedWriteHalf, |s| s.stream());
tokio_read!(UnixStream, |s| s);
tokio_write!(UnixStream, |s| s);
