//! Files. epoll cannot wait for regular files (they are always "ready"), so on this
//! backend every file operation runs on the blocking pool, as in Go (which parks an M
//! in the syscall) and tokio. On io_uring, `File::read_at`, `write_at` and `sync_all`
//! are native `READ`/`WRITE`/`FSYNC` operations (no thread); opening, metadata, the
//! path functions and the cursor-based `AsyncRead`/`AsyncWrite` still use the pool.
//!
//! [`File`] implements `futures::io::{AsyncRead, AsyncWrite, AsyncSeek}` with one
//! operation in flight at a time: a write is accepted into a buffer and performed in
//! the background (its error, if any, comes back from the next operation or `flush`);
//! a read fills an internal buffer from which the caller is served.

#![forbid(unsafe_code)]

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_io::{AsyncRead, AsyncSeek, AsyncWrite};

use crate::driver::uring;
use crate::Driver;
use gort_executor::task::JoinHandle;

/// Largest single read or write sent to the blocking pool, so one call does not hold
/// a blocking thread for a huge transfer (tokio uses 2 MiB; 64 KiB keeps the copy small).
const MAX_CHUNK: usize = 64 * 1024;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    gort_executor::spawn_blocking(f)
        .await
        .map_err(io::Error::from)?
}

/// The current runtime's driver when it runs io_uring (native file operations).
fn uring_driver() -> Option<Arc<Driver>> {
    Driver::current().ok().filter(|d| d.uring().is_some())
}

/// Reads a whole file.
///
/// # Errors
/// As `std::fs::read`.
///
/// # Cancel safety
/// Cancel safe: it changes nothing; a dropped call finishes on the blocking pool
/// and its result is discarded.
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::read(path)).await
}

/// Reads a whole file as UTF-8.
///
/// # Errors
/// As `std::fs::read_to_string`.
///
/// # Cancel safety
/// Cancel safe: it changes nothing; a dropped call finishes on the blocking pool
/// and its result is discarded.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::read_to_string(path)).await
}

/// Writes a whole file, creating or truncating it.
///
/// # Errors
/// As `std::fs::write`.
///
/// # Cancel safety
/// Dropping the future does not stop the operation: it runs to its end on the
/// blocking pool, and only its result is lost.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let (path, contents) = (path.as_ref().to_owned(), contents.as_ref().to_owned());
    blocking(move || std::fs::write(path, contents)).await
}

/// Creates a directory and its missing parents.
///
/// # Errors
/// As `std::fs::create_dir_all`.
///
/// # Cancel safety
/// Dropping the future does not stop the operation: it runs to its end on the
/// blocking pool, and only its result is lost.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::create_dir_all(path)).await
}

/// Removes a file.
///
/// # Errors
/// As `std::fs::remove_file`.
///
/// # Cancel safety
/// Dropping the future does not stop the operation: it runs to its end on the
/// blocking pool, and only its result is lost.
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::remove_file(path)).await
}

/// Renames a file or directory.
///
/// # Errors
/// As `std::fs::rename`.
///
/// # Cancel safety
/// Dropping the future does not stop the operation: it runs to its end on the
/// blocking pool, and only its result is lost.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to): (PathBuf, PathBuf) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    blocking(move || std::fs::rename(from, to)).await
}

/// Metadata of a path.
///
/// # Errors
/// As `std::fs::metadata`.
///
/// # Cancel safety
/// Cancel safe: it changes nothing; a dropped call finishes on the blocking pool
/// and its result is discarded.
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<std::fs::Metadata> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::metadata(path)).await
}

/// An open file.
pub struct File {
    std: Arc<std::fs::File>,
    state: State,
}

enum State {
    /// `buf` holds read-ahead bytes not yet returned (`pos` is the next one).
    Idle { buf: Vec<u8>, pos: usize },
    /// One operation on the blocking pool. `seek` is the position a seek in flight was
    /// asked for, so that the re-poll of the same `poll_seek` waits for it instead of
    /// seeking again.
    Busy {
        job: JoinHandle<(Op, Vec<u8>)>,
        seek: Option<SeekFrom>,
    },
}

enum Op {
    Read(io::Result<usize>),
    Write(io::Result<()>),
    Seek(io::Result<u64>),
}

/// What the operation that [`File::poll_idle`] waited for did.
enum Done {
    /// Nothing was in flight.
    Nothing,
    /// A read filled the buffer with this many bytes (0: end of file).
    Read(usize),
    Write,
    /// A seek moved the cursor here.
    Seek(u64),
}

/// First chunk of a large `read_at`: the buffer grows with the data that arrives, not
/// with the length asked for, so `read_at(usize::MAX, 0)` of a small file allocates
/// what the file holds.
const READ_AT_FIRST_CHUNK: usize = 1024 * 1024;

/// The largest chunk: under what one `read(2)`/`pread(2)` returns on Linux
/// (`MAX_RW_COUNT`, `INT_MAX` rounded down to a page: 2 GiB - 4 KiB with 4 KiB pages,
/// 2 GiB - 64 KiB with 64 KiB ones), so a full chunk is never mistaken for a short
/// read. The doubling from 1 MiB lands on it exactly.
const MAX_RW: usize = 1 << 30;

