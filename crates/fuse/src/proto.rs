//! The kernel's FUSE wire format (`include/uapi/linux/fuse.h`, protocol 7.31): requests
//! parsed from the bytes read off `/dev/fuse`, replies encoded into the bytes written back.
//! Pure: no I/O, so every layout is unit-tested.

/// Protocol major version.
pub const MAJOR: u32 = 7;
/// The minor version served. 7.31 has everything used here and nothing that changes the
/// layouts below (the kernel adapts to a lower minor than its own).
pub const MINOR: u32 = 31;

/// Size of `fuse_in_header`.
pub const IN_HEADER: usize = 40;
/// Size of `fuse_out_header`.
pub const OUT_HEADER: usize = 16;

/// `FOPEN_DIRECT_IO`: every read and write of the open file reaches the server, so a
/// sysfs attribute is rendered afresh each time, as the kernel renders it.
pub const FOPEN_DIRECT_IO: u32 = 1;
/// `FUSE_PARALLEL_DIROPS`: lookups and readdirs in one directory may run concurrently.
const FUSE_PARALLEL_DIROPS: u32 = 1 << 18;

/// Request opcodes handled (the others get `ENOSYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Lookup,
    Forget,
    Getattr,
    Setattr,
    Readlink,
    Symlink,
    Mknod,
    Mkdir,
    Unlink,
    Rmdir,
    Rename,
    Link,
    Open,
    Read,
    Write,
    Statfs,
    Release,
    Fsync,
    Flush,
    Init,
    Opendir,
    Readdir,
    Releasedir,
    Fsyncdir,
    Access,
    Create,
    Interrupt,
    Destroy,
    BatchForget,
    Rename2,
    /// Anything else (xattrs, locks, ioctl, poll, lseek, …).
    Other(u32),
}

impl Opcode {
    fn from_raw(op: u32) -> Self {
        match op {
            1 => Self::Lookup,
            2 => Self::Forget,
            3 => Self::Getattr,
            4 => Self::Setattr,
            5 => Self::Readlink,
            6 => Self::Symlink,
            8 => Self::Mknod,
            9 => Self::Mkdir,
            10 => Self::Unlink,
            11 => Self::Rmdir,
            12 => Self::Rename,
            13 => Self::Link,
            14 => Self::Open,
            15 => Self::Read,
            16 => Self::Write,
            17 => Self::Statfs,
            18 => Self::Release,
            20 => Self::Fsync,
            25 => Self::Flush,
            26 => Self::Init,
            27 => Self::Opendir,
            28 => Self::Readdir,
            29 => Self::Releasedir,
            30 => Self::Fsyncdir,
            34 => Self::Access,
            35 => Self::Create,
            36 => Self::Interrupt,
            38 => Self::Destroy,
            42 => Self::BatchForget,
            45 => Self::Rename2,
            other => Self::Other(other),
        }
    }
}

/// A malformed request (shorter than its header says, or than its opcode needs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed FUSE request: {0}")]
pub struct Malformed(pub &'static str);

/// One request: the header fields used and the opcode-specific body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What is asked.
    pub opcode: Opcode,
    /// The id the reply must carry.
    pub unique: u64,
    /// The inode the request is about.
    pub nodeid: u64,
    /// The calling process (for diagnostics).
    pub pid: u32,
    /// The bytes after the header.
    pub body: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl Request {
    /// Parses one request as read from `/dev/fuse` (one read gives exactly one request).
    pub fn parse(buf: &[u8]) -> Result<Self, Malformed> {
        let len = u32_at(buf, 0).ok_or(Malformed("no header"))? as usize;
        if len < IN_HEADER || len > buf.len() {
            return Err(Malformed("length does not match the bytes read"));
        }
        let field = |at| u32_at(buf, at).ok_or(Malformed("short header"));
        Ok(Self {
            opcode: Opcode::from_raw(field(4)?),
            unique: u64_at(buf, 8).ok_or(Malformed("short header"))?,
            nodeid: u64_at(buf, 16).ok_or(Malformed("short header"))?,
            pid: field(32)?,
            body: buf[IN_HEADER..len].to_vec(),
        })
    }

    fn u32(&self, at: usize) -> Result<u32, Malformed> {
        u32_at(&self.body, at).ok_or(Malformed("body too short"))
    }

    fn u64(&self, at: usize) -> Result<u64, Malformed> {
        u64_at(&self.body, at).ok_or(Malformed("body too short"))
    }

    /// The NUL-terminated name of LOOKUP (and of the refused CREATE, MKDIR, …).
    pub fn name(&self) -> Result<&str, Malformed> {
        let end = self
            .body
            .iter()
            .position(|c| *c == 0)
            .ok_or(Malformed("name without NUL"))?;
        std::str::from_utf8(&self.body[..end]).map_err(|_| Malformed("name is not UTF-8"))
    }

    /// INIT: the kernel's major, minor and max_readahead.
    pub fn init(&self) -> Result<(u32, u32, u32), Malformed> {
        Ok((self.u32(0)?, self.u32(4)?, self.u32(8)?))
    }

    /// OPEN / OPENDIR: the open flags.
    pub fn open_flags(&self) -> Result<u32, Malformed> {
        self.u32(0)
    }

    /// READ / READDIR: file handle, offset, size.
    pub fn read(&self) -> Result<(u64, u64, u32), Malformed> {
        Ok((self.u64(0)?, self.u64(8)?, self.u32(16)?))
    }

    /// WRITE: file handle, offset and the data.
    pub fn write(&self) -> Result<(u64, u64, &[u8]), Malformed> {
        let size = self.u32(16)? as usize;
        let data = self
            .body
            .get(40..40 + size)
            .ok_or(Malformed("write data shorter than its size"))?;
        Ok((self.u64(0)?, self.u64(8)?, data))
    }

    /// RELEASE / RELEASEDIR / FLUSH: the file handle.
    pub fn fh(&self) -> Result<u64, Malformed> {
        self.u64(0)
    }

    /// INTERRUPT: the id of the interrupted request.
    pub fn interrupted(&self) -> Result<u64, Malformed> {
        self.u64(0)
    }
}

/// What an inode is, as far as `stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Type and permission bits (`S_IFDIR | 0755`, …).
    pub mode: u32,
    /// Link count.
    pub nlink: u32,
    /// All three times (seconds since the epoch).
    pub time: u64,
    /// Device number of a character device (`major`, `minor`).
    pub rdev: (u32, u32),
}

