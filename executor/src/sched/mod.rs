//! The scheduler: Go's P, M and G in Rust.
//!
//! - `handle.rs`: the scheduler's [`Handle`](handle::Handle), which the runtime layer
//!   re-exports and extends; how a woken task finds a queue; the blocking tasks'
//!   scheduler.
//! - `current.rs`: the thread's current runtime and worker state.
//! - `worker.rs`: the P (`Core`: local queue, LIFO slot, parker) and the M loop that runs
//!   it; the runtime-wide `Shared` state.
//! - `queue.rs`: the lock-free local run queue (one owner, many thieves).
//! - `inject.rs`: the global injector.
//! - `idle.rs`: the searching/parked accounting that decides whom to wake.
//! - `slot.rs`: where an M lends its P during a poll or a park, with distinct owner
//!   and thief (monitor) ends.

pub(crate) mod current;
pub(crate) mod handle;
pub(crate) mod idle;
pub(crate) mod inject;
pub(crate) mod queue;
mod slot;
pub(crate) mod worker;

#[cfg(all(test, loom))]
mod loom_tests;

/// A small, fast, non-cryptographic generator (xorshift64*) for picking steal victims.
#[derive(Debug)]
pub(crate) struct FastRand(u64);

impl FastRand {
    pub(crate) fn new(seed: u64) -> FastRand {
        // Mix the seed so consecutive worker indices give unrelated sequences; never 0.
        FastRand(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (Lemire's multiply-shift; `n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 32).wrapping_mul(n as u64) >> 32) as usize
    }
}
