//! gort-executor: the part of gort that runs tasks.
//!
//! Go's G, M and P in Rust: tasks (`task`), worker threads each running one P with a
//! local run queue and a LIFO slot (`sched`), a global injector, work stealing, a
//! blocking pool (`blocking`), and one seam, the [`Reactor`](reactor::Reactor) trait,
//! through which an I/O reactor takes over how idle workers sleep
//! ([`Park`](park::Park)) and lets the monitor watch it while every worker is busy.
//! Applications use it through the `gort` facade crate.
//!
//! `unsafe` lives in a few leaf modules: `task::raw` (the task cell), `sched::queue`
//! (the lock-free run queue), `sched::slot` (the atomic slot a P is lent through), the
//! cells of `sync::mutex` and `sync::rwlock`, and two pin projections (`coop`,
//! `chan::select`).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

mod blocking;
pub mod chan;
mod context;
pub mod coop;
mod loom;
pub mod park;
pub mod reactor;
pub mod runtime;
mod sched;
pub mod sync;
pub mod task;

pub use runtime::{spawn, spawn_blocking, Builder, Handle, Runtime};
