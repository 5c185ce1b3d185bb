//! `WRITE` of a whole owned buffer at an offset (`File::write_at` on io_uring).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{opcode, types};

use super::{result, Op};
use crate::driver::Driver;

/// Writes all of `data` at `offset`, one `WRITE` per partial write.
pub(crate) async fn write_all_at(
    driver: &Arc<Driver>,
    file: &Arc<std::fs::File>,
    data: Vec<u8>,
    offset: u64,
) -> io::Result<()> {
    let mut keep = (data, file.clone());
    let mut done = 0;
    while done < keep.0.len() {
        let len = (keep.0.len() - done).min(u32::MAX as usize) as u32;
        let entry = opcode::Write::new(
            types::Fd(file.as_raw_fd()),
            // SAFETY: `done < len()`, within the allocation.
            unsafe { keep.0.as_ptr().add(done) },
            len,
        )
        .offset(offset + done as u64)
        .build();
        // SAFETY: the op keeps the buffer and the file until the kernel is done.
        let op = unsafe { Op::new(driver.clone(), entry, keep, |_, _| {}) };
        let (res, k) = op.await;
        keep = k;
        match result(res) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
