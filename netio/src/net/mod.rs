//! Networking on the shared reactor: TCP, UDP and Unix stream sockets.

#![forbid(unsafe_code)]

mod evented;
mod tcp;
mod udp;
mod unix;

pub use tcp::{Incoming, OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// What a listener does when `accept(2)` fails, shared by TCP and Unix listeners.
///
/// Out of file descriptors (`EMFILE`, `ENFILE`) or socket memory (`ENOBUFS`,
/// `ENOMEM`), it sleeps (5 ms, doubling up to 500 ms) and lets the caller try again,
/// instead of spinning on a listener that stays readable or failing the server, as
/// Go's `net/http` does (5 ms to 1 s; 500 ms keeps recovery within a second). A
/// connection aborted before it was accepted is skipped. Anything else is the caller's
/// error.
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
        let exhausted = matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
        );
        if exhausted {
            crate::time::sleep(self.0).await;
            self.0 = (self.0 * 2).min(Self::MAX);
            return Ok(());
        }
        if e.kind() == io::ErrorKind::ConnectionAborted {
            return Ok(());
        }
        Err(e)
    }
}

/// Resolves `addr` on the blocking pool (a DNS lookup blocks); literal addresses skip it.
pub(crate) async fn resolve<A>(addr: A) -> io::Result<Vec<SocketAddr>>
where
    A: ToSocketAddrs + Send + 'static,
{
    let addrs = gort_executor::spawn_blocking(move || {
        addr.to_socket_addrs().map(Iterator::collect::<Vec<_>>)
    })
    .await
    .map_err(io::Error::from)??;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any address",
        ));
    }
    Ok(addrs)
}
