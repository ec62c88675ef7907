//! How the kernel reads a value written to a sysfs file: what a store tolerates around the
//! token, and the `kstrto*()` family of parsers. Every attribute of the model parses here.

/// Strips what a sysfs store tolerates at the end of a value: a NUL (daxctl writes
/// `strlen + 1` bytes) and one newline (`echo`).
pub(crate) fn store_token(value: &str) -> &str {
    let v = value.trim_end_matches('\0');
    v.strip_suffix('\n').unwrap_or(v)
}

/// `kstrtobool()`: the first letter decides (`1`, `y`, `t`, `e` for enable are true; `0`,
/// `n`, `f`, `d` false), and `on`/`off` by the second.
pub(crate) fn kstrtobool(text: &str) -> Option<bool> {
    match text.as_bytes().first()? {
        b'1' | b'y' | b'Y' | b't' | b'T' | b'e' | b'E' => Some(true),
        b'0' | b'n' | b'N' | b'f' | b'F' | b'd' | b'D' => Some(false),
        b'o' | b'O' => match text.as_bytes().get(1)? {
            b'n' | b'N' => Some(true),
            b'f' | b'F' => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// `kstrtoull(buf, 0, ..)`: an optional `+`, then decimal, `0x` hex or leading-zero octal;
/// one trailing newline is allowed.
pub(crate) fn kstrtoull(token: &str) -> Option<u64> {
    let t = token.strip_suffix('\n').unwrap_or(token);
    let t = t.strip_prefix('+').unwrap_or(t);
    let (digits, radix) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (h, 16)
    } else if t.len() > 1 && t.starts_with('0') {
        (&t[1..], 8)
    } else {
        (t, 10)
    };
    // from_str_radix takes a sign of its own; the kernel took the only one already.
    if digits.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `kstrtou8(buf, 0, ..)`: as [`kstrtoull`], and out of range above 255.
pub(crate) fn kstrtou8(token: &str) -> Option<u8> {
    kstrtoull(token).and_then(|v| u8::try_from(v).ok())
}

/// `kstrtoull(buf, 16, ..)`: hexadecimal, `0x` allowed.
pub(crate) fn kstrtoull_hex(token: &str) -> Option<u64> {
    let t = token.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if t.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(t, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bools_as_the_kernel_reads_them() {
        assert_eq!(kstrtobool("1"), Some(true));
        assert_eq!(kstrtobool("off"), Some(false));
        assert_eq!(kstrtobool("true"), Some(true));
        assert_eq!(kstrtobool("disable"), Some(false));
        assert_eq!(kstrtobool("x"), None);
        assert_eq!(kstrtobool("o"), None);
    }

    #[test]
    fn numbers_in_every_base_the_kernel_takes() {
        assert_eq!(kstrtoull("4096\n"), Some(4096));
        assert_eq!(kstrtoull("0x1000"), Some(4096));
        assert_eq!(kstrtoull("010"), Some(8));
        assert_eq!(kstrtoull("+7"), Some(7));
        assert_eq!(kstrtoull("-7"), None);
        assert_eq!(kstrtoull("+-7"), None);
        assert_eq!(kstrtoull(""), None);
        assert_eq!(kstrtou8("255"), Some(255));
        assert_eq!(kstrtou8("256"), None);
        assert_eq!(kstrtoull_hex("1000"), Some(4096));
        assert_eq!(kstrtoull_hex("0x10"), Some(16));
        assert_eq!(store_token("online\n\0"), "online");
    }
}
