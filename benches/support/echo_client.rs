//! The echo load client shared by `examples/echo_load.rs` and `benches/echo.rs`: one
//! connection, one message in flight, every echoed byte checked.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use gort::net::TcpStream;

/// Runs one connection until `end`; returns its round-trip latencies in microseconds.
pub async fn client(addr: SocketAddr, size: usize, seed: u8, end: Instant) -> io::Result<Vec<u32>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let msg: Vec<u8> = (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut back = vec![0u8; size];
    let mut lat = Vec::new();
    while Instant::now() < end {
        let t = Instant::now();
        stream.write_all(&msg).await?;
        let mut got = 0;
        while got < size {
            let n = stream.read(&mut back[got..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += n;
        }
        if back != msg {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "echoed bytes differ",
            ));
        }
        lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    Ok(lat)
}
