//! Networking on the shared reactor: TCP, UDP and Unix stream sockets.

#![forbid(unsafe_code)]

/// `RawStream` for a stream type with an `io: Evented<_>` field and a
/// `shutdown(Shutdown)` method (TCP and Unix streams).
macro_rules! raw_stream {
    ($ty:ty) => {
        impl super::RawStream for $ty {
            fn poll_read_uninit(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [std::mem::MaybeUninit<u8>],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_read_uninit(cx, buf)
            }

            fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.io.poll_write(cx, buf)
            }

            fn poll_write_vectored(
                &self,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_write_vectored(cx, bufs)
            }

            fn shutdown_write(&self) -> io::Result<()> {
                self.shutdown(Shutdown::Write)
            }
        }
    };
}

mod evented;
mod tcp;
mod udp;
mod unix;

pub use tcp::{Incoming, OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

use std::any::Any;
use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, ToSocketAddrs};
use std::task::{Context, Poll};
use std::time::Duration;

/// What the I/O bridges (`crate::compat`: hyper's and tokio's traits) need from a byte
/// stream, kept inside the crate: the unsafe half of those traits (their buffers'
/// uninitialised memory) lives in `compat`, this half in the safe socket code.
#[cfg_attr(not(any(feature = "hyper", feature = "tokio-io")), allow(dead_code))]
pub(crate) trait RawStream {
    /// Reads into uninitialised memory; `Ok(n)` means `buf[..n]` is initialised.
    fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>>;
    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>>;
    fn poll_write_vectored(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>>;
    /// Shuts the write direction (`poll_shutdown`, `poll_close`).
    fn shutdown_write(&self) -> io::Result<()>;
}

/// What a listener does when `accept(2)` fails, shared by TCP and Unix listeners.
///
/// Out of file descriptors (`EMFILE`, `ENFILE`) or socket memory (`ENOBUFS`,
/// `ENOMEM`, or `ENOSPC` registering the new socket), it sleeps (5 ms, doubling up to
/// 500 ms) and lets the caller try again,
/// instead of spinning on a listener that stays readable or failing the server, as
/// Go's `net/http` does (5 ms to 1 s; 500 ms keeps recovery within a second). A
/// connection that failed before it was accepted (aborted, or a network error pending
/// on it) is skipped. Anything else is the caller's error.
pub(crate) struct AcceptBackoff(Duration);

impl AcceptBackoff {
    const MIN: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_millis(500);

    pub(crate) fn new() -> AcceptBackoff {
        AcceptBackoff(Self::MIN)
    }

    /// After a failed accept: `Ok` (having waited when needed) to try again, or the
    /// error to return.
    pub(crate) async fn after(&mut self, e: io::Error) -> io::Result<()> {
        // ENOSPC: the accepted socket could not be registered (epoll's
        // `max_user_watches`); it was closed, the listener is fine.
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ENOSPC)
        );
        if exhausted {
            crate::time::sleep(self.0).await;
            self.0 = (self.0 * 2).min(Self::MAX);
            return Ok(());
        }
        // A connection that failed before it was accepted: accept(2)'s man page asks
        // for these to be treated as EAGAIN. (Not EPERM or EOPNOTSUPP, which can be the
        // listener's own lasting state: retrying those at once would spin.)
        let connection_failed = matches!(
            e.raw_os_error(),
            Some(
                libc::ECONNABORTED
                    | libc::EPROTO
                    | libc::ENOPROTOOPT
                    | libc::EHOSTDOWN
                    | libc::ENONET
                    | libc::EHOSTUNREACH
                    | libc::ENETUNREACH
                    | libc::ENETDOWN
            )
        );
        if connection_failed || e.kind() == io::ErrorKind::ConnectionAborted {
            return Ok(());
        }
        Err(e)
    }
}

/// Resolves `host` (`"example.com:443"`, `("example.com", 443)`, a `SocketAddr`) to
/// its socket addresses. Go's `net.LookupHost` with a port, tokio's `lookup_host`.
///
/// A name goes to the system resolver (`getaddrinfo`) on the blocking pool, because
/// it blocks; an address that is already literal (a `SocketAddr`, `(IpAddr, u16)`,
/// `"127.0.0.1:80"`, `("::1", 80)`) is parsed where it stands and never touches the
/// pool.
///
/// # Errors
/// The resolver's (`"failed to lookup address information"`); `InvalidInput` when
/// it resolves to no address.
///
/// # Cancel safety
/// Cancel safe (a lookup already on the pool finishes there and is dropped).
pub async fn lookup_host<A>(host: A) -> io::Result<std::vec::IntoIter<SocketAddr>>
where
    A: ToSocketAddrs + Send + 'static,
{
    resolve(host).await.map(Vec::into_iter)
}

/// Resolves `addr`: literal addresses where they stand, names on the blocking pool (a
/// DNS lookup blocks).
pub(crate) async fn resolve<A>(addr: A) -> io::Result<Vec<SocketAddr>>
where
    A: ToSocketAddrs + Send + 'static,
{
    let addrs = match literal(&addr) {
        Some(addrs) => addrs,
        None => gort_executor::spawn_blocking(move || {
            addr.to_socket_addrs().map(Iterator::collect::<Vec<_>>)
        })
        .await
        .map_err(io::Error::from)??,
    };
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ));
    }
    Ok(addrs)
}

/// The addresses of `addr` when it is literal: the types `ToSocketAddrs` is
/// implemented for that hold an address, and strings that parse as one. `None`
/// means "a name, or a type we cannot see into": the resolver decides.
fn literal(addr: &dyn Any) -> Option<Vec<SocketAddr>> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    fn one(a: impl Into<SocketAddr>) -> Option<Vec<SocketAddr>> {
        Some(vec![a.into()])
    }
    fn host_port(host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        one((host.parse::<IpAddr>().ok()?, port))
    }
    fn text(s: &str) -> Option<Vec<SocketAddr>> {
        one(s.parse::<SocketAddr>().ok()?)
    }
    if let Some(&a) = addr.downcast_ref::<SocketAddr>() {
        return one(a);
    }
    if let Some(&a) = addr.downcast_ref::<SocketAddrV4>() {
        return one(a);
    }
    if let Some(&a) = addr.downcast_ref::<SocketAddrV6>() {
        return one(a);
    }
    if let Some(&a) = addr.downcast_ref::<(IpAddr, u16)>() {
        return one(a);
    }
    if let Some(&a) = addr.downcast_ref::<(Ipv4Addr, u16)>() {
        return one(a);
    }
    if let Some(&a) = addr.downcast_ref::<(Ipv6Addr, u16)>() {
        return one(a);
    }
    if let Some(&a) = addr.downcast_ref::<&'static [SocketAddr]>() {
        return Some(a.to_vec());
    }
    if let Some(&s) = addr.downcast_ref::<&'static str>() {
        return text(s);
    }
    if let Some(s) = addr.downcast_ref::<String>() {
        return text(s);
    }
    if let Some(&(h, p)) = addr.downcast_ref::<(&'static str, u16)>() {
        return host_port(h, p);
    }
    if let Some((h, p)) = addr.downcast_ref::<(String, u16)>() {
        return host_port(h, *p);
    }
    None
}
