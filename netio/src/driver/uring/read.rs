//! `READ` at an offset into a new buffer (`File::read_at` on io_uring).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{opcode, types};

use super::{result, Op};
use crate::driver::Driver;

/// Reads up to `len` bytes at `offset`.
pub(crate) async fn read_at(
    driver: &Arc<Driver>,
    file: &Arc<std::fs::File>,
    len: usize,
    offset: u64,
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(len);
    let entry = opcode::Read::new(
        types::Fd(file.as_raw_fd()),
        buf.as_mut_ptr(),
        len.min(u32::MAX as usize) as u32,
    )
    .offset(offset)
    .build();
    // SAFETY: the op keeps the buffer and the file (so its fd stays open) until the
    // kernel is done with them.
    let op = unsafe { Op::new(driver.clone(), entry, (buf, file.clone()), |_, _| {}) };
    let (res, (mut buf, _)) = op.await;
    let n = result(res)?;
    // SAFETY: the kernel wrote `n <= len` bytes.
    unsafe { buf.set_len(n) };
    Ok(buf)
}
