//! Loom models of the channel: send/recv/close races, and a select registered on two
//! channels racing their senders.

use std::pin::pin;
use std::task::Context;

use loom::future::block_on;
use loom::thread;

use super::__select::{drive, IsChanOp, Select, Wrap};
use super::*;

/// Runs a model with a preemption bound: the channel's lock, the waker hand-offs and
/// `block_on`'s parking give too many interleavings for an exhaustive search; bugs in
/// this kind of code show up within a few preemptions (tokio bounds its models the same way).
fn model(f: impl Fn() + Sync + std::marker::Send + 'static) {
    model_bounded(3, f);
}

/// [`model`] with another preemption bound: three threads on one ring explode at 3.
fn model_bounded(preemptions: usize, f: impl Fn() + Sync + std::marker::Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(preemptions);
    // The ring waits (yields) while another thread is between claiming a slot and
    // stamping it; those waits are branches too.
    b.max_branches = 20_000;
    b.check(f);
}

/// A `select!` receiving on `a` and `b` (as the macro drives it): the value taken.
fn select_recv(a: &Receiver<u32>, b: &Receiver<u32>) -> u32 {
    let wa = Wrap::new(a.recv());
    let wb = Wrap::new(b.recv());
    let mut ba = pin!((&&wa).__gort_select_branch());
    let mut bb = pin!((&&wb).__gort_select_branch());
    let mut sel = Select::new(2, false);
    block_on(std::future::poll_fn(|cx: &mut Context<'_>| {
        sel.poll(cx, |i, act, cx| match i {
            0 => drive(ba.as_mut(), act, cx).map(|v| Some(v.unwrap())),
            _ => drive(bb.as_mut(), act, cx).map(|v| Some(v.unwrap())),
        })
    }))
    .unwrap()
}

/// Rendezvous send, receive and close race: a value is received iff its send succeeded.
#[test]
fn loom_chan_send_recv_close() {
    model(|| {
        let (tx, rx) = bounded::<u32>(0);
        let tx2 = tx.clone();
        let sender = thread::spawn(move || block_on(tx2.send(7)).is_ok());
        let closer = thread::spawn(move || {
            tx.close();
        });
        let got = block_on(rx.recv());
        let sent = sender.join().unwrap();
        closer.join().unwrap();
        assert_eq!(got.is_some(), sent, "got {got:?}, sent {sent}");
        if let Some(v) = got {
            assert_eq!(v, 7);
        }
    });
}

/// Buffered: two senders, one receiver taking both; no value lost or duplicated.
#[test]
fn loom_chan_buffered_two_senders() {
    model_bounded(2, || {
        let (tx, rx) = bounded::<u32>(1);
        let tx2 = tx.clone();
        let a = thread::spawn(move || block_on(tx.send(1)).unwrap());
        let b = thread::spawn(move || block_on(tx2.send(2)).unwrap());
        let x = block_on(rx.recv()).unwrap();
        let y = block_on(rx.recv()).unwrap();
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(x + y, 3);
    });
}

/// A select waiting on two unbuffered channels, each with a sender racing in: exactly
/// one value is taken by the select; the other sender is still waiting (its send is
/// then completed by a plain receive), so nothing is lost or received twice.
#[test]
fn loom_chan_select_two_senders() {
    model(|| {
        let (atx, arx) = bounded::<u32>(0);
        let (btx, brx) = bounded::<u32>(0);
        let a = thread::spawn(move || block_on(atx.send(1)).is_ok());
        let b = thread::spawn(move || block_on(btx.send(2)).is_ok());

        let got = select_recv(&arx, &brx);
        // The loser's sender is still blocked: take its value with a plain receive.
        let other = if got == 1 {
            block_on(brx.recv())
        } else {
            block_on(arx.recv())
        };
        assert_eq!(got + other.unwrap(), 3);
        assert!(a.join().unwrap() && b.join().unwrap());
    });
}

