//! Go-semantics suite for `gort::chan` and `gort::select!`: ports of the behaviours
//! Go's own channel tests check (runtime/chan_test.go), plus cancel safety.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use common::watchdog;
use futures::StreamExt;
use gort::chan::{self, TryRecvError, TrySendError};
use gort::task::yield_now;

/// Polls `fut` once with a no-op waker.
fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(fut).poll(&mut Context::from_waker(std::task::Waker::noop()))
}

#[gort::test(workers = 2, timeout = 30)]
async fn chan_fifo_per_sender_across_many_senders() {
    for cap in [0, 1, 16] {
        let (tx, rx) = chan::bounded::<(usize, usize)>(cap);
        const SENDERS: usize = 8;
        const EACH: usize = 500;
        for id in 0..SENDERS {
            let tx = tx.clone();
            gort::spawn(async move {
                for seq in 0..EACH {
                    tx.send((id, seq)).await.unwrap();
                }
            });
        }
        drop(tx);
        let mut next = [0usize; SENDERS];
        let mut total = 0;
        while let Some((id, seq)) = rx.recv().await {
            assert_eq!(seq, next[id], "cap {cap}: sender {id} out of order");
            next[id] += 1;
            total += 1;
        }
        assert_eq!(total, SENDERS * EACH);
    }
}

#[gort::test(workers = 2, timeout = 20)]
async fn chan_unbuffered_send_waits_for_receiver() {
    let (tx, rx) = chan::bounded::<u32>(0);
    let sent = Arc::new(AtomicBool::new(false));
    let s = sent.clone();
    let h = gort::spawn(async move {
        tx.send(1).await.unwrap();
        s.store(true, Ordering::SeqCst);
    });
    for _ in 0..50 {
        yield_now().await;
    }
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !sent.load(Ordering::SeqCst),
        "an unbuffered send completed with no receiver"
    );
    assert_eq!(rx.len(), 0, "nothing is buffered in a rendezvous channel");
    assert_eq!(rx.recv().await, Some(1));
    h.await.unwrap();
    assert!(sent.load(Ordering::SeqCst));
}

