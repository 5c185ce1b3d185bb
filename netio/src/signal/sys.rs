//! The unsafe half of signals: `sigaction`, the handler and the self-pipe.
//!
//! The handler runs on whatever thread the kernel picks, between any two instructions
//! of it, so it touches only atomics and calls only `write(2)` (async-signal-safe, as
//! POSIX lists them), and keeps `errno` as it found it. If another handler was
//! installed before ours (a library's, a crash reporter's), ours calls it after its
//! own work, as signal-hook does, so installing gort's does not take that one away
//! (with our flags and mask, not its own). A signal that was ignored (`SIG_IGN`) is
//! not ignored any more once listened for; for `SIGCHLD` that also ends the kernel's
//! automatic reaping of children, as with any handler.
//!
//! After `fork()` without `exec`, the child has the handler but not the dispatcher
//! thread (threads do not survive a fork): its listeners never fire. Listen for
//! signals in the parent, or `exec`.

#![allow(unsafe_code)]

use std::io::{self, Read};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

/// Signal numbers go up to `SIGRTMAX` (64 on Linux).
pub(super) const NSIG: usize = 65;

/// Set by the handler, taken by the dispatcher thread.
static PENDING: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];
/// Whether our handler is installed, per signal (written under the registry's lock).
static INSTALLED: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];
/// The handler that was installed before ours, per signal: its address (0 for none,
/// `SIG_DFL` or `SIG_IGN`) and whether it takes `siginfo` (`SA_SIGINFO`).
static PREVIOUS: [AtomicUsize; NSIG] = [const { AtomicUsize::new(0) }; NSIG];
static PREVIOUS_SIGINFO: [AtomicBool; NSIG] = [const { AtomicBool::new(false) }; NSIG];
/// The self-pipe's write end (non-blocking), or -1 before the dispatcher started.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

/// `Ok` for a signal that may be listened for.
pub(super) fn check(signum: libc::c_int) -> io::Result<()> {
    let invalid = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
    if signum <= 0 || signum as usize >= NSIG || signum > libc::SIGRTMAX() {
        return invalid(format!(
            "signal number {signum} is out of range (1..={})",
            libc::SIGRTMAX()
        ));
    }
    let name = match signum {
        libc::SIGKILL => "SIGKILL",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGSEGV => "SIGSEGV",
        _ => return Ok(()),
    };
    invalid(format!("{name} cannot be listened for"))
}

/// Installs the handler for `signum` (once) and starts the dispatcher (once). Called
/// with the registry's lock held, which orders every call.
pub(super) fn install(signum: libc::c_int) -> io::Result<()> {
    start_dispatcher()?;
    let idx = signum as usize;
    if INSTALLED[idx].load(Ordering::Acquire) {
        return Ok(());
    }
    // SAFETY: an all-zero `sigaction` is a valid value of the C struct (empty mask, no
    // flags).
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // The action in place first, so that the handler can chain to it from its very
    // first run.
    // SAFETY: a null new action only reads the current one into `old`.
    let rc = unsafe { libc::sigaction(signum, std::ptr::null(), &mut old) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let prev = old.sa_sigaction;
    if prev != libc::SIG_DFL && prev != libc::SIG_IGN {
        PREVIOUS_SIGINFO[idx].store(old.sa_flags & libc::SA_SIGINFO != 0, Ordering::Release);
        PREVIOUS[idx].store(prev, Ordering::Release);
    }
    // SAFETY: as above.
    let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
    new.sa_sigaction = handler as *const () as libc::sighandler_t;
    new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
    // SAFETY: as above.
    let mut replaced: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `new.sa_mask` is a valid `sigset_t` to empty; `sigaction` reads `new`
    // and writes `replaced`, both valid for the call.
    let rc = unsafe {
        libc::sigemptyset(&mut new.sa_mask);
        libc::sigaction(signum, &new, &mut replaced)
    };
    if rc != 0 {
        PREVIOUS[idx].store(0, Ordering::Release);
        return Err(io::Error::last_os_error());
    }
    // Another thread may have installed a handler between the two calls: that one is
    // what we replaced, and what we chain to.
    let prev2 = replaced.sa_sigaction;
    if prev2 != prev {
        let chain = prev2 != libc::SIG_DFL && prev2 != libc::SIG_IGN;
        PREVIOUS_SIGINFO[idx].store(
            chain && replaced.sa_flags & libc::SA_SIGINFO != 0,
            Ordering::Release,
        );
        PREVIOUS[idx].store(if chain { prev2 } else { 0 }, Ordering::Release);
    }
    INSTALLED[idx].store(true, Ordering::Release);
    Ok(())
}

/// The signal handler: flag, wake the dispatcher, chain.
extern "C" fn handler(signum: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: `__errno_location` returns this thread's errno, always valid.
    let errno = unsafe { *libc::__errno_location() };
    let idx = signum as usize;
    if let Some(flag) = PENDING.get(idx) {
        flag.store(true, Ordering::SeqCst);
        let fd = WRITE_FD.load(Ordering::SeqCst);
        if fd >= 0 {
            let byte = 1u8;
            // SAFETY: `write(2)` is async-signal-safe; `byte` is valid for one byte. A
            // full pipe (EAGAIN) is fine: a wake-up is already queued.
            unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) };
        }
        let prev = PREVIOUS[idx].load(Ordering::Acquire);
        if prev != 0 {
            if PREVIOUS_SIGINFO[idx].load(Ordering::Acquire) {
                // SAFETY: `prev` is the handler `sigaction` reported, installed with
                // `SA_SIGINFO`, so it has this signature; we pass our own arguments on.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(prev) };
                f(signum, info, ctx);
            } else {
                // SAFETY: `prev` is a plain `sa_handler` (no `SA_SIGINFO`).
                let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev) };
                f(signum);
            }
        }
    }
    // SAFETY: as above; restores errno for the code the signal interrupted.
    unsafe { *libc::__errno_location() = errno };
}

/// Starts the dispatcher thread and its self-pipe, once per process (the registry's
/// lock orders the calls). The thread lives as long as the process, asleep in `read`.
fn start_dispatcher() -> io::Result<()> {
    static STARTED: AtomicBool = AtomicBool::new(false);
    if STARTED.load(Ordering::Acquire) {
        return Ok(());
    }
    let (mut rx, tx) = UnixStream::pair()?;
    tx.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("gort-signal".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match rx.read(&mut buf) {
                    Ok(0) => return, // cannot happen: the write end is never closed
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return,
                }
                for (signum, flag) in PENDING.iter().enumerate() {
                    if flag.swap(false, Ordering::SeqCst) {
                        super::dispatch(signum);
                    }
                }
            }
        })?;
    // The write end stays open for the life of the process (the handler may run at
    // any moment, even during exit).
    WRITE_FD.store(tx.into_raw_fd(), Ordering::SeqCst);
    STARTED.store(true, Ordering::Release);
    Ok(())
}
