//! The io_uring backend: one ring shared by the workers, as the epoll instance is.
//!
//! # What goes through the ring
//!
//! - Readiness (`poll.rs`). A socket gets a *multishot* `POLL_ADD` for `POLLIN` the
//!   first time a task must wait to read it, and a one-shot `POLLOUT` each time a
//!   write found it full; the driver ORs each completion into the socket's readiness
//!   word exactly as it does with epoll events. So every borrowed-buffer operation
//!   (`read(&mut buf)`, `AsyncRead`, accept, connect, UDP) works the same on both
//!   backends, and registering costs nothing until a task waits.
//! - Native operations ([`Op`], one file each: `recv.rs`, `send.rs`, `read.rs`,
//!   `write.rs`, `fsync.rs`): `RECV`/`SEND` for the owned-buffer API
//!   (`read_owned`, `write_all_owned`) and `READ`/`WRITE`/`FSYNC` for files. They are
//!   queued, not submitted: the worker submits everything it queued in one
//!   `io_uring_enter` when it next parks (at the latest every 61 scheduler ticks, when
//!   a busy worker looks at the driver), and reaps completions from the shared
//!   completion queue without a system call while it runs. A worker that queues an
//!   entry and then computes for long does not hold it back: every monitor tick,
//!   entries that were already waiting at the previous tick ([`Uring::take_stale`])
//!   are submitted: by the worker blocked in the ring, which the monitor wakes so that
//!   it re-enters the kernel (the requests are then that worker's, and their task work
//!   wakes a thread that waits for completions anyway), or by the monitor itself when
//!   no worker is in the ring. An armed read reaches the kernel within two monitor
//!   ticks (`net_read_armed_before_a_long_computation_completes_on_the_idle_worker`).
//! - Wake-ups: an `eventfd` with one `READ` in flight; another thread writes the
//!   eventfd to end the holder's wait.
//!
//! Every `user_data` is a [`Token`](super::token::Token): kind, slab key and the
//! generation of the entry it was made for, so a completion for an operation or a
//! poll whose slot was freed and reused is recognised and dropped.
//!
//! # Completions and task work
//!
//! The kernel finishes a request (a poll firing, a `RECV` copying data) as *task work*
//! of the thread that submitted it, and posts the completion only then. By default it
//! interrupts that thread at once (an IPI when it runs): measured on echo, that cost
//! half of the server's CPU. The ring is set up with `COOP_TASKRUN | TASKRUN_FLAG`:
//! no interrupt. A sleeping submitter is still woken (its condition variable or
//! `io_uring_enter` wait restarts transparently); a running one runs the work at its
//! next return to user mode, which the scheduler's timer tick guarantees within a tick
//! even for a thread that computes without system calls
//! (`net_read_completes_while_the_thread_that_armed_it_computes`); and a busy worker's
//! look at the driver enters the kernel when the ring's `TASKRUN` flag says work is
//! pending. (On a `nohz_full` CPU running one thread there is no tick: completions
//! owed to a thread computing there wait for its next system call.)
//!
//! # Cancel safety
//!
//! An [`Op`] owns what the kernel reads or writes (buffer, file descriptor's owner).
//! Dropped before its completion, it moves them into the driver's slot for the
//! operation, queues an `ASYNC_CANCEL` and submits at once, so the kernel has resolved
//! the file descriptor before the caller can close it. The buffer is freed, or the
//! bytes a late `RECV` received are stashed for the socket's next read, only when the
//! completion arrives. Ops orphaned when the driver itself is dropped are leaked, not
//! freed: the kernel may still write into them while the ring shuts down.
//!
//! Requests also die with the thread that submitted them (`ECANCELED` when a retired
//! hand-off thread or a `block_on` thread exits). The driver keeps each op's entry and
//! submits it again then; the entry and an op's own cancel are both queued under the
//! ops lock, so a cancel always follows the resubmission. Polls end the same way and
//! are re-armed by the next task that waits.
//!
//! # Why not per-worker rings with `SINGLE_ISSUER`/`DEFER_TASKRUN`
//!
//! Work stealing moves a task, and with it its socket, to whichever worker is free;
//! with per-worker rings the socket's operations would complete on a ring whose owner
//! may be busy. One ring, whose waiting side the sleeping worker holds (see
//! `driver/mod.rs`), keeps the parking protocol of the epoll backend. `SINGLE_ISSUER`
//! and `DEFER_TASKRUN` need one submitting thread, which a shared ring is not.

