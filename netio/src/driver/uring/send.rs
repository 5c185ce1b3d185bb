//! `SEND` of a whole owned buffer (`TcpStream::write_all_owned` on io_uring), with
//! `MSG_NOSIGNAL`: a closed peer is an `io::Error`, never `SIGPIPE`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;

use io_uring::{opcode, types};

use super::{result, Op};
use crate::driver::Driver;

/// Sends all of `buf`, one `SEND` per partial write; returns the buffer either way.
pub(crate) async fn send_all(
    driver: &Arc<Driver>,
    fd: BorrowedFd<'_>,
    mut buf: Vec<u8>,
) -> (io::Result<()>, Vec<u8>) {
    let mut off = 0;
    while off < buf.len() {
        let len = (buf.len() - off).min(u32::MAX as usize) as u32;
        let entry = opcode::Send::new(
            types::Fd(fd.as_raw_fd()),
            // SAFETY: `off < len()`, within the allocation.
            unsafe { buf.as_ptr().add(off) },
            len,
        )
        .flags(libc::MSG_NOSIGNAL)
        .build();
        // SAFETY: the entry points into `buf`, which goes with the op; `fd` is
        // borrowed for this future's life (see `recv`).
        let op = unsafe { Op::new(driver.clone(), entry, buf, |_, _| {}) };
        let (res, b) = op.await;
        buf = b;
        match result(res) {
            Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}
