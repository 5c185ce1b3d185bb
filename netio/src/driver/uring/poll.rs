//! Readiness through the ring: the poll entries a socket's waiters arm, and how a
//! poll completion's `revents` become readiness bits.

use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, squeue, types};

use super::TAG_IGNORE;
use super::TAG_POLL;
use crate::driver::io as rd;

/// Readiness bits of a poll completion's `revents`.
pub(crate) fn ready_bits(revents: u32) -> usize {
    let ev = revents as libc::c_short;
    let mut bits = 0;
    if ev & libc::POLLIN != 0 {
        bits |= rd::READABLE;
    }
    if ev & libc::POLLOUT != 0 {
        bits |= rd::WRITABLE;
    }
    if ev & libc::POLLRDHUP != 0 {
        bits |= rd::READ_CLOSED;
    }
    if ev & libc::POLLHUP != 0 {
        bits |= rd::READ_CLOSED | rd::WRITE_CLOSED;
    }
    if ev & libc::POLLERR != 0 {
        bits |= rd::ERROR;
    }
    bits
}

/// Bit of a poll's `user_data` marking the one-shot write poll (clear: the multishot
/// read poll).
pub(crate) const POLL_WRITE: u64 = 1 << 2;

fn poll_user_data(key: usize, write: bool) -> u64 {
    ((key as u64) << 3) | if write { POLL_WRITE } else { 0 } | TAG_POLL
}

/// The poll entry for source `key`: multishot `POLLIN | POLLRDHUP` for reads (armed
/// once, kept), one-shot `POLLOUT` for writes (armed when a write found the socket
/// full: a multishot `POLLOUT` would post a completion for every ACK that frees
/// send-buffer space, which epoll coalesces and io_uring does not).
pub(crate) fn poll_entry(fd: RawFd, key: usize, write: bool) -> squeue::Entry {
    let (mask, multi) = if write {
        (libc::POLLOUT as u32, false)
    } else {
        ((libc::POLLIN | libc::POLLRDHUP) as u32, true)
    };
    opcode::PollAdd::new(types::Fd(fd), mask)
        .multi(multi)
        .build()
        .user_data(poll_user_data(key, write))
}

/// The entry that removes source `key`'s read or write poll.
pub(crate) fn poll_remove_entry(key: usize, write: bool) -> squeue::Entry {
    opcode::PollRemove::new(poll_user_data(key, write))
        .build()
        .user_data(TAG_IGNORE)
}

/// Whether a poll completion is its request's last.
pub(crate) fn is_last(flags: u32) -> bool {
    !cqueue::more(flags)
}
