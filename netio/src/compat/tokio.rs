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

impl_read! {
    tokio::io::AsyncRead, &mut ReadBuf<'_>;
    TcpStream => |s| s,
    OwnedReadHalf => |s| s.stream(),
    UnixStream => |s| s,
}

impl_write! {
    tokio::io::AsyncWrite;
    TcpStream => |s| s,
    OwnedWriteHalf => |s| s.stream(),
    UnixStream => |s| s,
}