#[gort::test(workers = 2, timeout = 20)]
async fn chan_close_wakes_all_receivers_and_senders() {
    let (tx, rx) = chan::bounded::<u32>(0);
    let woken = Arc::new(AtomicUsize::new(0));
    let mut hs = Vec::new();
    for _ in 0..10 {
        let (rx, woken) = (rx.clone(), woken.clone());
        hs.push(gort::spawn(async move {
            assert_eq!(rx.recv().await, None);
            woken.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let (tx2, rx2) = chan::bounded::<String>(0);
    let mut senders = Vec::new();
    for i in 0..5 {
        let tx2 = tx2.clone();
        senders.push(gort::spawn(async move { tx2.send(format!("v{i}")).await }));
    }
    for _ in 0..20 {
        yield_now().await;
    }
    assert!(tx.close());
    assert!(!tx.close(), "second close reports false");
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(woken.load(Ordering::SeqCst), 10);
    rx2.close();
    for (i, h) in senders.into_iter().enumerate() {
        // The value comes back to the sender.
        let err = h.await.unwrap().unwrap_err();
        assert!(err.0.starts_with('v'), "{i}");
    }
    assert!(rx.is_closed() && tx2.is_closed());
}

#[gort::test]
async fn chan_buffered_values_drain_after_close() {
    let (tx, rx) = chan::bounded::<u32>(4);
    for i in 0..4 {
        tx.send(i).await.unwrap();
    }
    assert_eq!(tx.try_send(9), Err(TrySendError::Full(9)));
    tx.close();
    assert_eq!(tx.try_send(9), Err(TrySendError::Closed(9)));
    assert!(tx.send(5).await.is_err());
    let got: Vec<u32> = (&mut rx.clone()).collect().await;
    assert_eq!(got, [0, 1, 2, 3]);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(rx.recv().await, None);
}

#[gort::test]
async fn chan_dropping_all_senders_closes_and_all_receivers_fails_sends() {
    let (tx, rx) = chan::bounded::<u32>(1);
    let tx2 = tx.clone();
    drop(tx);
    assert!(!rx.is_closed());
    drop(tx2);
    assert!(rx.is_closed());
    assert_eq!(rx.recv().await, None);

    let (tx, rx) = chan::unbounded::<u32>();
    let rx2 = rx.clone();
    drop(rx);
    tx.send(1).await.unwrap();
    drop(rx2);
    assert_eq!(tx.send(2).await.unwrap_err().0, 2);
}

#[gort::test]
async fn chan_try_ops_and_introspection() {
    let (tx, rx) = chan::bounded::<u8>(2);
    assert_eq!(tx.capacity(), Some(2));
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.try_send(1).unwrap();
    assert_eq!((tx.len(), rx.len()), (1, 1));
    assert!(!rx.is_empty());
    assert_eq!(rx.try_recv(), Ok(1));
    let (utx, _urx) = chan::unbounded::<u8>();
    assert_eq!(utx.capacity(), None);
    for i in 0..10_000u32 {
        utx.try_send((i % 256) as u8).unwrap();
    }
    assert_eq!(utx.len(), 10_000);
    let (ztx, zrx) = chan::bounded::<u8>(0);
    assert!(
        ztx.try_send(1).unwrap_err().is_full(),
        "no receiver waiting"
    );
    assert_eq!(zrx.try_recv(), Err(TryRecvError::Empty));
    assert!(ztx.same_channel(&ztx.clone()));
}

/// Go's TestSelectFairness in spirit: with several branches always ready, each wins
/// about equally often (chi-square, p = 0.001).
#[gort::test(timeout = 30)]
async fn chan_select_is_fair_among_ready_branches() {
    const ROUNDS: usize = 6_000;
    let chans: Vec<_> = (0..3).map(|_| chan::unbounded::<u8>()).collect();
    for (tx, _) in &chans {
        for _ in 0..ROUNDS {
            tx.try_send(0).unwrap();
        }
    }
    let (a, b, c) = (&chans[0].1, &chans[1].1, &chans[2].1);
    let mut counts = [0usize; 3];
    for _ in 0..ROUNDS {
        let i = gort::select! {
            _ = a.recv() => 0,
            _ = b.recv() => 1,
            _ = c.recv() => 2,
        };
        counts[i] += 1;
    }
    let expected = ROUNDS as f64 / 3.0;
    let chi2: f64 = counts
        .iter()
        .map(|&o| (o as f64 - expected).powi(2) / expected)
        .sum();
    // 2 degrees of freedom, p = 0.001.
    assert!(chi2 < 13.82, "unfair select: {counts:?} (chi2 = {chi2:.1})");
    // The losers kept their values: nothing consumed twice or lost.
    assert_eq!(a.len() + b.len() + c.len(), 3 * ROUNDS - ROUNDS);
}

#[gort::test]
async fn chan_select_default_runs_when_nothing_is_ready() {
    let (tx, rx) = chan::bounded::<u32>(0);
    let mut defaults = 0;
    for _ in 0..100 {
        gort::select! {
            v = rx.recv() => panic!("nothing was sent, got {v:?}"),
            r = tx.send(1) => panic!("no receiver, yet the send completed: {r:?}"),
            default => defaults += 1,
        }
    }
    assert_eq!(defaults, 100);
    // And nothing was left registered: a later try fails cleanly.
    assert!(tx.try_send(2).unwrap_err().is_full());
}

#[gort::test(timeout = 20)]
async fn chan_select_losing_branch_consumes_and_sends_nothing() {
    for _ in 0..500 {
        let (atx, arx) = chan::bounded::<u32>(1);
        let (btx, brx) = chan::bounded::<u32>(1);
        atx.try_send(1).unwrap();
        // b has room: the send branch is ready too.
        let won = gort::select! {
            v = arx.recv() => { assert_eq!(v, Some(1)); 'a' }
            r = btx.send(2) => { r.unwrap(); 'b' }
        };
        match won {
            'a' => assert_eq!(brx.try_recv(), Err(TryRecvError::Empty), "losing send sent"),
            _ => {
                assert_eq!(arx.len(), 1, "losing recv consumed");
                assert_eq!(brx.try_recv(), Ok(2));
            }
        }
    }
}

#[gort::test(timeout = 20)]
async fn chan_select_closed_branch_pattern_disables_branch() {
    let (tx, rx) = chan::bounded::<u32>(1);
    tx.close();
    let (tx2, rx2) = chan::bounded::<u32>(1);
    let h = gort::spawn(async move {
        yield_now().await;
        tx2.send(5).await.unwrap();
    });
    // `Some(v)` does not match the closed channel's `None`: that branch is disabled and
    // the select waits for the other one.
    let v = gort::select! {
        Some(v) = rx.recv() => v,
        Some(v) = rx2.recv() => v + 100,
    };
    assert_eq!(v, 105);
    h.await.unwrap();
    // Go's semantics with an irrefutable pattern: the closed branch is ready (None).
    let got = gort::select! { v = rx.recv() => v };
    assert_eq!(got, None);
}

/// Go's TestSelfSelect: two tasks each select { send p, receive } on one channel; on an
/// unbuffered channel a task must never receive its own value.
#[gort::test(workers = 2, timeout = 60)]
async fn chan_select_loop_sends_and_receives_on_same_channel() {
    for cap in [0usize, 10] {
        let (tx, rx) = chan::bounded::<usize>(cap);
        let mut hs = Vec::new();
        for p in 0..2usize {
            let (tx, rx) = (tx.clone(), rx.clone());
            hs.push(gort::spawn(async move {
                for _ in 0..1000 {
                    gort::select! {
                        r = tx.send(p) => r.unwrap(),
                        v = rx.recv() => {
                            if cap == 0 {
                                assert_ne!(v, Some(p), "self receive on an unbuffered channel");
                            }
                        }
                    }
                }
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
    }
}

/// Go's prime sieve over a chain of unbuffered channels.
#[gort::test(workers = 2, timeout = 30)]
async fn chan_prime_sieve() {
    let (tx, mut rx) = chan::bounded::<u64>(0);
    gort::spawn(async move {
        let mut i = 2;
        while tx.send(i).await.is_ok() {
            i += 1;
        }
    });
    let mut primes = Vec::new();
    for _ in 0..100 {
        let prime = rx.recv().await.unwrap();
        primes.push(prime);
        let (ntx, nrx) = chan::bounded::<u64>(0);
        let input = std::mem::replace(&mut rx, nrx);
        gort::spawn(async move {
            while let Some(v) = input.recv().await {
                if v % prime != 0 && ntx.send(v).await.is_err() {
                    return;
                }
            }
        });
    }
    assert_eq!(&primes[..10], &[2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
    assert_eq!(primes[99], 541);
}

#[gort::test(workers = 2, timeout = 20)]
async fn chan_zero_sized_values() {
    for cap in [0, 1, 1000] {
        let (tx, rx) = chan::bounded::<()>(cap);
        let h = gort::spawn(async move {
            for _ in 0..10_000 {
                tx.send(()).await.unwrap();
            }
        });
        let mut n = 0;
        while rx.recv().await.is_some() {
            n += 1;
        }
        h.await.unwrap();
        assert_eq!(n, 10_000);
    }
}

#[gort::test(workers = 2, timeout = 60)]
async fn chan_mpmc_every_value_exactly_once() {
    for cap in [0, 1, 1024] {
        let (tx, rx) = chan::bounded::<u64>(cap);
        const PER: u64 = 5_000;
        for p in 0..4u64 {
            let tx = tx.clone();
            gort::spawn(async move {
                for i in 0..PER {
                    tx.send(p * PER + i).await.unwrap();
                }
            });
        }
        drop(tx);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                gort::spawn(async move {
                    let mut seen = Vec::new();
                    while let Some(v) = rx.recv().await {
                        seen.push(v);
                    }
                    seen
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in consumers {
            all.extend(c.await.unwrap());
        }
        all.sort_unstable();
        assert_eq!(all, (0..4 * PER).collect::<Vec<_>>(), "cap {cap}");
    }
}

/// Cancel safety: a `recv` future dropped at any point loses no value.
#[gort::test(workers = 2, timeout = 30)]
async fn chan_dropped_recv_futures_lose_nothing() {
    for cap in [0, 4] {
        let (tx, rx) = chan::bounded::<u32>(cap);
        const N: u32 = 2_000;
        gort::spawn(async move {
            for i in 0..N {
                tx.send(i).await.unwrap();
            }
        });
        let mut got = Vec::new();
        let mut k = 0u32;
        loop {
            k += 1;
            let mut recv = rx.recv();
            // Poll once, sometimes yield (a sender may hand us a value meanwhile), drop.
            match poll_once(&mut recv) {
                Poll::Ready(Some(v)) => got.push(v),
                Poll::Ready(None) => break,
                Poll::Pending => {
                    if k % 2 == 0 {
                        yield_now().await;
                        if let Poll::Ready(v) = poll_once(&mut recv) {
                            match v {
                                Some(v) => got.push(v),
                                None => break,
                            }
                        }
                    }
                    drop(recv);
                    yield_now().await;
                }
            }
        }
        assert_eq!(
            got,
            (0..N).collect::<Vec<_>>(),
            "cap {cap}: lost or reordered values"
        );
    }
}

/// A send future dropped while waiting sends nothing.
#[gort::test]
async fn chan_dropped_waiting_send_sends_nothing() {
    let (tx, rx) = chan::bounded::<u32>(0);
    for i in 0..100 {
        let mut send = pin!(tx.send(i));
        assert!(send
            .as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
            .is_pending());
    }
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    // And a select that loses leaves nothing registered either.
    let (tx1, rx1) = chan::bounded::<u32>(0);
    for i in 0..100 {
        gort::select! {
            _ = tx1.send(i) => panic!("no receiver"),
            default => {}
        }
    }
    assert_eq!(rx1.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn chan_blocking_variants_bridge_threads_and_tasks() {
    let _w = watchdog!(20);
    let rt = gort::Runtime::builder().workers(2).build().unwrap();
    let (tx, rx) = chan::bounded::<u32>(0);
    let (back_tx, back_rx) = chan::bounded::<u32>(0);
    rt.spawn(async move {
        while let Some(v) = rx.recv().await {
            back_tx.send(v * 2).await.unwrap();
        }
    });
    let t = std::thread::spawn(move || {
        let mut out = Vec::new();
        for i in 0..100 {
            tx.send_blocking(i).unwrap();
            out.push(back_rx.recv_blocking().unwrap());
        }
        drop(tx);
        assert!(back_rx.recv_blocking().is_err());
        out
    });
    let out = t.join().unwrap();
    assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
}

#[test]
fn chan_blocking_variant_inside_runtime_panics() {
    let rt = gort::Runtime::builder().workers(1).build().unwrap();
    let err = rt
        .block_on(async { gort::spawn(async { chan::unbounded::<u8>().1.recv_blocking() }).await })
        .unwrap_err();
    assert!(err.is_panic());
}

#[gort::test]
async fn chan_receiver_is_a_stream() {
    let (tx, rx) = chan::unbounded::<u32>();
    for i in 0..5 {
        tx.send(i).await.unwrap();
    }
    drop(tx);
    let doubled: Vec<u32> = rx.map(|v| v * 2).collect().await;
    assert_eq!(doubled, [0, 2, 4, 6, 8]);
}

#[gort::test(workers = 2, timeout = 30)]
async fn chan_select_between_two_selecting_tasks_never_deadlocks() {
    let (atx, arx) = chan::bounded::<u32>(0);
    let (btx, brx) = chan::bounded::<u32>(0);
    let counts = Arc::new(std::sync::Mutex::new(HashMap::<&str, usize>::new()));
    let c = counts.clone();
    let h = gort::spawn(async move {
        for i in 0..2_000 {
            gort::select! {
                r = atx.send(i) => { r.unwrap(); *c.lock().unwrap().entry("a->").or_default() += 1; }
                v = brx.recv() => { v.unwrap(); *c.lock().unwrap().entry("<-b").or_default() += 1; }
            }
        }
    });
    for i in 0..2_000 {
        gort::select! {
            v = arx.recv() => { v.unwrap(); }
            r = btx.send(i) => { r.unwrap(); }
        }
    }
    h.await.unwrap();
    let counts = counts.lock().unwrap();
    assert_eq!(counts.values().sum::<usize>(), 2_000);
}

#[gort::test]
async fn chan_select_mixes_channels_and_plain_futures() {
    let (_tx, rx) = chan::bounded::<u32>(0);
    let r = gort::select! {
        v = rx.recv() => v.unwrap_or(0),
        v = async { 7 } => v,
    };
    assert_eq!(r, 7);
    // The channel branch left nothing behind.
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
}
