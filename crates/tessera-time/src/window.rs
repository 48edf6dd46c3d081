//! Which events a query row sees: the three window semantics of SEMANTICS.md §3.
//!
//! Instants are whole microseconds, so every interval of the spec can be
//! written as a half-open range `[start, end)` of microseconds: `(t - w, t]`
//! becomes `[t - w + 1, t + 1)`. Execution strategies only ever ask for an
//! [`EventRange`], so the spec's inequalities live in exactly one place.

use std::fmt;

use crate::{Grid, Instant, WindowLength};

/// How a window's lower and upper edges are placed relative to the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowSemantics {
    /// The true trailing window `t - w < ts <= t`.
    Exact,
    /// `floor_b(t - w) <= ts <= t`: every bucket overlapping the window, including the current one.
    Aligned,
    /// `floor_b(t - w) <= ts < floor_b(t)`: complete buckets only.
    Bucketed,
}

impl WindowSemantics {
    /// The semantics chosen by the two planner options of SEMANTICS.md §4.
    pub fn from_options(
        use_materialized_offline_query: bool,
        align_with_materialization: bool,
    ) -> Self {
        match (use_materialized_offline_query, align_with_materialization) {
            (true, _) => Self::Bucketed,
            (false, true) => Self::Aligned,
            (false, false) => Self::Exact,
        }
    }

    /// The half-open range of event times that the row at time `t` sees.
    pub fn event_range(self, window: WindowLength, grid: &Grid, t: Instant) -> EventRange {
        let through_t = t.saturating_add(1);
        let start = window.duration().map(|w| {
            let reach = t.saturating_sub(w.micros());
            match self {
                Self::Exact => reach.saturating_add(1),
                Self::Aligned | Self::Bucketed => grid.floor(reach),
            }
        });
        let end = match self {
            Self::Exact | Self::Aligned => through_t,
            Self::Bucketed => grid.floor(t),
        };
        EventRange { start, end }
    }
}

impl fmt::Display for WindowSemantics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Exact => "exact",
            Self::Aligned => "aligned",
            Self::Bucketed => "bucketed",
        })
    }
}

/// A half-open range `[start, end)` of event times; `start == None` is unbounded below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventRange {
    /// First included instant, or `None` for no lower bound.
    pub start: Option<Instant>,
    /// First excluded instant.
    pub end: Instant,
}

impl EventRange {
    /// Whether an event at `ts` lies in the range.
    pub fn contains(&self, ts: Instant) -> bool {
        self.start.is_none_or(|start| start <= ts) && ts < self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Duration, parse_instant};

    /// The worked example of SEMANTICS.md §3: b = 1d, w = 7d, t = 2025-03-10T15:00:00Z.
    #[test]
    fn worked_example_of_the_spec() {
        let grid = Grid::epoch_aligned(Duration::parse("1d").unwrap());
        let window = WindowLength::parse("7d").unwrap();
        let t = parse_instant("2025-03-10T15:00:00Z").unwrap();
        let at = |text: &str| parse_instant(text).unwrap();

        let exact = WindowSemantics::Exact.event_range(window, &grid, t);
        assert_eq!(exact.start, Some(at("2025-03-03T15:00:00Z") + 1));
        assert_eq!(exact.end, t + 1);

        let aligned = WindowSemantics::Aligned.event_range(window, &grid, t);
        assert_eq!(aligned.start, Some(at("2025-03-03T00:00:00Z")));
        assert_eq!(aligned.end, t + 1);

        let bucketed = WindowSemantics::Bucketed.event_range(window, &grid, t);
        assert_eq!(bucketed.start, Some(at("2025-03-03T00:00:00Z")));
        assert_eq!(bucketed.end, at("2025-03-10T00:00:00Z"));
    }

    #[test]
    fn options_select_semantics_as_the_table_says() {
        assert_eq!(
            WindowSemantics::from_options(false, false),
            WindowSemantics::Exact
        );
        assert_eq!(
            WindowSemantics::from_options(false, true),
            WindowSemantics::Aligned
        );
        assert_eq!(
            WindowSemantics::from_options(true, false),
            WindowSemantics::Bucketed
        );
        assert_eq!(
            WindowSemantics::from_options(true, true),
            WindowSemantics::Bucketed
        );
    }
}
