//! Channel and select internals driven by hand (no runtime), so they also run under
//! Miri.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::__select::{drive, IsChanOp, IsFuture, Reply, Select, Wrap};
use super::*;

struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

fn poll<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(w))
}

#[test]
fn chan_rendezvous_by_hand() {
    let (tx, rx) = bounded::<String>(0);
    let (sc, sw) = counting();
    let mut send = pin!(tx.send("hi".to_owned()));
    assert!(poll(send.as_mut(), &sw).is_pending());
    let (_, rw) = counting();
    let mut recv = pin!(rx.recv());
    assert_eq!(poll(recv.as_mut(), &rw), Poll::Ready(Some("hi".to_owned())));
    assert_eq!(sc.0.load(Ordering::SeqCst), 1, "the sender was woken");
    assert!(matches!(poll(send.as_mut(), &sw), Poll::Ready(Ok(()))));
}

#[test]
fn chan_close_wakes_parked_receiver() {
    let (tx, rx) = bounded::<u8>(1);
    let (c, w) = counting();
    let mut recv = pin!(rx.recv());
    assert!(poll(recv.as_mut(), &w).is_pending());
    drop(tx);
    assert_eq!(c.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll(recv.as_mut(), &w), Poll::Ready(None));
}

#[test]
fn chan_recv_dropped_after_hand_over_gives_value_back() {
    let (tx, rx) = bounded::<Box<u32>>(0);
    let (_, w) = counting();
    {
        let mut recv = pin!(rx.recv());
        assert!(poll(recv.as_mut(), &w).is_pending());
        // A sender hands the value straight to the parked receiver...
        tx.try_send(Box::new(7)).unwrap();
        // ...which is dropped before returning it.
    }
    assert_eq!(rx.try_recv().map(|b| *b), Ok(7), "the value came back");
}

/// The same on a buffered (ring) channel: the given-back value goes before what was
/// pushed into the ring after it; once it is taken, the ring works as before.
#[test]
fn chan_ring_given_back_value_comes_before_the_ring() {
    let (tx, rx) = bounded::<Box<u32>>(2);
    let (_, w) = counting();
    {
        let mut recv = pin!(rx.recv());
        assert!(poll(recv.as_mut(), &w).is_pending());
        tx.try_send(Box::new(1)).unwrap();
    }
    tx.try_send(Box::new(2)).unwrap();
    assert_eq!(rx.len(), 2);
    assert_eq!(rx.try_recv().map(|b| *b), Ok(1));
    assert_eq!(rx.try_recv().map(|b| *b), Ok(2));
    assert!(rx.try_recv().is_err());
    // Back on the fast path: fill, drain, in order.
    tx.try_send(Box::new(3)).unwrap();
    tx.try_send(Box::new(4)).unwrap();
    assert!(tx.try_send(Box::new(5)).is_err(), "capacity 2");
    assert_eq!(rx.try_recv().map(|b| *b), Ok(3));
    assert_eq!(rx.try_recv().map(|b| *b), Ok(4));
}

