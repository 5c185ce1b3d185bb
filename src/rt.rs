//! `gort::Runtime` and `gort::Builder`: the executor's runtime and builder with
//! gort-netio as their extension, so `gort::net` and `gort::time` work in every task.
//!
//! They are the executor's types, not wrappers: every knob is declared once, in
//! `gort_executor::Builder`, and the reactor's (`driver`) comes in through the
//! extension ([`gort_netio::Io`]).

/// Configures a [`Runtime`]: workers, blocking threads, thread names and stacks, the
/// monitor's threshold, deadlock detection, and the I/O backend
/// ([`driver`](gort_executor::Builder::driver)). The environment variables
/// `GORT_WORKERS`, `GORT_MAX_BLOCKING`, `GORT_DEBUG` and `GORT_DRIVER` are read at
/// `build()`.
///
/// ```
/// let rt = gort::Runtime::builder().workers(2).build().unwrap();
/// println!("running on {:?}", rt.driver());
/// assert_eq!(rt.block_on(async { 6 * 7 }), 42);
/// ```
pub type Builder = gort_executor::Builder<gort_netio::Io>;

/// A gort runtime: worker threads, the blocking pool and the I/O reactor.
/// [`driver`](gort_executor::Runtime::driver) says which backend runs.
pub type Runtime = gort_executor::Runtime<gort_netio::Io>;
