//! One codec for everything the kernel hands back to the driver: epoll event tokens and
//! io_uring `user_data`.
//!
//! ```text
//!  63              32 31                  3 2    0
//! +------------------+---------------------+------+
//! |    generation    |         key         | kind |
//! +------------------+---------------------+------+
//! ```
//!
//! `key` is a slab index (a registered source, or an io_uring operation), and slab
//! indices are reused as soon as an entry is removed. An event that the kernel already
//! reported for the old entry (an `epoll_wait` batch being dispatched while another
//! thread deregisters the socket; a completion racing a cancellation) would otherwise
//! land on whatever took the index next. Every entry therefore records the generation
//! it was created with, and an event whose generation differs from its entry's is
//! dropped. Generations count registrations (32 bits): a stale event would need 2^32
//! registrations in the same slot while it is in flight to be mistaken.

#![forbid(unsafe_code)]

/// What a token belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// The driver's own wake-up (epoll's `mio::Waker`, io_uring's eventfd read).
    Wake = 0,
    /// A registered source: its epoll events, or its io_uring read poll.
    Source = 1,
    /// io_uring: a source's one-shot write poll.
    WritePoll = 2,
    /// io_uring: a native operation (`Op`).
    Op = 3,
    /// io_uring: a completion nobody waits for (a cancellation, a poll removal).
    Ignore = 4,
}

const KIND_BITS: u32 = 3;
const KIND_MASK: u64 = (1 << KIND_BITS) - 1;
/// Keys above this do not fit (half a billion live sources or operations).
pub(crate) const MAX_KEY: usize = (1 << (32 - KIND_BITS)) - 1;

/// An encoded token; see the module docs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) u64);

// mio tokens are `usize`: the layout needs 64 of them.
const _: () = assert!(usize::BITS >= 64, "gort's driver needs a 64-bit target");

impl Token {
    /// The driver's wake-up: all zero, which no generation (they start at 1) produces.
    pub(crate) const WAKE: Token = Token(0);

    pub(crate) fn new(kind: Kind, key: usize, generation: u32) -> Token {
        debug_assert!(key <= MAX_KEY, "slab key {key} does not fit a token");
        Token(
            (u64::from(generation) << 32)
                | (((key as u64) << KIND_BITS) & 0xFFFF_FFFF)
                | kind as u64,
        )
    }

    /// The kind, or `None` for bits no encoder writes.
    pub(crate) fn kind(self) -> Option<Kind> {
        Some(match self.0 & KIND_MASK {
            0 => Kind::Wake,
            1 => Kind::Source,
            2 => Kind::WritePoll,
            3 => Kind::Op,
            4 => Kind::Ignore,
            _ => return None,
        })
    }

    pub(crate) fn key(self) -> usize {
        ((self.0 & 0xFFFF_FFFF) >> KIND_BITS) as usize
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The same entry seen as another kind (a source's write poll).
    pub(crate) fn with_kind(self, kind: Kind) -> Token {
        Token((self.0 & !KIND_MASK) | kind as u64)
    }

    pub(crate) fn mio(self) -> mio::Token {
        mio::Token(self.0 as usize)
    }

    pub(crate) fn from_mio(t: mio::Token) -> Token {
        Token(t.0 as u64)
    }
}

/// Hands out generations: 1, 2, ... wrapping past `u32::MAX` to 1 (0 is the wake-up's).
#[derive(Debug, Default)]
pub(crate) struct Generations(u32);

impl Generations {
    pub(crate) fn next(&mut self) -> u32 {
        self.0 = self.0.checked_add(1).unwrap_or(1);
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_token_round_trips_and_separates_generations() {
        for (kind, key, generation) in [
            (Kind::Source, 0, 1),
            (Kind::WritePoll, 12345, u32::MAX),
            (Kind::Op, MAX_KEY, 7),
            (Kind::Ignore, 1, 2),
        ] {
            let t = Token::new(kind, key, generation);
            assert_eq!(t.kind(), Some(kind));
            assert_eq!(t.key(), key);
            assert_eq!(t.generation(), generation);
            assert_eq!(Token::from_mio(t.mio()), t);
            assert_ne!(t, Token::WAKE);
        }
        let a = Token::new(Kind::Source, 5, 1);
        let b = Token::new(Kind::Source, 5, 2);
        assert_eq!(a.key(), b.key());
        assert_ne!(a, b);
        assert_eq!(a.with_kind(Kind::WritePoll).kind(), Some(Kind::WritePoll));
        assert_eq!(a.with_kind(Kind::WritePoll).generation(), 1);
        assert_eq!(Token::WAKE.kind(), Some(Kind::Wake));
        let mut g = Generations(u32::MAX - 1);
        assert_eq!((g.next(), g.next(), g.next()), (u32::MAX, 1, 2));
    }
}
