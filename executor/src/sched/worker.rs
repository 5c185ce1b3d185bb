//! Workers: each OS thread (Go's M) runs one P (`Core`) in a loop.
//!
//! # The loop
//!
//! ```text
//! loop {
//!     tick += 1; every EVENT_INTERVAL ticks: poll the parker without blocking (I/O,
//!         timers) and look at the shutdown flag
//!     task = every GLOBAL_QUEUE_INTERVAL ticks the injector first (fairness), else
//!            LIFO slot → local queue → a batch from the injector
//!     or steal half of a random victim's queue (if allowed to search, see idle.rs)
//!     or park
//!     run the task, then up to MAX_LIFO_POLLS_PER_TICK tasks it woke (LIFO slot)
//! }
//! ```
//!
//! One tick is at most `1 + MAX_LIFO_POLLS_PER_TICK` polls, whatever the tasks do, so
//! the reactor, the injector and the shutdown flag are looked at on schedule even
//! while two tasks wake each other through wakers that spend no budget (a
//! `futures::channel` ping-pong: the class of tokio #5686).
//!
//! # Where a woken task goes
//!
//! A wake-up on a worker thread of the same runtime, while that worker is inside a poll,
//! puts the task in the LIFO slot: the task just woken by the running one runs next,
//! while its data is hot in cache (a message passed over a channel). The slot's previous
//! occupant moves to the back of the local queue, where thieves can reach it. After
//! `MAX_LIFO_POLLS_PER_TICK` LIFO runs the tick ends: if other tasks are queued the
//! slot's task goes to the back of the queue (two tasks waking each other cannot
//! starve it); if nothing is queued it stays in the slot, out of thieves' reach, and
//! runs first in the next tick. A task that wakes *itself* (`yield_now`, an exhausted
//! budget) goes to the back of the queue. Wake-ups from other threads go to the
//! injector.
//!
//! # Where the P lives
//!
//! The worker owns its `Box<Core>` while it looks for work, and lends it to its M's slot
//! (`slot.rs`) while a task is polled or while the worker parks, so that `schedule`
//! called from inside a poll (or from a driver's event dispatch) reaches the local queue.
//! Because the P is a movable box, the monitor can take it from a thread stuck in a
//! poll and hand it to a fresh thread, as Go does on a blocking syscall
//! ([`Shared::hand_off`]). If no thread can be started (`RLIMIT_NPROC`, a pids cgroup),
//! the P's queued tasks go to the injector, where running workers take them, and the P
//! waits on the idle list: the monitor retries the thread every tick, and an M whose
//! own P was taken adopts an idle one when its stuck poll returns (Go's `exitsyscall`
//! looks for an idle P the same way) instead of retiring.
//!
//! # Shutdown
//!
//! `Runtime` drop closes the owned-task list and the injector, sets `shutdown` and
//! unparks every worker. A worker sees the flag at its next tick or wake-up, drops its
//! queued references and exits; the runtime then cancels the remaining tasks.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::current;
use super::handle::Handle;
use super::idle::Idle;
use super::inject::Inject;
use super::queue::{self, Local, Steal};
use super::slot::{self, SlotOwner, SlotThief};
use super::FastRand;
use crate::block_on::BlockOn;
use crate::blocking::BlockingPool;
use crate::coop;
use crate::park::{Park, Unpark};
use crate::reactor::Reactor;
use crate::task::{Notified, OwnedTasks};
use crate::thread::ThreadConfig;

/// Ticks between looks at the injector ahead of the local queue, so tasks spawned from
/// outside are not starved by a worker whose local tasks keep each other busy. Go uses
/// 61: a prime, so the check does not fall into step with periodic workloads.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;

/// Ticks between non-blocking polls of the parker (I/O events, timers) while busy, so
/// I/O is not starved by CPU-bound tasks. Same reasoning and value as tokio's.
const EVENT_INTERVAL: u32 = 61;

/// Runs from the LIFO slot after a task before the tick ends (tokio uses 3): bounds a
/// tick whatever the tasks do, so two tasks waking each other can neither starve the
/// queue nor keep the worker from its maintenance.
const MAX_LIFO_POLLS_PER_TICK: usize = 3;

