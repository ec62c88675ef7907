//! A raw Linux errno, kept as a number.

use std::fmt;

/// A Linux errno value.
///
/// A newtype over the raw number rather than an enum, so that any value the kernel returns
/// is representable; the constants name the ones daxplug reasons about.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

macro_rules! errnos {
    ($( $name:ident = $value:literal, $text:literal; )+) => {
        impl Errno {
            $(
                #[doc = $text]
                pub const $name: Errno = Errno($value);
            )+

            /// The symbolic name (`"EBUSY"`), if the value is one daxplug knows.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)+
                    _ => None,
                }
            }

            /// The C library's description (`"Device or resource busy"`), if known.
            pub fn description(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some($text),)+
                    _ => None,
                }
            }
        }
    };
}

errnos! {
    EPERM = 1, "Operation not permitted";
    ENOENT = 2, "No such file or directory";
    EINTR = 4, "Interrupted system call";
    EIO = 5, "Input/output error";
    ENXIO = 6, "No such device or address";
    E2BIG = 7, "Argument list too long";
    EBADF = 9, "Bad file descriptor";
    EAGAIN = 11, "Resource temporarily unavailable";
    ENOMEM = 12, "Cannot allocate memory";
    EACCES = 13, "Permission denied";
    EBUSY = 16, "Device or resource busy";
    EEXIST = 17, "File exists";
    ENODEV = 19, "No such device";
    ENOTDIR = 20, "Not a directory";
    EISDIR = 21, "Is a directory";
    EINVAL = 22, "Invalid argument";
    ENOSPC = 28, "No space left on device";
    EROFS = 30, "Read-only file system";
    ENAMETOOLONG = 36, "File name too long";
    ENOSYS = 38, "Function not implemented";
    ENOTEMPTY = 39, "Directory not empty";
    ELOOP = 40, "Too many levels of symbolic links";
    EILSEQ = 84, "Invalid or incomplete multibyte or wide character";
    EOPNOTSUPP = 95, "Operation not supported";
    ETIMEDOUT = 110, "Connection timed out";
}

impl Errno {
    /// Wraps a raw errno value.
    pub const fn from_raw(raw: i32) -> Self {
        Self(raw)
    }

    /// The raw value.
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// The errno of an I/O error; `EIO` for errors that carry none.
    pub fn from_io_error(err: &std::io::Error) -> Self {
        err.raw_os_error().map_or(Errno::EIO, Errno)
    }
}

impl fmt::Display for Errno {
    /// `EBUSY (Device or resource busy)`, or `errno 123` for unknown values.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.name(), self.description()) {
            (Some(name), Some(text)) => write!(f, "{name} ({text})"),
            _ => write!(f, "errno {}", self.0),
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Errno({})", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_text() {
        assert_eq!(Errno::EBUSY.to_string(), "EBUSY (Device or resource busy)");
        assert_eq!(format!("{:?}", Errno::EINTR), "EINTR");
        assert_eq!(Errno::from_raw(4095).to_string(), "errno 4095");
        let io = std::io::Error::from_raw_os_error(22);
        assert_eq!(Errno::from_io_error(&io), Errno::EINVAL);
        let custom = std::io::Error::other("no errno");
        assert_eq!(Errno::from_io_error(&custom), Errno::EIO);
    }
}
