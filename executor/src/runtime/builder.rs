//! `Builder`: how many workers, how many blocking threads, what threads are called, and
//! which reactor workers park in. Environment variables are read once, at `build()`,
//! like Go's.
//!
//! There is one builder. The reactor's knob (which backend) and how the reactor is made
//! come in through its type parameter, an [`Extension`]: `gort::Builder` is this type
//! with gort-netio's, not a wrapper that re-declares every knob.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use super::{monitor, Runtime};
use crate::blocking;
use crate::park::{Park, ThreadParker};
use crate::reactor::{Extension, NoReactor, ParkWith, Reactor};
use crate::sched::worker::AttachedReactor;
use crate::thread::{ThreadConfig, ThreadNameFn};

/// Go's default cap on threads is 10,000; tokio's blocking pool defaults to 512. Blocking
/// threads mostly sleep in syscalls, so hundreds are cheap; beyond that a program is
/// usually leaking work.
pub const DEFAULT_MAX_BLOCKING_THREADS: usize = 512;

/// How long an idle blocking thread waits for work before it exits (tokio: 10 s). Long
/// enough that a steady trickle of blocking calls reuses threads.
pub const DEFAULT_BLOCKING_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Most workers a runtime may have (Go caps `GOMAXPROCS` at 256 up to 1.9, tokio at
/// nothing; each worker is an OS thread and a 256-entry run queue).
pub const MAX_WORKERS: usize = 1024;

/// Most blocking-pool threads that may be asked for: more than Linux's usual
/// `threads-max` share for one process; beyond it a program is leaking work.
pub const MAX_BLOCKING_THREADS: usize = 100_000;

/// Smallest thread stack that may be asked for: below it the first deep poll
/// overflows (the OS's own minimum is 16 KiB).
pub const MIN_THREAD_STACK: usize = 64 * 1024;

/// Largest thread stack that may be asked for (Go's maximum goroutine stack).
pub const MAX_THREAD_STACK: usize = 1 << 30;

/// Environment variable: number of workers (Go's `GOMAXPROCS`).
pub const ENV_WORKERS: &str = "GORT_WORKERS";
/// Environment variable: cap on blocking-pool threads.
pub const ENV_MAX_BLOCKING: &str = "GORT_MAX_BLOCKING";
/// Environment variable: debugging knobs, Go's `GODEBUG` style, comma-separated:
/// `handoff=MS` (blocking threshold in ms, 0 = off), `schedtrace=MS` (print a scheduler
/// line every MS ms).
pub const ENV_DEBUG: &str = "GORT_DEBUG";

/// Configures and starts a [`Runtime`].
///
/// ```
/// let rt: gort_executor::Runtime = gort_executor::Runtime::builder()
///     .workers(2)
///     .thread_name("my-app")
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(async { 6 * 7 }), 42);
/// ```
pub struct Builder<E: Extension = NoReactor> {
    /// The reactor's knob and factory.
    ext: E,
    workers: Option<usize>,
    max_blocking_threads: Option<usize>,
    thread_name: ThreadNameFn,
    thread_stack_size: Option<usize>,
    keep_alive: Duration,
    reactor: Option<AttachedReactor>,
    blocking_threshold: Option<Duration>,
    deadlock_detection: bool,
}

