//! `READ` at an offset into a buffer's spare capacity (`File::read_at` on io_uring).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{opcode, types};

use super::{result, Op};
use crate::driver::Driver;

/// Reads up to `want` bytes at `offset`, appended to `buf` (which it grows by `want`
/// first); returns the number read and the buffer.
pub(crate) async fn read_at(
    driver: &Arc<Driver>,
    file: &Arc<std::fs::File>,
    mut buf: Vec<u8>,
    want: usize,
    offset: u64,
) -> (io::Result<usize>, Vec<u8>) {
    let want = want.min(u32::MAX as usize);
    if buf.try_reserve(want).is_err() {
        let e = io::Error::new(io::ErrorKind::OutOfMemory, "File::read_at: buffer");
        return (Err(e), buf);
    }
    let start = buf.len();
    // The spare capacity after the data: `want` bytes of it, reserved above.
    let spare = buf.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    let entry = opcode::Read::new(types::Fd(file.as_raw_fd()), spare, want as u32)
        .offset(offset)
        .build();
    // SAFETY: the op keeps the buffer (its heap block does not move when the `Vec`
    // does) and the file (so its fd stays open) until the kernel is done with them.
    let op = unsafe { Op::new(driver.clone(), entry, (buf, file.clone()), |_, _| {}) };
    let (res, (mut buf, _)) = op.await;
    match result(res) {
        Ok(n) => {
            // SAFETY: the kernel wrote `n <= want` bytes after `start`.
            unsafe { buf.set_len(start + n) };
            (Ok(n), buf)
        }
        Err(e) => (Err(e), buf),
    }
}
