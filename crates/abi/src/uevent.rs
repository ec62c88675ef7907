//! `KEY=VALUE` environments: sysfs `uevent` files and kernel uevent messages.

use crate::error::ParseError;

/// The variables of a uevent, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uevent {
    vars: Vec<(String, String)>,
}

impl Uevent {
    /// Parses one `KEY=VALUE` per line (as a sysfs `uevent` file reads). An empty file is
    /// an empty environment.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Self::parse_items(text.lines())
    }

    /// Parses the NUL-separated variables of a kernel uevent message body.
    pub fn parse_items<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, ParseError> {
        let mut vars = Vec::new();
        for (n, item) in items.into_iter().enumerate() {
            if item.is_empty() {
                continue;
            }
            let (key, value) = item
                .split_once('=')
                .filter(|(k, _)| !k.is_empty() && !k.contains(char::is_whitespace))
                .ok_or_else(|| {
                    ParseError::new(item, "a uevent variable (KEY=VALUE)").at_line(n + 1)
                })?;
            vars.push((key.to_owned(), value.to_owned()));
        }
        Ok(Self { vars })
    }

    /// Parses a kernel uevent message as netlink delivers it: an `action@devpath` header,
    /// then NUL-separated variables.
    pub fn parse_message(msg: &[u8]) -> Result<Self, ParseError> {
        let text = String::from_utf8_lossy(msg);
        let mut items = text.split('\0').peekable();
        if items
            .peek()
            .is_some_and(|h| !h.contains('=') && h.contains('@'))
        {
            items.next();
        }
        Self::parse_items(items)
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_uevent_file() {
        let ev =
            Uevent::parse("MAJOR=252\nMINOR=0\nDEVNAME=dax0.0\nDRIVER=kmem\nMODALIAS=dax:t0\n")
                .expect("parses");
        assert_eq!(ev.get("DRIVER"), Some("kmem"));
        assert_eq!(ev.get("MODALIAS"), Some("dax:t0"));
        assert_eq!(ev.get("ACTION"), None);
        assert!(Uevent::parse("").expect("empty").get("X").is_none());
        assert!(Uevent::parse("NOEQUALS\n").is_err());
        assert!(Uevent::parse("=value\n").is_err());
    }

    #[test]
    fn kernel_message() {
        let msg = b"offline@/devices/system/memory/memory40\0ACTION=offline\0DEVPATH=/devices/system/memory/memory40\0SUBSYSTEM=memory\0SEQNUM=4711\0";
        let ev = Uevent::parse_message(msg).expect("parses");
        assert_eq!(ev.get("ACTION"), Some("offline"));
        assert_eq!(ev.get("DEVPATH"), Some("/devices/system/memory/memory40"));
        assert_eq!(ev.get("SUBSYSTEM"), Some("memory"));
        // udev's own messages (libudev's binary header) are not kernel uevents.
        assert!(Uevent::parse_message(b"libudev\0\xfe\xed\xca\xfe").is_err());
    }
}
