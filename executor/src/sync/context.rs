//! Cancellation trees: Go's `context.Context` (cancel and deadline; no values).
//!
//! # Shape
//!
//! A context is a node in a tree. [`Context::background`] is the root that is never
//! cancelled (it has no node at all). [`Context::with_cancel`], [`with_deadline`] and
//! [`with_timeout`] derive a child node and return it with a [`CancelHandle`]. Cancelling
//! a node — by its handle, or by its deadline passing — cancels its whole subtree.
//!
//! ```text
//!   Context (clone) ──► Scope ──► Node ◄── CancelHandle
//!                         │         │ children: Slab<Arc<Node>>
//!                         ▼         ▼
//!                   parent Scope  child Nodes
//! ```
//!
//! - A **`Node`** holds the cancellation state: the error (an atomic, set once, under
//!   the node's lock), the deadline, the waiters of [`Context::done`], and strong
//!   references to its children's nodes.
//! - A **`Scope`** is what `Context` clones share. It owns the child's *registration* in
//!   its parent's children, and keeps its parent's scope (hence registration) alive.
//!   When the last clone of a child `Context` — and of every context derived from it —
//!   is dropped, the scope's `Drop` removes the child from its parent. So a long-lived
//!   parent that hands out a child per request does not accumulate them (Go needs the
//!   `cancel` call for that; here dropping is enough).
//! - A **`CancelHandle`** holds the node only: it can cancel it, but does not keep it
//!   registered (cancelling a context nobody holds is harmless and changes nothing).
//!
//! There is no reference cycle: parents point at child nodes, children point at parent
//! scopes, and nodes point at nothing above them.
//!
//! # Cancellation
//!
//! `cancel(node, reason)` sets the node's error unless one is set, dequeues and wakes
//! its `done()` waiters, and takes its children out of it, all under the node's lock;
//! then, with no lock held, it does the same to each child, iteratively (a deep chain
//! does not grow the stack). Children created after a node is cancelled are born
//! cancelled with its error and never registered, so the first cancellation sees every
//! child there will ever be. Locks are never nested, except that a node's lock is held
//! while its deadline is handed to the timer (`deadline.rs`), whose thread never takes a
//! node's lock while holding its own.
//!
//! # Deadlines
//!
//! A child's deadline is the earlier of its own and its parent's. [`Context::err`] and
//! [`Context::is_cancelled`] compare it with the clock on every call and, once it has
//! passed, cancel the node with [`ContextError::DeadlineExceeded`] (so the subtree sees
//! it too). [`Context::done`] is woken at the deadline by the timers of the runtime it is
//! polled in: each parked `done()` there holds one timer on the reactor for its task
//! (cancelled when it completes or is dropped), and the woken poll cancels the node.
//! Where there are no such timers, the module's one shared timer thread does it (see
//! the module docs of `sync`): the first `done()` that parks there on a node with a
//! deadline registers the node with it, and the registration is removed when the node
//! is dropped. Under loom there is neither; `done()` then notices a deadline only when
//! polled.

#![forbid(unsafe_code)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::loom::{lock, Arc, AtomicU32, Mutex, Ordering};
use crate::task::WaitReason;
use crate::wait_list::{WaitList, WaiterKey, WakeList};

/// Values of `Node::err`. Set once, from `LIVE` to one of the others.
const LIVE: u32 = 0;
const CANCELED: u32 = 1;
const DEADLINE_EXCEEDED: u32 = 2;

/// Why a context is done. Go: `context.Canceled` and `context.DeadlineExceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// Its [`CancelHandle`] (or an ancestor's) was used.
    Canceled,
    /// Its deadline (or an ancestor's) passed.
    DeadlineExceeded,
}

impl ContextError {
    fn code(self) -> u32 {
        match self {
            ContextError::Canceled => CANCELED,
            ContextError::DeadlineExceeded => DEADLINE_EXCEEDED,
        }
    }

    fn from_code(code: u32) -> Option<ContextError> {
        match code {
            CANCELED => Some(ContextError::Canceled),
            DEADLINE_EXCEEDED => Some(ContextError::DeadlineExceeded),
            _ => None,
        }
    }
}

