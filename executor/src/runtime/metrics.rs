//! `RuntimeMetrics`: a snapshot of the scheduler's counters.

use super::Handle;

/// Counters of a runtime at the moment each method is called.
#[derive(Clone, Debug)]
pub struct RuntimeMetrics {
    handle: Handle,
}

impl RuntimeMetrics {
    pub(crate) fn new(handle: Handle) -> RuntimeMetrics {
        RuntimeMetrics { handle }
    }

    /// Worker threads (Ps).
    pub fn num_workers(&self) -> usize {
        self.handle.shared.num_workers()
    }

    /// Tasks spawned and not yet finished, blocking ones included.
    pub fn num_alive_tasks(&self) -> usize {
        self.handle.shared.owned.len()
    }

    /// Tasks waiting in the global injector.
    pub fn global_queue_depth(&self) -> usize {
        self.handle.shared.inject.len()
    }

    /// Tasks waiting in worker `worker`'s local queue (not counting its LIFO slot).
    ///
    /// # Panics
    /// When `worker >= num_workers()`.
    pub fn worker_local_queue_depth(&self, worker: usize) -> usize {
        self.handle.shared.local_queue_len(worker)
    }

    /// Workers parked for lack of work.
    pub fn num_parked_workers(&self) -> usize {
        self.handle.shared.idle.num_parked()
    }

    /// Workers currently looking for work to steal.
    pub fn num_searching_workers(&self) -> usize {
        self.handle.shared.idle.num_searching()
    }

    /// Ps handed to a fresh thread because their thread was stuck in a poll (or called
    /// `block_in_place`).
    pub fn num_handoffs(&self) -> u64 {
        self.handle
            .shared
            .handoffs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hand-offs that found no thread to start (`RLIMIT_NPROC`, a pids cgroup): their
    /// P's queued tasks went to the running workers, and the P waited for a thread.
    pub fn num_failed_handoffs(&self) -> u64 {
        self.handle
            .shared
            .failed_handoffs
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Times the monitor turned the reactor itself because no thread had for
    /// [`REACTOR_UNWATCHED`](crate::reactor::REACTOR_UNWATCHED) (every worker busy in
    /// long polls, or stuck). Stays 0 while workers keep up.
    pub fn num_monitor_reactor_turns(&self) -> u64 {
        self.handle
            .shared
            .monitor_turns
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Worker threads alive: one per worker, plus threads finishing a poll after their
    /// worker was handed off.
    pub fn num_worker_threads(&self) -> usize {
        self.handle.shared.num_threads()
    }

    /// Threads of the blocking pool, busy or idle.
    pub fn num_blocking_threads(&self) -> usize {
        self.handle.shared.blocking.num_threads()
    }

    /// Blocking threads waiting for work.
    pub fn num_idle_blocking_threads(&self) -> usize {
        self.handle.shared.blocking.num_idle_threads()
    }

    /// Blocking closures waiting for a thread.
    pub fn blocking_queue_depth(&self) -> usize {
        self.handle.shared.blocking.queue_depth()
    }
}
