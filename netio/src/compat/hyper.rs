//! `hyper::rt::Read` and `hyper::rt::Write` on gort's streams, and [`Io`] for any
//! `futures::io` stream.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

use crate::net::{OwnedReadHalf, OwnedWriteHalf, RawStream, TcpStream, UnixStream};

/// hyper's read: `recv(2)` into the cursor's unfilled memory, no zero-fill.
fn read_into(
    stream: &impl RawStream,
    cx: &mut Context<'_>,
    mut buf: ReadBufCursor<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: `poll_read_uninit` only writes bytes into the slice (`recv(2)` or a copy
    // from the stash); it never writes uninitialised memory over initialised bytes.
    let unfilled = unsafe { buf.as_mut() };
    let n = ready!(stream.poll_read_uninit(cx, unfilled))?;
    // SAFETY: `poll_read_uninit` returned `Ok(n)`: the first `n` bytes of the
    // cursor's unfilled memory are initialised.
    unsafe { buf.advance(n) };
    Poll::Ready(Ok(()))
}

impl_read! {
    hyper::rt::Read, ReadBufCursor<'_>;
    TcpStream => |s| s,
    OwnedReadHalf => |s| s.stream(),
    UnixStream => |s| s,
}

impl_write! {
    hyper::rt::Write;
    TcpStream => |s| s,
    OwnedWriteHalf => |s| s.stream(),
    UnixStream => |s| s,
}

/// hyper's I/O traits for any `futures::io::AsyncRead + AsyncWrite`: a TLS stream
/// (futures-rustls, async-native-tls), a compressed stream, a test double.
///
/// gort's own streams need no adapter: they implement hyper's traits directly and
/// read without zero-filling. This one cannot know what `T` does with a buffer, so it
/// zero-fills the part of hyper's cursor it lends to `T` (hyper hands 8 KiB or more per
/// read; the memset is what a safe `AsyncRead` costs), smol-hyper's and
/// hyper-util's `TokioIo`'s price too.
///
#[derive(Debug)]
pub struct Io<T> {
    inner: T,
}

impl<T> Io<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Io<T> {
        Io { inner }
    }

    /// The wrapped stream.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// Unwraps it.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: the slice is only written below, with zeroes, before it is read.
        let unfilled = unsafe { buf.as_mut() };
        for byte in unfilled.iter_mut() {
            byte.write(0);
        }
        // SAFETY: every byte of `unfilled` was initialised (zeroed) just above, and
        // `MaybeUninit<u8>` has the layout of `u8`.
        let init: &mut [u8] = unsafe {
            &mut *(std::ptr::from_mut::<[std::mem::MaybeUninit<u8>]>(unfilled) as *mut [u8])
        };
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, init))?;
        let n = n.min(init.len()); // a misbehaving reader must not claim more
                                   // SAFETY: the whole slice (so its first `n` bytes) is initialised.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

/// hyper's executor on gort: every future hyper hands it (an HTTP/2 stream, a
/// connection's background work) becomes a detached gort task on the current runtime.
/// hyper-util's `TokioExecutor`, for gort.
///
/// # Panics
/// `execute` panics when the thread has no gort runtime (hyper calls it from inside a
/// connection's task, which has one).
#[derive(Clone, Copy, Debug, Default)]
pub struct Executor;

impl<F> hyper::rt::Executor<F> for Executor
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    #[track_caller]
    fn execute(&self, fut: F) {
        drop(gort_executor::spawn(fut));
    }
}

/// hyper's timer on gort's timers (`header_read_timeout`, HTTP/2 keep-alive pings).
/// hyper-util's `TokioTimer`, for gort. `reset` moves the existing timer instead of
/// allocating a new sleep.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timer;

/// [`Timer`]'s sleep: a [`crate::time::Sleep`] that hyper can name (`Send + Sync`).
#[derive(Debug)]
pub struct Sleep(crate::time::Sleep);

impl std::future::Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for Sleep {}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, duration: std::time::Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(crate::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(Sleep(crate::time::sleep_until(deadline)))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        match sleep.as_mut().downcast_mut_pin::<Sleep>() {
            Some(mine) => mine.get_mut().0.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
