//! The one seam between the scheduler and what wakes tasks from outside it: [`Reactor`].
//!
//! The executor knows nothing about I/O. Whatever turns sockets and timers into
//! wake-ups (gort's reactor, in `gort-netio`) plugs in through this trait, and through
//! nothing else:
//!
//! - **How workers sleep.** [`Reactor::parker`] makes each worker's [`Park`]; a worker
//!   with nothing to run parks there, so a sleeping worker is also the one watching for
//!   events.
//! - **Who watches while nobody sleeps.** Busy workers look at the reactor between
//!   tasks (every 61 scheduler ticks), but a worker stuck inside one poll looks at
//!   nothing, and when every worker is stuck nobody would. The monitor reads
//!   [`Reactor::turns`] every tick; when it has not moved for [`REACTOR_UNWATCHED`]
//!   it turns the reactor itself with [`Reactor::poll_now`], which never blocks. The
//!   tasks that wakes land in the injector (the monitor is not a worker), and the
//!   monitor's hand-off rule then moves a stuck P to a fresh thread, so they run. This
//!   is Go's sysmon, which polls the network when nobody has for 10 ms.
//! - **Submissions that must not wait.** A reactor may batch work that workers queue
//!   (io_uring submits queued entries when the worker parks). [`Reactor::flush_stale`]
//!   is called every monitor tick, so an entry queued by a worker that then computes
//!   for a second reaches the kernel within two ticks.
//!
//! The monitor runs whenever a reactor is attached.
//! - **What the deadlock check and the trace need.** [`Reactor::may_wake`] says
//!   whether a registered timer or socket may still wake a task (then nothing is
//!   deadlocked); [`Reactor::trace`] adds its counters to `schedtrace` lines.
//! - **Timers for the primitives below it.** [`Reactor::add_timer`] and
//!   [`Reactor::cancel_timer`] let a `sync::Context` deadline wake its waiter on the
//!   runtime's own timers. `sync` sits below the scheduler, so it finds the calling
//!   thread's reactor through `reactor::current`, a lookup the scheduler installs when it
//!   starts its first runtime.
//!
//! [`Handle::reactor`](crate::runtime::Handle::reactor) finds the runtime's reactor,
//! as its concrete type, from any thread of the runtime.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::park::Park;

/// How long the reactor may go unturned before the monitor turns it. Go's sysmon uses
/// 10 ms. It bounds how late a timer or a socket is noticed while every worker is stuck
/// in a poll (a worker sleeping in the reactor notices at once; a busy one every 61
/// ticks). Measured with `cargo bench --bench blocking_ticker` (a 10 ms ticker beside a
/// task blocking its only worker for 1 s): with 10 ms the worst gap was 11-27 ms and
/// the monitor turned the reactor 0-3 times per blocked second, mostly once (after
/// the first turn the hand-off thread watches); with 2 ms the worst gaps were the same, 16-27 ms (the hand-off
/// threshold and the new thread's start dominate), for 3-4 turns. Under 10 s of echo
/// load with nothing blocking, the monitor turned it 0-1 times.
pub const REACTOR_UNWATCHED: Duration = Duration::from_millis(10);

/// An event source that workers park in and the monitor watches. See the module docs.
///
/// # Contract
/// - `parker(i)` is called once per worker at build time.
/// - `turns` grows whenever any thread turns the reactor (waits in it or polls it).
/// - `poll_now` and `flush_stale` never block and may be called from any thread.
/// - A task woken from `poll_now` is scheduled like any wake-up from a thread outside
///   the runtime (the injector).
pub trait Reactor: Send + Sync + 'static {
    /// The parker of worker `index`.
    ///
    /// # Errors
    /// When the parker cannot be made (the runtime then fails to build).
    fn parker(&self, index: usize) -> io::Result<Box<dyn Park>>;

    /// Times any thread turned the reactor; only compared between two readings.
    fn turns(&self) -> u64 {
        0
    }

    /// Turns the reactor once without blocking, unless another thread is in it:
    /// dispatch what happened, fire due timers. True when it turned.
    fn poll_now(&self) -> bool {
        false
    }

    /// Gets work submitted that workers queued and left waiting since the previous
    /// call with no submission in between (the monitor calls it every tick).
    fn flush_stale(&self) {}

    /// Whether a timer or an I/O source is registered that may still wake a task.
    fn may_wake(&self) -> bool {
        false
    }

    /// Text appended to every `GORT_DEBUG=schedtrace` line.
    fn trace(&self) -> String {
        String::new()
    }

    /// Wakes `waker` once, at `when`, if this reactor keeps timers; `None` when it does
    /// not (the caller then needs another clock). A timer that is due fires at the
    /// reactor's next turn.
    fn add_timer(&self, when: Instant, waker: Waker) -> Option<TimerId> {
        let _ = (when, waker);
        None
    }

    /// Cancels a timer of [`add_timer`](Self::add_timer); nothing happens if it fired.
    fn cancel_timer(&self, id: TimerId) {
        let _ = id;
    }
}

