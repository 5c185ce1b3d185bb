//! Loom models of the run queue and the idle/park protocol.

use loom::sync::Arc;
use loom::thread;

use super::idle::Idle;
use super::inject::Inject;
use super::queue::{self, CAPACITY};
use crate::park::{Park, ThreadParker};
use crate::task::testing::Sched;
use crate::task::Notified;

fn tasks(s: &Sched, n: usize) -> Vec<Notified> {
    (0..n)
        .map(|_| {
            let (t, j) = s.notified(async {});
            drop(j);
            t
        })
        .collect()
}

fn drain(local: &mut queue::Local) -> usize {
    let mut n = 0;
    while local.pop().is_some() {
        n += 1;
    }
    n
}

/// The owner pushes and pops while a thief steals: every task comes out exactly once.
#[test]
fn loom_queue_push_pop_steal() {
    loom::model(|| {
        let s = Sched::new();
        let inject = Inject::new();
        let (steal, mut local) = queue::local();
        let n = CAPACITY - 1;
        let thief = thread::spawn(move || {
            let (_s, mut mine) = queue::local();
            let mut got = 0;
            if steal.steal_into(&mut mine).is_some() {
                got += 1;
            }
            got + drain(&mut mine)
        });
        let mut popped = 0;
        for t in tasks(&s, n) {
            local.push_back_or_overflow(t, &inject);
        }
        if local.pop().is_some() {
            popped += 1;
        }
        let stolen = thief.join().unwrap();
        popped += drain(&mut local);
        assert_eq!(popped + stolen + inject.close().len(), n);
        s.shutdown();
    });
}

/// Overflow to the injector while a thief steals.
#[test]
fn loom_queue_overflow_while_stealing() {
    loom::model(|| {
        let s = Sched::new();
        let inject = Arc::new(Inject::new());
        let (steal, mut local) = queue::local();
        let n = CAPACITY + 2;
        let all = tasks(&s, n);
        let thief = thread::spawn(move || {
            let (_s, mut mine) = queue::local();
            let got = usize::from(steal.steal_into(&mut mine).is_some());
            got + drain(&mut mine)
        });
        for t in all {
            local.push_back_or_overflow(t, &inject);
        }
        let stolen = thief.join().unwrap();
        let popped = drain(&mut local);
        assert_eq!(popped + stolen + inject.close().len(), n);
        s.shutdown();
    });
}

/// A worker that finds nothing parks; a producer pushes and notifies. Whatever the
/// interleaving, the worker ends up with the task (loom fails the model if the worker
/// sleeps forever: every thread blocked is a deadlock).
#[test]
fn loom_idle_no_sleep_while_work_is_queued() {
    loom::model(|| {
        let s = Sched::new();
        let idle = Arc::new(Idle::new(1));
        let inject = Arc::new(Inject::new());
        let mut parker = ThreadParker::new();
        let unparker = parker.unparker();
        let task = tasks(&s, 1).pop().unwrap();

        let producer = {
            let (idle, inject) = (idle.clone(), inject.clone());
            thread::spawn(move || {
                inject.push(task);
                if idle.worker_to_notify().is_some() {
                    unparker.unpark();
                }
            })
        };

        // The worker: search, then park as worker.rs does (rules 2 and 4 of idle.rs).
        assert!(idle.transition_worker_to_searching());
        let mut searching = true;
        let got = loop {
            if let Some(t) = inject.pop() {
                if searching {
                    idle.transition_worker_from_searching();
                }
                break t;
            }
            let last = idle.transition_worker_to_parked(0, searching);
            if last && !inject.is_empty() {
                if let Some(i) = idle.worker_to_notify() {
                    assert_eq!(i, 0);
                    parker.unparker().unpark();
                }
            }
            loop {
                parker.park(None);
                if !idle.is_parked(0) {
                    searching = true; // woken as a searcher
                    break;
                }
            }
        };
        drop(got);
        producer.join().unwrap();
        s.shutdown();
    });
}

/// A stand-in for the P: counts how often it is dropped.
#[repr(align(8))]
struct Token(Arc<loom::sync::atomic::AtomicUsize>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
    }
}

/// The owner borrows its P in place and then takes it back while the monitor tries to
/// steal it: exactly one of them ends up owning it, and it is dropped exactly once.
#[test]
fn loom_slot_owner_and_monitor_never_both_own_the_p() {
    loom::model(|| {
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let (slot, thief) = super::slot::pair::<Token>();
        slot.put(Box::new(Token(drops.clone())), true);
        let monitor = thread::spawn(move || thief.steal());
        if let Some(b) = slot.borrow() {
            // Scheduling into the P in place: it is ours while borrowed.
            assert_eq!(b.0.load(loom::sync::atomic::Ordering::SeqCst), 0);
        }
        let taken = slot.take();
        let stolen = monitor.join().unwrap();
        assert!(
            taken.is_some() != stolen.is_some(),
            "the P must have one owner"
        );
        drop((taken, stolen));
        assert_eq!(drops.load(loom::sync::atomic::Ordering::SeqCst), 1);
    });
}

/// A parked worker's P (not stealable) is never taken by the monitor.
#[test]
fn loom_slot_monitor_never_takes_a_parked_p() {
    loom::model(|| {
        let drops = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let (slot, thief) = super::slot::pair::<Token>();
        slot.put(Box::new(Token(drops.clone())), false);
        let monitor = thread::spawn(move || thief.steal().is_some());
        let borrowed = slot.borrow().is_some();
        assert!(!monitor.join().unwrap());
        assert!(borrowed);
        assert!(slot.take().is_some());
    });
}
