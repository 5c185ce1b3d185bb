//! The task cell: one heap allocation holding the header, the scheduler handle, the
//! future (later its output) and the join waker, plus the type-erased functions that
//! drive it.
//!
//! Layout (`#[repr(C)]`, header first so a `NonNull<Header>` is also a pointer to the
//! whole cell):
//!
//! ```text
//! Cell<F, S> ┌ Header  { state, vtable, id, owned_key, wait, spawned_at }
//!            ├ Core    { scheduler: S, stage: Running(F) | Finished(output) | Consumed }
//!            └ Trailer { join_waker }
//! ```
//!
//! Every handle to a task (`Task`, `Notified`, `Waker`, `JoinHandle`) is this pointer plus
//! a reference counted in the state word. The functions below are monomorphised per
//! `(F, S)` and reached through the [`Vtable`], so the schedulers and queues handle one
//! untyped pointer.
//!
//! Who may touch what is decided by the state word (see `state.rs`, rules 1–3); every
//! `unsafe` access below names the rule that makes it exclusive.

use std::any::Any;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::panic::{self, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::error::JoinError;
use super::state::{State, TransitionToIdle, TransitionToNotified, TransitionToRunning};
use super::{Id, Notified, Schedule, Task};
use crate::loom::{AtomicU32, UnsafeCell};

/// The type-erased part every task starts with.
#[repr(C)]
pub(crate) struct Header {
    pub(crate) state: State,
    vtable: &'static Vtable,
    pub(crate) id: Id,
    /// Key of this task in its owned-task shard. Written and read only under that
    /// shard's lock; an atomic so that needs no `unsafe`. A `u32` beside `wait`, so
    /// the two share one word (a parked task's size is a goal).
    pub(crate) owned_key: AtomicU32,
    /// Why the task last returned `Pending` (a `WaitReason`), for dumps and the
    /// deadlock report.
    pub(crate) wait: std::sync::atomic::AtomicU8,
    /// Where `spawn` was called: for the task dump and deadlock report (the monitor).
    pub(crate) spawned_at: &'static Location<'static>,
}

pub(crate) struct Vtable {
    /// Runs the task: poll, cancel, or nothing, as the state decides. Consumes a
    /// `Notified` reference.
    poll: unsafe fn(NonNull<Header>),
    /// Submits the task to its scheduler. Consumes a `Notified` reference.
    schedule: unsafe fn(NonNull<Header>),
    /// Frees the cell. The count must have reached zero.
    dealloc: unsafe fn(NonNull<Header>),
    /// Moves the output into `*dst` (a `Poll<Result<T, JoinError>>`) when complete,
    /// else registers the waker.
    try_read_output: unsafe fn(NonNull<Header>, *mut (), &Waker),
    /// `JoinHandle` drop: cleans up the output or waker and drops the handle's reference.
    drop_join_handle: unsafe fn(NonNull<Header>),
    /// Runtime shutdown: cancels the task if idle. Consumes one reference.
    shutdown: unsafe fn(NonNull<Header>),
}

#[repr(C)]
struct Cell<F: Future, S> {
    header: Header,
    core: Core<F, S>,
    trailer: Trailer,
}

struct Core<F: Future, S> {
    scheduler: S,
    stage: UnsafeCell<Stage<F>>,
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

struct Trailer {
    join_waker: UnsafeCell<Option<Waker>>,
}

/// Allocates a task cell; returns its pointer with the three initial references.
pub(crate) fn allocate<F, S>(
    future: F,
    scheduler: S,
    id: Id,
    spawned_at: &'static Location<'static>,
) -> NonNull<Header>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let cell = Box::new(Cell {
        header: Header {
            state: State::new(),
            vtable: vtable::<F, S>(),
            id,
            owned_key: AtomicU32::new(u32::MAX),
            wait: std::sync::atomic::AtomicU8::new(0),
            spawned_at,
        },
        core: Core {
            scheduler,
            stage: UnsafeCell::new(Stage::Running(future)),
        },
        trailer: Trailer {
            join_waker: UnsafeCell::new(None),
        },
    });
    // `Cell` is repr(C) with the header first, so the cast keeps the address.
    NonNull::from(Box::leak(cell)).cast::<Header>()
}

fn vtable<F, S>() -> &'static Vtable
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    &Vtable {
        poll: poll::<F, S>,
        schedule: schedule::<F, S>,
        dealloc: dealloc::<F, S>,
        try_read_output: try_read_output::<F, S>,
        drop_join_handle: drop_join_handle::<F, S>,
        shutdown: shutdown::<F, S>,
    }
}