impl File {
    fn from_std(std: std::fs::File) -> File {
        File {
            std: Arc::new(std),
            state: State::Idle {
                buf: Vec::new(),
                pos: 0,
            },
        }
    }

    /// Opens a file for reading.
    ///
    /// # Errors
    /// As `std::fs::File::open`.
    ///
    /// # Cancel safety
    /// Cancel safe: a file opened after the future was dropped is closed again.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        blocking(move || std::fs::File::open(path))
            .await
            .map(File::from_std)
    }

    /// Creates (or truncates) a file for writing.
    ///
    /// # Errors
    /// As `std::fs::File::create`.
    ///
    /// # Cancel safety
    /// Dropping the future does not stop the open: the file may still be created (and
    /// truncated) on the blocking pool; the descriptor is then closed.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        blocking(move || std::fs::File::create(path))
            .await
            .map(File::from_std)
    }

    /// Reads up to `len` bytes at `offset` without moving the cursor; returns the bytes
    /// read (fewer than `len` at the end of the file, or when the kernel returns a
    /// short read, as `pread(2)` may on a pipe). Any `len` is accepted: the buffer
    /// grows with the data read (1 MiB first, then doubling), not with `len`.
    ///
    /// # Errors
    /// As `pread(2)`; `InvalidInput` when the offset passes `i64::MAX` (the kernel's
    /// limit; io_uring would read at the cursor instead); `OutOfMemory` when the
    /// buffer cannot grow (a `len` of `usize::MAX` on a file that never ends, such as
    /// `/dev/zero`, reads until then).
    ///
    /// # Cancel safety
    /// Cancel safe: it does not move the cursor.
    pub async fn read_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        let driver = uring_driver();
        let mut out = Vec::new();
        let mut chunk = len.min(READ_AT_FIRST_CHUNK);
        // A short read ends it: the end of the file (or, as with `pread(2)`, whatever
        // the kernel had at once: a pipe, some network filesystems).
        while chunk > 0 {
            let at = file_offset("File::read_at", offset, out.len())?;
            let (res, buf) = match &driver {
                Some(driver) => uring::read_at(driver, &self.std, out, chunk, at).await,
                None => {
                    let f = self.std.clone();
                    out.try_reserve(chunk).map_err(|_| {
                        io::Error::new(io::ErrorKind::OutOfMemory, "File::read_at: buffer")
                    })?;
                    gort_executor::spawn_blocking(move || {
                        let start = out.len();
                        out.resize(start + chunk, 0);
                        let res = f.read_at(&mut out[start..], at);
                        out.truncate(start + *res.as_ref().unwrap_or(&0));
                        (res, out)
                    })
                    .await
                    .map_err(io::Error::from)?
                }
            };
            out = buf;
            if res? < chunk {
                break;
            }
            chunk = (len - out.len()).min(out.len()).min(MAX_RW);
        }
        Ok(out)
    }

    /// Writes all of `data` at `offset` without moving the cursor.
    ///
    /// # Errors
    /// As `pwrite(2)`; `InvalidInput` when `offset + data.len()` passes `i64::MAX`.
    ///
    /// # Cancel safety
    /// If dropped, part of the data may have been written (on epoll the write
    /// completes in the background; on io_uring the remaining writes are cancelled).
    pub async fn write_at(&self, data: Vec<u8>, offset: u64) -> io::Result<()> {
        file_offset("File::write_at", offset, data.len())?;
        if let Some(driver) = uring_driver() {
            return uring::write_all_at(&driver, &self.std, data, offset).await;
        }
        let f = self.std.clone();
        blocking(move || f.write_all_at(&data, offset)).await
    }

    /// Flushes data and metadata to the device (`fsync`), after any buffered write.
    ///
    /// # Errors
    /// A pending write's error, or `fsync(2)`'s.
    ///
    /// # Cancel safety
    /// Dropping it does not stop an `fsync` already started (it completes in the
    /// background); the file stays usable.
    pub async fn sync_all(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_idle(cx)).await?;
        if let Some(driver) = uring_driver() {
            return uring::fsync(&driver, &self.std).await;
        }
        let f = self.std.clone();
        blocking(move || f.sync_all()).await
    }

    /// Metadata of the open file.
    ///
    /// # Errors
    /// As `fstat(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe: it changes nothing.
    pub async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        let f = self.std.clone();
        blocking(move || f.metadata()).await
    }

    /// Waits for the operation in flight and says what it did; surfaces its error (a
    /// background write's included). The file is idle afterwards whatever happened,
    /// also when the job itself failed (a panic, or a runtime shutting down).
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Done>> {
        let State::Busy { job, .. } = &mut self.state else {
            return Poll::Ready(Ok(Done::Nothing));
        };
        let joined = ready!(Pin::new(job).poll(cx));
        let (op, mut buf) = match joined {
            Ok(done) => done,
            Err(e) => {
                self.state = State::Idle {
                    buf: Vec::new(),
                    pos: 0,
                };
                return Poll::Ready(Err(io::Error::from(e)));
            }
        };
        // Only a read leaves bytes to serve; a write's or seek's buffer is spent.
        let res = match op {
            Op::Read(Ok(n)) => {
                buf.truncate(n);
                Ok(Done::Read(n))
            }
            Op::Read(Err(e)) | Op::Write(Err(e)) | Op::Seek(Err(e)) => {
                buf.clear();
                Err(e)
            }
            Op::Write(Ok(())) => {
                buf.clear();
                Ok(Done::Write)
            }
            Op::Seek(Ok(at)) => {
                buf.clear();
                Ok(Done::Seek(at))
            }
        };
        self.state = State::Idle { buf, pos: 0 };
        Poll::Ready(res)
    }

    /// Starts `op` on the blocking pool with the idle buffer; returns nothing (the
    /// caller polls it through [`poll_idle`](Self::poll_idle)).
    fn start(
        &mut self,
        seek: Option<SeekFrom>,
        op: impl FnOnce(&std::fs::File, Vec<u8>) -> (Op, Vec<u8>) + Send + 'static,
    ) {
        let buf = match &mut self.state {
            State::Idle { buf, .. } => std::mem::take(buf),
            State::Busy { .. } => unreachable!("an operation starts only on an idle file"),
        };
        let f = self.std.clone();
        let job = gort_executor::spawn_blocking(move || op(&f, buf));
        self.state = State::Busy { job, seek };
    }

    /// Read-ahead bytes the caller has not consumed.
    fn unread(&self) -> usize {
        match &self.state {
            State::Idle { buf, pos } => buf.len() - pos,
            State::Busy { .. } => 0,
        }
    }
}