/// Names a timer of [`Reactor::add_timer`]: its deadline and a number the reactor
/// chose to tell two timers with one deadline apart.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId {
    /// When it fires.
    pub when: Instant,
    /// The reactor's own sequence number.
    pub seq: u64,
}

type Lookup = fn() -> Option<Arc<dyn Reactor>>;

/// The scheduler's lookup of the calling thread's reactor; see [`current`].
static CURRENT: OnceLock<Lookup> = OnceLock::new();

/// The reactor of the runtime whose code the calling thread runs (a worker, or that
/// runtime's `block_on`), for the primitives below the scheduler that want its timers.
/// `None` elsewhere (a blocking-pool thread, a thread that only entered the runtime
/// with `Handle::enter`, which may outlive it) and before any runtime started.
#[cfg_attr(loom, allow(dead_code))]
pub(crate) fn current() -> Option<Arc<dyn Reactor>> {
    CURRENT.get().and_then(|lookup| lookup())
}

/// Called by the scheduler (once is enough; later calls change nothing).
pub(crate) fn install_lookup(lookup: Lookup) {
    let _ = CURRENT.set(lookup);
}

/// What the crate that provides a reactor adds to [`Builder`](crate::Builder) and
/// [`Runtime`](crate::Runtime), through their type parameter: the reactor's own knob
/// (which backend) and how to make it. The builder's other knobs are the executor's and
/// are declared once, there.
///
/// gort's facade is built on gort-netio's (`gort::Builder` is
/// `gort_executor::Builder<gort_netio::Io>`, `gort::Runtime` likewise); the executor on
/// its own uses [`NoReactor`], whose workers park on a condition variable.
pub trait Extension: Default + Send + 'static {
    /// The reactor it makes.
    type Reactor: Reactor;
    /// Names a backend of the reactor: what [`Builder::driver`](crate::Builder::driver)
    /// forces and [`Runtime::driver`](crate::Runtime::driver) reports.
    type Driver: Copy + fmt::Debug + Eq + Send + Sync + 'static;

    /// Forces the backend (otherwise the extension chooses).
    fn set_driver(&mut self, driver: Self::Driver);

    /// Makes the reactor, once per [`Builder::build`](crate::Builder::build), unless
    /// `Builder::reactor` or `Builder::park_with` replaced it. `None`: workers park on a
    /// [`ThreadParker`](crate::park::ThreadParker).
    ///
    /// # Errors
    /// When the reactor cannot start; the build then fails with this error.
    fn build(&mut self) -> io::Result<Option<Arc<Self::Reactor>>>;

    /// The backend `reactor` runs.
    fn driver(reactor: &Self::Reactor) -> Self::Driver;
}

/// The executor's own [`Extension`]: no reactor, workers park on a
/// [`ThreadParker`](crate::park::ThreadParker).
#[derive(Copy, Clone, Debug, Default)]
pub struct NoReactor;

/// The reactor [`NoReactor`] makes: none (the type has no values).
#[derive(Debug)]
pub enum NeverReactor {}

impl Reactor for NeverReactor {
    fn parker(&self, _index: usize) -> io::Result<Box<dyn Park>> {
        match *self {}
    }
}

impl Extension for NoReactor {
    type Reactor = NeverReactor;
    type Driver = Infallible;

    fn set_driver(&mut self, driver: Infallible) {
        match driver {}
    }

    fn build(&mut self) -> io::Result<Option<Arc<NeverReactor>>> {
        Ok(None)
    }

    fn driver(reactor: &NeverReactor) -> Infallible {
        match *reactor {}
    }
}

/// [`Builder::park_with`](crate::Builder::park_with): a reactor that only makes
/// parkers (nothing to watch).
pub(crate) struct ParkWith<F>(pub(crate) F);

impl<F> Reactor for ParkWith<F>
where
    F: Fn(usize) -> io::Result<Box<dyn Park>> + Send + Sync + 'static,
{
    fn parker(&self, index: usize) -> io::Result<Box<dyn Park>> {
        (self.0)(index)
    }
}
