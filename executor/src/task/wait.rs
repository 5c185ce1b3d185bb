//! Why a task is waiting, for `dump()` and the deadlock report.
//!
//! The leaf futures record a reason in a thread-local when they return `Pending`; the
//! poller (a worker polling a task, `block_on`) clears it before the poll and reads it
//! after. The thread-local has no destructor, so it works at any time, also while the
//! thread's other thread-locals are destroyed. [`BLOCKING_CALLERS`] counts the plain
//! threads inside a blocking channel call, which no task-level reason can show.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::AtomicUsize;

std::thread_local! {
    /// What the future being polled on this thread waits for (a `WaitReason` as `u8`).
    static WAIT_REASON: Cell<u8> = const { Cell::new(0) };
}

/// Threads currently inside `send_blocking`/`recv_blocking`: while any is, the
/// runtime is not deadlocked whatever its tasks wait for.
pub(crate) static BLOCKING_CALLERS: AtomicUsize = AtomicUsize::new(0);

/// Replaces the current poll's wait reason; returns the previous one.
pub(crate) fn replace_wait_reason(r: u8) -> u8 {
    WAIT_REASON.try_with(|c| c.replace(r)).unwrap_or(0)
}

/// What a parked task waits for. gort's own futures record it when they return
/// `Pending` ([`set_wait_reason`]); a task parked on anything else shows `Other`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum WaitReason {
    /// Not recorded: a future outside gort (or not parked).
    Other = 0,
    /// A channel `recv`.
    ChanRecv,
    /// A channel `send`.
    ChanSend,
    /// A `select!` with no ready branch.
    Select,
    /// A `Mutex`, `RwLock`, `Semaphore` or `OnceCell` initialisation.
    Lock,
    /// `Notify::notified()`.
    Notify,
    /// `WaitGroup::wait()`.
    WaitGroup,
    /// `Barrier::wait()`.
    Barrier,
    /// `Context::done()` (with no deadline).
    Context,
    /// A `JoinHandle`.
    Join,
    /// A timer: `sleep`, `timeout`, `interval`, or a context deadline.
    Timer,
    /// Socket readiness.
    Io,
    /// A channel that plain threads also use (`send_blocking`/`recv_blocking`): a
    /// thread outside the runtime may wake it.
    ChanExternal,
    /// A Unix signal (`gort::signal`).
    Signal,
}

const ALL: [WaitReason; 14] = [
    WaitReason::Other,
    WaitReason::ChanRecv,
    WaitReason::ChanSend,
    WaitReason::Select,
    WaitReason::Lock,
    WaitReason::Notify,
    WaitReason::WaitGroup,
    WaitReason::Barrier,
    WaitReason::Context,
    WaitReason::Join,
    WaitReason::Timer,
    WaitReason::Io,
    WaitReason::ChanExternal,
    WaitReason::Signal,
];

impl WaitReason {
    pub(crate) fn from_u8(v: u8) -> WaitReason {
        ALL.get(usize::from(v))
            .copied()
            .unwrap_or(WaitReason::Other)
    }

    /// Only another task of the runtime can end this wait (so if every task waits
    /// like this, nothing ever will).
    pub fn only_tasks_can_wake(self) -> bool {
        matches!(
            self,
            WaitReason::ChanRecv
                | WaitReason::ChanSend
                | WaitReason::Select
                | WaitReason::Lock
                | WaitReason::Notify
                | WaitReason::WaitGroup
                | WaitReason::Barrier
                | WaitReason::Context
                | WaitReason::Join
        )
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitReason::Other => "waiting",
            WaitReason::ChanRecv => "chan receive",
            WaitReason::ChanSend => "chan send",
            WaitReason::Select => "select",
            WaitReason::Lock => "Mutex/RwLock/Semaphore lock",
            WaitReason::Notify => "Notify wait",
            WaitReason::WaitGroup => "WaitGroup wait",
            WaitReason::Barrier => "Barrier wait",
            WaitReason::Context => "Context done",
            WaitReason::Join => "JoinHandle await",
            WaitReason::Timer => "timer",
            WaitReason::Io => "I/O wait",
            WaitReason::ChanExternal => "chan (shared with threads)",
            WaitReason::Signal => "signal",
        })
    }
}

/// Records what the future being polled on this thread waits for; call it when
/// returning `Pending`. The last call of a poll wins. For gort's leaf futures and for
/// layers built on gort (the reactor uses it for timers and sockets).
pub fn set_wait_reason(reason: WaitReason) {
    replace_wait_reason(reason as u8);
}

/// The reason recorded so far in the current poll.
pub fn current_wait_reason() -> WaitReason {
    WaitReason::from_u8(WAIT_REASON.try_with(Cell::get).unwrap_or(0))
}
