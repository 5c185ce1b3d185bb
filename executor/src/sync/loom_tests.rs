//! Loom models of the primitives: a release racing an acquire, an acquire future dropped
//! while a release hands it the permit, a notification racing a wait or a dropped
//! waiter, a cancel racing the creation of a child. In every interleaving no permit or
//! notification may be lost; a lost one shows up as a deadlock (a thread blocked in
//! `block_on` forever), which loom reports.
//!
//! `RUSTFLAGS="--cfg loom -C debug-assertions" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p gort-executor --release --lib loom_sync`

use std::future::Future;
use std::pin::pin;
use std::sync::Arc as StdArc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use loom::sync::Arc;
use loom::thread;

use super::*;

/// Wakes a thread parked in [`block_on`] (loom's `Notify`: one waiter at a time).
struct ThreadWaker(loom::sync::Notify);

impl Wake for ThreadWaker {
    fn wake(self: StdArc<Self>) {
        self.0.notify();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.notify();
    }
}

/// Drives `f` to completion on this loom thread, parking between polls.
fn block_on<F: Future>(f: F) -> F::Output {
    let parker = StdArc::new(ThreadWaker(loom::sync::Notify::new()));
    let waker = Waker::from(parker.clone());
    let mut cx = TaskContext::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        parker.0.wait();
    }
}

/// Polls `f` once with a waker that does nothing.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    struct Nothing;
    impl Wake for Nothing {
        fn wake(self: StdArc<Self>) {}
    }
    let waker = Waker::from(StdArc::new(Nothing));
    std::pin::Pin::new(f).poll(&mut TaskContext::from_waker(&waker))
}

/// A release on one thread, an acquire that has to wait for it on another.
#[test]
fn loom_sync_semaphore_release_racing_acquire() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let releaser = {
            let sem = sem.clone();
            thread::spawn(move || sem.add_permits(1))
        };
        let permit = block_on(sem.acquire()).expect("never closed");
        drop(permit);
        releaser.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// Two tasks pass one permit back and forth.
#[test]
fn loom_sync_semaphore_two_acquirers_share_one_permit() {
    loom::model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let other = {
            let sem = sem.clone();
            thread::spawn(move || drop(block_on(sem.acquire()).expect("never closed")))
        };
        drop(block_on(sem.acquire()).expect("never closed"));
        other.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.num_waiters(), 0);
    });
}

/// A queued acquire is dropped while a release grants it the permit, with a second
/// acquirer waiting behind it: the permit must reach the second one (or stay free for
/// it), never vanish with the dropped future.
#[test]
fn loom_sync_semaphore_dropped_acquire_racing_release_loses_no_permit() {
    loom::model(|| {
        let sem = StdArc::new(Semaphore::new(0));
        let mut first = sem.clone().acquire_owned();
        assert!(poll_once(&mut first).is_pending()); // queued at the head
        let dropper = thread::spawn(move || drop(first));
        let second = {
            let sem = sem.clone();
            thread::spawn(move || drop(block_on(sem.acquire_owned()).expect("never closed")))
        };
        sem.add_permits(1);
        dropper.join().unwrap();
        second.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
        assert_eq!(sem.num_waiters(), 0);
    });
}

/// The mutex excludes: two increments from two threads make two.
#[test]
fn loom_sync_mutex_two_lockers_both_increment() {
    loom::model(|| {
        let m = Arc::new(Mutex::new(0usize));
        let other = {
            let m = m.clone();
            thread::spawn(move || *block_on(m.lock()) += 1)
        };
        *block_on(m.lock()) += 1;
        other.join().unwrap();
        assert_eq!(*m.try_lock().unwrap(), 2);
    });
}

/// `notify_one` racing the first poll of `notified()`: the waiter wakes either way (the
/// permit covers the early notification).
#[test]
fn loom_sync_notify_one_racing_wait_is_not_lost() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let notifier = {
            let n = n.clone();
            thread::spawn(move || n.notify_one())
        };
        block_on(n.notified());
        notifier.join().unwrap();
    });
}

/// A waiter that may be handed the notification drops its future: the notification
/// must reach the other waiter. (If the first waiter's poll consumed it, the first
/// waiter really received it and forwards it itself, as its owner would.)
#[test]
fn loom_sync_notify_dropped_waiter_passes_the_notification_on() {
    loom::model(|| {
        let n = Arc::new(Notify::new());
        let quitter = {
            let n = n.clone();
            thread::spawn(move || {
                let mut f = n.notified();
                if poll_once(&mut f).is_ready() {
                    n.notify_one();
                }
                drop(f);
            })
        };
        let waiter = {
            let n = n.clone();
            thread::spawn(move || block_on(n.notified()))
        };
        n.notify_one();
        quitter.join().unwrap();
        waiter.join().unwrap();
    });
}

/// `done()` racing the counter's last decrement.
#[test]
fn loom_sync_wait_group_done_racing_wait() {
    loom::model(|| {
        let wg = WaitGroup::new();
        wg.add(1);
        let worker = {
            let wg = wg.clone();
            thread::spawn(move || wg.done())
        };
        block_on(wg.wait());
        worker.join().unwrap();
        assert_eq!(wg.count(), 0);
    });
}

/// A cancel racing the creation of a child and its `done()`: the child is either
/// registered before the cancel (and cancelled by it) or born cancelled.
#[test]
fn loom_sync_context_cancel_racing_child_creation() {
    loom::model(|| {
        let (parent, handle) = Context::background().with_cancel();
        let canceller = thread::spawn(move || handle.cancel());
        let (child, _child_handle) = parent.with_cancel();
        assert_eq!(block_on(child.done()), ContextError::Canceled);
        canceller.join().unwrap();
        assert_eq!(parent.err(), Some(ContextError::Canceled));
    });
}
