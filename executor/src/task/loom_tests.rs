//! Loom models of the task state machine: every interleaving of a poll, a wake, an
//! abort and the handle's drop must leave the task completed exactly once, its output
//! dropped exactly once, and no reference leaked or freed early.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use super::testing::{poll_once, Sched};

/// Pending until `fired`; stores its waker in `slot` for the other thread.
struct WaitFired {
    fired: Arc<AtomicBool>,
    slot: Arc<Mutex<Option<Waker>>>,
}

impl Future for WaitFired {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        // Re-check after publishing the waker (the usual lost-wake-up guard).
        if self.fired.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

#[test]
fn loom_task_wake_during_poll_is_not_lost() {
    loom::model(|| {
        let s = Sched::new();
        let fired = Arc::new(AtomicBool::new(false));
        let slot = Arc::new(Mutex::new(None::<Waker>));
        let mut join = s.spawn(WaitFired {
            fired: fired.clone(),
            slot: slot.clone(),
        });
        let waker_thread = {
            let (fired, slot) = (fired.clone(), slot.clone());
            thread::spawn(move || {
                fired.store(true, Ordering::Release);
                let w = slot.lock().unwrap().take();
                if let Some(w) = w {
                    w.wake();
                }
            })
        };
        // Run whatever is queued, concurrently with the wake.
        s.run_all();
        waker_thread.join().unwrap();
        s.run_all();
        assert!(matches!(poll_once(&mut join), Poll::Ready(Ok(()))));
        drop(slot.lock().unwrap().take());
        s.shutdown();
    });
}

#[test]
fn loom_task_abort_races_completion() {
    loom::model(|| {
        let s = Sched::new();
        let mut join = s.spawn(async { 5 });
        let abort = join.abort_handle();
        let t = thread::spawn(move || abort.abort());
        s.run_all();
        t.join().unwrap();
        s.run_all();
        match poll_once(&mut join) {
            Poll::Ready(Ok(5)) => {}
            Poll::Ready(Err(e)) => assert!(e.is_cancelled()),
            other => panic!("unexpected {:?}", other.map(|r| r.is_ok())),
        }
        s.shutdown();
    });
}

struct CountDrop(Arc<AtomicUsize>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn loom_task_join_handle_drop_races_completion() {
    loom::model(|| {
        let s = Sched::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        let join = s.spawn(async move { CountDrop(d) });
        let t = thread::spawn(move || drop(join));
        s.run_all();
        t.join().unwrap();
        // The output was dropped exactly once, by whichever side came last, and the
        // cell was freed by the last reference (loom reports leaks and double frees of
        // its tracked objects).
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        s.shutdown();
    });
}

#[test]
fn loom_task_shutdown_races_wake() {
    loom::model(|| {
        let s = Sched::new();
        let fired = Arc::new(AtomicBool::new(false));
        let slot = Arc::new(Mutex::new(None::<Waker>));
        let mut join = s.spawn(WaitFired {
            fired: fired.clone(),
            slot: slot.clone(),
        });
        s.run_all(); // parks on the waker
        let w = slot.lock().unwrap().take().expect("polled once");
        let t = thread::spawn(move || w.wake());
        s.0.owned.close_and_shutdown_all();
        t.join().unwrap();
        s.run_all(); // a queued Notified of a cancelled task is a no-op
        assert!(matches!(poll_once(&mut join), Poll::Ready(Err(e)) if e.is_cancelled()));
        s.shutdown();
    });
}
