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
}