/// A copyable, non-owning pointer to a task. Handles that own a reference wrap it.
#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) struct RawTask {
    ptr: NonNull<Header>,
}

// SAFETY: a task may be driven from any thread: its future and output are `Send`
// (required by `allocate`), the scheduler is `Send + Sync` (`Schedule`'s bounds), and all
// shared fields are atomics or guarded by the state word's rules.
unsafe impl Send for RawTask {}
// SAFETY: as above; `&RawTask` gives only a pointer copy.
unsafe impl Sync for RawTask {}

impl RawTask {
    pub(crate) fn from_ptr(ptr: NonNull<Header>) -> RawTask {
        RawTask { ptr }
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: every RawTask is derived from a handle that holds a reference, so the
        // cell is alive for as long as the caller can use `self`.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn state(&self) -> &State {
        &self.header().state
    }

    fn vtable(&self) -> &'static Vtable {
        self.header().vtable
    }

    /// Polls or cancels the task. Consumes the `Notified` reference the caller holds.
    pub(crate) fn poll(self) {
        // SAFETY: the pointer and vtable belong together (set in `allocate`); the caller
        // hands over a Notified reference, which `poll` consumes.
        unsafe { (self.vtable().poll)(self.ptr) }
    }

    /// Hands the task to its scheduler. Consumes a `Notified` reference.
    pub(crate) fn schedule(self) {
        // SAFETY: as in `poll`.
        unsafe { (self.vtable().schedule)(self.ptr) }
    }

    pub(crate) fn dealloc(self) {
        // SAFETY: callers invoke this only after the reference count reached zero, so no
        // other handle can observe the cell again.
        unsafe { (self.vtable().dealloc)(self.ptr) }
    }

    /// # Safety
    /// `dst` must point to a valid `Poll<Result<T, JoinError>>` where `T` is the task's
    /// output type, and the caller must be the task's `JoinHandle`.
    pub(crate) unsafe fn try_read_output(self, dst: *mut (), waker: &Waker) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { (self.vtable().try_read_output)(self.ptr, dst, waker) }
    }

    /// Called once, by the `JoinHandle`'s drop.
    pub(crate) fn drop_join_handle(self) {
        // SAFETY: the JoinHandle owns one reference and JOIN_INTEREST, consumed here.
        unsafe { (self.vtable().drop_join_handle)(self.ptr) }
    }

    /// Cancels the task if idle; consumes one reference (the owned list's).
    pub(crate) fn shutdown(self) {
        // SAFETY: the caller hands over a reference, consumed here.
        unsafe { (self.vtable().shutdown)(self.ptr) }
    }

    /// Drops one reference, freeing the cell if it was the last.
    pub(crate) fn drop_reference(self) {
        if self.state().ref_dec() {
            self.dealloc();
        }
    }

    /// `abort()`: cancel from any thread.
    pub(crate) fn remote_abort(self) {
        if self.state().transition_to_notified_and_cancel() {
            // We now hold a fresh Notified reference; a worker will run the cancellation.
            self.schedule();
        }
    }
}

/// Typed view of a cell, used inside the monomorphised functions.
struct Harness<F: Future, S> {
    cell: NonNull<Cell<F, S>>,
}

