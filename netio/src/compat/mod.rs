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

#[cfg(feature = "hyper")]
pub mod hyper;
#[cfg(feature = "tokio-io")]
mod tokio;