/// `S_IFDIR`.
pub const S_IFDIR: u32 = 0o040_000;
/// `S_IFREG`.
pub const S_IFREG: u32 = 0o100_000;
/// `S_IFLNK`.
pub const S_IFLNK: u32 = 0o120_000;
/// `S_IFCHR`.
pub const S_IFCHR: u32 = 0o020_000;

impl Attr {
    /// `fuse_attr` (88 bytes).
    fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.ino, self.size, self.size.div_ceil(512)] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for _ in 0..3 {
            out.extend_from_slice(&self.time.to_le_bytes());
        }
        // The kernel's new_encode_dev(): minor's low byte, major, minor's high bits.
        let (major, minor) = self.rdev;
        let rdev = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
        // atimensec, mtimensec, ctimensec, mode, nlink, uid, gid, rdev, blksize, flags
        for v in [0, 0, 0, self.mode, self.nlink, 0, 0, rdev, 4096, 0] {
            out.extend_from_slice(&u32::to_le_bytes(v));
        }
    }

    /// The `d_type` of a directory entry.
    pub fn dirent_type(&self) -> u32 {
        match self.mode & 0o170_000 {
            S_IFDIR => 4,
            S_IFLNK => 10,
            S_IFCHR => 2,
            _ => 8,
        }
    }
}

/// Reply builder: the header is filled in by [`Reply::finish`].
#[derive(Debug)]
pub struct Reply {
    buf: Vec<u8>,
}

