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
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
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
    model(|| {
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

        let wa = Wrap::new(arx.recv());
        let wb = Wrap::new(brx.recv());
        let mut ba = pin!((&&wa).__gort_select_branch());
        let mut bb = pin!((&&wb).__gort_select_branch());
        let mut sel = Select::new(2, false);
        let got = block_on(std::future::poll_fn(|cx: &mut Context<'_>| {
            sel.poll(cx, |i, act, cx| match i {
                0 => drive(ba.as_mut(), act, cx).map(|v| Some(v.unwrap())),
                _ => drive(bb.as_mut(), act, cx).map(|v| Some(v.unwrap())),
            })
        }))
        .unwrap();
        drop((ba, bb));
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