impl fmt::Display for ContextError {
    /// Go's messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::Canceled => f.write_str("context canceled"),
            ContextError::DeadlineExceeded => f.write_str("context deadline exceeded"),
        }
    }
}

impl std::error::Error for ContextError {}

/// The cancellation state of one context; see the module docs.
pub(super) struct Node {
    /// `LIVE`, `CANCELED` or `DEADLINE_EXCEEDED`; written once, with `state` locked.
    err: AtomicU32,
    deadline: Option<Instant>,
    state: Mutex<NodeState>,
}

struct NodeState {
    /// Registered children. Emptied (taken) by cancellation; never refilled after.
    children: Slab<Arc<Node>>,
    /// Parked `done()` futures; all dequeued by cancellation.
    waiters: WaitList<()>,
    /// This node's entry in the deadline timer, once a `done()` parked on it.
    #[cfg(not(loom))]
    timer: Option<super::deadline::TimerKey>,
}

impl Node {
    fn new(deadline: Option<Instant>, err: u32) -> Node {
        Node {
            err: AtomicU32::new(err),
            deadline,
            state: Mutex::new(NodeState {
                children: Slab::new(),
                waiters: WaitList::new(),
                #[cfg(not(loom))]
                timer: None,
            }),
        }
    }

    fn error(&self) -> Option<ContextError> {
        ContextError::from_code(self.err.load(Ordering::Acquire))
    }
}

/// The node's error, after cancelling it if its deadline has passed.
fn check(node: &Arc<Node>) -> Option<ContextError> {
    if let Some(err) = node.error() {
        return Some(err);
    }
    let deadline = node.deadline?;
    if Instant::now() < deadline {
        return None;
    }
    cancel(node, ContextError::DeadlineExceeded);
    // A racing cancel may have won with `Canceled`; report whichever did.
    node.error()
}

impl Drop for Node {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        {
            let key = lock(&self.state).timer.take();
            if let Some(key) = key {
                super::deadline::remove(key);
            }
        }
    }
}

/// Cancels `root` and its subtree with `reason` (a node already cancelled keeps its
/// first error, and its subtree was cancelled with it).
pub(super) fn cancel(root: &Arc<Node>, reason: ContextError) {
    let mut pending: Vec<Arc<Node>> = Vec::new();
    let mut current: Option<Arc<Node>> = None;
    loop {
        let node = current.as_ref().unwrap_or(root);
        let mut wakes = WakeList::new();
        let children = {
            let mut st = lock(&node.state);
            if node.err.load(Ordering::Acquire) == LIVE {
                node.err.store(reason.code(), Ordering::Release);
                st.waiters.drain(&mut wakes, |()| {});
                std::mem::take(&mut st.children)
            } else {
                Slab::new()
            }
        };
        wakes.wake_all();
        pending.extend(children.into_iter().map(|(_, child)| child));
        match pending.pop() {
            Some(next) => current = Some(next),
            None => return,
        }
    }
}

/// What `Context` clones share: the node, and its registration in the parent.
struct Scope {
    node: Arc<Node>,
    /// Keeps the parent registered (in the grandparent) while this scope lives.
    parent: Option<Arc<Scope>>,
    /// This node's key in `parent.node`'s children; `None` if born cancelled.
    key: Option<usize>,
}

impl Drop for Scope {
    /// Unregisters this scope from its parent, and then every ancestor this was the
    /// last reference to, in a loop: dropping the leaf of a million-deep chain of
    /// `with_cancel` must not recurse a million frames deep.
    fn drop(&mut self) {
        let mut parent = self.parent.take();
        let mut key = self.key;
        while let Some(p) = parent {
            if let Some(key) = key {
                // The key is ours: only this scope removes it, and cancellation empties
                // the whole slab (after which nothing is inserted). Drop the removed
                // node after the lock is released.
                let removed = lock(&p.node.state).children.try_remove(key);
                drop(removed);
            }
            // If that was the last reference to the parent, unregister it here instead
            // of in its own `drop` (which, its parent taken, does nothing).
            match Arc::try_unwrap(p) {
                Ok(mut scope) => {
                    parent = scope.parent.take();
                    key = scope.key;
                }
                Err(_) => return,
            }
        }
    }
}

