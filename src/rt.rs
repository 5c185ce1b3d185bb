//! `gort::Runtime` and `gort::Builder`: the executor's runtime with the reactor
//! installed, so `gort::net` and `gort::time` work in every task.

use std::fmt;
use std::io;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use gort_executor::park::Park;
use gort_netio::{Driver, DriverKind};

/// Configures a [`Runtime`]; the same knobs as the executor's builder (environment
/// variables `GORT_WORKERS`, `GORT_MAX_BLOCKING`, `GORT_DEBUG` included).
pub struct Builder {
    inner: gort_executor::Builder,
    /// A custom parker replaces the reactor.
    custom_park: bool,
    driver: Option<DriverKind>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl Builder {
    /// A builder with the defaults (see [`gort_executor::Builder::new`]).
    pub fn new() -> Builder {
        Builder {
            inner: gort_executor::Builder::new(),
            custom_park: false,
            driver: None,
        }
    }

    /// See [`gort_executor::Builder::workers`].
    pub fn workers(&mut self, n: usize) -> &mut Self {
        self.inner.workers(n);
        self
    }

    /// See [`gort_executor::Builder::max_blocking_threads`].
    pub fn max_blocking_threads(&mut self, n: usize) -> &mut Self {
        self.inner.max_blocking_threads(n);
        self
    }

    /// See [`gort_executor::Builder::thread_name`].
    pub fn thread_name(&mut self, name: impl Into<String>) -> &mut Self {
        self.inner.thread_name(name);
        self
    }

    /// See [`gort_executor::Builder::thread_name_fn`].
    pub fn thread_name_fn(&mut self, f: impl Fn() -> String + Send + Sync + 'static) -> &mut Self {
        self.inner.thread_name_fn(f);
        self
    }

    /// See [`gort_executor::Builder::thread_stack_size`].
    pub fn thread_stack_size(&mut self, bytes: usize) -> &mut Self {
        self.inner.thread_stack_size(bytes);
        self
    }

    /// See [`gort_executor::Builder::thread_keep_alive`].
    pub fn thread_keep_alive(&mut self, d: Duration) -> &mut Self {
        self.inner.thread_keep_alive(d);
        self
    }

    /// See [`gort_executor::Builder::blocking_threshold`].
    pub fn blocking_threshold(&mut self, d: Duration) -> &mut Self {
        self.inner.blocking_threshold(d);
        self
    }

    /// See [`gort_executor::Builder::deadlock_detection`].
    pub fn deadlock_detection(&mut self, on: bool) -> &mut Self {
        self.inner.deadlock_detection(on);
        self
    }

    /// Forces the I/O backend. By default `GORT_DRIVER` (`uring` or `epoll`) decides,
    /// and without it epoll runs (io_uring is opt-in today: see `gort_netio`'s crate
    /// docs for why). A forced io_uring is probed at start (features and opcodes), and
    /// `build` fails with the reason when the kernel refuses it.
    pub fn driver(&mut self, kind: DriverKind) -> &mut Self {
        self.driver = Some(kind);
        self
    }

    /// Replaces the reactor with a custom parker (no `gort::net`/`gort::time` then).
    pub fn park_with(
        &mut self,
        f: impl Fn(usize) -> io::Result<Box<dyn Park>> + Send + Sync + 'static,
    ) -> &mut Self {
        self.inner.park_with(f);
        self.custom_park = true;
        self
    }

    /// Starts the runtime with the reactor installed.
    ///
    /// # Errors
    /// As [`gort_executor::Builder::build`]; `InvalidInput` for a bad `GORT_DRIVER`;
    /// why io_uring cannot start when [`driver`](Self::driver) asked for it; when the
    /// kernel refuses the epoll descriptor.
    pub fn build(&mut self) -> io::Result<Runtime> {
        let driver = if self.custom_park {
            None
        } else {
            Some(gort_netio::install(&mut self.inner, self.driver)?)
        };
        Ok(Runtime {
            inner: self.inner.build()?,
            driver,
        })
    }
}

/// A gort runtime: worker threads, the blocking pool and the I/O reactor. Derefs to
/// the executor's runtime for `block_on`, `spawn`, `handle`, `metrics`, ...
pub struct Runtime {
    inner: gort_executor::Runtime,
    /// `None` when built with a custom parker.
    driver: Option<Arc<Driver>>,
}

impl Runtime {
    /// A runtime with the default configuration.
    ///
    /// # Errors
    /// As [`Builder::build`].
    pub fn new() -> io::Result<Runtime> {
        Builder::new().build()
    }

    /// A [`Builder`].
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Which I/O backend runs (`None` when built with a custom parker).
    pub fn driver(&self) -> Option<DriverKind> {
        self.driver.as_ref().map(|d| d.kind())
    }

    /// The reactor, for its counters (registered sources, pending timers).
    pub fn reactor(&self) -> Option<&Arc<Driver>> {
        self.driver.as_ref()
    }

    /// See [`gort_executor::Runtime::shutdown_timeout`].
    pub fn shutdown_timeout(self, timeout: Duration) {
        self.inner.shutdown_timeout(timeout);
    }

    /// See [`gort_executor::Runtime::shutdown_background`].
    pub fn shutdown_background(self) {
        self.inner.shutdown_background();
    }
}

impl Deref for Runtime {
    type Target = gort_executor::Runtime;

    fn deref(&self) -> &gort_executor::Runtime {
        &self.inner
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("inner", &self.inner)
            .field("driver", &self.driver())
            .finish()
    }
}