impl<F, S> Harness<F, S>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    /// # Safety
    /// `ptr` must come from `allocate::<F, S>` and the cell must be alive.
    unsafe fn from_raw(ptr: NonNull<Header>) -> Self {
        Harness { cell: ptr.cast() }
    }

    fn cell(&self) -> &Cell<F, S> {
        // SAFETY: `from_raw`'s contract: the cell is alive while the harness is used.
        unsafe { self.cell.as_ref() }
    }

    fn header(&self) -> &Header {
        &self.cell().header
    }

    fn state(&self) -> &State {
        &self.header().state
    }

    fn raw(&self) -> RawTask {
        RawTask {
            ptr: self.cell.cast(),
        }
    }

    fn scheduler(&self) -> &S {
        &self.cell().core.scheduler
    }

    // ----- the stage: rule 1 (RUNNING holder, or JoinHandle after COMPLETE) -----

    /// Polls the future, catching a panic. On `Ready` (or a panic) the future is dropped
    /// and the result stored.
    ///
    /// # Safety
    /// The caller must hold `RUNNING` (rule 1).
    unsafe fn poll_future(&self, cx: &mut Context<'_>) -> Poll<()> {
        let stage = &self.cell().core.stage;
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            stage.with_mut(|ptr| {
                // SAFETY: exclusive access by rule 1; the future is pinned because the
                // cell is never moved while the stage is `Running`.
                let Stage::Running(fut) = (unsafe { &mut *ptr }) else {
                    panic!("gort: task polled after completion");
                };
                // SAFETY: see above — the cell is heap-allocated and never moved.
                let fut = unsafe { Pin::new_unchecked(fut) };
                match fut.poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(out) => {
                        // Drop the future inside the catch so a panicking Drop is caught
                        // and reported like a panic in poll.
                        // SAFETY: exclusive access by rule 1.
                        unsafe { *ptr = Stage::Consumed };
                        Poll::Ready(out)
                    }
                }
            })
        }));
        let output = match result {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(out)) => Ok(out),
            Err(payload) => {
                // The future may still be in the stage (panic in poll): drop it, again
                // catching a panic from its destructor.
                // SAFETY: exclusive access by rule 1.
                let _ = unsafe { self.drop_stage() };
                Err(JoinError::panic(self.header().id, payload))
            }
        };
        // SAFETY: exclusive access by rule 1.
        unsafe { self.store_output(output) };
        Poll::Ready(())
    }

    /// Replaces the stage with `Consumed`, catching a panic from the old value's Drop.
    ///
    /// # Safety
    /// Exclusive access to the stage (rule 1).
    unsafe fn drop_stage(&self) -> Result<(), Box<dyn Any + Send>> {
        let stage = &self.cell().core.stage;
        panic::catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the caller guarantees exclusive access.
            stage.with_mut(|ptr| unsafe { *ptr = Stage::Consumed })
        }))
    }

    /// # Safety
    /// Exclusive access to the stage, which holds no future (rule 1).
    unsafe fn store_output(&self, output: Result<F::Output, JoinError>) {
        let stage = &self.cell().core.stage;
        // SAFETY: the caller guarantees exclusive access. Overwriting drops `Consumed`,
        // which runs no user code.
        stage.with_mut(|ptr| unsafe { *ptr = Stage::Finished(output) });
    }

    /// # Safety
    /// Caller holds `RUNNING` (rule 1).
    unsafe fn cancel(&self) {
        // SAFETY: forwarded.
        let output = match unsafe { self.drop_stage() } {
            Ok(()) => Err(JoinError::cancelled(self.header().id)),
            Err(payload) => Err(JoinError::panic(self.header().id, payload)),
        };
        // SAFETY: forwarded.
        unsafe { self.store_output(output) };
    }

    /// Finishes a task whose output (or cancellation) has been stored. Consumes the
    /// running reference.
    fn complete(&self) {
        let snapshot = self.state().transition_to_complete();
        if !snapshot.is_join_interested() {
            // Nobody will read the output: drop it here (a panicking Drop is caught).
            // SAFETY: COMPLETE is set and JOIN_INTEREST clear, so the stage is ours
            // (rule 1).
            let _ = unsafe { self.drop_stage() };
        } else if snapshot.is_join_waker_set() {
            let slot = &self.cell().trailer.join_waker;
            // A panicking waker must not unwind into the worker.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: we set COMPLETE while JOIN_WAKER was set (rule 2): the slot is
                // only read until we clear JOIN_WAKER below.
                let waker = slot.with(|p| unsafe { &*p });
                if let Some(w) = waker {
                    w.wake_by_ref();
                }
            }));
            if !self
                .state()
                .unset_join_waker_after_complete()
                .is_join_interested()
            {
                // The JoinHandle went away meanwhile and left the waker to us.
                // SAFETY: COMPLETE set, JOIN_INTEREST and JOIN_WAKER clear (rule 2).
                let old = slot.with_mut(|p| unsafe { (*p).take() });
                let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(old)));
            }
        }

        // Leave the owned list; it hands back its reference if it still had us.
        // SAFETY: the cell is alive (we hold the running reference).
        let me = ManuallyDrop::new(unsafe { Task::from_raw(self.raw()) });
        let released = self.scheduler().release(&me);
        let count = if let Some(task) = released {
            std::mem::forget(task);
            2
        } else {
            1
        };
        if self.state().transition_to_terminal(count) {
            self.raw().dealloc();
        }
    }
}