impl<E: Extension> Default for Builder<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Extension + fmt::Debug> fmt::Debug for Builder<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("extension", &self.ext)
            // `reactor` or `park_with` replaced the extension's reactor.
            .field("custom_reactor", &self.reactor.is_some())
            .field("workers", &self.workers)
            .field("max_blocking_threads", &self.max_blocking_threads)
            .field("thread_stack_size", &self.thread_stack_size)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl<E: Extension> Builder<E> {
    /// A builder with the defaults: workers from `GORT_WORKERS` or the available cores,
    /// blocking threads from `GORT_MAX_BLOCKING` or 512, the extension's own defaults
    /// for the reactor.
    pub fn new() -> Self {
        Builder {
            ext: E::default(),
            workers: None,
            max_blocking_threads: None,
            thread_name: Arc::new(|| "gort-worker".to_owned()),
            thread_stack_size: None,
            keep_alive: DEFAULT_BLOCKING_KEEP_ALIVE,
            reactor: None,
            blocking_threshold: None,
            deadlock_detection: true,
        }
    }

    /// Number of worker threads (Ps), `1..=`[`MAX_WORKERS`]. Overrides `GORT_WORKERS`.
    /// Out of range, [`build`](Self::build) fails with `InvalidInput` naming the knob.
    pub fn workers(&mut self, n: usize) -> &mut Self {
        self.workers = Some(n);
        self
    }

    /// Cap on blocking-pool threads, `1..=`[`MAX_BLOCKING_THREADS`] (threads start
    /// only as needed). Overrides `GORT_MAX_BLOCKING`. Out of range,
    /// [`build`](Self::build) fails with `InvalidInput` naming the knob.
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Self {
        self.max_blocking_threads = Some(n);
        self
    }

    /// Name of every thread the runtime starts.
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Self {
        let name = name.into();
        self.thread_name = Arc::new(move || name.clone());
        self
    }

    /// Names threads with a function, e.g. to number them.
    pub fn thread_name_fn(&mut self, f: impl Fn() -> String + Send + Sync + 'static) -> &mut Self {
        self.thread_name = Arc::new(f);
        self
    }

    /// Stack size of every thread the runtime starts (the OS default otherwise),
    /// [`MIN_THREAD_STACK`]`..=`[`MAX_THREAD_STACK`]; out of range,
    /// [`build`](Self::build) fails with `InvalidInput`.
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.thread_stack_size = Some(bytes);
        self
    }

    /// How long an idle blocking thread lives (default 10 s). Any duration;
    /// `Duration::MAX` keeps idle threads for the runtime's life.
    pub fn thread_keep_alive(&mut self, d: Duration) -> &mut Self {
        self.keep_alive = d;
        self
    }

    /// How long a task poll may run, with other tasks waiting behind it, before the
    /// monitor moves its worker's queue, timers and I/O to a fresh thread (default
    /// 10 ms; `Duration::ZERO` turns hand-offs off). Otherwise at least the monitor's
    /// finest tick, 1 ms (below it, [`build`](Self::build) fails with `InvalidInput`);
    /// no upper bound. Overrides `GORT_DEBUG=handoff=`.
    pub fn blocking_threshold(&mut self, d: Duration) -> &mut Self {
        self.blocking_threshold = Some(d);
        self
    }

    /// Go's "all goroutines are asleep - deadlock!" (on by default): when every task and
    /// every `block_on` waits on something only another task could end, and nothing
    /// else (timers, sockets, blocking calls) is pending, `block_on` panics with the
    /// list of tasks, their spawn locations and what they wait for. Turn it off for
    /// programs whose plain threads wake tasks without going through gort's blocking
    /// calls.
    ///
    /// With several runtimes in one process, a task of one may wake a waiter of
    /// another, so a runtime is reported only while every other runtime is quiet too
    /// (shut down, or with nothing running, queued, pending in its reactor, or waiting
    /// on anything but tasks). A second runtime with an open listener or a pending
    /// timer therefore holds every report back: no false report, at the cost of a
    /// missed one.
    pub fn deadlock_detection(&mut self, on: bool) -> &mut Self {
        self.deadlock_detection = on;
        self
    }

    /// Forces the reactor's backend. Without it the extension chooses: gort's reads
    /// `GORT_DRIVER` (`uring` or `epoll`) and otherwise runs epoll (io_uring is opt-in
    /// today: see `gort_netio`'s crate docs for why). A forced io_uring is probed at
    /// start (features and opcodes), and [`build`](Self::build) fails with the reason
    /// when the kernel refuses it.
    pub fn driver(&mut self, driver: E::Driver) -> &mut Self {
        self.ext.set_driver(driver);
        self
    }

    /// A reactor of your own for workers to park in and the monitor to watch (see
    /// [`Reactor`]), instead of the extension's.
    /// [`Handle::reactor`](super::Handle::reactor) finds it again, as `R`, from any
    /// thread of the runtime. Replaces an earlier `reactor` or `park_with`.
    pub fn reactor<R: Reactor>(&mut self, reactor: Arc<R>) -> &mut Self {
        // Replaces the extension's reactor too: `Runtime::reactor` is then `None`.
        self.reactor = Some(AttachedReactor::new(reactor));
        self
    }

    /// How workers sleep, with nothing else to watch: `f(worker_index)` makes each
    /// worker's [`Park`]. Shorthand for a [`Reactor`] that only makes parkers; the
    /// default is a [`ThreadParker`] (a condition variable).
    pub fn park_with(
        &mut self,
        f: impl Fn(usize) -> io::Result<Box<dyn Park>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.reactor(Arc::new(ParkWith(f)))
    }

    /// Starts the runtime: its worker threads, and an (empty) blocking pool.
    ///
    /// # Errors
    /// `InvalidInput`, naming the knob and its range, when a knob is out of range, or
    /// when `GORT_WORKERS`, `GORT_MAX_BLOCKING` or `GORT_DEBUG` is set to something
    /// other than a value in range; the OS's error when a thread or parker cannot be
    /// created; the extension's when its reactor cannot start (gort's: `InvalidInput`
    /// for a bad `GORT_DRIVER`, why io_uring cannot start when it was forced, the
    /// kernel refusing the epoll descriptor).
    pub fn build(&mut self) -> io::Result<Runtime<E>> {
        let workers = match self.workers {
            Some(n) => in_range("Builder::workers", n, 1, MAX_WORKERS)?,
            None => env_count(ENV_WORKERS, MAX_WORKERS)?.unwrap_or_else(default_workers),
        };
        let max_blocking = match self.max_blocking_threads {
            Some(n) => in_range("Builder::max_blocking_threads", n, 1, MAX_BLOCKING_THREADS)?,
            None => env_count(ENV_MAX_BLOCKING, MAX_BLOCKING_THREADS)?
                .unwrap_or(DEFAULT_MAX_BLOCKING_THREADS),
        };
        if let Some(bytes) = self.thread_stack_size {
            in_range(
                "Builder::thread_stack_size",
                bytes,
                MIN_THREAD_STACK,
                MAX_THREAD_STACK,
            )?;
        }
        if let Some(d) = self.blocking_threshold {
            if !d.is_zero() && d < monitor::MONITOR_MIN_TICK {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "gort: Builder::blocking_threshold({d:?}) is out of range: expected \
                         Duration::ZERO (off) or at least {:?}",
                        monitor::MONITOR_MIN_TICK
                    ),
                ));
            }
        }
        // The extension's reactor, unless one of the caller's replaced it.
        let own = match self.reactor {
            Some(_) => None,
            None => self.ext.build()?,
        };
        let attached = match &self.reactor {
            Some(r) => Some(r.clone()),
            None => own.clone().map(AttachedReactor::new),
        };
        let parks = (0..workers)
            .map(|i| match &attached {
                Some(r) => r.reactor.parker(i),
                None => Ok(Box::new(ThreadParker::new()) as Box<dyn Park>),
            })
            .collect::<io::Result<Vec<_>>>()?;
        let threads = ThreadConfig {
            name: self.thread_name.clone(),
            stack_size: self.thread_stack_size,
        };
        let blocking = blocking::Config {
            max_threads: max_blocking,
            keep_alive: self.keep_alive,
            thread: threads.clone(),
        };
        let debug = match std::env::var_os(ENV_DEBUG) {
            Some(raw) => parse_debug(raw.to_str())?,
            None => Debug::default(),
        };
        let threshold = self
            .blocking_threshold
            .or(debug.handoff)
            .unwrap_or(monitor::DEFAULT_BLOCKING_THRESHOLD);
        let monitor = monitor::Config {
            threshold: (!threshold.is_zero()).then_some(threshold),
            schedtrace: debug.schedtrace,
            deadlock: self.deadlock_detection,
        };
        Runtime::start(parks, blocking, threads, monitor, attached, own)
    }
}

