//! ISO 8601 instants, read and written as UTC microseconds.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};

use crate::TimeError;

/// Microseconds since `1970-01-01T00:00:00Z`.
pub type Instant = i64;

/// Parses an ISO 8601 instant: RFC 3339 with an offset, a zone-less date-time
/// (read as UTC), or a bare date (midnight UTC).
pub fn parse_instant(text: &str) -> Result<Instant, TimeError> {
    let trimmed = text.trim();
    let parsed = DateTime::parse_from_rfc3339(trimmed)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(trimmed, "%Y-%m-%d")
                .map(|d| d.and_time(Default::default()).and_utc())
        })
        .map_err(|_| TimeError::bad_instant(text))?;
    Ok(parsed.timestamp_micros())
}

/// Formats an instant as RFC 3339 UTC (`2025-01-01T00:00:00Z`), with
/// sub-second digits only when present.
pub fn format_instant(instant: Instant) -> String {
    match DateTime::<Utc>::from_timestamp_micros(instant) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        None => format!("{instant}us"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_spellings() {
        let midnight = 1_735_689_600_000_000; // 2025-01-01T00:00:00Z
        for text in [
            "2025-01-01T00:00:00Z",
            "2025-01-01T01:00:00+01:00",
            "2025-01-01T00:00:00",
            "2025-01-01 00:00:00",
            "2025-01-01",
        ] {
            assert_eq!(parse_instant(text).unwrap(), midnight, "{text}");
        }
        assert_eq!(format_instant(midnight), "2025-01-01T00:00:00Z");
        assert_eq!(format_instant(midnight + 1), "2025-01-01T00:00:00.000001Z");
    }

    #[test]
    fn rejects_garbage_naming_it() {
        let message = parse_instant("yesterday").unwrap_err().to_string();
        assert!(message.contains("\"yesterday\""), "{message}");
    }
}
