//! Number formats the kernel uses: hex with and without `0x`, and decimal.

use crate::error::ParseError;

/// Parses lowercase or uppercase hex digits with no prefix and no sign.
pub(crate) fn parse_bare_hex(text: &str, expected: &'static str) -> Result<u64, ParseError> {
    if text.is_empty() || text.len() > 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ParseError::new(text, expected));
    }
    u64::from_str_radix(text, 16).map_err(|_| ParseError::new(text, expected))
}

/// Parses `0x`-prefixed hex, as dax attributes print addresses (`%#llx`).
pub(crate) fn parse_prefixed_hex(text: &str, expected: &'static str) -> Result<u64, ParseError> {
    match text.strip_prefix("0x") {
        Some(digits) => {
            parse_bare_hex(digits, expected).map_err(|_| ParseError::new(text, expected))
        }
        // `%#llx` prints a bare `0` for zero.
        None if text == "0" => Ok(0),
        None => Err(ParseError::new(text, expected)),
    }
}

/// Parses an unsigned decimal with no sign and no leading `+`.
pub(crate) fn parse_decimal(text: &str, expected: &'static str) -> Result<u64, ParseError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::new(text, expected));
    }
    text.parse().map_err(|_| ParseError::new(text, expected))
}

/// Formats `block_size_bytes` the way the kernel prints it: hex, no `0x`.
pub fn format_block_size(bytes: u64) -> String {
    format!("{bytes:x}")
}

/// Formats `memoryN/phys_index` the way the kernel prints it: `%08lx`.
pub fn format_phys_index(block: u64) -> String {
    format!("{block:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(parse_bare_hex("8000000", "x"), Ok(0x800_0000));
        assert_eq!(parse_prefixed_hex("0x17fffffff", "x"), Ok(0x1_7fff_ffff));
        assert_eq!(parse_prefixed_hex("0", "x"), Ok(0));
        assert!(parse_prefixed_hex("17fffffff", "x").is_err());
        assert!(parse_bare_hex("0x10", "x").is_err());
        assert!(parse_bare_hex("", "x").is_err());
        assert!(parse_bare_hex("11112222333344445", "x").is_err());
        assert!(parse_decimal("-1", "x").is_err());
        assert!(parse_decimal("+1", "x").is_err());
        assert_eq!(parse_decimal("1073741824", "x"), Ok(1 << 30));
    }
}
