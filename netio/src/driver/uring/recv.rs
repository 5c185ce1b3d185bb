//! `RECV` into an owned buffer's spare capacity (`TcpStream::read_owned` on io_uring).
//!
//! Cancel safety beyond [`Op`]'s: a `RECV` whose future was dropped may still
//! complete with bytes. They go to the socket's stash, and until every such orphaned
//! read has completed, a new read waits (`ScheduledIo::poll_orphans`), so the stash is
//! served first and no byte is lost or reordered
//! (`net_dropped_owned_reads_lose_no_bytes_and_leak_no_fds`).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;

use io_uring::{opcode, types};

use super::{result, Op};
use crate::driver::{Driver, ScheduledIo};

/// Receives into `buf`'s spare capacity (which must not be empty), appending.
pub(crate) async fn recv(
    driver: &Arc<Driver>,
    fd: BorrowedFd<'_>,
    io: &Arc<ScheduledIo>,
    mut buf: Vec<u8>,
) -> (io::Result<usize>, Vec<u8>) {
    let start = buf.len();
    let spare = buf.capacity() - start;
    let entry = opcode::Recv::new(
        types::Fd(fd.as_raw_fd()),
        // SAFETY: `start <= capacity`, so the pointer stays within the allocation.
        unsafe { buf.as_mut_ptr().add(start) },
        spare.min(u32::MAX as usize) as u32,
    )
    .build();
    let keep = (buf, io.clone(), start);
    // SAFETY: the entry points into `keep.0`'s heap allocation, which the op keeps
    // until the completion; `fd` is borrowed for this future's life, and a dropped op
    // submits its cancellation before returning, so the kernel holds the file first.
    let mut op = std::pin::pin!(unsafe { Op::new(driver.clone(), entry, keep, stash_late_read) });
    // Declared after `op` (a local, not an await temporary), so dropped before it:
    // counts the orphan before `op`'s drop may resolve it.
    let mut orphan = OrphanGuard(io, true);
    let (res, (mut buf, _, _)) = op.as_mut().await;
    orphan.1 = false;
    let res = result(res);
    if let Ok(n) = res {
        // SAFETY: the kernel wrote `n` bytes after `start`, within the capacity.
        unsafe { buf.set_len(start + n) };
    }
    (res, buf)
}

/// A `RECV` completed after its future was dropped: keep the bytes for the next read.
fn stash_late_read((mut buf, io, start): (Vec<u8>, Arc<ScheduledIo>, usize), res: i32) {
    if res > 0 {
        // SAFETY: the kernel wrote `res` bytes after `start`, within the capacity.
        unsafe { buf.set_len(start + res as usize) };
    }
    io.orphan_read_done(&buf[start..]);
}

/// Marks a read as orphaned when the future holding it is dropped mid-flight.
struct OrphanGuard<'a>(&'a ScheduledIo, bool);

impl Drop for OrphanGuard<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.orphan_read();
        }
    }
}
