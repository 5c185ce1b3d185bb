//! Property test: random sequences of channel operations against a simple model (a
//! `VecDeque` with a capacity and a closed flag).

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