/// A cancellation signal with an optional deadline, passed down a call tree.
///
/// Go: `context.Context` (without values). Clone it freely (clones are the same
/// context); derive children with [`with_cancel`](Self::with_cancel),
/// [`with_deadline`](Self::with_deadline) and [`with_timeout`](Self::with_timeout).
/// Cancelling a context cancels every context derived from it. Threading:
/// `Send + Sync + Clone`.
///
/// ```
/// # gort_executor::Runtime::<gort_executor::NoReactor>::new().unwrap().block_on(async {
/// use gort_executor::sync::{Context, ContextError};
/// let (ctx, cancel) = Context::background().with_cancel();
/// let worker = gort_executor::spawn({
///     let ctx = ctx.clone();
///     async move { ctx.done().await }
/// });
/// cancel.cancel();
/// assert_eq!(worker.await.unwrap(), ContextError::Canceled);
/// assert_eq!(ctx.err(), Some(ContextError::Canceled));
/// # });
/// ```
#[derive(Clone, Default)]
pub struct Context {
    /// `None` for the background context.
    scope: Option<Arc<Scope>>,
}

impl Context {
    /// The root context: never cancelled, no deadline. Go: `context.Background()`.
    pub fn background() -> Context {
        Context { scope: None }
    }

    /// A child that is cancelled by the returned handle or when this context is.
    /// Go: `context.WithCancel(parent)`.
    pub fn with_cancel(&self) -> (Context, CancelHandle) {
        self.child(None)
    }

    /// A child that is also cancelled, with [`ContextError::DeadlineExceeded`], at
    /// `deadline` (or at this context's deadline, if earlier).
    /// Go: `context.WithDeadline(parent, d)`.
    pub fn with_deadline(&self, deadline: Instant) -> (Context, CancelHandle) {
        self.child(Some(deadline))
    }

    /// `with_deadline(now + timeout)`; a timeout too large to add to the clock means no
    /// deadline of its own. Go: `context.WithTimeout(parent, d)`.
    pub fn with_timeout(&self, timeout: Duration) -> (Context, CancelHandle) {
        self.child(Instant::now().checked_add(timeout))
    }

    fn child(&self, own_deadline: Option<Instant>) -> (Context, CancelHandle) {
        let deadline = match (self.deadline(), own_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (node, key) = match &self.scope {
            None => (Arc::new(Node::new(deadline, LIVE)), None),
            Some(parent) => {
                let mut st = lock(&parent.node.state);
                let parent_err = parent.node.err.load(Ordering::Acquire);
                if parent_err == LIVE {
                    let node = Arc::new(Node::new(deadline, LIVE));
                    let key = st.children.insert(node.clone());
                    (node, Some(key))
                } else {
                    // Born cancelled, as in Go; not registered.
                    (Arc::new(Node::new(deadline, parent_err)), None)
                }
            }
        };
        let scope = Arc::new(Scope {
            node: node.clone(),
            parent: self.scope.clone(),
            key,
        });
        (Context { scope: Some(scope) }, CancelHandle { node })
    }

    /// The deadline, if this context or an ancestor has one. Go: `ctx.Deadline()`.
    pub fn deadline(&self) -> Option<Instant> {
        self.scope.as_ref()?.node.deadline
    }

    /// Why the context is done, or `None` while it is not. Reports
    /// [`ContextError::DeadlineExceeded`] as soon as the deadline has passed (checking
    /// the clock). Go: `ctx.Err()`.
    pub fn err(&self) -> Option<ContextError> {
        check(&self.scope.as_ref()?.node)
    }

    /// `err().is_some()`: cancelled, or past its deadline.
    pub fn is_cancelled(&self) -> bool {
        self.err().is_some()
    }

    /// Completes, with the reason, once the context is cancelled or its deadline has
    /// passed. Go: `<-ctx.Done()`. The background context's `done()` never completes.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future only leaves the queue; cancellation is a state
    /// that a new `done()` sees at once.
    ///
    /// # Errors
    /// None (the output is the reason the context is done, not a failure of `done`).
    ///
    /// # Panics
    /// The returned future panics if polled again after it completed.
    pub fn done(&self) -> Done<'_> {
        Done {
            node: self.scope.as_ref().map(|s| &s.node),
            state: DoneState::Init,
            #[cfg(not(loom))]
            timer: None,
        }
    }

