//! Echo servers compared by messages per second of *server CPU time*: gort (with and
//! without its monitor), tokio's multi-thread runtime, a thread-per-connection server,
//! and the floor (a runtime-less single-threaded mio loop), each with one worker,
//! pinned to core 0, while one load generator (gort, `benches/support/echo_client.rs`,
//! the same for every contender) runs on core 1.
//!
//! On a 2-core machine the load generator saturates before the server, so messages/s
//! alone mostly measures the client; user + system CPU time of the server process
//! (from `/proc/PID/stat`) over the measured window is the comparison DESIGN.md asks
//! for. Each server runs in a child process (this binary with `--server NAME`). Every
//! contender runs once per round, rounds alternate, the table gives medians.
//! `cargo bench --bench echo` (about 2 minutes); `-- --quick` for a short pass.

#[path = "support/echo_client.rs"]
mod echo_client;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVERS: [&str; 7] = [
    "gort-uring",
    "gort-uring-owned",
    "gort-epoll",
    "tokio",
    "threads",
    "mio-floor",
    "uring-floor",
];
/// Buffer each server reads into: one page, for all contenders.
const BUF: usize = 4096;

/// First byte of the messages of the "blocking handler" connection: the server's
/// handler then sleeps [`BLOCK`] before echoing (a stand-in for a blocking call).
const BLOCK_MARK: u8 = 0xFF;
const BLOCK: Duration = Duration::from_millis(100);

fn block_if_marked(msg: &[u8]) {
    if msg.first() == Some(&BLOCK_MARK) {
        std::thread::sleep(BLOCK);
    }
}