/// State shared by every worker of one runtime, and by its handles.
pub(crate) struct Shared {
    remotes: Box<[Remote]>,
    pub(crate) inject: Inject,
    pub(crate) idle: Idle,
    pub(crate) owned: OwnedTasks,
    pub(crate) blocking: BlockingPool,
    shutdown: AtomicBool,
    /// The thread (M) currently running each P, by P index: what the monitor watches.
    ms: Mutex<Vec<Arc<MState>>>,
    /// Worker threads alive (Ms, including ones retiring after a hand-off); guarded
    /// for `wait_workers`.
    live: Mutex<usize>,
    live_cv: Condvar,
    /// Ps handed to a fresh thread because their M was stuck in a poll.
    pub(crate) handoffs: AtomicU64,
    /// Times the monitor turned the reactor because nobody else had.
    pub(crate) monitor_turns: AtomicU64,
    /// Hand-offs whose thread could not be started.
    pub(crate) failed_handoffs: AtomicU64,
    /// Ps without a thread: taken from a stuck M when no new thread could start.
    /// Their queued tasks were moved to the injector; the monitor retries a thread
    /// for them, and an M whose P was taken adopts one before retiring. Boxed: a P
    /// moves between threads as one pointer.
    #[allow(clippy::vec_box)]
    idle_ps: Mutex<Vec<Box<Core>>>,
    /// Test hook: this many upcoming worker-thread spawns fail.
    fail_spawns: std::sync::atomic::AtomicUsize,
    threads: ThreadConfig,
    /// What wakes tasks from outside the scheduler (the I/O reactor), if attached.
    pub(crate) reactor: Option<AttachedReactor>,
    /// `block_on` calls in progress (the deadlock check watches and reports to them).
    block_ons: Mutex<Vec<Arc<BlockOn>>>,
}

/// The runtime's [`Reactor`], twice: as the trait the scheduler calls, and as `Any` for
/// [`Handle::reactor`] to give back the concrete type. One allocation.
#[derive(Clone)]
pub(crate) struct AttachedReactor {
    pub(crate) reactor: Arc<dyn Reactor>,
    any: Arc<dyn std::any::Any + Send + Sync>,
}

impl AttachedReactor {
    pub(crate) fn new<R: Reactor>(reactor: Arc<R>) -> AttachedReactor {
        AttachedReactor {
            reactor: reactor.clone(),
            any: reactor,
        }
    }

    /// The reactor as `R`, if that is its type.
    pub(crate) fn downcast<R: Reactor>(&self) -> Option<Arc<R>> {
        self.any.clone().downcast::<R>().ok()
    }
}

/// Removes a `block_on` from the watched list when it returns (or unwinds).
pub(crate) struct BlockOnRegistration<'a> {
    shared: &'a Shared,
    entry: Arc<BlockOn>,
}

impl Drop for BlockOnRegistration<'_> {
    fn drop(&mut self) {
        let mut list = lock(&self.shared.block_ons);
        if let Some(pos) = list.iter().position(|b| Arc::ptr_eq(b, &self.entry)) {
            list.swap_remove(pos);
        }
    }
}

/// What other threads may reach of a worker.
struct Remote {
    steal: Steal,
    unpark: Arc<dyn Unpark>,
    /// The P's LIFO slot holds a task (stealers cannot see it; the monitor must).
    lifo_busy: AtomicBool,
}

/// One worker thread (Go's M), as the monitor sees it.
pub(crate) struct MState {
    /// The monitor's end of the slot where the M lends its P during a poll or a park.
    pub(crate) slot: SlotThief,
    /// Polls started by this thread; a value that stops moving while `in_poll` is set
    /// means a poll that does not return.
    pub(crate) polls: AtomicU64,
    /// Tasks this thread queued on its own P during polls (spawns, wakes). A poll that
    /// keeps moving it is feeding its P, whose queue other workers steal from: it is
    /// running, not stuck, and handing its P off would only send the rest of its
    /// spawns through the injector.
    pub(crate) scheduled: AtomicU64,
    pub(crate) in_poll: AtomicBool,
    /// The thread's kernel id (0 until it starts), so the monitor can ask the kernel
    /// whether a stuck poll is blocked in a syscall or computing.
    pub(crate) tid: std::sync::atomic::AtomicU32,
}