/// Available cores, honouring cgroup CPU quotas and affinity masks (which
/// `available_parallelism` reads on Linux), at most [`MAX_WORKERS`].
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
}

/// `n` if it is in `lo..=hi`; otherwise `InvalidInput` naming `knob`.
fn in_range(knob: &str, n: usize, lo: usize, hi: usize) -> io::Result<usize> {
    if (lo..=hi).contains(&n) {
        return Ok(n);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("gort: {knob}({n}) is out of range: expected {lo}..={hi}"),
    ))
}

/// Reads a count in `1..=max` from the environment. Unset or empty is `None`.
fn env_count(name: &str, max: usize) -> io::Result<Option<usize>> {
    let Some(raw) = std::env::var_os(name) else {
        return Ok(None);
    };
    parse_count(name, raw.to_str(), max)
}

pub(crate) fn parse_count(name: &str, raw: Option<&str>, max: usize) -> io::Result<Option<usize>> {
    let bad = |shown: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{name}={shown:?} is not valid: expected an integer in 1..={max}, such as {name}=4"
            ),
        )
    };
    let Some(text) = raw else {
        return Err(bad("<not UTF-8>"));
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    match trimmed.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(bad(text)),
    }
}

/// Settings from `GORT_DEBUG`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Debug {
    pub(crate) handoff: Option<Duration>,
    pub(crate) schedtrace: Option<Duration>,
}