// ----- the vtable functions -----

unsafe fn poll<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the vtable entry was made for this (F, S) and the caller holds a reference.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    match harness.state().transition_to_running() {
        TransitionToRunning::Success => {
            // The waker borrows the running reference: no count change per poll.
            let waker = ManuallyDrop::new(waker_ref(ptr));
            let mut cx = Context::from_waker(&waker);
            let outer = super::wait::replace_wait_reason(0);
            // SAFETY: we just set RUNNING.
            let ready = unsafe { harness.poll_future(&mut cx) }.is_ready();
            let reason = super::wait::replace_wait_reason(outer);
            if ready {
                return harness.complete();
            }
            harness
                .header()
                .wait
                .store(reason, std::sync::atomic::Ordering::Relaxed);
            match harness.state().transition_to_idle() {
                TransitionToIdle::Ok => {}
                TransitionToIdle::OkNotified => {
                    // Woken while running: re-queue behind the others (a yield).
                    // SAFETY: the running reference became the Notified's.
                    let task = unsafe { Notified::from_raw(harness.raw()) };
                    harness.scheduler().yield_now(task);
                }
                TransitionToIdle::Cancelled => {
                    // SAFETY: still RUNNING.
                    unsafe { harness.cancel() };
                    harness.complete();
                }
            }
        }
        TransitionToRunning::Cancelled => {
            // SAFETY: we just set RUNNING.
            unsafe { harness.cancel() };
            harness.complete();
        }
        TransitionToRunning::Failed => {}
        TransitionToRunning::Dealloc => harness.raw().dealloc(),
    }
}

unsafe fn schedule<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the vtable entry was made for this (F, S); the caller holds a reference.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    // SAFETY: the caller hands over a Notified reference.
    let task = unsafe { Notified::from_raw(harness.raw()) };
    harness.scheduler().schedule(task);
}

unsafe fn dealloc<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the count reached zero, so nobody else can reach the cell; it was made by
    // `Box::new` in `allocate` with this exact type.
    let cell = unsafe { Box::from_raw(ptr.cast::<Cell<F, S>>().as_ptr()) };
    // The stage is `Consumed` or holds an output nobody took (already dropped by the
    // JoinHandle or `complete`), so this runs no user code but the scheduler handle's.
    drop(cell);
}

unsafe fn try_read_output<F, S>(ptr: NonNull<Header>, dst: *mut (), waker: &Waker)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the vtable entry was made for this (F, S); the JoinHandle holds a reference.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    if !can_read_output(harness.state(), &harness.cell().trailer, waker) {
        return;
    }
    let stage = &harness.cell().core.stage;
    // SAFETY: COMPLETE is set and we are the JoinHandle (rule 1).
    let taken = stage.with_mut(|p| unsafe { std::mem::replace(&mut *p, Stage::Consumed) });
    let Stage::Finished(output) = taken else {
        panic!("gort: JoinHandle polled after it returned its output");
    };
    let dst = dst.cast::<Poll<Result<F::Output, JoinError>>>();
    // SAFETY: the caller guarantees `dst` points to this type; assignment drops the old
    // `Poll::Pending`, which owns nothing.
    unsafe { *dst = Poll::Ready(output) };
}

/// True when the output is ready; otherwise registers `waker` to be woken at completion.
fn can_read_output(state: &State, trailer: &Trailer, waker: &Waker) -> bool {
    let snapshot = state.load();
    if snapshot.is_complete() {
        return true;
    }
    let res = if !snapshot.is_join_waker_set() {
        set_join_waker(state, trailer, waker.clone())
    } else {
        // SAFETY: JOIN_WAKER is set, so the runtime only reads the slot (rule 2), and
        // only after COMPLETE; a shared read is fine.
        let same = trailer
            .join_waker
            .with(|p| unsafe { &*p }.as_ref().is_some_and(|w| w.will_wake(waker)));
        if same {
            return false;
        }
        state
            .unset_join_waker()
            .and_then(|_| set_join_waker(state, trailer, waker.clone()))
    };
    match res {
        Ok(_) => false,
        Err(s) => {
            debug_assert!(s.is_complete());
            true
        }
    }
}