/// The P: a worker's runnable work and its way to sleep.
pub(crate) struct Core {
    index: usize,
    tick: u32,
    lifo_slot: Option<Notified>,
    run_queue: Local,
    /// This worker counts as searching in `Idle`.
    is_searching: bool,
    is_shutdown: bool,
    /// `None` while the parker is in use (the worker is parked).
    park: Option<Box<dyn Park>>,
    rand: FastRand,
}

/// Per-thread state of a worker, reachable through `current::with_worker`.
pub(crate) struct WorkerContext {
    pub(super) handle: Handle,
    /// This M, as the monitor sees it.
    m: Arc<MState>,
    /// This M's end of its slot, where the P is lent during polls and parks.
    pub(super) slot: SlotOwner,
}

/// Builds the shared state and one `Core` per worker.
// Each P is boxed on purpose: it moves between the worker and its context (and, with
// the monitor, between threads) as one pointer.
#[allow(clippy::vec_box)]
pub(crate) fn create(
    parks: Vec<Box<dyn Park>>,
    blocking: BlockingPool,
    threads: ThreadConfig,
    reactor: Option<AttachedReactor>,
) -> (Arc<Shared>, Vec<Box<Core>>) {
    let n = parks.len();
    let mut remotes = Vec::with_capacity(n);
    let mut cores = Vec::with_capacity(n);
    for (index, park) in parks.into_iter().enumerate() {
        let (steal, run_queue) = queue::local();
        remotes.push(Remote {
            steal,
            unpark: park.unparker(),
            lifo_busy: AtomicBool::new(false),
        });
        cores.push(Box::new(Core {
            index,
            tick: 0,
            lifo_slot: None,
            run_queue,
            is_searching: false,
            is_shutdown: false,
            park: Some(park),
            rand: FastRand::new(index as u64 + 1),
        }));
    }
    let shared = Arc::new(Shared {
        remotes: remotes.into_boxed_slice(),
        inject: Inject::new(),
        idle: Idle::new(n),
        owned: OwnedTasks::new(n),
        blocking,
        shutdown: AtomicBool::new(false),
        ms: Mutex::new((0..n).map(|_| MState::new().0).collect()),
        live: Mutex::new(0),
        live_cv: Condvar::new(),
        handoffs: AtomicU64::new(0),
        monitor_turns: AtomicU64::new(0),
        failed_handoffs: AtomicU64::new(0),
        idle_ps: Mutex::new(Vec::new()),
        fail_spawns: std::sync::atomic::AtomicUsize::new(0),
        threads,
        reactor,
        block_ons: Mutex::new(Vec::new()),
    });
    (shared, cores)
}

impl MState {
    /// A new M as the monitor sees it, and the owner's end of its slot.
    fn new() -> (Arc<MState>, SlotOwner) {
        let (owner, thief) = slot::pair();
        let m = Arc::new(MState {
            slot: thief,
            polls: AtomicU64::new(0),
            scheduled: AtomicU64::new(0),
            in_poll: AtomicBool::new(false),
            tid: std::sync::atomic::AtomicU32::new(0),
        });
        (m, owner)
    }
}

/// Starts a worker thread (an M) running P `core`. Used at start-up, and by the
/// monitor and `block_in_place` to hand a P to a fresh thread. On failure the P comes
/// back with the error.
pub(crate) fn spawn_worker(handle: &Handle, core: Box<Core>) -> Result<(), (io::Error, Box<Core>)> {
    let shared = &handle.shared;
    if shared
        .fail_spawns
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        .is_ok()
    {
        return Err((
            io::Error::other("gort: injected thread-spawn failure"),
            core,
        ));
    }
    let (m, owner) = MState::new();
    let index = core.index;
    let builder = shared.threads.builder();
    // The P travels through a cell so that it can be recovered if the thread does not
    // start (the closure is then dropped unrun).
    let cell = Arc::new(Mutex::new(Some(core)));
    let (h, m2, c2) = (handle.clone(), m.clone(), cell.clone());
    *lock(&shared.live) += 1;
    // Bound before the thread runs, so the monitor watches the new M for this P.
    let prev = std::mem::replace(&mut lock(&shared.ms)[index], m);
    let spawned = builder.spawn(move || {
        let core = lock(&c2).take().expect("the P is handed over once");
        run(h, m2, owner, core);
    });
    match spawned {
        Ok(_) => Ok(()),
        Err(err) => {
            lock(&shared.ms)[index] = prev;
            shared.worker_exited();
            let core = lock(&cell).take().expect("the thread never ran");
            Err((err, core))
        }
    }
}

