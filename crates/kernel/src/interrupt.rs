//! Interrupting a system call blocked in another thread.
//!
//! Offlining memory can take a very long time; the kernel checks for a pending signal
//! between migration passes and then fails the write with `EINTR`, undoing the isolation.
//! So a timeout or a Ctrl-C is delivered as a signal aimed at the one thread doing the
//! write, never by abandoning the write.

use std::io;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::AtomicBool;

/// The signal used to interrupt a writer. Its handler does nothing but exist, so that the
/// signal interrupts the system call instead of killing the process.
pub const WAKEUP_SIGNAL: i32 = libc::SIGUSR1;

/// Interrupts a kernel call the given thread may be blocked in.
pub type Interrupter = Arc<dyn Fn(ThreadToken) + Send + Sync>;

/// A thread that may be blocked in a kernel call (its Linux thread id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadToken(i32);

impl ThreadToken {
    /// The calling thread.
    pub fn current() -> Self {
        Self(rustix::thread::gettid().as_raw_nonzero().get())
    }
}

/// Installs the handler of [`WAKEUP_SIGNAL`] (once per process).
pub fn install_wakeup_handler() -> io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = signal_hook::flag::register(WAKEUP_SIGNAL, Arc::new(AtomicBool::new(false)))
            .map(|_| ());
    });
    result
}

/// Sends [`WAKEUP_SIGNAL`] to `thread` of this process.
pub fn signal_thread(thread: ThreadToken) -> io::Result<()> {
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    // SAFETY: tgkill(2) takes three integers and touches no memory of ours; the thread
    // group id is our own, so the signal can only reach a thread of this process, whose
    // handler for WAKEUP_SIGNAL is installed by `install_wakeup_handler`.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, pid, thread.0, WAKEUP_SIGNAL) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signalled_thread_survives() {
        install_wakeup_handler().expect("handler");
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(ThreadToken::current()).expect("send");
            std::thread::sleep(std::time::Duration::from_millis(50));
            "alive"
        });
        let token = rx.recv().expect("token");
        signal_thread(token).expect("signal");
        assert_eq!(t.join().expect("join"), "alive");
    }
}
