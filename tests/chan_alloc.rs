//! A parked receiver costs its waiter slot in the channel and nothing else: once the
//! channel's waiter table has room, parking and waking allocate nothing. A buffered
//! channel is as small as Go's, and one that never parks anybody allocates nothing
//! after it is made.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a thread-local Cell.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
        let _ = BYTES.try_with(|b| b.set(b.get() + layout.size()));
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

fn bytes() -> usize {
    BYTES.with(|b| b.get())
}

#[test]
#[cfg(target_pointer_width = "64")]
fn chan_bounded_one_is_within_go_hchan_size_and_grows_only_when_someone_parks() {
    let (before, bytes_before) = (allocs(), bytes());
    let (tx, rx) = gort::chan::bounded::<u64>(1);
    let (made, made_bytes) = (allocs() - before, bytes() - bytes_before);
    // Go's `make(chan uint64, 1)`: a 96-byte `hchan` and the 8-byte buffer in one
    // 112-byte size class. Ours: the channel and its one-slot ring.
    assert!(made <= 2, "{made} allocations");
    assert!(
        made_bytes <= 128,
        "bounded::<u64>(1) took {made_bytes} bytes"
    );
    // Sends and receives that never wait touch no waiter queue: nothing allocated.
    let before = allocs();
    for i in 0..100 {
        tx.try_send(i).unwrap();
        assert!(tx.try_send(i).is_err(), "full at capacity 1");
        assert_eq!(rx.try_recv(), Ok(i));
    }
    assert_eq!(allocs() - before, 0, "a channel nobody waits on allocated");
    // The first parked receiver allocates the queues and one slot, once.
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let before = allocs();
    {
        let mut recv = pin!(rx.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        tx.try_send(7).unwrap();
        assert_eq!(recv.as_mut().poll(&mut cx), std::task::Poll::Ready(Some(7)));
    }
    let first_park = allocs() - before;
    assert!(
        first_park <= 2,
        "the first park allocated {first_park} times"
    );
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
