//! RFC 3339 times ↔ `google.protobuf.Timestamp`, in the two spellings the protocol
//! meets: proto3 JSON (0, 3, 6 or 9 fractional digits) and Go's `time.RFC3339Nano`
//! (trailing zeros dropped), which is how the reference stores an image's `Created`.

use prost_types::Timestamp;

/// How many fractional digits a formatted time gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fraction {
    /// 0, 3, 6 or 9 digits (proto3 JSON).
    Groups,
    /// As many as needed, trailing zeros dropped (Go's `RFC3339Nano`).
    Trimmed,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Formats a timestamp as RFC 3339 in UTC (`…Z`).
pub fn format_rfc3339(ts: &Timestamp, fraction: Fraction) -> String {
    let nanos = i64::from(ts.nanos.clamp(0, 999_999_999));
    let days = ts.seconds.div_euclid(86_400);
    let secs = ts.seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if nanos != 0 {
        let digits = format!("{nanos:09}");
        let kept = match fraction {
            Fraction::Groups if nanos % 1_000_000 == 0 => &digits[..3],
            Fraction::Groups if nanos % 1_000 == 0 => &digits[..6],
            Fraction::Groups => &digits[..],
            Fraction::Trimmed => digits.trim_end_matches('0'),
        };
        out.push('.');
        out.push_str(kept);
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 time (`2024-01-02T03:04:05.5+01:00`, `…Z`, `t` and `z` allowed).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = s.get(start..i)?;
        if digits.is_empty() || digits.len() > 9 {
            return None;
        }
        nanos = digits.parse::<i64>().ok()? * 10i64.pow(9 - digits.len() as u32);
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            let minutes = h * 60 + m;
            if *sign == b'+' { minutes } else { -minutes }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset * 60;
    Some(Timestamp {
        seconds,
        nanos: i32::try_from(nanos).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_spellings() {
        let ts = parse_rfc3339("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(ts.seconds, 1_704_164_645);
        assert_eq!(
            format_rfc3339(&ts, Fraction::Trimmed),
            "2024-01-02T03:04:05Z"
        );
        let ts = parse_rfc3339("2020-01-23T16:53:06.686519038Z").unwrap();
        assert_eq!(ts.nanos, 686_519_038);
        assert_eq!(
            format_rfc3339(&ts, Fraction::Trimmed),
            "2020-01-23T16:53:06.686519038Z"
        );
        let half = Timestamp {
            seconds: 0,
            nanos: 500_000_000,
        };
        assert_eq!(
            format_rfc3339(&half, Fraction::Trimmed),
            "1970-01-01T00:00:00.5Z"
        );
        assert_eq!(
            format_rfc3339(&half, Fraction::Groups),
            "1970-01-01T00:00:00.500Z"
        );
        let offset = parse_rfc3339("2024-01-02T04:04:05+01:00").unwrap();
        assert_eq!(offset.seconds, 1_704_164_645);
        let before_epoch = parse_rfc3339("1969-12-31T23:59:59Z").unwrap();
        assert_eq!(before_epoch.seconds, -1);
        assert_eq!(
            format_rfc3339(&before_epoch, Fraction::Groups),
            "1969-12-31T23:59:59Z"
        );
        for bad in [
            "",
            "2024-01-02",
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04:05.Z",
            "2024-01-02T03:04:05Zjunk",
            "2024-01-02T03:04:05+0100",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }
}
