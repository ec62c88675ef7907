//! Watching the kernel's uevents: the messages of the `NETLINK_KOBJECT_UEVENT` group, as
//! they come, for the daemon to wake on and for a transition to fence its reads with (a
//! block that went online or offline, a driver bound or unbound, while a device's files
//! were read one by one). The messages are handed over as they are; `daxplug_abi::Uevent`
//! parses them.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType, netlink};

/// Messages received since a watch began (or since the last call), or that some were lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Each message as the kernel sent it (`action@devpath\0KEY=value\0…`).
    Messages(Vec<Vec<u8>>),
    /// The buffer overflowed: anything may have happened.
    Lost,
}

/// A watch of the kernel's uevents.
pub trait UeventWatch {
    /// What came since the watch began or since the last call.
    fn seen(&mut self) -> Seen;
}

/// The kernel's uevent multicast group, read without blocking.
#[derive(Debug)]
pub struct NetlinkWatch {
    fd: OwnedFd,
}

impl NetlinkWatch {
    /// Joins the kernel's uevent group, asking for `recv_buffer` bytes of socket buffer
    /// (0: the default) so that a burst is not lost at once.
    pub fn listen(recv_buffer: usize) -> rustix::io::Result<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )?;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1))?;
        if recv_buffer > 0 {
            // Best effort: the default buffer still works, only overflows sooner.
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, recv_buffer);
        }
        Ok(Self { fd })
    }
}

impl AsFd for NetlinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl UeventWatch for NetlinkWatch {
    fn seen(&mut self) -> Seen {
        let mut out = Vec::new();
        // A uevent message is at most a few KiB (the kernel's UEVENT_BUFFER_SIZE).
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((_, n)) => out.push(buf[..n.min(buf.len())].to_vec()),
                Err(rustix::io::Errno::NOBUFS) => return Seen::Lost,
                Err(_) => return Seen::Messages(out),
            }
        }
    }
}
