//! FHIR dates and times: `instant` values as microseconds since the epoch, and partial
//! `date`/`dateTime` values as the half-open range of instants they cover (`2024` = the whole year).

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// A point in time with microsecond precision (UTC), as stored for `meta.lastUpdated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(pub i64);

impl Instant {
    /// The current time.
    pub fn now() -> Self {
        Instant(Utc::now().timestamp_micros())
    }

    /// Microseconds since 1970-01-01T00:00:00Z.
    pub fn micros(self) -> i64 {
        self.0
    }

    fn to_chrono(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    /// The FHIR `instant` text, e.g. `2026-12-04T17:35:36.123456Z`.
    pub fn to_fhir(self) -> String {
        self.to_chrono()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    }

    /// Seconds since the epoch (HTTP dates have second precision).
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// The year (UTC), e.g. for a Health ID.
    pub fn year(self) -> i32 {
        self.to_chrono().year()
    }
}

/// A half-open range `[start, end)` of microseconds covered by a (possibly partial) date/time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: i64,
    pub end: i64,
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() >= n && s.as_bytes()[..n].iter().all(u8::is_ascii_digit))
        .then(|| s[..n].parse().ok())?
}

fn utc_micros(dt: NaiveDateTime, offset: FixedOffset) -> Option<i64> {
    offset
        .from_local_datetime(&dt)
        .single()
        .map(|d| d.timestamp_micros())
}

/// Parses a timezone suffix (`Z`, `+05:30`).
fn parse_offset(s: &str) -> Option<FixedOffset> {
    if s == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if rest.len() != 5 || rest.as_bytes()[2] != b':' {
        return None;
    }
    let h = digits(rest, 2)?;
    let m = digits(&rest[3..], 2)?;
    if h > 14 || m > 59 || (h == 14 && m != 0) {
        return None;
    }
    FixedOffset::east_opt(sign * (h as i32 * 3600 + m as i32 * 60))
}

/// Parses `hh:mm:ss(.fff)?` into a time; the fraction may have any number of digits.
pub(crate) fn parse_time(s: &str) -> Option<(NaiveTime, usize)> {
    let b = s.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let (h, m, sec) = (digits(s, 2)?, digits(&s[3..], 2)?, digits(&s[6..], 2)?);
    let mut used = 8;
    let mut micros = 0;
    if b.get(8) == Some(&b'.') {
        let frac: String = s[9..].chars().take_while(char::is_ascii_digit).collect();
        if frac.is_empty() {
            return None;
        }
        used += 1 + frac.len();
        let padded = format!("{:0<6}", &frac[..frac.len().min(6)]);
        micros = padded.parse().ok()?;
    }
    // A leap second (:60) is valid FHIR; treat it as the last microsecond of the minute.
    let t = if sec == 60 {
        NaiveTime::from_hms_micro_opt(h, m, 59, 999_999)?
    } else {
        NaiveTime::from_hms_micro_opt(h, m, sec, micros)?
    };
    Some((t, used))
}

/// The range covered by a FHIR `date` or `dateTime` (`2024`, `2024-03`, `2024-03-05`,
/// `2024-03-05T10:00:00+05:30`). A partial date without a timezone is read as UTC.
/// `None` when the text is not a valid date/dateTime.
pub fn parse_date_time(s: &str) -> Option<Period> {
    let year = digits(s, 4)? as i32;
    if year == 0 {
        return None;
    }
    let rest = &s[4..];
    let utc = FixedOffset::east_opt(0)?;
    let whole = |from: NaiveDate, to: NaiveDate| -> Option<Period> {
        Some(Period {
            start: utc_micros(from.and_hms_opt(0, 0, 0)?, utc)?,
            end: utc_micros(to.and_hms_opt(0, 0, 0)?, utc)?,
        })
    };
    if rest.is_empty() {
        return whole(
            NaiveDate::from_ymd_opt(year, 1, 1)?,
            NaiveDate::from_ymd_opt(year + 1, 1, 1)?,
        );
    }
    let rest = rest.strip_prefix('-')?;
    let month = digits(rest, 2)?;
    let rest = &rest[2..];
    if rest.is_empty() {
        let (ny, nm) = if month == 12 {
            (year + 1, 1)
        } else {
            (year, month + 1)
        };
        return whole(
            NaiveDate::from_ymd_opt(year, month, 1)?,
            NaiveDate::from_ymd_opt(ny, nm, 1)?,
        );
    }
    let rest = rest.strip_prefix('-')?;
    let day = digits(rest, 2)?;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let rest = &rest[2..];
    if rest.is_empty() {
        return whole(date, date.succ_opt()?);
    }
    let rest = rest.strip_prefix('T')?;
    let (time, used) = parse_time(rest)?;
    let offset = parse_offset(&rest[used..])?;
    let start = utc_micros(date.and_time(time), offset)?;
    // Precision of the given text: seconds → one second; fractions → their last digit.
    let frac_digits = used.saturating_sub(9) as u32;
    let width = if frac_digits == 0 {
        1_000_000
    } else {
        10_i64.pow(6u32.saturating_sub(frac_digits.min(6)))
    };
    Some(Period {
        start,
        end: start + width,
    })
}

/// Parses a FHIR `instant` (full date, time and timezone required).
pub fn parse_instant(s: &str) -> Option<Instant> {
    (s.len() > 19 && s.as_bytes()[10] == b'T')
        .then(|| parse_date_time(s))
        .flatten()
        .map(|p| Instant(p.start))
}

/// Whether `s` is a valid FHIR `date` (no time part).
pub fn is_date(s: &str) -> bool {
    s.len() <= 10 && parse_date_time(s).is_some()
}

/// Whether `s` is a valid FHIR `dateTime` (a time requires a timezone).
pub fn is_date_time(s: &str) -> bool {
    parse_date_time(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_dates_cover_their_range() {
        let y = parse_date_time("2024").unwrap();
        assert_eq!(Instant(y.start).to_fhir(), "2024-01-01T00:00:00.000000Z");
        assert_eq!(Instant(y.end).to_fhir(), "2025-01-01T00:00:00.000000Z");
        let m = parse_date_time("2024-02").unwrap();
        assert_eq!(Instant(m.end).to_fhir(), "2024-03-01T00:00:00.000000Z");
        let d = parse_date_time("2024-12-31").unwrap();
        assert_eq!(Instant(d.end).to_fhir(), "2025-01-01T00:00:00.000000Z");
        let t = parse_date_time("2024-03-05T10:00:00+05:30").unwrap();
        assert_eq!(Instant(t.start).to_fhir(), "2024-03-05T04:30:00.000000Z");
        assert_eq!(t.end - t.start, 1_000_000);
        let f = parse_date_time("2024-03-05T10:00:00.12Z").unwrap();
        assert_eq!(f.end - f.start, 10_000);
    }

    #[test]
    fn refuses_invalid() {
        for bad in [
            "24",
            "2024-13",
            "2024-02-30",
            "2024-1-01",
            "2024-03-05T10:00",
            "2024-03-05T10:00:00",
            "2024-03-05T25:00:00Z",
            "2024-03-05T10:00:00+15:00",
            "0000",
            "2024-03-05T10:00:00.Z",
        ] {
            assert!(parse_date_time(bad).is_none(), "{bad}");
        }
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2024-02-01T00:00:00Z"));
        assert!(parse_instant("2024-02-01").is_none());
        assert!(parse_instant("2024-02-01T00:00:00Z").is_some());
    }

    #[test]
    fn instants_round_trip() {
        let i = Instant(1_733_333_333_123_456);
        assert_eq!(parse_instant(&i.to_fhir()), Some(i));
    }
}