pub(crate) fn parse_debug(raw: Option<&str>) -> io::Result<Debug> {
    let bad = |what: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ENV_DEBUG}: {what}; expected comma-separated settings such as {ENV_DEBUG}=schedtrace=1000,handoff=10"),
        )
    };
    let text = raw.ok_or_else(|| bad("not UTF-8".to_owned()))?;
    let mut debug = Debug::default();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| bad(format!("{item:?} has no value")))?;
        let ms: u64 = value
            .trim()
            .trim_end_matches("ms")
            .parse()
            .map_err(|_| bad(format!("{key}={value:?} is not a number of milliseconds")))?;
        let d = Duration::from_millis(ms);
        match key.trim() {
            "handoff" => debug.handoff = Some(d),
            "schedtrace" => debug.schedtrace = (ms > 0).then_some(d),
            other => return Err(bad(format!("unknown setting {other:?}"))),
        }
    }
    Ok(debug)
}

#[cfg(test)]
mod tests {
    use super::{parse_count, parse_debug, Debug};
    use std::time::Duration;

    #[test]
    fn rt_gort_debug_parses_and_rejects() {
        assert_eq!(parse_debug(Some("")).unwrap(), Debug::default());
        let d = parse_debug(Some("schedtrace=1000, handoff=5ms")).unwrap();
        assert_eq!(d.schedtrace, Some(Duration::from_millis(1000)));
        assert_eq!(d.handoff, Some(Duration::from_millis(5)));
        assert_eq!(
            parse_debug(Some("handoff=0")).unwrap().handoff,
            Some(Duration::ZERO)
        );
        for bad in ["handoff", "handoff=soon", "gctrace=1"] {
            let err = parse_debug(Some(bad)).unwrap_err();
            assert!(err.to_string().contains("GORT_DEBUG"), "{err}");
        }
    }

    #[test]
    fn rt_env_count_parses_and_rejects() {
        assert_eq!(parse_count("X", Some("4"), 8).unwrap(), Some(4));
        assert_eq!(parse_count("X", Some(" 2 "), 8).unwrap(), Some(2));
        assert_eq!(parse_count("X", Some("8"), 8).unwrap(), Some(8));
        assert_eq!(parse_count("X", Some(""), 8).unwrap(), None);
        for bad in [
            "0",
            "-1",
            "two",
            "1.5",
            "9",
            "65535",
            "18446744073709551615",
            "1e3",
        ] {
            let err = parse_count("GORT_WORKERS", Some(bad), 8).unwrap_err();
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
            assert!(err.to_string().contains("GORT_WORKERS"), "{err}");
            assert!(err.to_string().contains("1..=8"), "{err}");
        }
        assert!(parse_count("X", None, 8).is_err());
    }
}
