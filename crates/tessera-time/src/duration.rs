//! The duration grammar of SEMANTICS.md §1.
//!
//! A duration is one or more `<integer><unit>` parts, optionally separated by
//! spaces, with units `w`, `d`, `h`, `m`, `s` and `ms`: `"10m"`, `"36h"`,
//! `"1h30m"`, `"1w 2d"`. Windows may also be `"all"` or `"infinity"`.
//! Durations are held as whole microseconds, the resolution of every instant.

use std::fmt;

use crate::TimeError;

/// Microseconds in one second.
pub const MICROS_PER_SECOND: i64 = 1_000_000;
/// Microseconds in one day.
pub const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;
/// The longest window allowed: 100 years of 365.25 days.
pub const MAX_WINDOW_MICROS: i64 = 36_525 * MICROS_PER_DAY;

/// The units of the grammar, longest spelling first so that `ms` wins over `m`.
const UNITS: [(&str, i64); 6] = [
    ("ms", 1_000),
    ("w", 7 * MICROS_PER_DAY),
    ("d", MICROS_PER_DAY),
    ("h", 3_600 * MICROS_PER_SECOND),
    ("m", 60 * MICROS_PER_SECOND),
    ("s", MICROS_PER_SECOND),
];

/// A strictly positive length of time, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    micros: i64,
}

impl Duration {
    /// A duration of `micros` microseconds; `None` unless it is positive.
    pub fn from_micros(micros: i64) -> Option<Self> {
        (micros > 0).then_some(Self { micros })
    }

    /// Parses the grammar of SEMANTICS.md §1, e.g. `"1h30m"`.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let micros = parse_parts(text)?;
        Self::from_micros(micros).ok_or_else(|| TimeError::not_positive(text))
    }

    /// The length in microseconds.
    pub fn micros(self) -> i64 {
        self.micros
    }

    /// The length in whole seconds, rounded down (used in column names).
    pub fn whole_seconds(self) -> i64 {
        self.micros / MICROS_PER_SECOND
    }
}

impl fmt::Display for Duration {
    /// Writes the canonical spelling: the largest units first, e.g. `1d12h`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.micros;
        for (unit, size) in [
            ("d", MICROS_PER_DAY),
            ("h", 3_600 * MICROS_PER_SECOND),
            ("m", 60 * MICROS_PER_SECOND),
            ("s", MICROS_PER_SECOND),
            ("ms", 1_000),
        ] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        if rest > 0 {
            write!(f, "{rest}us")?;
        }
        Ok(())
    }
}

/// How far back a window reaches: a bounded duration or everything (`"all"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WindowLength {
    /// A trailing window of this length.
    Bounded(Duration),
    /// The unbounded window, spelled `"all"` or `"infinity"`.
    All,
}

impl WindowLength {
    /// Parses a window: a duration of at most 100 years, or `"all"` / `"infinity"`.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("all") || trimmed.eq_ignore_ascii_case("infinity") {
            return Ok(Self::All);
        }
        let duration = Duration::parse(text)?;
        if duration.micros() > MAX_WINDOW_MICROS {
            return Err(TimeError::window_too_long(text));
        }
        Ok(Self::Bounded(duration))
    }

    /// The suffix of the output column: whole seconds, or `all`.
    pub fn column_suffix(self) -> String {
        match self {
            Self::Bounded(d) => d.whole_seconds().to_string(),
            Self::All => "all".to_string(),
        }
    }

    /// The bounded duration, if any.
    pub fn duration(self) -> Option<Duration> {
        match self {
            Self::Bounded(d) => Some(d),
            Self::All => None,
        }
    }
}

impl fmt::Display for WindowLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bounded(d) => d.fmt(f),
            Self::All => f.write_str("all"),
        }
    }
}

/// Sums the `<integer><unit>` parts of `text`, rejecting anything else.
fn parse_parts(text: &str) -> Result<i64, TimeError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(TimeError::bad_duration(text));
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(TimeError::bad_duration(text));
        }
        let count: i64 = rest[..digits]
            .parse()
            .map_err(|_| TimeError::bad_duration(text))?;
        rest = &rest[digits..];
        let (unit, size) = UNITS
            .iter()
            .find(|(unit, _)| rest.starts_with(unit))
            .ok_or_else(|| TimeError::bad_duration(text))?;
        rest = rest[unit.len()..].trim_start();
        total = count
            .checked_mul(*size)
            .and_then(|part| total.checked_add(part))
            .ok_or_else(|| TimeError::bad_duration(text))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_combination() {
        let cases = [
            ("10m", 600 * MICROS_PER_SECOND),
            ("36h", 36 * 3_600 * MICROS_PER_SECOND),
            ("1h30m", 5_400 * MICROS_PER_SECOND),
            ("1w 2d", 9 * MICROS_PER_DAY),
            ("250ms", 250_000),
            ("1m1ms", 60 * MICROS_PER_SECOND + 1_000),
            (" 7d ", 7 * MICROS_PER_DAY),
        ];
        for (text, micros) in cases {
            assert_eq!(Duration::parse(text).unwrap().micros(), micros, "{text}");
        }
    }

    #[test]
    fn rejects_malformed_text_quoting_it_with_an_example() {
        for text in [
            "",
            "d",
            "10",
            "10x",
            "1.5h",
            "-1d",
            "1d-",
            "h1",
            "99999999999999999w",
        ] {
            let message = Duration::parse(text).unwrap_err().to_string();
            assert!(message.contains(&format!("\"{text}\"")), "{message}");
            assert!(message.contains("\"1h30m\""), "{message}");
        }
        let zero = Duration::parse("0s").unwrap_err().to_string();
        assert!(zero.contains("positive"), "{zero}");
    }

    #[test]
    fn windows_accept_all_and_cap_at_a_hundred_years() {
        assert_eq!(WindowLength::parse("all").unwrap(), WindowLength::All);
        assert_eq!(WindowLength::parse("infinity").unwrap(), WindowLength::All);
        assert!(WindowLength::parse("36525d").is_ok());
        let too_long = WindowLength::parse("36526d").unwrap_err().to_string();
        assert!(too_long.contains("100 years"), "{too_long}");
        assert_eq!(WindowLength::parse("7d").unwrap().column_suffix(), "604800");
        assert_eq!(WindowLength::All.column_suffix(), "all");
    }

    #[test]
    fn display_is_canonical_and_reparses() {
        for text in ["1d12h", "1h30m", "10m", "2s", "250ms", "7d"] {
            let parsed = Duration::parse(text).unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(Duration::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }
}