/// The calling thread's kernel id, from `/proc/thread-self` (0 where there is no
/// procfs; the monitor then relies on the threshold alone).
fn current_tid() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name()?.to_str()?.parse().ok())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The body of a worker thread.
fn run(handle: Handle, m: Arc<MState>, slot: SlotOwner, core: Box<Core>) {
    m.tid.store(current_tid(), Ordering::Relaxed);
    // Counted as exited however the loop ends, so shutdown never waits for a worker
    // that died of a scheduler bug.
    struct ExitGuard(Handle);
    impl Drop for ExitGuard {
        fn drop(&mut self) {
            self.0.shared.worker_exited();
        }
    }
    let _exit = ExitGuard(handle.clone());
    let _entered =
        crate::block_on::try_enter_runtime().expect("a fresh worker thread drives no runtime");
    let _current = current::set_current(&handle);
    let cx = std::rc::Rc::new(WorkerContext {
        handle: handle.clone(),
        m,
        slot,
    });
    let _worker = current::set_worker(cx.clone());

    let mut core = Some(core);
    while let Some(p) = core.take() {
        match cx.run(p) {
            // Shutdown: queued references go; the tasks themselves are cancelled by
            // the runtime through the owned list.
            Some(p) => drop(p),
            // The P was handed off while this thread was stuck in a poll, which has
            // now returned: run an idle P if one waits for a thread, else retire.
            None => core = handle.shared.adopt_idle_p(&cx.m),
        }
    }
}