/// A sender parked on a full ring moves in when a receive makes room, in order, and a
/// close hands the still-parked sender its value back.
#[test]
fn chan_ring_parked_sender_refills_in_order_and_close_returns_value() {
    let (tx, rx) = bounded::<u32>(1);
    let (_, w) = counting();
    tx.try_send(1).unwrap();
    let mut s2 = pin!(tx.send(2));
    assert!(poll(s2.as_mut(), &w).is_pending());
    let mut s3 = pin!(tx.send(3));
    assert!(poll(s3.as_mut(), &w).is_pending());
    assert_eq!(rx.try_recv(), Ok(1));
    assert!(matches!(poll(s2.as_mut(), &w), Poll::Ready(Ok(()))));
    assert_eq!(rx.len(), 1);
    assert!(rx.close());
    assert!(matches!(
        poll(s3.as_mut(), &w),
        Poll::Ready(Err(SendError(3)))
    ));
    assert_eq!(rx.try_recv(), Ok(2), "buffered values drain after close");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn chan_select_two_ready_branches_completes_exactly_one() {
    let (atx, arx) = bounded::<u32>(1);
    let (btx, brx) = bounded::<u32>(1);
    atx.try_send(1).unwrap();
    btx.try_send(2).unwrap();
    let (_, w) = counting();
    let wa = Wrap::new(arx.recv());
    let wb = Wrap::new(brx.recv());
    let mut ba = pin!((&&wa).__gort_select_branch());
    let mut bb = pin!((&&wb).__gort_select_branch());
    let mut sel = Select::new(2, false);
    let out = sel.poll(&mut Context::from_waker(&w), |i, act, cx| match i {
        0 => drive(ba.as_mut(), act, cx).map(|v| Some((0, v))),
        _ => drive(bb.as_mut(), act, cx).map(|v| Some((1, v))),
    });
    let Poll::Ready(Some((i, v))) = out else {
        panic!("one branch is ready")
    };
    assert_eq!(v, Some(if i == 0 { 1 } else { 2 }));
    assert_eq!(arx.len() + brx.len(), 1, "exactly one value consumed");
}

#[test]
fn chan_select_registers_then_is_completed_by_a_sender() {
    let (atx, arx) = bounded::<u32>(0);
    let (_btx, brx) = bounded::<u32>(0);
    let (c, w) = counting();
    let wa = Wrap::new(arx.recv());
    let wb = Wrap::new(brx.recv());
    let wf = Wrap::new(std::future::pending::<u32>());
    let mut ba = pin!((&&wa).__gort_select_branch());
    let mut bb = pin!((&&wb).__gort_select_branch());
    let mut bf = pin!(wf.__gort_select_branch());
    let mut sel = Select::new(3, false);
    let mut step = |sel: &mut Select| {
        sel.poll(&mut Context::from_waker(&w), |i, act, cx| match i {
            0 => drive(ba.as_mut(), act, cx).map(|v| Some(v.map(|v| v + 1000))),
            1 => drive(bb.as_mut(), act, cx).map(Some),
            _ => drive(bf.as_mut(), act, cx).map(|v| Some(Some(v))),
        })
    };
    assert!(step(&mut sel).is_pending());
    // A plain sender pairs with the registered branch and wakes the select.
    atx.try_send(5).unwrap();
    assert_eq!(c.0.load(Ordering::SeqCst), 1);
    assert_eq!(step(&mut sel), Poll::Ready(Some(Some(1005))));
    // The other branch was unregistered: a sender finds no receiver there.
    assert!(_btx.try_send(1).unwrap_err().is_full());
    let _ = Reply::<()>::Pending;
}

/// Cancelled waiters leave the queue from anywhere in it (the wait list's O(1) unlink),
/// and the survivors are still served first come, first served.
#[test]
fn chan_cancel_from_the_middle_keeps_fifo() {
    let (tx, rx) = bounded::<usize>(0);
    let (_, w) = counting();
    let mut recvs: Vec<_> = (0..64).map(|_| Box::pin(rx.recv())).collect();
    for r in &mut recvs {
        assert!(poll(r.as_mut(), &w).is_pending());
    }
    // Drop every odd waiter, last first, so unlinks hit the tail, the middle and
    // neighbours of removed slots.
    let mut kept = Vec::new();
    for (i, r) in recvs.into_iter().enumerate().rev() {
        if i % 2 == 0 {
            kept.push((i, r));
        }
    }
    kept.reverse();
    for (i, _) in &kept {
        assert_eq!(tx.try_send(*i), Ok(()), "a waiting receiver takes it");
    }
    for (i, mut r) in kept {
        assert_eq!(poll(r.as_mut(), &w), Poll::Ready(Some(i)));
    }
    assert_eq!(
        tx.try_send(0),
        Err(TrySendError::Full(0)),
        "nobody waits any more"
    );
}
