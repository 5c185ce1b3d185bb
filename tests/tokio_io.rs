//! Feature `tokio-io`: tokio's `AsyncRead`/`AsyncWrite` on gort's streams, used the way
//! tokio-util's codecs and tokio's own extension traits use them, with no tokio
//! runtime anywhere. Both sides are gort tasks; epoll and (re-run) io_uring.

mod common;

use common::{pattern, watchdog};
use futures::{SinkExt, StreamExt};
use gort::net::{TcpListener, TcpStream, UnixStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Framed, LinesCodec};

#[gort::test(workers = 2, timeout = 60)]
async fn tokio_io_lines_codec_over_tcp_both_sides_tasks() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = gort::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut lines = Framed::new(stream, LinesCodec::new());
            while let Some(line) = lines.next().await {
                let line = line.unwrap();
                lines.send(line.to_uppercase()).await.unwrap();
            }
        });
        let client = gort::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let mut lines = Framed::new(stream, LinesCodec::new());
            for i in 0..500 {
                lines.send(format!("line {i}")).await.unwrap();
                assert_eq!(lines.next().await.unwrap().unwrap(), format!("LINE {i}"));
            }
        });
        client.await.unwrap();
        server.await.unwrap();
    })
    .await
    .unwrap();
}

#[gort::test(workers = 2, timeout = 60)]
async fn tokio_io_read_to_end_and_write_all_over_split_halves_and_unix() {
    // The test's side as a task too, as a server's client would be.
    gort::spawn(async move {
        let data = pattern(3 << 20, 11);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sent = data.clone();
        let writer = gort::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (_r, mut w) = stream.into_split();
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut r, _w) = stream.into_split();
        let mut got = Vec::new();
        r.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "TCP: bytes differ");
        writer.await.unwrap();

        let (mut a, mut b) = UnixStream::pair().unwrap();
        let sent = data.clone();
        let writer = gort::spawn(async move {
            a.write_all(&sent).await.unwrap();
            AsyncWriteExt::shutdown(&mut a).await.unwrap();
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert!(got == data, "Unix: bytes differ");
        writer.await.unwrap();
    })
    .await
    .unwrap();
}

/// Every test above again, on io_uring (a child process with `GORT_DRIVER=uring`).
#[test]
fn tokio_io_every_test_again_on_io_uring() {
    let _w = watchdog!(120);
    common::rerun_all_on_io_uring("tokio_io_every_test_again_on_io_uring");
}
