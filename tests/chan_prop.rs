//! Property tests: random sequences of channel operations, and of `select!` over two
//! channels, against a simple model (a `VecDeque` with a capacity and a closed flag per
//! channel).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use gort::chan::{self, TryRecvError, TrySendError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    TrySend(u16),
    TryRecv,
    /// Poll a `send` future once, then drop it.
    SendOnce(u16),
    /// Poll a `recv` future once, then drop it.
    RecvOnce,
    Close,
    Len,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u16>().prop_map(Op::TrySend),
        4 => Just(Op::TryRecv),
        2 => any::<u16>().prop_map(Op::SendOnce),
        2 => Just(Op::RecvOnce),
        1 => Just(Op::Close),
        1 => Just(Op::Len),
    ]
}

struct Model {
    buf: VecDeque<u16>,
    cap: usize,
    closed: bool,
}

impl Model {
    fn send(&mut self, v: u16) -> Result<(), TrySendError<u16>> {
        if self.closed {
            Err(TrySendError::Closed(v))
        } else if self.buf.len() < self.cap {
            self.buf.push_back(v);
            Ok(())
        } else {
            Err(TrySendError::Full(v))
        }
    }

    fn recv(&mut self) -> Result<u16, TryRecvError> {
        match self.buf.pop_front() {
            Some(v) => Ok(v),
            None if self.closed => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }
}

fn poll_once<F: Future>(f: F) -> Poll<F::Output> {
    let mut f = pin!(f);
    f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chan_prop_matches_model(cap in prop_oneof![Just(0usize), 1usize..5, Just(usize::MAX)], ops in proptest::collection::vec(op(), 1..200)) {
        let (tx, rx) = if cap == usize::MAX { chan::unbounded::<u16>() } else { chan::bounded::<u16>(cap) };
        let mut m = Model { buf: VecDeque::new(), cap, closed: false };
        for op in ops {
            match op {
                Op::TrySend(v) => prop_assert_eq!(tx.try_send(v), m.send(v)),
                Op::TryRecv => prop_assert_eq!(rx.try_recv(), m.recv()),
                Op::SendOnce(v) => {
                    let got = poll_once(tx.send(v));
                    match m.send(v) {
                        Ok(()) => prop_assert!(matches!(got, Poll::Ready(Ok(())))),
                        Err(TrySendError::Closed(v)) => prop_assert!(matches!(got, Poll::Ready(Err(e)) if e.0 == v)),
                        // Would wait: the future is dropped and the value is not sent.
                        Err(TrySendError::Full(_)) => prop_assert!(got.is_pending()),
                    }
                }
                Op::RecvOnce => {
                    let got = poll_once(rx.recv());
                    match m.recv() {
                        Ok(v) => prop_assert_eq!(got, Poll::Ready(Some(v))),
                        Err(TryRecvError::Closed) => prop_assert_eq!(got, Poll::Ready(None)),
                        Err(TryRecvError::Empty) => prop_assert!(got.is_pending()),
                    }
                }
                Op::Close => {
                    prop_assert_eq!(tx.close(), !m.closed);
                    m.closed = true;
                }
                Op::Len => {
                    prop_assert_eq!(rx.len(), m.buf.len());
                    prop_assert_eq!(tx.is_closed(), m.closed);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum SelOp {
    TrySend(usize, u16),
    TryRecv(usize),
    /// `select!` over a receive on each channel, with `default`.
    RecvEither,
    /// `select!` over a send to channel `.0` and a receive on the other, with
    /// `default`.
    SendOrRecv(usize, u16),
    Close(usize),
}

fn sel_op() -> impl Strategy<Value = SelOp> {
    prop_oneof![
        4 => (0usize..2, any::<u16>()).prop_map(|(c, v)| SelOp::TrySend(c, v)),
        2 => (0usize..2).prop_map(SelOp::TryRecv),
        3 => Just(SelOp::RecvEither),
        3 => (0usize..2, any::<u16>()).prop_map(|(c, v)| SelOp::SendOrRecv(c, v)),
        1 => (0usize..2).prop_map(SelOp::Close),
    ]
}

/// What one `select!` did.
#[derive(Debug, PartialEq)]
enum Picked {
    Recv(usize, Option<u16>),
    Sent(usize, bool),
    Default,
}

impl Model {
    /// Whether a receive would complete now (a value, or closed and drained).
    fn recv_ready(&self) -> bool {
        !self.buf.is_empty() || self.closed
    }

    /// Whether a send would complete now (room, or closed: an error). With nobody
    /// receiving, a rendezvous channel is never ready to send.
    fn send_ready(&self) -> bool {
        self.closed || self.buf.len() < self.cap
    }
}

/// Polls a `select!` once: a branch that is ready must be taken (one of them, Go's
/// random choice); with none ready, `default`.
fn select_once<F: Future<Output = Picked>>(f: F) -> Picked {
    match poll_once(f) {
        Poll::Ready(p) => p,
        Poll::Pending => panic!("a select! with a default branch returned Pending"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chan_prop_select_matches_model(
        caps in (prop_oneof![Just(0usize), 1usize..4], prop_oneof![Just(0usize), 1usize..4]),
        ops in proptest::collection::vec(sel_op(), 1..150),
    ) {
        let (tx0, rx0) = chan::bounded::<u16>(caps.0);
        let (tx1, rx1) = chan::bounded::<u16>(caps.1);
        let tx = [tx0, tx1];
        let rx = [rx0, rx1];
        let mut m = [
            Model { buf: VecDeque::new(), cap: caps.0, closed: false },
            Model { buf: VecDeque::new(), cap: caps.1, closed: false },
        ];
        for op in ops {
            match op {
                SelOp::TrySend(c, v) => prop_assert_eq!(tx[c].try_send(v), m[c].send(v)),
                SelOp::TryRecv(c) => prop_assert_eq!(rx[c].try_recv(), m[c].recv()),
                SelOp::Close(c) => {
                    prop_assert_eq!(tx[c].close(), !m[c].closed);
                    m[c].closed = true;
                }
                SelOp::RecvEither => {
                    let picked = select_once(async {
                        gort::select! {
                            v = rx[0].recv() => Picked::Recv(0, v),
                            v = rx[1].recv() => Picked::Recv(1, v),
                            default => Picked::Default,
                        }
                    });
                    match picked {
                        Picked::Recv(c, v) => {
                            prop_assert!(m[c].recv_ready(), "took a receive that was not ready");
                            prop_assert_eq!(v, m[c].recv().ok());
                        }
                        Picked::Default => {
                            prop_assert!(!m[0].recv_ready() && !m[1].recv_ready(), "default while a receive was ready");
                        }
                        Picked::Sent(..) => prop_assert!(false, "no send branch"),
                    }
                }
                SelOp::SendOrRecv(c, v) => {
                    let o = 1 - c;
                    let picked = select_once(async {
                        gort::select! {
                            r = tx[c].send(v) => Picked::Sent(c, r.is_ok()),
                            x = rx[o].recv() => Picked::Recv(o, x),
                            default => Picked::Default,
                        }
                    });
                    match picked {
                        Picked::Sent(c, ok) => {
                            prop_assert!(m[c].send_ready(), "took a send that was not ready");
                            prop_assert_eq!(ok, m[c].send(v).is_ok());
                        }
                        Picked::Recv(o, x) => {
                            prop_assert!(m[o].recv_ready(), "took a receive that was not ready");
                            prop_assert_eq!(x, m[o].recv().ok());
                        }
                        Picked::Default => {
                            prop_assert!(!m[c].send_ready() && !m[o].recv_ready(), "default while a branch was ready");
                        }
                    }
                }
            }
            // Nothing a losing branch touched leaked into the channels.
            prop_assert_eq!(rx[0].len(), m[0].buf.len());
            prop_assert_eq!(rx[1].len(), m[1].buf.len());
        }
    }
}
