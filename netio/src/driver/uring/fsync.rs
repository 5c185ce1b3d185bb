//! `FSYNC` (`File::sync_all` on io_uring).

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use io_uring::{opcode, types};

use super::{result, Op};
use crate::driver::Driver;

/// Flushes the file's data and metadata to the device.
pub(crate) async fn fsync(driver: &Arc<Driver>, file: &Arc<std::fs::File>) -> io::Result<()> {
    let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd())).build();
    // SAFETY: the op keeps the file open until the kernel is done with it.
    let op = unsafe { Op::new(driver.clone(), entry, file.clone(), |_, _| {}) };
    result(op.await.0).map(drop)
}