fn pin_to(core: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn serve(kind: &str) -> io::Result<()> {
    pin_to(0);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?);
    io::stdout().flush()?;
    match kind {
        "gort-uring" | "gort-uring-owned" | "gort-epoll" | "gort-nomonitor" => {
            let mut b = gort::Runtime::builder();
            b.workers(1);
            b.driver(if kind == "gort-epoll" {
                gort::DriverKind::Epoll
            } else {
                gort::DriverKind::Uring
            });
            if kind == "gort-nomonitor" {
                b.blocking_threshold(Duration::ZERO);
            }
            let owned = kind == "gort-uring-owned";
            let rt = b.build()?;
            rt.block_on(async move {
                let l = gort::net::TcpListener::from_std(listener)?;
                loop {
                    let (s, _) = l.accept().await?;
                    gort::spawn(async move {
                        let _ = s.set_nodelay(true);
                        let mut buf = vec![0u8; BUF];
                        if owned {
                            // The owned-buffer API: native RECV/SEND on io_uring.
                            loop {
                                buf.clear();
                                let (res, b) = s.read_owned(buf).await;
                                buf = b;
                                if !matches!(res, Ok(1..)) {
                                    break;
                                }
                                block_if_marked(&buf);
                                let (res, b) = s.write_all_owned(buf).await;
                                buf = b;
                                if res.is_err() {
                                    break;
                                }
                            }
                            return;
                        }
                        while let Ok(n @ 1..) = s.read(&mut buf).await {
                            block_if_marked(&buf[..n]);
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            })
        }
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_io()
                .build()?;
            rt.block_on(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                listener.set_nonblocking(true)?;
                let l = tokio::net::TcpListener::from_std(listener)?;
                loop {
                    let (mut s, _) = l.accept().await?;
                    tokio::spawn(async move {
                        let _ = s.set_nodelay(true);
                        let mut buf = vec![0u8; BUF];
                        while let Ok(n @ 1..) = s.read(&mut buf).await {
                            block_if_marked(&buf[..n]);
                            if s.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            })
        }
        "mio-floor" => mio_floor(listener),
        "uring-floor" => uring_floor(listener),
        _ => {
            for s in listener.incoming() {
                let mut s = s?;
                std::thread::spawn(move || {
                    let _ = s.set_nodelay(true);
                    let mut buf = vec![0u8; BUF];
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        block_if_marked(&buf[..n]);
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
            Ok(())
        }
    }
}

/// The io_uring floor: a runtime-less, single-threaded loop with multishot accept,
/// multishot recv into provided buffers (a connection holds no buffer while idle),
/// `SEND` straight from the received buffer, and one `io_uring_enter` per turn.
fn uring_floor(listener: std::net::TcpListener) -> io::Result<()> {
    use io_uring::{cqueue, opcode, types, IoUring};
    use std::os::fd::AsRawFd;

    const NBUFS: u16 = 4096;
    const BGID: u16 = 7;
    const ACCEPT: u64 = 0;
    const RECV: u64 = 1;
    const SEND: u64 = 2;
    const IGNORE: u64 = 3;
    // user_data: kind in bits 0..2, fd in 2..24, buffer id in 24..37, and for a send
    // its length in 37..50 and offset in the buffer in 50..63.
    let ud = |kind: u64, fd: i32, bid: u16| kind | (fd as u64) << 2 | (bid as u64) << 24;
    let send = |fd: i32, bid: u16, off: usize, len: usize| {
        ud(SEND, fd, bid) | (len as u64) << 37 | (off as u64) << 50
    };

    let mut ring = IoUring::builder()
        .setup_cqsize(16384)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(4096)?;
    let mut pool = vec![0u8; BUF * NBUFS as usize];
    let base = pool.as_mut_ptr();
    let lfd = listener.as_raw_fd();
    // SAFETY (all pushes below): the buffer pool and listener outlive the ring;
    // every fd stays open until its last operation completed.
    // SAFETY: buffer ids are < NBUFS, offsets within BUF; fds are open (see above).
    unsafe {
        let mut sq = ring.submission();
        let provide = opcode::ProvideBuffers::new(base, BUF as i32, NBUFS, BGID, 0)
            .build()
            .user_data(IGNORE);
        sq.push(&provide).map_err(io::Error::other)?;
        let accept = opcode::AcceptMulti::new(types::Fd(lfd))
            .build()
            .user_data(ACCEPT);
        sq.push(&accept).map_err(io::Error::other)?;
    }
    let mut todo = Vec::new();
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
            Err(e) => return Err(e),
        }
        todo.clear();
        todo.extend(
            ring.completion()
                .map(|c: cqueue::Entry| (c.user_data(), c.result(), c.flags())),
        );
        let mut sq = ring.submission();
        for &(u, res, flags) in &todo {
            let fd = ((u >> 2) & 0x3f_ffff) as i32;
            let bid = ((u >> 24) & 0x1fff) as u16;
            let mut push = |e: io_uring::squeue::Entry| {
                // SAFETY: as above.
                while unsafe { sq.push(&e) }.is_err() {
                    sq.sync();
                }
            };
            let rearm_recv = |push: &mut dyn FnMut(io_uring::squeue::Entry), fd| {
                push(
                    opcode::RecvMulti::new(types::Fd(fd), BGID)
                        .build()
                        .user_data(ud(RECV, fd, 0)),
                )
            };
            match u & 3 {
                ACCEPT => {
                    if res >= 0 {
                        // SAFETY: buffer ids are < NBUFS, offsets within BUF; fds are open (see above).
                        let _ = socket2::SockRef::from(&unsafe {
                            std::os::fd::BorrowedFd::borrow_raw(res)
                        })
                        .set_nodelay(true);
                        rearm_recv(&mut push, res);
                    }
                    if !cqueue::more(flags) {
                        push(
                            opcode::AcceptMulti::new(types::Fd(lfd))
                                .build()
                                .user_data(ACCEPT),
                        );
                    }
                }
                RECV => {
                    if let Some(b) = cqueue::buffer_select(flags) {
                        if res > 0 {
                            // SAFETY: buffer ids are < NBUFS, offsets within BUF; fds are open (see above).
                            let p = unsafe { base.add(b as usize * BUF) };
                            // SAFETY: buffer ids are < NBUFS, offsets within BUF; fds are open (see above).
                            block_if_marked(unsafe { std::slice::from_raw_parts(p, 1) });
                            push(
                                opcode::Send::new(types::Fd(fd), p, res as u32)
                                    .build()
                                    .user_data(send(fd, b, 0, res as usize)),
                            );
                        } else {
                            // SAFETY: buffer ids are < NBUFS, offsets within BUF; fds are open (see above).
                            let p = unsafe { base.add(b as usize * BUF) };
                            push(
                                opcode::ProvideBuffers::new(p, BUF as i32, 1, BGID, b)
                                    .build()
                                    .user_data(IGNORE),
                            );
                        }
                    }
                    if res <= 0 && res != -libc::ENOBUFS {
                        if !cqueue::more(flags) {
                            // SAFETY: the connection's last operation ended.
                            unsafe { libc::close(fd) };
                        }
                    } else if !cqueue::more(flags) {
                        rearm_recv(&mut push, fd);
                    }
                }
                SEND => {
                    let len = ((u >> 37) & 0x1fff) as usize;
                    let off = (u >> 50) as usize;
                    // SAFETY: buffer ids are < NBUFS, offsets within BUF; fds are open (see above).
                    let p = unsafe { base.add(bid as usize * BUF) };
                    if res > 0 && (res as usize) < len {
                        let (off, len) = (off + res as usize, len - res as usize);
                        push(
                            // SAFETY: buffer ids are < NBUFS, offsets within BUF; fds are open (see above).
                            opcode::Send::new(types::Fd(fd), unsafe { p.add(off) }, len as u32)
                                .build()
                                .user_data(send(fd, bid, off, len)),
                        );
                        continue;
                    }
                    push(
                        opcode::ProvideBuffers::new(p, BUF as i32, 1, BGID, bid)
                            .build()
                            .user_data(IGNORE),
                    );
                }
                _ => {}
            }
        }
    }
}

/// The floor: a runtime-less, single-threaded mio loop with one shared buffer. No
/// tasks, no wakers, no queues: what epoll alone costs per message.
fn mio_floor(listener: std::net::TcpListener) -> io::Result<()> {
    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};
    const LISTENER: Token = Token(usize::MAX);
    listener.set_nonblocking(true)?;
    let mut listener = TcpListener::from_std(listener);
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: slab::Slab<(TcpStream, Vec<u8>)> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; BUF];
    loop {
        poll.poll(&mut events, None)?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                while let Ok((mut s, _)) = listener.accept() {
                    let _ = s.set_nodelay(true);
                    let entry = conns.vacant_entry();
                    poll.registry().register(
                        &mut s,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert((s, Vec::new()));
                }
                continue;
            }
            let key = ev.token().0;
            let Some((s, pending)) = conns.get_mut(key) else {
                continue;
            };
            let mut closed = false;
            // Flush what a short write left, then echo everything readable.
            while !pending.is_empty() {
                match s.write(pending) {
                    Ok(n) => {
                        pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            while !closed && pending.is_empty() {
                match s.read(&mut buf) {
                    Ok(0) => closed = true,
                    Ok(n) => match s.write(&buf[..n]) {
                        Ok(w) if w == n => {}
                        Ok(w) => pending.extend_from_slice(&buf[w..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            pending.extend_from_slice(&buf[..n])
                        }
                        Err(_) => closed = true,
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => closed = true,
                }
            }
            if closed {
                let (mut s, _) = conns.remove(key);
                let _ = poll.registry().deregister(&mut s);
            }
        }
    }
}

/// User + system CPU time of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(utime + stime)
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

struct Sample {
    msgs_per_s: f64,
    msgs_per_cpu_s: f64,
    p50_us: u32,
    p99_us: u32,
}

fn start_server(kind: &str) -> io::Result<(Child, SocketAddr)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--server", kind])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    let mut out = child.stdout.take().expect("piped");
    let mut byte = [0u8; 1];
    while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0] as char);
    }
    let addr = line
        .trim()
        .parse()
        .map_err(|e| io::Error::other(format!("server said {line:?}: {e}")))?;
    Ok((child, addr))
}

fn measure(
    rt: &gort::Runtime,
    kind: &str,
    conns: usize,
    size: usize,
    secs: u64,
    blocker: bool,
) -> io::Result<Sample> {
    let (mut child, addr) = start_server(kind)?;
    let res = (|| {
        // Connect and warm up briefly, then measure a window of `secs`.
        let end = Instant::now() + Duration::from_millis(300) + Duration::from_secs(secs);
        let before = cpu_ticks(child.id())?;
        let start = Instant::now();
        let mut lat: Vec<u32> = rt.block_on(async {
            // Seeds stay below the blocking mark.
            let tasks: Vec<_> = (0..conns)
                .map(|i| gort::spawn(echo_client::client(addr, size, (i % 250) as u8, end)))
                .collect();
            let blocking =
                blocker.then(|| gort::spawn(echo_client::client(addr, size, BLOCK_MARK, end)));
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.map_err(io::Error::from)??);
            }
            if let Some(b) = blocking {
                b.await.map_err(io::Error::from)??;
            }
            io::Result::Ok(all)
        })?;
        let wall = start.elapsed().as_secs_f64();
        let cpu = (cpu_ticks(child.id())? - before) as f64 / ticks_per_sec();
        lat.sort_unstable();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        Ok(Sample {
            msgs_per_s: lat.len() as f64 / wall,
            msgs_per_cpu_s: lat.len() as f64 / cpu.max(1e-3),
            p50_us: pct(0.5),
            p99_us: pct(0.99),
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    res
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--server") {
        return serve(args.get(i + 1).map_or("gort", String::as_str));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (rounds, secs) = if quick { (1, 1) } else { (3, 3) };
    pin_to(1);
    let rt = gort::Runtime::builder().workers(1).build()?;
    let workloads = [
        (100usize, 64usize, false),
        (1000, 1024, false),
        (100, 64, true),
    ];
    let mut results: Vec<(String, &str, Vec<Sample>)> = Vec::new();
    for round in 0..rounds {
        for &(conns, size, blocker) in &workloads {
            let w = if blocker {
                format!("{conns} conns x {size} B + 1 handler blocking {BLOCK:?} per message")
            } else {
                format!("{conns} conns x {size} B")
            };
            for kind in SERVERS {
                eprintln!("round {}/{rounds}: {w}: {kind}", round + 1);
                let s = match measure(&rt, kind, conns, size, secs, blocker) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("  {kind} failed: {e}");
                        continue;
                    }
                };
                match results.iter_mut().find(|(w2, k, _)| *w2 == w && *k == kind) {
                    Some((_, _, v)) => v.push(s),
                    None => results.push((w.clone(), kind, vec![s])),
                }
            }
        }
    }
    println!("\n## echo: server on core 0 (1 worker), load generator on core 1; medians of {rounds} rounds of {secs} s\n");
    println!("| workload | server | msg/s | msg per server-CPU-s | ÷ tokio | p50 µs | p99 µs |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (w, kind, samples) in &results {
        let cpu = median(samples.iter().map(|s| s.msgs_per_cpu_s).collect());
        let tokio = results
            .iter()
            .find(|(w2, k, _)| w2 == w && *k == "tokio")
            .map(|(_, _, v)| median(v.iter().map(|s| s.msgs_per_cpu_s).collect()))
            .unwrap_or(f64::NAN);
        println!(
            "| {w} | {kind} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} |",
            median(samples.iter().map(|s| s.msgs_per_s).collect()),
            cpu,
            cpu / tokio,
            median(samples.iter().map(|s| s.p50_us as f64).collect()),
            median(samples.iter().map(|s| s.p99_us as f64).collect()),
        );
    }
    for kind in SERVERS {
        if !results.iter().any(|(_, k, _)| *k == kind) {
            println!("| (all) | {kind} | failed | | | | |");
        }
    }
    Ok(())
}
