//! `JoinSet`: a set of tasks whose outputs are taken in the order they finish.
//!
//! Each task's `JoinHandle` is kept in a slab and polled with a waker of its own
//! (`EntryWaker`, which knows the slot), so when a task finishes only its slot is
//! queued, and `join_next` polls the queued slots instead of every handle: O(1) per
//! finished task however many are running (tokio's `IdleNotifiedSet` idea, with a
//! queue of slot numbers instead of intrusive lists). A new handle starts queued, so its
//! waker gets registered by the first `join_next`. A slot number queued after its
//! handle left (or for a slot reused since) costs one spurious poll that returns
//! `Pending`, nothing more.
//!
//! Dropping the set aborts every task still in it (tokio's rule; Go has no such thing,
//! a goroutine cannot be stopped from outside).

#![forbid(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use slab::Slab;

use crate::task::{AbortHandle, JoinError, JoinHandle};

/// A set of spawned tasks, joined in the order they finish. tokio's `JoinSet`.
///
/// ```
/// # gort_executor::Runtime::<gort_executor::NoReactor>::new().unwrap().block_on(async {
/// use gort_executor::runtime::JoinSet;
///
/// let mut set = JoinSet::new();
/// for i in 0..10u64 {
///     set.spawn(async move { i * i });
/// }
/// let mut sum = 0;
/// while let Some(res) = set.join_next().await {
///     sum += res.unwrap();
/// }
/// assert_eq!(sum, 285);
/// # });
/// ```
///
/// Dropping the set aborts the tasks still in it; [`detach_all`](Self::detach_all)
/// lets them run on instead.
pub struct JoinSet<T> {
    entries: Slab<JoinHandle<T>>,
    /// Wakers by slot, made once per slot and reused.
    wakers: Vec<Waker>,
    shared: Arc<Shared>,
}

/// What the entries' wakers and `join_next` share.
struct Shared {
    inner: Mutex<Queued>,
}

struct Queued {
    /// Slots whose handle may be ready.
    ready: VecDeque<usize>,
    /// The task waiting in `join_next`.
    waker: Option<Waker>,
}

struct EntryWaker {
    slot: usize,
    shared: Arc<Shared>,
}

impl Wake for EntryWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waker = {
            let mut q = self.shared.lock();
            q.ready.push_back(self.slot);
            q.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> JoinSet<T> {
        JoinSet {
            entries: Slab::new(),
            wakers: Vec::new(),
            shared: Arc::new(Shared {
                inner: Mutex::new(Queued {
                    ready: VecDeque::new(),
                    waker: None,
                }),
            }),
        }
    }

    /// Tasks in the set: running, or finished and not yet joined.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set holds no task.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a task already spawned (by `spawn`, `spawn_blocking`, a `Handle`).
    pub fn insert(&mut self, handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        let slot = self.entries.insert(handle);
        if slot == self.wakers.len() {
            self.wakers.push(Waker::from(Arc::new(EntryWaker {
                slot,
                shared: self.shared.clone(),
            })));
        }
        self.shared.lock().ready.push_back(slot);
        abort
    }

    /// Aborts every task in the set; they stay in it until joined (as cancelled
    /// [`JoinError`]s, or with their output if they finished first).
    pub fn abort_all(&mut self) {
        for (_, h) in &self.entries {
            h.abort();
        }
    }

    /// Empties the set without aborting: the tasks run on, detached.
    pub fn detach_all(&mut self) {
        self.entries.clear();
        self.shared.lock().ready.clear();
    }

    /// Waits for any task to finish and returns its result; `None` once the set is
    /// empty. Go has no equivalent (`errgroup` is [`Group`](super::Group)).
    ///
    /// # Cancel safety
    /// Cancel safe: a result not yet returned stays in the set.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`join_next`](Self::join_next) without waiting: `None` when no task has
    /// finished (or the set is empty). Never yields for the coop budget (a loop of
    /// `try_join_next` that does not yield is the caller's choice) and leaves the
    /// waker of a pending `join_next` in place.
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        let mut cx = Context::from_waker(Waker::noop());
        match crate::coop::unconstrained_call(|| self.poll_next_ready(&mut cx, false)) {
            Poll::Ready(Some(res)) => Some(res),
            _ => None,
        }
    }

    /// [`join_next`](Self::join_next) as a poll function.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        if self.entries.is_empty() {
            return Poll::Ready(None);
        }
        let res = self.poll_next_ready(cx, true);
        if res.is_pending() {
            crate::task::set_wait_reason(crate::task::WaitReason::Join);
        }
        res
    }

    /// Polls the queued slots until one is ready. With `register`, a `Pending`
    /// leaves `cx`'s waker to be woken by the next finished task; without, the stored
    /// waker is left alone (`try_join_next`).
    fn poll_next_ready(
        &mut self,
        cx: &mut Context<'_>,
        register: bool,
    ) -> Poll<Option<Result<T, JoinError>>> {
        loop {
            // Out of budget: every handle would answer `Pending` and re-queue itself,
            // so walking the queue would cost its length for nothing. Yield instead.
            if !crate::coop::has_budget_remaining() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let slot = {
                let mut q = self.shared.lock();
                match q.ready.pop_front() {
                    Some(slot) => slot,
                    None => {
                        if register {
                            match &q.waker {
                                Some(w) if w.will_wake(cx.waker()) => {}
                                _ => q.waker = Some(cx.waker().clone()),
                            }
                        }
                        return Poll::Pending;
                    }
                }
            };
            let Some(handle) = self.entries.get_mut(slot) else {
                continue; // joined already
            };
            let mut entry_cx = Context::from_waker(&self.wakers[slot]);
            if let Poll::Ready(res) = Pin::new(handle).poll(&mut entry_cx) {
                self.entries.remove(slot);
                return Poll::Ready(Some(res));
            }
        }
    }

    /// Aborts every task and waits until all have stopped.
    ///
    /// # Cancel safety
    /// Cancel safe: the tasks are aborted either way, and those not yet joined stay.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }

    /// Waits for every task and returns their outputs in the order they finished.
    ///
    /// # Panics
    /// Resumes the panic of a task that panicked (after aborting the rest), and panics
    /// if a task was cancelled.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping the future drops the set, which aborts the tasks
    /// still running, and the outputs collected so far are lost.
    pub async fn join_all(mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        while let Some(res) = self.join_next().await {
            match res {
                Ok(v) => out.push(v),
                Err(e) if e.is_panic() => {
                    self.abort_all();
                    std::panic::resume_unwind(e.into_panic());
                }
                Err(e) => panic!("JoinSet::join_all: {e}"),
            }
        }
        out
    }
}

impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `future` on the current runtime into the set.
    ///
    /// # Panics
    /// When the thread has no current runtime.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.insert(super::spawn(future))
    }

    /// Runs `f` on the blocking pool, into the set.
    ///
    /// # Panics
    /// When the thread has no current runtime.
    #[track_caller]
    pub fn spawn_blocking<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(super::spawn_blocking(f))
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        JoinSet::new()
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}
