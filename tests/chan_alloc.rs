//! A parked receiver costs its waiter slot in the channel and nothing else: once the
//! channel's waiter table has room, parking and waking allocate nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a thread-local Cell.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(|a| a.get())
}

#[test]
fn chan_parked_receiver_allocates_nothing_beyond_its_slot() {
    let (tx, rx) = gort::chan::bounded::<u64>(0);
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    // Warm-up: the first park grows the waiter table and the queue.
    {
        let mut recv = pin!(rx.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        tx.try_send(1).unwrap();
        assert!(recv.as_mut().poll(&mut cx).is_ready());
    }
    let before = allocs();
    for i in 0..1000 {
        let mut recv = pin!(rx.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        tx.try_send(i).unwrap();
        assert_eq!(recv.as_mut().poll(&mut cx), std::task::Poll::Ready(Some(i)));
    }
    assert_eq!(allocs() - before, 0, "parking a receiver allocated");
}