impl Reply {
    /// A successful reply to `unique`, payload to follow.
    pub fn ok(unique: u64) -> Self {
        let mut buf = Vec::with_capacity(OUT_HEADER + 128);
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&0i32.to_le_bytes());
        buf.extend_from_slice(&unique.to_le_bytes());
        Self { buf }
    }

    /// An error reply: `errno` is positive (the wire carries its negation).
    pub fn error(unique: u64, errno: i32) -> Vec<u8> {
        let mut r = Self::ok(unique);
        r.buf[4..8].copy_from_slice(&(-errno).to_le_bytes());
        r.finish()
    }

    /// Appends raw bytes.
    pub fn bytes(mut self, data: &[u8]) -> Self {
        self.buf.extend_from_slice(data);
        self
    }

    fn u32s(mut self, v: &[u32]) -> Self {
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }

    fn u64s(mut self, v: &[u64]) -> Self {
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }

    /// `fuse_init_out` (64 bytes).
    pub fn init(self, max_readahead: u32, max_write: u32) -> Self {
        self.u32s(&[MAJOR, MINOR, max_readahead, FUSE_PARALLEL_DIROPS])
            // max_background, congestion_threshold (0: the kernel's defaults)
            .u32s(&[0])
            // max_write, time_gran
            .u32s(&[max_write, 1])
            // max_pages, map_alignment, flags2, max_stack_depth, unused[6]
            .u32s(&[0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// `fuse_entry_out` (128 bytes). The kernel may keep the name and the attributes for
    /// `ttl` seconds without asking again: 0 for anything that can come and go.
    pub fn entry(mut self, attr: &Attr, ttl: u64) -> Self {
        self = self.u64s(&[attr.ino, 0, ttl, ttl]).u32s(&[0, 0]);
        attr.encode(&mut self.buf);
        self
    }

    /// `fuse_attr_out` (104 bytes).
    pub fn attr(mut self, attr: &Attr, ttl: u64) -> Self {
        self = self.u64s(&[ttl]).u32s(&[0, 0]);
        attr.encode(&mut self.buf);
        self
    }

    /// `fuse_open_out` (16 bytes).
    pub fn open(self, fh: u64, open_flags: u32) -> Self {
        self.u64s(&[fh]).u32s(&[open_flags, 0])
    }

    /// `fuse_write_out` (8 bytes).
    pub fn written(self, size: u32) -> Self {
        self.u32s(&[size, 0])
    }

    /// `fuse_statfs_out` (80 bytes): an empty filesystem of 4 KiB blocks.
    pub fn statfs(self) -> Self {
        self.u64s(&[0, 0, 0, 0, 0])
            .u32s(&[4096, 255, 4096, 0, 0, 0, 0, 0, 0, 0])
    }

    /// The finished reply bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let len = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf
    }
}

/// Appends one `fuse_dirent` to `out` unless it would exceed `max` bytes in all; returns
/// whether it fit.
pub fn push_dirent(
    out: &mut Vec<u8>,
    max: usize,
    ino: u64,
    off: u64,
    kind: u32,
    name: &str,
) -> bool {
    let len = 24 + name.len();
    let padded = len.div_ceil(8) * 8;
    if out.len() + padded > max {
        return false;
    }
    out.extend_from_slice(&ino.to_le_bytes());
    out.extend_from_slice(&off.to_le_bytes());
    out.extend_from_slice(&u32::try_from(name.len()).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    out.resize(out.len() + padded - len, 0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, opcode: u32, unique: u64, nodeid: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&len.to_le_bytes());
        b.extend_from_slice(&opcode.to_le_bytes());
        b.extend_from_slice(&unique.to_le_bytes());
        b.extend_from_slice(&nodeid.to_le_bytes());
        b.extend_from_slice(&[0; 4 * 3]); // uid gid pid
        b.extend_from_slice(&[0; 4]); // extlen, padding
        b
    }

    #[test]
    fn a_lookup_is_parsed() {
        let mut b = header(40 + 7, 1, 9, 1);
        b.extend_from_slice(b"memory\0");
        let r = Request::parse(&b).expect("parses");
        assert_eq!(r.opcode, Opcode::Lookup);
        assert_eq!((r.unique, r.nodeid), (9, 1));
        assert_eq!(r.name(), Ok("memory"));
    }

    #[test]
    fn a_write_carries_its_data() {
        let mut b = header(40 + 40 + 15, 16, 3, 5);
        b.extend_from_slice(&7u64.to_le_bytes()); // fh
        b.extend_from_slice(&0u64.to_le_bytes()); // offset
        b.extend_from_slice(&15u32.to_le_bytes()); // size
        b.extend_from_slice(&[0; 20]);
        b.extend_from_slice(b"online_movable\n");
        let r = Request::parse(&b).expect("parses");
        assert_eq!(r.write(), Ok((7, 0, &b"online_movable\n"[..])));
    }

    #[test]
    fn truncated_requests_are_refused() {
        let b = header(80, 16, 3, 5);
        assert!(Request::parse(&b).is_err(), "length beyond the bytes read");
        let r = Request::parse(&header(40, 16, 3, 5)).expect("header alone parses");
        assert!(r.write().is_err(), "a write without its body");
        assert!(Request::parse(&[1, 2, 3]).is_err());
    }

    #[test]
    fn reply_layouts_have_the_kernel_sizes() {
        let a = Attr {
            ino: 2,
            size: 4096,
            mode: S_IFREG | 0o644,
            nlink: 1,
            time: 0,
            rdev: (0, 0),
        };
        assert_eq!(Reply::ok(1).entry(&a, 0).finish().len(), OUT_HEADER + 128);
        assert_eq!(Reply::ok(1).attr(&a, 0).finish().len(), OUT_HEADER + 104);
        assert_eq!(Reply::ok(1).init(0, 0).finish().len(), OUT_HEADER + 64);
        assert_eq!(Reply::ok(1).open(1, 0).finish().len(), OUT_HEADER + 16);
        assert_eq!(Reply::ok(1).statfs().finish().len(), OUT_HEADER + 80);
        let e = Reply::error(5, 2);
        assert_eq!(e.len(), OUT_HEADER);
        assert_eq!(i32::from_le_bytes(e[4..8].try_into().expect("4 bytes")), -2);
        assert_eq!(u64::from_le_bytes(e[8..16].try_into().expect("8 bytes")), 5);
    }

    #[test]
    fn dirents_are_padded_and_bounded() {
        let mut out = Vec::new();
        assert!(push_dirent(&mut out, 64, 3, 1, 4, "node1"));
        assert_eq!(out.len(), 32, "24 + 5 rounded up to 8");
        assert!(
            !push_dirent(&mut out, 64, 4, 2, 4, "memory1234"),
            "40 more bytes do not fit"
        );
        assert_eq!(out.len(), 32);
    }
}