impl WorkerContext {
    /// A task was queued on this thread's P (see [`MState::scheduled`]).
    #[inline]
    pub(super) fn note_scheduled(&self) {
        // Only this thread writes its counter: a load and a store, no locked RMW.
        let n = self.m.scheduled.load(Ordering::Relaxed);
        self.m.scheduled.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Whether this thread holds its P now (false after a hand-off).
    pub(crate) fn holds_p(&self) -> bool {
        self.slot.is_full()
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    fn run(&self, mut core: Box<Core>) -> Option<Box<Core>> {
        while !core.is_shutdown {
            core.tick = core.tick.wrapping_add(1);
            if core.tick % EVENT_INTERVAL == 0 {
                core = self.maintenance(core);
            }
            if let Some(task) = core.next_task(self.shared()) {
                core = self.run_task(task, core)?;
                continue;
            }
            if let Some(task) = core.steal_work(self.shared()) {
                core = self.run_task(task, core)?;
                continue;
            }
            core = self.park(core);
        }
        Some(core)
    }

    /// Lends the P to the slot (stealable) and polls `task`, telling the monitor.
    fn poll_task(&self, task: Notified, core: Box<Core>) {
        self.slot.put(core, true);
        // Only this thread writes its counter: a load and a store, no locked RMW.
        let polls = self.m.polls.load(Ordering::Relaxed);
        self.m.polls.store(polls.wrapping_add(1), Ordering::Relaxed);
        self.m.in_poll.store(true, Ordering::Release);
        task.run();
        self.m.in_poll.store(false, Ordering::Release);
    }

    /// `block_in_place`: hands this thread's P to a fresh thread now, so the rest of
    /// the current poll may block. False when not possible (no P, or no thread: then
    /// this thread keeps its P).
    pub(crate) fn hand_off_now(&self) -> bool {
        let Some((core, stealable)) = self.slot.take() else {
            return false;
        };
        match spawn_worker(&self.handle, core) {
            Ok(()) => {
                self.shared().handoffs.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err((_, core)) => {
                self.slot.put(core, stealable);
                false
            }
        }
    }

    fn maintenance(&self, mut core: Box<Core>) -> Box<Core> {
        core = self.park_timeout(core, Some(Duration::ZERO));
        core.is_shutdown = self.shared().is_shutdown();
        core
    }

    /// Runs `task`, then up to `MAX_LIFO_POLLS_PER_TICK` tasks it woke, from the LIFO
    /// slot. `None` when the P was handed off during a poll.
    fn run_task(&self, task: Notified, mut core: Box<Core>) -> Option<Box<Core>> {
        if core.is_searching {
            // Rule 3 of idle.rs: the last searcher to find work wakes a replacement.
            core.is_searching = false;
            if self.shared().idle.transition_worker_from_searching() {
                self.shared().notify_parked();
            }
        }
        coop::budget(|| {
            self.poll_task(task, core);
            let mut lifo_polls = 0;
            loop {
                let (mut core, _) = self.slot.take()?;
                if core.lifo_slot.is_none() {
                    return Some(core);
                }
                if lifo_polls == MAX_LIFO_POLLS_PER_TICK || !coop::has_budget_remaining() {
                    // The tick ends here. With other work waiting, the slot's task
                    // queues behind it; with none there is nobody to starve, and the
                    // slot keeps it out of thieves' reach (a stolen ping-pong partner
                    // costs a cross-thread wake-up per message): it runs first in the
                    // next tick, after the maintenance that tick may owe.
                    if core.run_queue.has_tasks()
                        || !self.shared().inject.is_empty()
                        || !coop::has_budget_remaining()
                    {
                        let task = core.take_lifo(self.shared()).expect("checked above");
                        core.run_queue
                            .push_back_or_overflow(task, &self.shared().inject);
                    }
                    return Some(core);
                }
                let task = core.take_lifo(self.shared()).expect("checked above");
                lifo_polls += 1;
                self.poll_task(task, core);
            }
        })
    }

    fn park(&self, mut core: Box<Core>) -> Box<Core> {
        if !core.transition_to_parked(self.shared()) {
            return core;
        }
        while !core.is_shutdown {
            core = self.park_timeout(core, None);
            core.is_shutdown = self.shared().is_shutdown();
            if core.transition_from_parked(self.shared()) {
                break;
            }
        }
        core
    }

    /// Parks with the P lent to its slot, so events dispatched by the parker (a
    /// driver waking tasks) land in the local queue.
    fn park_timeout(&self, mut core: Box<Core>, timeout: Option<Duration>) -> Box<Core> {
        let mut park = core.park.take().expect("gort: parker missing");
        self.slot.put(core, false);
        park.park(timeout);
        // The monitor only steals Ps lent to a task poll, never a parked one.
        let (mut core, _) = self
            .slot
            .take()
            .expect("gort: a parked worker's P was taken");
        core.park = Some(park);
        // Tasks queued during the park did not notify (the parker was out); share them
        // now if there is more than this worker will run next.
        if core.should_notify_others() {
            self.shared().notify_parked();
        }
        core
    }
}

impl Core {
    fn next_task(&mut self, shared: &Shared) -> Option<Notified> {
        if self.tick % GLOBAL_QUEUE_INTERVAL == 0 {
            return shared.inject.pop().or_else(|| self.next_local_task(shared));
        }
        if let Some(task) = self.next_local_task(shared) {
            return Some(task);
        }
        if shared.inject.is_empty() {
            return None;
        }
        // Refill from the injector: our fair share, at most half a queue (Go's
        // `globrunqget`).
        let cap = self.run_queue.remaining_slots().min(queue::CAPACITY / 2);
        let n = (shared.inject.len() / shared.remotes.len() + 1).min(cap);
        let mut first = None;
        let run_queue = &mut self.run_queue;
        shared.inject.pop_n(n, |tasks| {
            first = tasks.next();
            run_queue.push_back(tasks);
        });
        first
    }

    fn next_local_task(&mut self, shared: &Shared) -> Option<Notified> {
        self.take_lifo(shared).or_else(|| self.run_queue.pop())
    }

    fn take_lifo(&mut self, shared: &Shared) -> Option<Notified> {
        let task = self.lifo_slot.take()?;
        shared.remotes[self.index]
            .lifo_busy
            .store(false, Ordering::Relaxed);
        Some(task)
    }

    fn steal_work(&mut self, shared: &Shared) -> Option<Notified> {
        if !self.is_searching {
            if !shared.idle.transition_worker_to_searching() {
                return None;
            }
            self.is_searching = true;
        }
        let n = shared.remotes.len();
        let start = self.rand.below(n);
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            if let Some(task) = shared.remotes[victim].steal.steal_into(&mut self.run_queue) {
                return Some(task);
            }
        }
        shared.inject.pop()
    }

    fn should_notify_others(&self) -> bool {
        // A searcher will find them itself (and notify when it stops searching).
        !self.is_searching && usize::from(self.lifo_slot.is_some()) + self.run_queue.len() > 1
    }

    fn has_tasks(&self) -> bool {
        self.lifo_slot.is_some() || self.run_queue.has_tasks()
    }

    /// Rule 4 of idle.rs. Returns false when the worker should not park after all.
    fn transition_to_parked(&mut self, shared: &Shared) -> bool {
        if self.has_tasks() || self.is_shutdown {
            return false;
        }
        let last_searcher = shared
            .idle
            .transition_worker_to_parked(self.index, self.is_searching);
        self.is_searching = false;
        if last_searcher {
            shared.notify_if_work_pending();
        }
        true
    }

    /// After a wake-up: true when the worker should run again, false to park again.
    fn transition_from_parked(&mut self, shared: &Shared) -> bool {
        if self.has_tasks() {
            // Woken by our own parker's events; count ourselves unparked unless a
            // notifier already did (then we are a searcher).
            self.is_searching = !shared.idle.unpark_worker_by_id(self.index);
            return true;
        }
        if shared.idle.is_parked(self.index) {
            // Spurious or timed out, and nobody asked for us.
            return false;
        }
        // A notifier picked us and counted us as searching.
        self.is_searching = true;
        true
    }
}

impl Shared {
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    pub(crate) fn num_workers(&self) -> usize {
        self.remotes.len()
    }

    /// Length of worker `i`'s local queue.
    pub(crate) fn local_queue_len(&self, i: usize) -> usize {
        self.remotes[i].steal.len()
    }

    /// Wakes one parked worker if no worker is searching (rule 1 of idle.rs).
    pub(crate) fn notify_parked(&self) {
        if let Some(index) = self.idle.worker_to_notify() {
            self.remotes[index].unpark.unpark();
        }
    }

    fn notify_if_work_pending(&self) {
        let pending = self.remotes.iter().any(|r| !r.steal.is_empty()) || !self.inject.is_empty();
        if pending {
            self.notify_parked();
        }
    }

    /// Queues a task from outside any worker of this runtime.
    pub(crate) fn schedule_remote(&self, task: Notified) {
        if self.inject.push(task) {
            self.notify_parked();
        }
    }

    pub(super) fn schedule_local(&self, core: &mut Core, task: Notified, is_yield: bool) {
        let pushed_to_queue = if is_yield {
            core.run_queue.push_back_or_overflow(task, &self.inject);
            true
        } else {
            self.remotes[core.index]
                .lifo_busy
                .store(true, Ordering::Relaxed);
            match core.lifo_slot.replace(task) {
                Some(prev) => {
                    core.run_queue.push_back_or_overflow(prev, &self.inject);
                    true
                }
                None => false,
            }
        };
        // Work in the queue can be stolen: make sure someone is looking. Not while the
        // worker is parked (its parker is out): it notifies when the park returns.
        if pushed_to_queue && core.park.is_some() {
            self.notify_parked();
        }
    }

    /// Begins shutdown: refuse new work and wake every worker so it exits.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        for remote in self.remotes.iter() {
            remote.unpark.unpark();
        }
    }