    /// Number of live children registered in this context (for tests of the
    /// unregistration on drop). Always 0 for the background context.
    #[doc(hidden)]
    pub fn num_children(&self) -> usize {
        match &self.scope {
            Some(scope) => lock(&scope.node.state).children.len(),
            None => 0,
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            None => f.write_str("Context::background()"),
            Some(scope) => f
                .debug_struct("Context")
                .field("deadline", &scope.node.deadline)
                .field("err", &scope.node.error())
                .finish(),
        }
    }
}

/// Cancels the context it came with (and everything derived from it).
///
/// Go: the `CancelFunc` of `context.WithCancel`. Dropping the handle does **not** cancel
/// (so `let (ctx, _) = parent.with_cancel()` is a context cancelled only with its
/// parent); dropping every clone of the context is what releases it from its parent.
/// Threading: `Send + Sync + Clone`.
#[derive(Clone)]
pub struct CancelHandle {
    node: Arc<Node>,
}

impl CancelHandle {
    /// Cancels the context with [`ContextError::Canceled`]; wakes its `done()` futures
    /// and those of its descendants. Later calls do nothing, and a context already done
    /// keeps its first error.
    pub fn cancel(&self) {
        cancel(&self.node, ContextError::Canceled);
    }

    /// Whether the context is done (by this handle, an ancestor, or its deadline).
    pub fn is_cancelled(&self) -> bool {
        check(&self.node).is_some()
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle")
            .field("err", &self.node.error())
            .finish()
    }
}

/// Future of [`Context::done`].
#[must_use = "futures do nothing unless polled"]
pub struct Done<'a> {
    /// `None` for the background context.
    node: Option<&'a Arc<Node>>,
    state: DoneState,
    /// The deadline's timer on the runtime's reactor, while parked inside a runtime.
    #[cfg(not(loom))]
    timer: Option<RuntimeTimer>,
}

/// A `done()`'s deadline on the timers of the runtime it is polled in: it wakes the
/// waiting task at the deadline, whose poll then cancels the context (waking every
/// other waiter). Cancelled when dropped.
#[cfg(not(loom))]
struct RuntimeTimer {
    /// Weak: a `Done` kept outside the runtime must not keep its reactor (an epoll
    /// descriptor, a ring) alive. Unwinding past a timer breaks nothing, hence the
    /// assertion (`Done` stays `UnwindSafe`, as it was).
    reactor: std::panic::AssertUnwindSafe<std::sync::Weak<dyn crate::reactor::Reactor>>,
    id: crate::reactor::TimerId,
    /// The waker it will wake, to re-arm when another task polls the future.
    waker: Waker,
}

#[cfg(not(loom))]
impl Drop for RuntimeTimer {
    fn drop(&mut self) {
        if let Some(reactor) = self.reactor.upgrade() {
            reactor.cancel_timer(self.id);
        }
    }
}

#[derive(Debug)]
enum DoneState {
    Init,
    Waiting(WaiterKey),
    Done,
}

impl Future for Done<'_> {
    type Output = ContextError;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<ContextError> {
        let this = self.get_mut();
        let Some(node) = this.node else {
            // The background context is never done.
            crate::task::set_wait_reason(crate::task::WaitReason::Context);
            return Poll::Pending;
        };
        let reason = match node.deadline {
            Some(_) => WaitReason::Timer,
            None => WaitReason::Context,
        };
        let poll = super::poll_parked(cx, reason, |cx, _| {
            // Checks the deadline (and cancels on it) before looking at the queue.
            let done = check(node).is_some();
            #[cfg(not(loom))]
            let on_runtime = !done && this.arm_runtime_timer(node, cx.waker());
            #[cfg(loom)]
            let on_runtime = {
                let _ = done;
                false
            };
            this.poll_locked(node, cx, on_runtime)
        });
        #[cfg(not(loom))]
        if poll.is_ready() {
            this.timer = None;
        }
        poll
    }
}