use std::cell::UnsafeCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use io_uring::{opcode, squeue, types, IoUring, Probe};
use slab::Slab;

use super::token::{Generations, Kind, Token};
use super::{lock, Driver};

mod fsync;
mod poll;
mod read;
mod recv;
mod send;
mod write;

pub(crate) use fsync::fsync;
pub(crate) use poll::{dispatch_poll, poll_entry, poll_remove_entry};
pub(crate) use read::read_at;
pub(crate) use recv::recv;
pub(crate) use send::send_all;
pub(crate) use write::write_all_at;

/// `user_data` of completions nobody waits for (cancellations, poll removals).
pub(crate) const IGNORE: u64 = Token(Kind::Ignore as u64).0;

/// How long a submission that must happen now keeps trying while the kernel refuses
/// for a passing reason (`EAGAIN`: out of memory for requests; `EBUSY`: completions
/// overflowed and must be reaped first). After that the entries stay queued for the
/// next turn, as every other submission does.
pub(crate) const SUBMIT_PATIENCE: Duration = Duration::from_secs(1);

/// Submission queue size; the completion queue is twice that.
const SQ_ENTRIES: u32 = 4096;

/// The opcodes this backend uses, checked with `IORING_REGISTER_PROBE` at start.
const OPCODES: [(u8, &str); 9] = [
    (opcode::PollAdd::CODE, "POLL_ADD"),
    (opcode::PollRemove::CODE, "POLL_REMOVE"),
    (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
    (opcode::Read::CODE, "READ"),
    (opcode::Write::CODE, "WRITE"),
    (opcode::Recv::CODE, "RECV"),
    (opcode::Send::CODE, "SEND"),
    (opcode::Fsync::CODE, "FSYNC"),
    (opcode::Nop::CODE, "NOP"),
];

/// One operation's slot in the driver, with the generation its `user_data` carries.
struct OpSlot {
    generation: u32,
    state: OpState,
}

/// The operations in flight.
#[derive(Default)]
struct Ops {
    slab: Slab<OpSlot>,
    generations: Generations,
}

impl Ops {
    /// The slot a completion with `token` belongs to, if it is still that operation's.
    fn get_mut(&mut self, token: Token) -> Option<&mut OpState> {
        let slot = self.slab.get_mut(token.key())?;
        (slot.generation == token.generation()).then_some(&mut slot.state)
    }
}

/// What an operation is waiting for.
enum OpState {
    /// In flight; the waker of the task awaiting it, and the entry (to submit again
    /// if the kernel cancels it because the thread that submitted it exited).
    Waiting(Option<Waker>, squeue::Entry),
    /// Completed with this result; its future has not looked yet.
    Done(i32),
    /// Its future was dropped: run this with the result, then free the slot.
    Orphaned(Box<dyn FnOnce(i32) + Send>),
}

pub(crate) struct Uring {
    ring: IoUring,
    /// Serialises pushes to the submission queue (any thread may push).
    /// Holds the number of entries pushed so far (which, less the queue's length, is
    /// how many the kernel has taken: see `submit_now`).
    sq_lock: Mutex<u64>,
    /// Entries pushed since the last `io_uring_enter`.
    unsubmitted: AtomicBool,
    /// Submissions so far (each `io_uring_enter` that submits), for [`take_stale`].
    ///
    /// [`take_stale`]: Self::take_stale
    submits: AtomicU64,
    /// `take_stale`'s reading at its last call: `submits << 1 | entries waiting`.
    stale_probe: AtomicU64,
    eventfd: OwnedFd,
    /// Where the eventfd `READ` writes. Freed at drop only once the kernel has
    /// completed that read (cancelled); leaked if it never does.
    wake_buf: std::mem::ManuallyDrop<Box<WakeBuf>>,
    ops: Mutex<Ops>,
    /// The waiting side: completions taken from the queue, dispatched by the holder.
    /// Its lock is the driver's holder lock on this backend (only the holder reads the
    /// completion queue).
    pub(crate) reaped: Mutex<Vec<(u64, i32, u32)>>,
    /// Test hook: `submit_now` refuses this many times with `refuse_errno`, as the
    /// kernel would (see `Driver::refuse_next_submits`).
    refuse_submits: AtomicU64,
    refuse_errno: AtomicU64,
}

/// The kernel writes the eventfd counter here.
struct WakeBuf(UnsafeCell<u64>);
// SAFETY: only the kernel writes it, and nobody reads it.
unsafe impl Sync for WakeBuf {}

fn unsupported(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, what)
}

