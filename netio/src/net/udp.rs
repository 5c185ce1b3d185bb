//! UDP on the reactor.

#![forbid(unsafe_code)]

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use mio::Interest;

use super::evented::Evented;
use super::resolve;
use crate::driver::Direction;

/// A UDP socket.
pub struct UdpSocket {
    io: Evented<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (resolved on the blocking pool; each address tried in turn).
    ///
    /// # Errors
    /// As `bind(2)` for the last address (`AddrInUse`, ...).
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn bind<A: ToSocketAddrs + Send + 'static>(addr: A) -> io::Result<UdpSocket> {
        let mut last = None;
        for addr in resolve(addr).await? {
            match mio::net::UdpSocket::bind(addr) {
                Ok(s) => {
                    let io = Evented::new(s, Interest::READABLE | Interest::WRITABLE)?;
                    return Ok(UdpSocket { io });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Sets the default peer for `send`/`recv` and filters incoming datagrams to it.
    ///
    /// # Errors
    /// As `connect(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe up to the name lookup; once an address is resolved `connect(2)`
    /// runs without waiting, so a dropped call leaves the socket either connected to
    /// one of the addresses or as it was.
    pub async fn connect<A: ToSocketAddrs + Send + 'static>(&self, addr: A) -> io::Result<()> {
        let mut last = None;
        for addr in resolve(addr).await? {
            match self.io.get().connect(addr) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("resolve returns at least one address"))
    }

    /// Sends a datagram to `target`; returns the bytes sent.
    ///
    /// # Errors
    /// As `sendto(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe: a datagram is sent whole or not at all.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io
            .io(Direction::Write, |s| s.send_to(buf, target))
            .await
    }

    /// Receives a datagram; returns the bytes written to `buf` and the sender.
    ///
    /// A datagram longer than `buf` is cut to `buf.len()` and the rest discarded by
    /// the kernel, as `recvfrom(2)` does (and Go's `ReadFrom`, and tokio): to receive
    /// datagrams of unknown size whole, size the buffer with
    /// [`peek_len`](Self::peek_len) first, or use 65,507 bytes (the largest UDP
    /// payload over IPv4).
    ///
    /// # Errors
    /// As `recvfrom(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe: no datagram is taken unless returned.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.io.io(Direction::Read, |s| s.recv_from(buf)).await
    }

    /// Waits for a datagram and returns its whole length without taking it (`recv`
    /// with `MSG_PEEK | MSG_TRUNC`): the buffer size that receives it uncut.
    ///
    /// # Errors
    /// As `recv(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe: it takes nothing.
    pub async fn peek_len(&self) -> io::Result<usize> {
        self.io
            .io(Direction::Read, |s| {
                // An empty buffer: with MSG_TRUNC the kernel reports the real length.
                let mut none: [std::mem::MaybeUninit<u8>; 0] = [];
                socket2::SockRef::from(s)
                    .recv_with_flags(&mut none, libc::MSG_PEEK | libc::MSG_TRUNC)
            })
            .await
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    /// As `send(2)`; `NotConnected` before `connect`.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.io(Direction::Write, |s| s.send(buf)).await
    }

    /// Receives from the connected peer; a datagram longer than `buf` is cut, as in
    /// [`recv_from`](Self::recv_from).
    ///
    /// # Errors
    /// As `recv(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.io.io(Direction::Read, |s| s.recv(buf)).await
    }

    /// The local address.
    ///
    /// # Errors
    /// As `getsockname(2)`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().local_addr()
    }

    /// The connected peer.
    ///
    /// # Errors
    /// `NotConnected` before `connect`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get().peer_addr()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local_addr().ok())
            .finish()
    }
}