/// A select with two send branches on unbuffered channels, each with a receiver racing
/// in: exactly one value is delivered (a losing send branch sends nothing).
#[test]
fn loom_chan_select_two_receivers() {
    model(|| {
        let (atx, arx) = bounded::<u32>(0);
        let (btx, brx) = bounded::<u32>(0);
        let a = thread::spawn(move || block_on(arx.recv()));
        let b = thread::spawn(move || block_on(brx.recv()));

        let wa = Wrap::new(atx.send(1));
        let wb = Wrap::new(btx.send(2));
        let mut ba = pin!((&&wa).__gort_select_branch());
        let mut bb = pin!((&&wb).__gort_select_branch());
        let mut sel = Select::new(2, false);
        let sent = block_on(std::future::poll_fn(|cx: &mut Context<'_>| {
            sel.poll(cx, |i, act, cx| match i {
                0 => drive(ba.as_mut(), act, cx).map(|r| Some((1, r.is_ok()))),
                _ => drive(bb.as_mut(), act, cx).map(|r| Some((2, r.is_ok()))),
            })
        }))
        .unwrap();
        assert!(sent.1);
        drop((ba, bb));
        // Release the receiver that got nothing.
        atx.close();
        btx.close();
        let got: Vec<u32> = [a.join().unwrap(), b.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(got, [sent.0], "exactly the selected value was delivered");
    });
}

/// The ring's Dekker pair, receiver side: a receive parking on an empty ring races a
/// lock-free push. The receiver gets the value (its armed look finds it, or the
/// pusher sees the flag and hands it over); nothing is left in the buffer.
#[test]
fn loom_chan_ring_receiver_parks_while_sender_pushes() {
    model(|| {
        let (tx, rx) = bounded::<u32>(2);
        let sender = thread::spawn(move || {
            tx.try_send(1).unwrap();
            tx
        });
        assert_eq!(block_on(rx.recv()), Some(1));
        let tx = sender.join().unwrap();
        assert_eq!(tx.len(), 0);
    });
}

/// Sender side: a send parking on a full ring races a lock-free pop. The sender
/// completes (its armed look finds room, or the popper moves its value in), and the
/// values come out in order.
#[test]
fn loom_chan_ring_sender_parks_while_receiver_pops() {
    model(|| {
        let (tx, rx) = bounded::<u32>(1);
        tx.try_send(1).unwrap();
        let sender = thread::spawn(move || block_on(tx.send(2)).is_ok());
        assert_eq!(rx.try_recv().ok().or_else(|| block_on(rx.recv())), Some(1));
        assert_eq!(block_on(rx.recv()), Some(2));
        assert!(sender.join().unwrap());
    });
}

/// Close races a lock-free push: the push either succeeds before the close (and the
/// value is then drained) or fails with its value; after that the channel stays empty.
#[test]
fn loom_chan_ring_close_vs_fast_send() {
    model(|| {
        let (tx, rx) = bounded::<u32>(1);
        let tx2 = tx.clone();
        let sender = thread::spawn(move || tx2.try_send(7).is_ok());
        tx.close();
        let sent = sender.join().unwrap();
        let got = block_on(rx.recv());
        assert_eq!(got, sent.then_some(7));
        assert_eq!(block_on(rx.recv()), None);
    });
}

/// A select receiving on two buffered channels, each fed by a lock-free push: the
/// select takes exactly one value; the other stays buffered.
#[test]
fn loom_chan_ring_select_two_fast_senders() {
    model(|| {
        let (atx, arx) = bounded::<u32>(1);
        let (btx, brx) = bounded::<u32>(1);
        let a = thread::spawn(move || atx.try_send(1).unwrap());
        let b = thread::spawn(move || btx.try_send(2).unwrap());

        let got = select_recv(&arx, &brx);
        a.join().unwrap();
        b.join().unwrap();
        let other = if got == 1 {
            brx.try_recv()
        } else {
            arx.try_recv()
        };
        assert_eq!(got + other.unwrap(), 3);
        assert_eq!(arx.len() + brx.len(), 0);
    });
}