impl Uring {
    /// Sets up a ring and checks the features and opcodes the backend relies on.
    ///
    /// # Errors
    /// `Unsupported` naming what is missing; the kernel's error when it refuses the
    /// ring (`ENOSYS` on old kernels, `EPERM` under seccomp or `io_uring_disabled`,
    /// `ENOMEM` under a small memlock limit).
    pub(crate) fn new() -> io::Result<Uring> {
        let ring = IoUring::builder()
            .setup_cqsize(SQ_ENTRIES * 2)
            .setup_clamp()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .build(SQ_ENTRIES)?;
        let p = ring.params();
        for (ok, what) in [
            (
                p.is_feature_ext_arg(),
                "EXT_ARG (a timeout on the wait, Linux 5.11)",
            ),
            (p.is_feature_nodrop(), "NODROP (Linux 5.5)"),
            (p.is_feature_fast_poll(), "FAST_POLL (Linux 5.7)"),
            // Multishot poll came with 5.13, as resource tagging did.
            (
                p.is_feature_resource_tagging(),
                "multishot poll (Linux 5.13)",
            ),
        ] {
            if !ok {
                return Err(unsupported(format!("io_uring lacks {what}")));
            }
        }
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in OPCODES {
            if !probe.is_supported(code) {
                return Err(unsupported(format!("io_uring lacks the {name} operation")));
            }
        }
        // Blocking, so the ring's READ waits for a write (a non-blocking eventfd could
        // complete the READ with EAGAIN at once). A writer never blocks: the counter
        // would have to reach 2^64 - 2.
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        let eventfd = unsafe { OwnedFd::from_raw_fd(fd) };
        let uring = Uring {
            ring,
            sq_lock: Mutex::new(0),
            unsubmitted: AtomicBool::new(false),
            submits: AtomicU64::new(0),
            stale_probe: AtomicU64::new(0),
            eventfd,
            wake_buf: std::mem::ManuallyDrop::new(Box::new(WakeBuf(UnsafeCell::new(0)))),
            ops: Mutex::new(Ops::default()),
            reaped: Mutex::new(Vec::new()),
            refuse_submits: AtomicU64::new(0),
            refuse_errno: AtomicU64::new(0),
        };
        uring.arm_wake();
        // One round trip proves the ring works (a seccomp filter may allow setup but
        // refuse io_uring_enter).
        uring.push(&opcode::Nop::new().build().user_data(IGNORE));
        uring.ring.submit_and_wait(1)?;
        Ok(uring)
    }

    /// Queues `entry` (submitted at the next `flush` or turn).
    pub(crate) fn push(&self, entry: &squeue::Entry) {
        let mut pushed = lock(&self.sq_lock);
        loop {
            // SAFETY: `sq_lock` makes this the only live view of the submission queue.
            let mut sq = unsafe { self.ring.submission_shared() };
            // SAFETY: every entry's buffers are owned by an `Op` or the driver until its
            // completion (see `Op`).
            if unsafe { sq.push(entry) }.is_ok() {
                *pushed += 1;
                break;
            }
            drop(sq);
            // Full: submit what is queued to make room.
            self.count_submit();
            if self.ring.submit().is_err() {
                std::thread::yield_now();
            }
        }
        self.unsubmitted.store(true, Ordering::Release);
    }

