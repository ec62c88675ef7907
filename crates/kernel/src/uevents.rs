//! Watching the kernel's uevents for the length of a read: the one fence that tells
//! whether a block went online or offline, or a driver was bound or unbound, while a
//! device's files were read one by one. Unlike `/sys/kernel/uevent_seqnum`, it names what
//! changed, so a storm of unrelated events (`change` events, other devices) does not
//! defeat it.

use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, RecvFlags, SocketFlags, SocketType, netlink};

/// One uevent's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    /// `ACTION`: add, remove, online, offline, bind, unbind, change, move.
    pub action: String,
    /// `DEVPATH`, under `/sys` (`/devices/system/memory/memory40`).
    pub devpath: String,
}

impl Uevent {
    /// Whether the event changes what a device's files say: everything but `change`, which
    /// the kernel and `udevadm trigger` send without changing a block's state or driver.
    pub fn changes_state(&self) -> bool {
        self.action != "change"
    }
}

/// Events seen since a watch began (or since the last call), or that some were lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Events(Vec<Uevent>),
    /// The buffer overflowed: anything may have happened.
    Lost,
}

/// A watch of the kernel's uevents, begun before a read.
pub trait UeventWatch {
    /// What happened since the watch began or since the last call.
    fn seen(&mut self) -> Seen;
}

/// The kernel's `NETLINK_KOBJECT_UEVENT` multicast group, read without blocking.
#[derive(Debug)]
pub struct NetlinkWatch {
    fd: OwnedFd,
}

impl NetlinkWatch {
    /// Joins the kernel's uevent group; `None` where the socket cannot be had.
    pub fn open() -> Option<Self> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )
        .ok()?;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1)).ok()?;
        Some(Self { fd })
    }
}

/// The `ACTION` and `DEVPATH` of a kernel uevent message (`action@devpath\0KEY=value\0…`).
pub fn parse_uevent(msg: &[u8]) -> Option<Uevent> {
    let mut action = None;
    let mut devpath = None;
    for part in msg.split(|b| *b == 0) {
        if let Some(v) = part.strip_prefix(b"ACTION=") {
            action = Some(String::from_utf8_lossy(v).into_owned());
        } else if let Some(v) = part.strip_prefix(b"DEVPATH=") {
            devpath = Some(String::from_utf8_lossy(v).into_owned());
        }
    }
    Some(Uevent {
        action: action?,
        devpath: devpath?,
    })
}

impl UeventWatch for NetlinkWatch {
    fn seen(&mut self) -> Seen {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::DONTWAIT) {
                Ok((_, n)) => out.extend(parse_uevent(&buf[..n.min(buf.len())])),
                Err(rustix::io::Errno::NOBUFS) => return Seen::Lost,
                Err(_) => return Seen::Events(out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_message_gives_its_action_and_devpath() {
        let msg = b"offline@/devices/system/memory/memory40\0ACTION=offline\0DEVPATH=/devices/system/memory/memory40\0SUBSYSTEM=memory\0SEQNUM=4711\0";
        assert_eq!(
            parse_uevent(msg),
            Some(Uevent {
                action: "offline".into(),
                devpath: "/devices/system/memory/memory40".into()
            })
        );
        // udev's own messages (libudev's header) carry no ACTION= in this form.
        assert_eq!(parse_uevent(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert!(
            !Uevent {
                action: "change".into(),
                devpath: String::new()
            }
            .changes_state()
        );
    }
}
