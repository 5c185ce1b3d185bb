//! The echo servers every echo benchmark runs (`benches/echo.rs` and `gort-bench`):
//! gort on io_uring (borrowed and owned buffers) and on epoll, tokio, a
//! thread-per-connection server, and the two runtime-less floors. Each reads into one
//! page and writes it back; [`serve`] runs one on core 0 and prints its address.

#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Buffer each server reads into: one page, for all contenders.
pub const BUF: usize = 4096;

/// First byte of the messages of the "blocking handler" connection: the server's
/// handler then sleeps [`BLOCK`] before echoing (a stand-in for a blocking call).
pub const BLOCK_MARK: u8 = 0xFF;
pub const BLOCK: Duration = Duration::from_millis(100);

fn block_if_marked(msg: &[u8]) {
    if msg.first() == Some(&BLOCK_MARK) {
        std::thread::sleep(BLOCK);
    }
}

pub fn pin_to(core: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity only touch it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

pub fn serve(kind: &str) -> io::Result<()> {
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
                        if owned {
                            // The owned-buffer API: native RECV/SEND on io_uring.
                            let mut buf = Vec::with_capacity(BUF);
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
                        // As examples/echo.rs: no buffer while idle; wait, then read
                        // into a stack page that lives until the (usually immediate)
                        // write.
                        loop {
                            if s.readable().await.is_err() {
                                return;
                            }
                            let rest: Vec<u8> = {
                                let mut buf = [0u8; BUF];
                                let n = match s.try_read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(n) => n,
                                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                                    Err(_) => return,
                                };
                                block_if_marked(&buf[..n]);
                                match s.try_write(&buf[..n]) {
                                    Ok(w) => buf[w..n].to_vec(),
                                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                        buf[..n].to_vec()
                                    }
                                    Err(_) => return,
                                }
                            };
                            if !rest.is_empty() && s.write_all(&rest).await.is_err() {
                                return;
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
        match poll.poll(&mut events, None) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            res => res?,
        }
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

/// Starts server `kind` in a child process (the current executable with
/// `--server KIND`, which calls [`serve`]); returns it and the address it printed.
pub fn start_server(kind: &str) -> io::Result<(Child, SocketAddr)> {
    start_server_from(&std::env::current_exe()?, kind)
}

/// [`start_server`] with the server binary `exe` (a build of another tree, for a
/// before/after comparison in one run).
#[allow(dead_code)]
pub fn start_server_from(exe: &std::path::Path, kind: &str) -> io::Result<(Child, SocketAddr)> {
    let mut child = Command::new(exe)
        .args(["--server", kind])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().expect("piped");
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line).trim().to_owned();
    match line.parse() {
        Ok(addr) => Ok((child, addr)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(io::Error::other(format!("server said {line:?}: {e}")))
        }
    }
}

/// User + system CPU seconds of process `pid` (`/proc/PID/stat`).
pub fn cpu_secs(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((field(11) + field(12)) as f64 / hz)
}