    /// Queues `entry` if the submission queue has room; false when it is full.
    fn try_push(&self, entry: &squeue::Entry) -> bool {
        let mut count = lock(&self.sq_lock);
        // SAFETY: `sq_lock` makes this the only live view of the submission queue.
        let mut sq = unsafe { self.ring.submission_shared() };
        // SAFETY: the entries pushed this way (cancellations) point at no memory.
        let pushed = unsafe { sq.push(entry) }.is_ok();
        drop(sq);
        if pushed {
            *count += 1;
            self.unsubmitted.store(true, Ordering::Release);
        }
        pushed
    }

    /// Submits at once when the caller is not a worker (see [`queue`](Self::queue)).
    pub(crate) fn kick_if_not_worker(&self) {
        if !gort_executor::runtime::is_worker_thread() {
            // Refused: still queued and flagged, for the holder's next turn.
            let _ = self.submit_now();
        }
    }

    /// Queues `entry`; submits at once when the caller is not a worker (a worker
    /// submits when it parks; `block_on` or a plain thread would not).
    pub(crate) fn queue(&self, entry: &squeue::Entry) {
        self.push(entry);
        self.kick_if_not_worker();
    }

    /// Submits what was queued, without waiting.
    pub(crate) fn flush(&self) {
        // A load first: parks call this, and usually nothing is queued (no write to
        // the shared cache line then).
        if self.has_unsubmitted() && self.unsubmitted.swap(false, Ordering::AcqRel) {
            self.count_submit();
            let _ = self.ring.submit();
        }
    }

    /// The monitor, every tick: whether entries have been waiting since its previous
    /// call with no submission at all in between (a worker queued them and went on
    /// computing instead of parking). A busy worker that submits its batches itself
    /// never trips it. The caller gets them submitted (`Driver::flush_stale`).
    pub(crate) fn take_stale(&self) -> bool {
        let pending = self.has_unsubmitted();
        let probe = (self.submits.load(Ordering::Relaxed) << 1) | u64::from(pending);
        let prev = self.stale_probe.swap(probe, Ordering::Relaxed);
        pending && prev == probe
    }

    /// Counts one submitting `io_uring_enter`.
    fn count_submit(&self) {
        self.submits.fetch_add(1, Ordering::Relaxed);
    }

    /// Submits now, whoever else may be about to. `Ok` when the kernel took at least
    /// what was queued at the call; otherwise the entries stay queued and flagged, for
    /// the next flush or turn (so a refusal loses nothing), and the error says why.
    /// [`Driver::submit_now`](crate::driver::Driver::submit_now) retries the passing
    /// refusals for callers that must know the kernel has the entries.
    pub(crate) fn submit_now(&self) -> io::Result<()> {
        // Everything pushed so far must end up taken by the kernel (by this call, or
        // by another thread's submission meanwhile).
        let target = *lock(&self.sq_lock);
        self.unsubmitted.swap(false, Ordering::SeqCst);
        self.count_submit();
        let res = loop {
            let refused = self
                .refuse_submits
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok();
            let submitted = if refused {
                let errno = self.refuse_errno.load(Ordering::Acquire) as i32;
                Err(io::Error::from_raw_os_error(errno))
            } else {
                self.ring.submit()
            };
            match submitted {
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Ok(_) if self.taken() >= target => break Ok(()),
                // The kernel stopped short (it could not allocate a request).
                Ok(_) => break Err(io::Error::from_raw_os_error(libc::EAGAIN)),
                Err(e) => break Err(e),
            }
        };
        if res.is_err() {
            self.unsubmitted.store(true, Ordering::Release);
        }
        res
    }

    /// How many entries the kernel has taken from the submission queue so far.
    fn taken(&self) -> u64 {
        let pushed = lock(&self.sq_lock);
        // SAFETY: `sq_lock` makes this the only live view of the submission queue.
        let sq = unsafe { self.ring.submission_shared() };
        // The view writes its tail back when dropped: it must drop before the lock
        // does. (A temporary view in a block's tail expression outlives the guard, and
        // its stale tail then overwrites a concurrent push's: entries lost, old ones
        // submitted again with freed buffers. That happened once.)
        let queued = sq.len() as u64;
        drop(sq);
        *pushed - queued
    }

