//! Readiness through the ring: the poll entries a socket's waiters arm, and what a poll
//! completion does to its source.

use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, squeue, types};

use super::IGNORE;
use crate::driver::io as rd;
use crate::driver::token::{Kind, Token};
use crate::driver::Sources;

/// Readiness bits of a poll completion's `revents`.
fn ready_bits(revents: u32) -> usize {
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

/// The `user_data` of source `source`'s read (multishot) or write (one-shot) poll.
fn poll_token(source: Token, write: bool) -> Token {
    source.with_kind(if write { Kind::WritePoll } else { Kind::Source })
}

/// The poll entry for `source`: multishot `POLLIN | POLLRDHUP` for reads (armed once,
/// kept), one-shot `POLLOUT` for writes (armed when a write found the socket full: a
/// multishot `POLLOUT` would post a completion for every ACK that frees send-buffer
/// space, which epoll coalesces and io_uring does not).
pub(crate) fn poll_entry(fd: RawFd, source: Token, write: bool) -> squeue::Entry {
    let (mask, multi) = if write {
        (libc::POLLOUT as u32, false)
    } else {
        ((libc::POLLIN | libc::POLLRDHUP) as u32, true)
    };
    opcode::PollAdd::new(types::Fd(fd), mask)
        .multi(multi)
        .build()
        .user_data(poll_token(source, write).0)
}

/// The entry that removes `source`'s read or write poll.
pub(crate) fn poll_remove_entry(source: Token, write: bool) -> squeue::Entry {
    opcode::PollRemove::new(poll_token(source, write).0)
        .build()
        .user_data(IGNORE)
}

/// A poll completion (`token` of kind `Source` or `WritePoll`): record the readiness,
/// and free a deregistered source once its last poll is gone.
pub(crate) fn dispatch_poll(sources: &mut Sources, token: Token, res: i32, flags: u32) {
    let write = token.kind() == Some(Kind::WritePoll);
    let last = !cqueue::more(flags);
    let Some(s) = sources.get_mut(token) else {
        return; // a poll of a source whose slot was freed and reused
    };
    if last {
        if write {
            s.write_armed = false;
        } else {
            s.read_armed = false;
        }
    }
    if s.removing {
        if !s.read_armed && !s.write_armed {
            sources.remove(token);
        }
        return;
    }
    let bits = if res >= 0 { ready_bits(res as u32) } else { 0 };
    // A poll that ended without a readiness bit (an error, or a multishot poll ended
    // by a completion queue overflow): let the waiters try again, which re-arms it if
    // they still need to wait.
    let retry = if last && bits == 0 {
        if write {
            rd::WRITABLE
        } else {
            rd::READABLE
        }
    } else {
        0
    };
    s.io.set_ready(bits | retry);
}
