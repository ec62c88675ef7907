//! Sizes and durations as people write and read them: binary units (`1 GiB`, `512M`), the
//! same in refusals, tables, the command line and the policy file.

use std::time::Duration;

/// Formats bytes with binary units: `1 GiB`, `1022 MiB`, `1.5 GiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut unit = 0;
    while unit + 1 < UNITS.len() && bytes >= 1u64 << (10 * (unit + 1)) {
        unit += 1;
    }
    let scale = 1u64 << (10 * unit);
    if bytes.is_multiple_of(scale) {
        format!("{} {}", bytes / scale, UNITS[unit])
    } else {
        #[allow(clippy::cast_precision_loss)] // display only
        let value = bytes as f64 / scale as f64;
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parses a size a person writes: bytes (`268435456`, `0x10000000`) or a number with a
/// binary unit (`256M`, `256MiB`, `1G`, `1.5G`, `4K`, `1T`). A fraction must come to whole
/// bytes. Decimal units (`MB`, `GB`) are refused rather than silently read as binary.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a size: expected bytes or a number with K, M, G or T (binary units: KiB, MiB, GiB, TiB), such as 512M, 1G or 1.5G"
        )
    };
    let t = text.trim();
    if let Some(hex) = t.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).map_err(|_| bad());
    }
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let shift: u32 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        "T" | "TIB" => 40,
        u @ ("KB" | "MB" | "GB" | "TB") => {
            return Err(format!(
                "{text:?}: {u} could mean powers of 1000 or of 1024; write {}{} (binary, as the kernel counts) or the number of bytes",
                number,
                &u[..1]
            ));
        }
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.contains('.') {
        return Err(bad());
    }
    let n: u64 = whole.parse().map_err(|_| bad())?;
    let mut bytes = n.checked_mul(1 << shift).ok_or_else(bad)?;
    if !fraction.is_empty() {
        let digits = u32::try_from(fraction.len()).map_err(|_| bad())?;
        let denominator = 10u128.checked_pow(digits).ok_or_else(bad)?;
        let numerator: u128 = fraction.parse::<u128>().map_err(|_| bad())? << shift;
        if !numerator.is_multiple_of(denominator) {
            return Err(format!("{text:?} is not a whole number of bytes"));
        }
        let extra = u64::try_from(numerator / denominator).map_err(|_| bad())?;
        bytes = bytes.checked_add(extra).ok_or_else(bad)?;
    }
    Ok(bytes)
}

/// A duration as given back to a person, in the units the command line and the policy
/// take: `30m`, `2h`, `1d 2h`, `45s`, `250ms`.
pub fn duration(d: Duration) -> String {
    let total = d.as_secs();
    let (days, h, m, s) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    let parts: Vec<String> = [
        (days, "d"),
        (h, "h"),
        (m, "m"),
        (s, "s"),
        (u64::from(d.subsec_millis()), "ms"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, u)| format!("{n}{u}"))
    .collect();
    if parts.is_empty() {
        "0s".to_owned()
    } else {
        parts.join(" ")
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h`, `2d` or plain seconds; `0` means no timeout.
pub fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let err = || {
        format!(
            "{text:?} is not a duration: expected a number with ms, s, m, h or d (30s, 500ms, 2m, 2d; a bare number is seconds), or 0 for none"
        )
    };
    let (num, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let n: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(err()),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(err());
    }
    // A deadline is a point in time: one beyond any transition's life is a mistake, and
    // would overflow the clock arithmetic.
    const LONGEST: f64 = 366.0 * 24.0 * 3600.0;
    if secs > LONGEST {
        return Err(format!(
            "{text:?} is longer than a year: give a shorter duration, or 0 for none"
        ));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// A unix time as a date and time in UTC: `2026-12-06 14:03 UTC`.
pub fn utc(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let secs = unix % 86_400;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_people_write() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2m"), Ok(2 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("268435456"), Ok(1 << 28));
        assert_eq!(parse_size("0x10000000"), Ok(1 << 28));
        assert!(parse_size("2MB").expect_err("ambiguous").contains("2M"));
        assert!(parse_size("1.3K").is_err(), "not whole bytes");
        assert!(parse_size("-2M").is_err());
        assert!(parse_size("128M,").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("18446744073709551616").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(size(1 << 30), "1 GiB");
        assert_eq!(size(4 << 40), "4 TiB");
        assert_eq!(size(1_071_644_672), "1022 MiB");
        assert_eq!(size(3 << 29), "1.5 GiB");
        assert_eq!(size(512), "512 bytes");
        assert_eq!(size(0), "0 bytes");
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_796_508_319), "2026-12-05 22:05 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(Duration::from_secs(1800)), "30m");
        assert_eq!(duration(Duration::from_secs(93_600)), "1d 2h");
        assert_eq!(duration(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(duration(Duration::ZERO), "0s");
    }

    #[test]
    fn durations_as_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Some(Duration::from_secs(30))));
        assert_eq!(
            parse_duration("500ms"),
            Ok(Some(Duration::from_millis(500)))
        );
        assert_eq!(parse_duration("2m"), Ok(Some(Duration::from_secs(120))));
        assert_eq!(parse_duration("10"), Ok(Some(Duration::from_secs(10))));
        assert_eq!(parse_duration("0"), Ok(None));
        assert!(parse_duration("soon").is_err());
        assert_eq!(
            parse_duration("2d"),
            Ok(Some(Duration::from_secs(2 * 86_400)))
        );
        assert!(parse_duration("400d").is_err(), "longer than a year");
        assert!(parse_duration("").is_err());
        // Huge values are refused, not a panic (Duration::from_secs_f64 would overflow).
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("1e400").is_err());
        assert_eq!(
            parse_duration("8784h"),
            Ok(Some(Duration::from_secs(8784 * 3600)))
        );
    }
}
