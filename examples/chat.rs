//! A TCP chat server, written the way a Go programmer would: `cargo run --release
//! --example chat [-- --addr 127.0.0.1:7879]`, then `nc 127.0.0.1 7879` from several
//! terminals.
//!
//! One task per client and one hub task that owns the room. Clients send what they
//! read to the hub over a channel; the hub fans every line out to each client's own
//! bounded outbox; each client task `select!`s between its socket and its outbox. A
//! client too slow to keep up (its outbox full) is dropped rather than slowing the room,
//! the usual Go answer. Ctrl-C or SIGTERM tells everyone and stops.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use gort::chan::{self, Receiver, Sender};
use gort::net::{TcpListener, TcpStream};
use gort::signal::unix::{signal, SignalKind};
use gort::task::JoinSet;

/// Lines a client may have waiting before it counts as too slow.
const OUTBOX: usize = 64;
/// The longest line kept; longer ones are cut.
const MAX_LINE: usize = 1024;

enum Event {
    Join { id: u64, outbox: Sender<Arc<str>> },
    Line { id: u64, text: String },
    Leave { id: u64 },
}

/// The room: who is in it, and every line to everyone else.
async fn hub(events: Receiver<Event>) {
    let mut clients: HashMap<u64, Sender<Arc<str>>> = HashMap::new();
    while let Some(event) = events.recv().await {
        let (from, text): (u64, Arc<str>) = match event {
            Event::Join { id, outbox } => {
                clients.insert(id, outbox);
                (
                    id,
                    format!("* guest{id} joined ({} here)\n", clients.len()).into(),
                )
            }
            Event::Leave { id } => {
                if clients.remove(&id).is_none() {
                    continue;
                }
                (id, format!("* guest{id} left\n").into())
            }
            Event::Line { id, text } => (id, format!("guest{id}: {text}\n").into()),
        };
        clients.retain(|&id, outbox| {
            id == from || outbox.try_send(text.clone()).is_ok() // full or gone: dropped
        });
    }
    // The server is stopping: the events channel was closed. Each client gets the
    // goodbye, then its outbox closes (dropped here) and its task ends.
    for outbox in clients.values() {
        let _ = outbox.try_send("* server shutting down\n".into());
    }
}

/// What woke a client.
enum Input {
    Read(io::Result<usize>),
    Outbox(Option<Arc<str>>),
}

/// One client: lines from the socket go to the hub, lines from the outbox to the socket.
async fn client(id: u64, stream: TcpStream, events: Sender<Event>) {
    let (outbox_tx, outbox) = chan::bounded::<Arc<str>>(OUTBOX);
    if events
        .send(Event::Join {
            id,
            outbox: outbox_tx,
        })
        .await
        .is_err()
    {
        return;
    }
    let _ = stream
        .write_all(format!("welcome, you are guest{id}\n").as_bytes())
        .await;
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let input = gort::select! {
            read = stream.read(&mut buf) => Input::Read(read),
            line = outbox.recv() => Input::Outbox(line),
        };
        match input {
            Input::Read(Ok(0) | Err(_)) => break,
            Input::Read(Ok(n)) => {
                pending.extend_from_slice(&buf[..n]);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let text = String::from_utf8_lossy(&line[..line.len() - 1]);
                    let text = text.trim_end_matches('\r').chars().take(MAX_LINE).collect();
                    if events.send(Event::Line { id, text }).await.is_err() {
                        return;
                    }
                }
                if pending.len() > MAX_LINE {
                    pending.clear(); // a line without an end: cut
                }
            }
            Input::Outbox(Some(line)) => {
                if stream.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
            Input::Outbox(None) => break, // dropped by the hub (too slow), or stopping
        }
    }
    let _ = events.send(Event::Leave { id }).await;
}

#[gort::main]
async fn main() -> io::Result<()> {
    let addr = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => "127.0.0.1:7879".to_owned(),
        [flag, addr] if flag == "--addr" => addr.clone(),
        _ => {
            eprintln!("usage: chat [--addr HOST:PORT]");
            std::process::exit(2);
        }
    };
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!(
        "chat listening on {local}; connect with `nc {} {}`; Ctrl-C to stop",
        local.ip(),
        local.port()
    );
    let (events, events_rx) = chan::bounded::<Event>(1024);
    let room = gort::spawn(hub(events_rx));
    let mut clients = JoinSet::new();
    let mut next_id = 0;
    loop {
        while clients.try_join_next().is_some() {} // reap the clients that left
        gort::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    next_id += 1;
                    clients.spawn(client(next_id, stream, events.clone()));
                }
                Err(e) => eprintln!("accept: {e}"),
            },
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    println!("chat: stopping");
    events.close(); // the hub says goodbye to everyone and ends
    let _ = room.await;
    // A second for the goodbyes to be written; then dropping the set aborts the rest.
    let _ = gort::time::timeout(Duration::from_secs(1), async {
        while clients.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}
