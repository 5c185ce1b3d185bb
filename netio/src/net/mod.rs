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
