//! Networking: TCP on the shared reactor (UDP, Unix sockets and io_uring come next).

mod evented;
mod tcp;

pub use tcp::{OwnedReadHalf, OwnedWriteHalf, TcpListener, TcpStream};

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

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
