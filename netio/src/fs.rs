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
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::read(path)).await
}

/// Reads a whole file as UTF-8.
///
/// # Errors
/// As `std::fs::read_to_string`.
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::read_to_string(path)).await
}

/// Writes a whole file, creating or truncating it.
///
/// # Errors
/// As `std::fs::write`.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let (path, contents) = (path.as_ref().to_owned(), contents.as_ref().to_owned());
    blocking(move || std::fs::write(path, contents)).await
}

/// Creates a directory and its missing parents.
///
/// # Errors
/// As `std::fs::create_dir_all`.
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::create_dir_all(path)).await
}

/// Removes a file.
///
/// # Errors
/// As `std::fs::remove_file`.
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    blocking(move || std::fs::remove_file(path)).await
}

/// Renames a file or directory.
///
/// # Errors
/// As `std::fs::rename`.
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to): (PathBuf, PathBuf) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    blocking(move || std::fs::rename(from, to)).await
}

/// Metadata of a path.
///
/// # Errors
/// As `std::fs::metadata`.
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
    Idle {
        buf: Vec<u8>,
        pos: usize,
    },
    Busy(JoinHandle<(Op, Vec<u8>)>),
}

enum Op {
    Read(io::Result<usize>),
    Write(io::Result<()>),
    Seek(io::Result<u64>),
}

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
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref().to_owned();
        blocking(move || std::fs::File::create(path))
            .await
            .map(File::from_std)
    }

    /// Reads at `offset` without moving the cursor; returns the bytes read.
    ///
    /// # Errors
    /// As `pread(2)`.
    ///
    /// # Cancel safety
    /// Cancel safe: it does not move the cursor.
    pub async fn read_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        if let Some(driver) = uring_driver() {
            return uring::read_at(&driver, &self.std, len, offset).await;
        }
        let f = self.std.clone();
        blocking(move || {
            let mut buf = vec![0u8; len];
            let n = f.read_at(&mut buf, offset)?;
            buf.truncate(n);
            Ok(buf)
        })
        .await
    }

    /// Writes all of `data` at `offset` without moving the cursor.
    ///
    /// # Errors
    /// As `pwrite(2)`.
    ///
    /// # Cancel safety
    /// If dropped, part of the data may have been written (on epoll the write
    /// completes in the background; on io_uring the remaining writes are cancelled).
    pub async fn write_at(&self, data: Vec<u8>, offset: u64) -> io::Result<()> {
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
    pub async fn metadata(&self) -> io::Result<std::fs::Metadata> {
        let f = self.std.clone();
        blocking(move || f.metadata()).await
    }

    /// Waits for the operation in flight; surfaces a background write's error.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let State::Busy(job) = &mut self.state else {
            return Poll::Ready(Ok(()));
        };
        let (op, mut buf) = ready!(Pin::new(job).poll(cx)).map_err(io::Error::from)?;
        // Only a read leaves bytes to serve; a write's or seek's buffer is spent.
        let res = match op {
            Op::Read(Ok(n)) => {
                buf.truncate(n);
                Ok(())
            }
            Op::Read(Err(e)) | Op::Write(Err(e)) | Op::Seek(Err(e)) => {
                buf.clear();
                Err(e)
            }
            Op::Write(Ok(())) | Op::Seek(Ok(_)) => {
                buf.clear();
                Ok(())
            }
        };
        self.state = State::Idle { buf, pos: 0 };
        Poll::Ready(res)
    }
}

use std::future::Future as _;

impl AsyncRead for File {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_idle(cx))?;
            let State::Idle { buf, pos } = &mut self.state else {
                unreachable!("poll_idle leaves the file idle");
            };
            if *pos < buf.len() {
                let n = out.len().min(buf.len() - *pos);
                out[..n].copy_from_slice(&buf[*pos..*pos + n]);
                *pos += n;
                return Poll::Ready(Ok(n));
            }
            // Nothing buffered: read ahead on the blocking pool.
            let mut buf = std::mem::take(buf);
            let want = out.len().clamp(1, MAX_CHUNK);
            buf.clear();
            buf.resize(want, 0);
            let f = self.std.clone();
            let job = gort_executor::spawn_blocking(move || {
                let res = (&*f).read(&mut buf);
                (Op::Read(res), buf)
            });
            self.state = State::Busy(job);
            // Loop: poll the job now (it may already be done) and serve from it.
            if let State::Busy(job) = &mut self.state {
                let (op, buf) = ready!(Pin::new(job).poll(cx)).map_err(io::Error::from)?;
                let n = match op {
                    Op::Read(res) => res?,
                    _ => unreachable!("a read job returns Op::Read"),
                };
                let mut buf = buf;
                buf.truncate(n);
                self.state = State::Idle { buf, pos: 0 };
                if n == 0 {
                    return Poll::Ready(Ok(0));
                }
            }
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
        let State::Idle { buf, pos } = &mut self.state else {
            unreachable!("poll_idle leaves the file idle");
        };
        // Read-ahead bytes the caller never saw: move the cursor back over them.
        let unread = (buf.len() - *pos) as i64;
        let mut buf = std::mem::take(buf);
        let n = data.len().min(MAX_CHUNK);
        buf.clear();
        buf.extend_from_slice(&data[..n]);
        let f = self.std.clone();
        self.state = State::Busy(gort_executor::spawn_blocking(move || {
            let res = (|| {
                if unread > 0 {
                    (&*f).seek(SeekFrom::Current(-unread))?;
                }
                (&*f).write_all(&buf)
            })();
            (Op::Write(res), buf)
        }));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_idle(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for File {
    fn poll_seek(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        ready!(self.poll_idle(cx))?;
        let State::Idle { buf, pos: read_pos } = &mut self.state else {
            unreachable!("poll_idle leaves the file idle");
        };
        // Relative seeks count from what the caller has consumed, not the read-ahead.
        let unread = (buf.len() - *read_pos) as i64;
        let pos = match pos {
            SeekFrom::Current(d) => SeekFrom::Current(d - unread),
            other => other,
        };
        let buf = std::mem::take(buf);
        let f = self.std.clone();
        let job = gort_executor::spawn_blocking(move || ((Op::Seek((&*f).seek(pos))), buf));
        self.state = State::Busy(job);
        let State::Busy(job) = &mut self.state else {
            unreachable!("just set");
        };
        let (op, mut buf) = ready!(Pin::new(job).poll(cx)).map_err(io::Error::from)?;
        buf.clear();
        self.state = State::Idle { buf, pos: 0 };
        match op {
            Op::Seek(res) => Poll::Ready(res),
            _ => unreachable!("a seek job returns Op::Seek"),
        }
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File").field("std", &self.std).finish()
    }
}
