//! Human-readable byte sizes, both ways: `1.5GiB` in flags and `12.3 MB` in tables.

#[derive(Debug, thiserror::Error)]
#[error("invalid size {0:?}: expected bytes such as 123456, 50MB, 1.5GiB")]
pub struct SizeParseError(pub String);

/// Parses `123456`, `50MB`, `50 MB`, `1.5GiB`, `10k` (decimal units are powers of 1000,
/// binary units powers of 1024, as docker and the registries print them).
pub fn parse_size(text: &str) -> Result<u64, SizeParseError> {
    let trimmed = text.trim();
    // Whole numbers of bytes exactly, so 2^64 is refused rather than rounded down.
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return trimmed
            .parse()
            .map_err(|_| SizeParseError(text.to_string()));
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| SizeParseError(text.to_string()))?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "p" | "pb" => 1e15,
        "e" | "eb" => 1e18,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "pi" | "pib" => 1024f64.powi(5),
        "ei" | "eib" => 1024f64.powi(6),
        _ => return Err(SizeParseError(text.to_string())),
    };
    let bytes = value * multiplier;
    // 2^64 itself is out of range; `u64::MAX as f64` rounds up to it.
    if !bytes.is_finite() || !(0.0..18_446_744_073_709_551_616.0).contains(&bytes) {
        return Err(SizeParseError(text.to_string()));
    }
    Ok(bytes.round() as u64)
}

/// Decimal units (MB = 10^6), as registries and `docker images` report sizes.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A signed delta, `+1.2 MB` / `-340 B`.
pub fn human_delta(delta: i64) -> String {
    let sign = if delta < 0 { "-" } else { "+" };
    format!("{sign}{}", human(delta.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_size("123456").ok(), Some(123_456));
        assert_eq!(parse_size("50MB").ok(), Some(50_000_000));
        assert_eq!(parse_size("1.5GiB").ok(), Some(1_610_612_736));
        assert_eq!(parse_size("10 kib").ok(), Some(10_240));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("").is_err());
        // 2^64 is out of range however it is written.
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("16EiB").is_err());
        assert_eq!(parse_size("18446744073709551615").ok(), Some(u64::MAX));
        assert_eq!(parse_size("1EiB").ok(), Some(1 << 60));
    }

    #[test]
    fn prints_decimal_units() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(1_500), "1.5 kB");
        assert_eq!(human(28_232_590), "28.2 MB");
        assert_eq!(human_delta(-1_500), "-1.5 kB");
    }
}