    /// Test hook: the next `n` calls of [`submit_now`](Self::submit_now) are refused
    /// with `errno` without reaching the kernel.
    pub(crate) fn refuse_next_submits(&self, n: u64, errno: i32) {
        self.refuse_errno.store(errno as u64, Ordering::Release);
        self.refuse_submits.store(n, Ordering::Release);
    }

    /// Whether a refused submission is worth retrying (see [`SUBMIT_PATIENCE`]).
    pub(crate) fn is_passing_refusal(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EBUSY))
    }

    /// Whether the kernel holds completions that only an `io_uring_enter` posts:
    /// task work (`TASKRUN_FLAG`) or completions that overflowed the queue (`NODROP`).
    pub(crate) fn taskrun_pending(&self) -> bool {
        // The view writes its tail back when dropped: hold the lock like a push.
        let _g = lock(&self.sq_lock);
        // SAFETY: `sq_lock` makes this the only live view of the submission queue.
        let sq = unsafe { self.ring.submission_shared() };
        sq.taskrun() || sq.cq_overflow()
    }

    /// Whether entries wait to be submitted.
    pub(crate) fn has_unsubmitted(&self) -> bool {
        self.unsubmitted.load(Ordering::Acquire)
    }

    fn arm_wake(&self) {
        let e = opcode::Read::new(
            types::Fd(self.eventfd.as_raw_fd()),
            self.wake_buf.0.get().cast::<u8>(),
            8,
        )
        .build()
        .user_data(Token::WAKE.0);
        self.push(&e);
    }

    /// Ends the holder's wait from another thread.
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full counter
        // (EAGAIN) means a wake-up is pending anyway.
        let _ = unsafe {
            libc::write(
                self.eventfd.as_raw_fd(),
                (&raw const one).cast::<libc::c_void>(),
                8,
            )
        };
    }

    /// Submits what is queued and waits for one completion, at most `timeout`
    /// (`None`: no limit; `Some(0)`: don't wait). Completions already waiting end it
    /// at once.
    pub(crate) fn enter(&self, timeout: Option<Duration>) {
        // A swap, not a store: it orders the tail read below after it, so an entry a
        // worker pushed before setting the flag is either in this submission or its
        // flag survives for the worker's own flush.
        if self.unsubmitted.swap(false, Ordering::SeqCst) {
            self.count_submit();
        }
        // SAFETY: only the driver's holder touches the completion queue.
        let ready = !unsafe { self.ring.completion_shared() }.is_empty();
        let submitter = self.ring.submitter();
        // ETIME (timeout), EINTR, EBUSY: the caller reaps what there is and loops.
        let _ = match timeout {
            _ if ready => submitter.submit(),
            Some(d) if d.is_zero() => submitter.submit(),
            Some(d) => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                submitter.submit_with_args(1, &args)
            }
            None => submitter.submit_and_wait(1),
        };
    }

    /// Takes the waiting completions into `out` as `(user_data, result, flags)`.
    pub(crate) fn reap(&self, out: &mut Vec<(u64, i32, u32)>) {
        // SAFETY: only the driver's holder touches the completion queue.
        let cq = unsafe { self.ring.completion_shared() };
        out.extend(cq.map(|c| (c.user_data(), c.result(), c.flags())));
    }

    /// Handles one completion of an operation or of the wake-up read.
    pub(crate) fn complete(&self, token: Token, result: i32) {
        match token.kind() {
            Some(Kind::Wake) => self.arm_wake(),
            Some(Kind::Op) => {
                let mut ops = lock(&self.ops);
                // A completion for a slot since freed and reused: not this op's.
                let Some(slot) = ops.get_mut(token) else {
                    return;
                };
                if result == -libc::ECANCELED {
                    if let OpState::Waiting(_, entry) = slot {
                        // Nobody cancelled it but the kernel: requests die with the
                        // thread that submitted them (a retired hand-off thread, a
                        // `block_on` thread). Nothing was transferred; submit again
                        // (`net_owned_read_outlives_the_thread_that_submitted_it`).
                        // Pushed under the `ops` lock, so a cancel from the op's drop
                        // (also pushed under it) can only come after it in the queue.
                        self.push(entry);
                        drop(ops);
                        self.kick_if_not_worker();
                        return;
                    }
                }
                match std::mem::replace(slot, OpState::Done(result)) {
                    OpState::Waiting(w, _) => {
                        drop(ops);
                        if let Some(w) = w {
                            w.wake();
                        }
                    }
                    OpState::Orphaned(f) => {
                        ops.slab.remove(token.key());
                        drop(ops);
                        f(result);
                    }
                    OpState::Done(_) => {}
                }
            }
            _ => {}
        }
    }

    /// Operations in flight.
    pub(crate) fn num_ops(&self) -> usize {
        lock(&self.ops).slab.len()
    }
}