use std::future::Future as _;

/// `offset + done` as a file offset, which the kernel caps at `i64::MAX`. Checked here
/// because io_uring reads `-1` (`u64::MAX`) as "at the cursor", which would move it.
fn file_offset(what: &str, offset: u64, done: usize) -> io::Result<u64> {
    offset
        .checked_add(done as u64)
        .filter(|&at| at <= i64::MAX as u64)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{what}: offset {offset} + {done} passes i64::MAX"),
            )
        })
}

fn invalid_seek() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "File::seek: the relative position overflows an i64",
    )
}

impl AsyncRead for File {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Done::Read(0) = ready!(self.poll_idle(cx))? {
                // The read in flight found the end of the file.
                return Poll::Ready(Ok(0));
            }
            if let State::Idle { buf, pos } = &mut self.state {
                if *pos < buf.len() {
                    let n = out.len().min(buf.len() - *pos);
                    out[..n].copy_from_slice(&buf[*pos..*pos + n]);
                    *pos += n;
                    return Poll::Ready(Ok(n));
                }
            }
            if out.is_empty() {
                return Poll::Ready(Ok(0));
            }
            // Nothing buffered: read ahead on the blocking pool, then poll it (it may
            // already be done) through `poll_idle`, which serves or surfaces its error.
            let want = out.len().min(MAX_CHUNK);
            self.start(None, move |f, mut buf| {
                buf.clear();
                buf.resize(want, 0);
                let mut f = f;
                let res = f.read(&mut buf);
                (Op::Read(res), buf)
            });
        }
    }
}

impl AsyncWrite for File {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_idle(cx))?;
        // Read-ahead bytes the caller never saw: move the cursor back over them.
        let unread = self.unread() as i64;
        let n = data.len().min(MAX_CHUNK);
        let mut buf = match &mut self.state {
            State::Idle { buf, .. } => std::mem::take(buf),
            State::Busy { .. } => unreachable!("poll_idle leaves the file idle"),
        };
        buf.clear();
        buf.extend_from_slice(&data[..n]);
        self.start(None, move |mut f, _spent| {
            let res = (|| {
                if unread > 0 {
                    f.seek(SeekFrom::Current(-unread))?;
                }
                f.write_all(&buf)
            })();
            (Op::Write(res), buf)
        });
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_idle(cx).map_ok(|_| ())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for File {
    /// Seeks once per call: the re-polls of a pending call wait for its seek (a call
    /// whose future was dropped mid-seek and a new call with the same `pos` share that
    /// seek, which moved the cursor exactly once).
    fn poll_seek(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        loop {
            let ours = matches!(&self.state, State::Busy { seek: Some(p), .. } if *p == pos);
            let done = ready!(self.poll_idle(cx));
            if ours {
                return Poll::Ready(done.map(|d| match d {
                    Done::Seek(at) => at,
                    _ => unreachable!("a seek job returns Op::Seek"),
                }));
            }
            done?;
            // Relative seeks count from what the caller has consumed, not the read-ahead.
            let unread = self.unread() as i64;
            let target = match pos {
                SeekFrom::Current(d) => {
                    SeekFrom::Current(d.checked_sub(unread).ok_or_else(invalid_seek)?)
                }
                other => other,
            };
            self.start(Some(pos), move |mut f, buf| (Op::Seek(f.seek(target)), buf));
        }
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("std", &self.std).finish()
    }
}
