//! Leaving the host's mount namespace.

use std::io;

/// Moves the calling process into a new mount namespace of its own: mounts made afterwards
/// are invisible to the host and disappear with the process. Must be called while the
/// process has a single thread (the kernel refuses otherwise, `EINVAL`).
pub fn unshare_mount_namespace() -> io::Result<()> {
    // SAFETY: rustix marks unshare(2) unsafe because `CLONE_FILES` would split the file
    // descriptor table under other threads. Only `CLONE_NEWNS` is requested here, which
    // touches no memory and no descriptor of ours; the kernel refuses it in a
    // multithreaded process instead of misbehaving.
    #[allow(unsafe_code)]
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(io::Error::from)
}