impl Uring {
    /// Whether an operation is still in the kernel's hands.
    fn orphans_in_flight(&self) -> bool {
        lock(&self.ops)
            .slab
            .iter()
            .any(|(_, slot)| !matches!(slot.state, OpState::Done(_)))
    }
}

/// How long a dropped ring waits for the kernel to let go of the memory its operations
/// point to (cancelled orphans, the wake-up read) before leaking what is left.
const DRAIN_AT_DROP: Duration = Duration::from_secs(1);

impl Drop for Uring {
    /// Nothing the kernel may still write is freed, and nothing else leaks: every
    /// operation still in flight (only orphans are: a live `Op` keeps the driver
    /// alive) and the wake-up read are cancelled, and completions are reaped until
    /// each has arrived, at most [`DRAIN_AT_DROP`]. Orphans' clean-ups run as usual
    /// (their buffers and files are freed). What the kernel still holds after that is
    /// leaked rather than freed under it.
    fn drop(&mut self) {
        let in_flight: Vec<Token> = lock(&self.ops)
            .slab
            .iter()
            .filter(|(_, slot)| !matches!(slot.state, OpState::Done(_)))
            .map(|(key, slot)| Token::new(Kind::Op, key, slot.generation))
            .collect();
        // Cancellations go in as the submission queue has room, between reaps (pushing
        // them all first could wait forever on a full queue that only reaping frees).
        let mut cancels = in_flight
            .into_iter()
            .chain([Token::WAKE])
            .map(|t| opcode::AsyncCancel::new(t.0).build().user_data(IGNORE))
            .peekable();
        let deadline = std::time::Instant::now() + DRAIN_AT_DROP;
        let mut wake_read_live = true;
        let mut cqes = Vec::new();
        while wake_read_live || self.orphans_in_flight() {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            while let Some(cancel) = cancels.peek() {
                if !self.try_push(cancel) {
                    break;
                }
                cancels.next();
            }
            let ts = types::Timespec::from((deadline - now).min(Duration::from_millis(50)));
            let args = types::SubmitArgs::new().timespec(&ts);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                // A timeout, a signal, completions to reap first, the kernel short of
                // memory, completions lost to an overflow: look again (the deadline
                // bounds it).
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN | libc::EBADR)
                    ) => {}
                // The ring does not work (a probe that failed): the kernel holds
                // nothing of ours that waiting would get back.
                Err(_) => break,
            }
            self.reap(&mut cqes);
            for (user_data, res, _) in cqes.drain(..) {
                let token = Token(user_data);
                match token.kind() {
                    Some(Kind::Wake) => wake_read_live = false,
                    // An orphan: `complete` runs its clean-up and frees the slot.
                    Some(Kind::Op) => self.complete(token, res),
                    _ => {}
                }
            }
        }
        if self.orphans_in_flight() {
            // The kernel did not let go in time: leak rather than free under it.
            std::mem::forget(std::mem::take(&mut *lock(&self.ops)));
        }
        if !wake_read_live {
            // SAFETY: the kernel completed the read that pointed into the buffer, and
            // nothing uses `wake_buf` after this.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.wake_buf) };
        }
    }
}