fn set_join_waker(
    state: &State,
    trailer: &Trailer,
    waker: Waker,
) -> Result<super::state::Snapshot, super::state::Snapshot> {
    // SAFETY: JOIN_WAKER is clear and the task is not complete, so the slot is the
    // JoinHandle's alone (rule 2).
    trailer.join_waker.with_mut(|p| unsafe { *p = Some(waker) });
    let res = state.set_join_waker();
    if res.is_err() {
        // Completed meanwhile: the runtime never saw JOIN_WAKER, the slot is still ours.
        // SAFETY: as above.
        trailer.join_waker.with_mut(|p| unsafe { *p = None });
    }
    res
}

unsafe fn drop_join_handle<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the vtable entry was made for this (F, S); the JoinHandle holds a reference.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    let what = harness.state().transition_to_join_handle_dropped();
    if what.drop_output {
        // An output nobody read, possibly with a panicking Drop: keep it off the caller.
        // SAFETY: COMPLETE was set when we cleared JOIN_INTEREST (rule 1).
        let _ = unsafe { harness.drop_stage() };
    }
    if what.drop_waker {
        // SAFETY: JOIN_WAKER is clear and we hold the slot (rule 2).
        harness
            .cell()
            .trailer
            .join_waker
            .with_mut(|p| unsafe { *p = None });
    }
    harness.raw().drop_reference();
}

unsafe fn shutdown<F, S>(ptr: NonNull<Header>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    // SAFETY: the vtable entry was made for this (F, S); the caller holds a reference.
    let harness = unsafe { Harness::<F, S>::from_raw(ptr) };
    if harness.state().transition_to_shutdown() {
        // We claimed the idle task; our reference serves as the running one.
        // SAFETY: we set RUNNING.
        unsafe { harness.cancel() };
        harness.complete();
    } else {
        // Running elsewhere (it sees CANCELLED when its poll ends) or already complete.
        harness.raw().drop_reference();
    }
}

// ----- wakers: the data pointer is the header; each Waker owns one reference -----

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

/// A waker for `ptr` that does not own a reference: the caller wraps it in
/// `ManuallyDrop` and keeps a reference alive while it is in use.
fn waker_ref(ptr: NonNull<Header>) -> Waker {
    // SAFETY: the vtable functions below uphold the RawWaker contract for this pointer.
    unsafe { Waker::from_raw(RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE)) }
}

unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is the non-null header pointer of a live task (the waker being
    // cloned holds a reference).
    let raw = RawTask::from_ptr(unsafe { NonNull::new_unchecked(data as *mut Header) });
    raw.state().ref_inc();
    RawWaker::new(data, &WAKER_VTABLE)
}

unsafe fn waker_wake(data: *const ()) {
    // SAFETY: as in `waker_clone`; this consumes the waker's reference.
    let raw = RawTask::from_ptr(unsafe { NonNull::new_unchecked(data as *mut Header) });
    match raw.state().transition_to_notified_by_val() {
        TransitionToNotified::Submit => raw.schedule(),
        TransitionToNotified::DoNothing => {}
        TransitionToNotified::Dealloc => raw.dealloc(),
    }
}

unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: as in `waker_clone`.
    let raw = RawTask::from_ptr(unsafe { NonNull::new_unchecked(data as *mut Header) });
    match raw.state().transition_to_notified_by_ref() {
        TransitionToNotified::Submit => raw.schedule(),
        TransitionToNotified::DoNothing => {}
        TransitionToNotified::Dealloc => unreachable!("wake_by_ref drops no reference"),
    }
}

unsafe fn waker_drop(data: *const ()) {
    // SAFETY: as in `waker_clone`; this consumes the waker's reference.
    let raw = RawTask::from_ptr(unsafe { NonNull::new_unchecked(data as *mut Header) });
    raw.drop_reference();
}