    fn worker_exited(&self) {
        let mut live = lock(&self.live);
        *live -= 1;
        self.live_cv.notify_all();
    }

    /// Waits until every worker thread has exited, or `deadline` passes; true if all
    /// did. With `turn`, wakes every `SHUTDOWN_REACTOR_TICK` to call it (the reactor,
    /// for a poll stuck waiting on something only the reactor can deliver).
    pub(crate) fn wait_workers(&self, deadline: Option<Instant>, turn: Option<&dyn Fn()>) -> bool {
        crate::thread::wait_turning(&self.live, &self.live_cv, deadline, turn, |live| *live == 0)
    }

    /// Watches a `block_on` until the returned guard drops.
    pub(crate) fn register_block_on(&self, entry: Arc<BlockOn>) -> BlockOnRegistration<'_> {
        lock(&self.block_ons).push(entry.clone());
        BlockOnRegistration {
            shared: self,
            entry,
        }
    }

    pub(crate) fn block_ons(&self) -> Vec<Arc<BlockOn>> {
        lock(&self.block_ons).clone()
    }

    /// Polls started by all current worker threads: changes whenever anything runs.
    pub(crate) fn total_polls(&self) -> u64 {
        lock(&self.ms)
            .iter()
            .map(|m| m.polls.load(Ordering::Relaxed))
            .sum::<u64>()
            .wrapping_add(self.handoffs.load(Ordering::Relaxed))
    }

    /// Worker threads alive, including ones retiring after a hand-off.
    pub(crate) fn num_threads(&self) -> usize {
        *lock(&self.live)
    }

    /// The M running P `index` now.
    pub(crate) fn m(&self, index: usize) -> Arc<MState> {
        lock(&self.ms)[index].clone()
    }

    /// Does P `index` have work that its (stuck) thread is holding up?
    pub(crate) fn p_has_work(&self, index: usize) -> bool {
        let r = &self.remotes[index];
        !r.steal.is_empty() || r.lifo_busy.load(Ordering::Relaxed)
    }

    /// The monitor: hands the P in `m`'s slot to a fresh thread, if it is lent to a
    /// task poll. False when it is not (the poll returned, or the worker parked) or no
    /// thread could be started; then the P's queued tasks go to the injector, where
    /// running workers take them, and the P waits on the idle list (see the module
    /// docs). The P is never put back into `m`'s slot: its owner may have retired.
    ///
    /// The idle list's lock is held from the steal to the end, so an M whose poll
    /// returns meanwhile (and finds its slot empty) waits in [`adopt_idle_p`] until the
    /// P is either running on the new thread or on the list for it to adopt: it can
    /// never retire in between and leave the P without a thread.
    pub(crate) fn hand_off(handle: &Handle, m: &MState) -> bool {
        let shared = &handle.shared;
        let mut idle = lock(&shared.idle_ps);
        let Some(core) = m.slot.steal() else {
            return false;
        };
        match spawn_worker(handle, core) {
            Ok(()) => {
                shared.handoffs.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err((_, core)) => {
                shared.failed_handoffs.fetch_add(1, Ordering::Relaxed);
                let any = shared.park_idle_p(&mut idle, core);
                drop(idle);
                if any {
                    shared.notify_parked();
                }
                false
            }
        }
    }

    /// A P without a thread: its queued tasks to the injector, the P to the idle list
    /// (whose lock the caller holds). True when tasks were moved (tell a worker).
    #[allow(clippy::vec_box)]
    fn park_idle_p(&self, idle: &mut Vec<Box<Core>>, mut core: Box<Core>) -> bool {
        let mut tasks: Vec<Notified> = core.take_lifo(self).into_iter().collect();
        while let Some(task) = core.run_queue.pop() {
            tasks.push(task);
        }
        let any = !tasks.is_empty();
        self.inject.push_batch(tasks.into_iter());
        idle.push(core);
        any
    }

    /// An M whose P was handed off, back from its stuck poll: takes an idle P and binds
    /// itself to it, if one is waiting for a thread.
    fn adopt_idle_p(&self, m: &Arc<MState>) -> Option<Box<Core>> {
        let core = lock(&self.idle_ps).pop()?;
        lock(&self.ms)[core.index] = m.clone();
        Some(core)
    }

    /// The monitor, every tick: starts a thread for each idle P (after a failed
    /// hand-off). Stops at the first failure; the next tick tries again. Holds the idle
    /// list's lock throughout, for the reason given at [`hand_off`](Self::hand_off).
    pub(crate) fn restart_idle_ps(handle: &Handle) {
        let shared = &handle.shared;
        let mut idle = lock(&shared.idle_ps);
        while let Some(core) = idle.pop() {
            if let Err((_, core)) = spawn_worker(handle, core) {
                idle.push(core);
                return;
            }
            shared.handoffs.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Test hook: the next `n` worker-thread spawns fail as if the OS refused them.
    pub(crate) fn fail_next_spawns(&self, n: usize) {
        self.fail_spawns.store(n, Ordering::Release);
    }
}
