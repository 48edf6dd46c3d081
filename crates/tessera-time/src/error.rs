//! The one error type of the time core; higher layers wrap it in DataFusion errors.

use std::fmt;

/// A rejected duration, window or instant, with a message that quotes the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeError {
    message: String,
}

impl TimeError {
    pub(crate) fn bad_duration(text: &str) -> Self {
        Self::new(format!(
            "invalid duration \"{text}\": expected one or more <integer><unit> parts \
             with units w, d, h, m, s, ms, e.g. \"1h30m\" or \"7d\""
        ))
    }

    pub(crate) fn not_positive(text: &str) -> Self {
        Self::new(format!(
            "invalid duration \"{text}\": durations must be positive, e.g. \"1h30m\""
        ))
    }

    pub(crate) fn window_too_long(text: &str) -> Self {
        Self::new(format!(
            "invalid window \"{text}\": a window is at most 100 years (36525d); use \"all\" for an unbounded window"
        ))
    }

    pub(crate) fn bad_instant(text: &str) -> Self {
        Self::new(format!(
            "invalid instant \"{text}\": expected an ISO 8601 time such as \"2025-01-01T00:00:00Z\" or \"2025-01-01\""
        ))
    }

    fn new(message: String) -> Self {
        Self { message }
    }
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TimeError {}
