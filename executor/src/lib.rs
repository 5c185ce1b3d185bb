//! gort-executor: the part of gort that runs tasks.
//!
//! Go's G, M and P in Rust: tasks (`task`), worker threads each running one P with a
//! local run queue and a LIFO slot (`sched`), a global injector, work stealing, a
//! blocking pool (`blocking`), and one seam, the [`Reactor`](reactor::Reactor) trait,
//! through which an I/O reactor takes over how idle workers sleep
//! ([`Park`](park::Park)) and lets the monitor watch it while every worker is busy.
//! Applications use it through the `gort` facade crate.
//!
//! # Layers
//!
//! Each module uses only the ones below it (doc links aside); no import cycle:
//!
//! | layer | modules | what it is |
//! |---|---|---|
//! | 0 | `loom`, `thread`, `coop`, `park`, `wait_list` | the loom shim; thread config and shutdown's wait; the budget; how a thread sleeps; the one waiter queue and wake list every channel and lock parks on |
//! | 1 | `task` | the task cell, `JoinHandle`, wait reasons |
//! | 2 | `block_on`, `reactor` | polling one future on the calling thread; the entered flag; the reactor seam (the `Reactor` and `Extension` traits, and the lookup of the calling thread's reactor that the scheduler installs) |
//! | 3 | `chan`, `sync`, `blocking` | channels and locks (runtime-agnostic; a `Context` deadline uses the reactor's timers through the seam); the blocking pool |
//! | 4 | `sched` | P, M, run queues, stealing, the scheduler's `Handle`, the thread's current runtime |
//! | 5 | `runtime` | `Runtime`, `Builder`, the monitor, deadlock detection, `JoinSet`, `Group` |
//!
//! The blocking pool sits below the scheduler, not above it: the scheduler's shared
//! state owns the pool (so a `Handle` reaches it), and the pool knows the runtime only
//! through the `blocking::PoolContext` trait that `Handle` implements. `JoinSet` and
//! errgroup's `Group` spawn, so they live with the runtime; the facade shows them as
//! `gort::task::JoinSet` and `gort::sync::Group`. Per-thread state lives with its
//! owner: the budget in `coop`, the wait reason in `task::wait`, the entered flag in
//! `block_on`, the current runtime and worker in `sched::current`. `sync` reaches the
//! runtime's timers without knowing the scheduler: `reactor::current` calls a lookup
//! that the scheduler installs when it starts a runtime.
//!
//! `unsafe` lives in a few modules: `task::raw` and the typed task references over it
//! (`task/mod.rs`, `task/join.rs`), `sched::queue` (the lock-free run queue),
//! `sched::slot` (the atomic slot a P is lent through), `sched::current` (the current
//! runtime's `Arc` kept as a raw pointer in a thread-local without a destructor), the
//! cells of `sync::mutex` and `sync::rwlock`, and two pin projections (`coop`,
//! `chan::select`).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]

mod block_on;
mod blocking;
pub mod chan;
pub mod coop;
mod loom;
pub mod park;
pub mod reactor;
pub mod runtime;
mod sched;
pub mod sync;
pub mod task;
mod thread;
mod wait_list;

pub use runtime::{spawn, spawn_blocking, Builder, Extension, Handle, NoReactor, Runtime};