impl Done<'_> {
    /// The locked part of `poll`; also returns a waker to drop after unlocking.
    /// With `on_runtime`, the deadline has a timer on the runtime's reactor; otherwise
    /// the first waiter hands it to the shared deadline thread.
    fn poll_locked(
        &mut self,
        node: &Arc<Node>,
        cx: &mut std::task::Context<'_>,
        on_runtime: bool,
    ) -> (Poll<ContextError>, Option<Waker>) {
        let mut st = lock(&node.state);
        let state = std::mem::replace(&mut self.state, DoneState::Done);
        if let DoneState::Done = state {
            drop(st);
            panic!("`Done` polled after it completed");
        }
        if let Some(err) = node.error() {
            // Cancellation dequeued us (if we were queued) under this lock.
            let stale = match state {
                DoneState::Waiting(key) => st.waiters.remove(key).waker,
                _ => None,
            };
            return (Poll::Ready(err), stale);
        }
        match state {
            DoneState::Waiting(key) => {
                let stale = st.waiters.set_waker(&key, cx.waker());
                self.state = DoneState::Waiting(key);
                // Parked first where the runtime kept the deadline, polled now where
                // none does (the future was moved out): the thread must take over.
                #[cfg(not(loom))]
                if let (Some(when), None, false) = (node.deadline, &st.timer, on_runtime) {
                    st.timer = super::deadline::schedule(when, Arc::downgrade(node));
                }
                (Poll::Pending, stale)
            }
            _ => {
                let key = st.waiters.push_back((), Some(cx.waker()));
                self.state = DoneState::Waiting(key);
                #[cfg(not(loom))]
                if let (Some(when), None, false) = (node.deadline, &st.timer, on_runtime) {
                    // Lock order: node, then timer (see `deadline.rs`).
                    st.timer = super::deadline::schedule(when, Arc::downgrade(node));
                }
                #[cfg(loom)]
                let _ = on_runtime;
                (Poll::Pending, None)
            }
        }
    }

    /// Puts the deadline (if any) on the timers of the runtime whose code this thread
    /// runs (a worker, its `block_on`), for the task `waker` wakes; keeps a timer
    /// already set there for that task. False when there is no deadline or no runtime
    /// with timers here.
    #[cfg(not(loom))]
    fn arm_runtime_timer(&mut self, node: &Node, waker: &Waker) -> bool {
        let Some(when) = node.deadline else {
            return false;
        };
        let reactor = crate::reactor::current();
        if let (Some(t), Some(r)) = (&self.timer, &reactor) {
            if t.waker.will_wake(waker) && std::ptr::addr_eq(t.reactor.as_ptr(), Arc::as_ptr(r)) {
                return true;
            }
        }
        // A timer for another task, or on another runtime's reactor, would wake the
        // wrong task or depend on a runtime this poll is not in: it goes.
        self.timer = None;
        let Some(reactor) = reactor else {
            return false;
        };
        let Some(id) = reactor.add_timer(when, waker.clone()) else {
            return false;
        };
        self.timer = Some(RuntimeTimer {
            reactor: std::panic::AssertUnwindSafe(Arc::downgrade(&reactor)),
            id,
            waker: waker.clone(),
        });
        true
    }
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        if let (Some(node), DoneState::Waiting(key)) = (
            self.node,
            std::mem::replace(&mut self.state, DoneState::Done),
        ) {
            let removed = lock(&node.state).waiters.remove(key);
            drop(removed); // after the lock (see `wait_list.rs`)
        }
    }
}

impl fmt::Debug for Done<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done").field("state", &self.state).finish()
    }
}