/// A native operation's result as `io::Result`.
pub(crate) fn result(res: i32) -> io::Result<usize> {
    if res < 0 {
        Err(io::Error::from_raw_os_error(-res))
    } else {
        Ok(res as usize)
    }
}

/// One native operation: `entry` is submitted on first poll; the future resolves to the
/// kernel's result (`-errno` on failure) and `keep`, which owns everything the entry
/// points to. If the future is dropped first, `keep` goes to the driver and
/// `on_orphan(keep, result)` runs when the completion arrives.
pub(crate) struct Op<K: Send + Unpin + 'static> {
    driver: Arc<Driver>,
    entry: Option<squeue::Entry>,
    /// Its `user_data` once submitted.
    token: Option<Token>,
    keep: Option<K>,
    on_orphan: fn(K, i32),
}

impl<K: Send + Unpin + 'static> Op<K> {
    /// # Safety
    /// Every pointer in `entry` must point into memory owned by `keep` (heap memory
    /// that does not move with it) or live longer than the driver, and every file
    /// descriptor in it must stay open until this future is polled or dropped.
    pub(crate) unsafe fn new(
        driver: Arc<Driver>,
        entry: squeue::Entry,
        keep: K,
        on_orphan: fn(K, i32),
    ) -> Op<K> {
        Op {
            driver,
            entry: Some(entry),
            token: None,
            keep: Some(keep),
            on_orphan,
        }
    }
}

impl<K: Send + Unpin + 'static> Future for Op<K> {
    type Output = (i32, K);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<(i32, K)> {
        let this = self.get_mut();
        let uring = this.driver.uring().expect("Op on an io_uring driver");
        gort_executor::task::set_wait_reason(gort_executor::task::WaitReason::Io);
        let Some(token) = this.token else {
            let mut ops = lock(&uring.ops);
            let generation = ops.generations.next();
            let slot = ops.slab.vacant_entry();
            let token = Token::new(Kind::Op, slot.key(), generation);
            let entry = (this.entry.take().expect("submitted once")).user_data(token.0);
            slot.insert(OpSlot {
                generation,
                state: OpState::Waiting(Some(cx.waker().clone()), entry.clone()),
            });
            drop(ops);
            uring.queue(&entry);
            this.token = Some(token);
            return Poll::Pending;
        };
        let mut ops = lock(&uring.ops);
        let state = ops
            .get_mut(token)
            .expect("an op's slot lives until its future");
        match state {
            OpState::Done(res) => {
                let res = *res;
                ops.slab.remove(token.key());
                this.token = None;
                Poll::Ready((res, this.keep.take().expect("completes once")))
            }
            OpState::Waiting(w, _) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
                Poll::Pending
            }
            OpState::Orphaned(_) => unreachable!("an op's own future is alive"),
        }
    }
}

impl<K: Send + Unpin + 'static> Drop for Op<K> {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let Some(uring) = self.driver.uring() else {
            return;
        };
        let keep = self.keep.take().expect("kept until completion");
        let on_orphan = self.on_orphan;
        let mut ops = lock(&uring.ops);
        let state = ops
            .get_mut(token)
            .expect("an op's slot lives until its future");
        match std::mem::replace(state, OpState::Done(0)) {
            OpState::Done(res) => {
                ops.slab.remove(token.key());
                drop(ops);
                on_orphan(keep, res);
            }
            OpState::Waiting(..) => {
                *state = OpState::Orphaned(Box::new(move |res| on_orphan(keep, res)));
                // Pushed under the `ops` lock: it follows any resubmission of this op.
                // The generation in its target keeps it from cancelling a later op
                // that reuses the slot.
                let cancel = opcode::AsyncCancel::new(token.0).build().user_data(IGNORE);
                uring.push(&cancel);
                drop(ops);
                // Submit now, so the kernel has taken its reference to the file before
                // the caller may close the descriptor.
                self.driver.submit_now();
            }
            OpState::Orphaned(_) => unreachable!("orphaned once"),
        }
    }
}
