//! TCP echo server: `cargo run --release --example echo [-- --addr 127.0.0.1:7878]`.
//!
//! One task per connection; prints the address and the I/O driver; shuts down cleanly
//! on Ctrl-C (SIGINT) or SIGTERM: stops accepting, and dropping the runtime cancels the
//! connection tasks at their next `.await`.

use std::io;
use std::net::SocketAddr;

use gort::net::{TcpListener, TcpStream};
use gort::signal::unix::{signal, SignalKind};

/// Bytes read per `read` call: one page, like tokio's usual echo buffer.
const BUF_SIZE: usize = 4096;
const DEFAULT_ADDR: &str = "127.0.0.1:7878";

fn main() -> io::Result<()> {
    let addr = parse_args()?;
    let rt = gort::Runtime::new()?;
    rt.block_on(async {
        // The handlers are installed here, before the first connection.
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let listener = TcpListener::bind(addr).await?;
        println!(
            "gort echo listening on {} ({} driver, {} workers); Ctrl-C to stop",
            listener.local_addr()?,
            rt.driver().map_or("no".to_owned(), |d| d.to_string()),
            rt.metrics().num_workers()
        );
        loop {
            gort::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        gort::spawn(serve(stream));
                    }
                    Err(e) => eprintln!("accept: {e}"),
                },
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
            }
        }
        io::Result::Ok(())
    })?;
    println!(
        "stopping: {} connections open",
        rt.metrics().num_alive_tasks()
    );
    drop(rt);
    Ok(())
}

/// Echoes one connection. It holds no buffer while idle: it waits for readability,
/// then reads into a stack buffer that lives only until the (usually immediate) write;
/// only bytes the socket could not take at once are copied to the heap and awaited.
async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        // The buffer's scope ends before any `.await`, so it is not part of the task.
        let leftover: Vec<u8> = {
            let mut buf = [0u8; BUF_SIZE];
            let n = match stream.try_read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            };
            match stream.try_write(&buf[..n]) {
                Ok(w) => buf[w..n].to_vec(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => buf[..n].to_vec(),
                Err(_) => return,
            }
        };
        if !leftover.is_empty() && stream.write_all(&leftover).await.is_err() {
            return;
        }
    }
}

fn parse_args() -> io::Result<SocketAddr> {
    let mut args = std::env::args().skip(1);
    let mut addr = DEFAULT_ADDR.to_owned();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().ok_or_else(|| usage("--addr needs a value"))?,
            "-h" | "--help" => {
                println!("usage: echo [--addr HOST:PORT]   (default {DEFAULT_ADDR})");
                std::process::exit(0);
            }
            other => return Err(usage(&format!("unknown argument {other:?}"))),
        }
    }
    addr.parse()
        .map_err(|e| usage(&format!("--addr {addr:?}: {e}")))
}

fn usage(msg: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{msg}; usage: echo [--addr HOST:PORT]"),
    )
}
