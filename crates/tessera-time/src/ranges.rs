//! Sets of half-open time ranges: tile coverage and what a query is missing.
//!
//! A [`TimeRanges`] is a normalised list of disjoint, non-adjacent
//! `[start, end)` ranges in ascending order. The tile store records which
//! bucket ranges each series covers as one of these; the planner subtracts it
//! from what a query needs to name the missing ranges.

use std::fmt;

use crate::{Instant, format_instant};

/// Disjoint half-open ranges `[start, end)`, ascending, with adjacent ranges merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TimeRanges {
    ranges: Vec<(Instant, Instant)>,
}

impl TimeRanges {
    /// No range.
    pub fn new() -> Self {
        Self::default()
    }

    /// The single range `[start, end)` (empty when `start >= end`).
    pub fn single(start: Instant, end: Instant) -> Self {
        let mut ranges = Self::new();
        ranges.insert(start, end);
        ranges
    }

    /// The union of `ranges`, in any order (empty ones ignored); sorts once
    /// rather than inserting one by one.
    pub fn from_unsorted(mut ranges: Vec<(Instant, Instant)>) -> Self {
        let kept = union_in_place(&mut ranges);
        ranges.truncate(kept);
        Self { ranges }
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[(Instant, Instant)] {
        &self.ranges
    }

    /// Whether no instant is in the set.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Adds `[start, end)`, merging what it touches.
    pub fn insert(&mut self, start: Instant, end: Instant) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(s, e) in &self.ranges {
            if e < start || s > end {
                kept.push((s, e));
            } else {
                start = start.min(s);
                end = end.max(e);
            }
        }
        let at = kept.partition_point(|&(s, _)| s < start);
        kept.insert(at, (start, end));
        self.ranges = kept;
    }

    /// Removes `[start, end)`.
    pub fn remove(&mut self, start: Instant, end: Instant) {
        if start >= end {
            return;
        }
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(s, e) in &self.ranges {
            if s < start {
                kept.push((s, e.min(start)));
            }
            if e > end {
                kept.push((s.max(end), e));
            }
        }
        self.ranges = kept;
    }

    /// Every range of `other` added.
    pub fn union(&self, other: &Self) -> Self {
        let mut union = self.clone();
        for &(s, e) in &other.ranges {
            union.insert(s, e);
        }
        union
    }

    /// The parts of `[start, end)` not in the set.
    pub fn missing(&self, start: Instant, end: Instant) -> Self {
        let mut missing = Self::single(start, end);
        for &(s, e) in &self.ranges {
            missing.remove(s, e);
        }
        missing
    }

    /// The parts of the set inside `[start, end)`.
    pub fn clip(&self, start: Instant, end: Instant) -> Self {
        let mut clipped = self.clone();
        clipped.remove(Instant::MIN, start);
        clipped.remove(end, Instant::MAX);
        clipped
    }

    /// Whether `[start, end)` lies entirely in the set (an empty range always does).
    pub fn contains_range(&self, start: Instant, end: Instant) -> bool {
        start >= end || self.ranges.iter().any(|&(s, e)| s <= start && end <= e)
    }

    /// Whether `instant` is in the set.
    pub fn contains(&self, instant: Instant) -> bool {
        let at = self.ranges.partition_point(|&(_, e)| e <= instant);
        self.ranges.get(at).is_some_and(|&(s, _)| s <= instant)
    }

    /// Total length in microseconds.
    pub fn total_micros(&self) -> i128 {
        self.ranges
            .iter()
            .map(|&(s, e)| i128::from(e) - i128::from(s))
            .sum()
    }
}

impl fmt::Display for TimeRanges {
    /// ISO 8601 ranges, e.g. `[2025-01-01T00:00:00Z, 2025-02-01T00:00:00Z)`; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ranges.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|&(s, e)| format!("[{}, {})", format_instant(s), format_instant(e)))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// Sorts `ranges` (any order, empty ones ignored) and merges them in place
/// into their union, ascending and disjoint, in the first `n` entries;
/// returns `n`. What [`TimeRanges::from_unsorted`] does, without a vector
/// of its own: an index of many small unions lays them out in one.
pub fn union_in_place(ranges: &mut [(Instant, Instant)]) -> usize {
    ranges.sort_unstable();
    let mut kept: usize = 0;
    for read in 0..ranges.len() {
        let (s, e) = ranges[read];
        if s >= e {
            continue;
        }
        match kept.checked_sub(1).map(|last| &mut ranges[last]) {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => {
                ranges[kept] = (s, e);
                kept += 1;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The set as a bitmap over `[0, 64)`.
    fn bitmap(ranges: &TimeRanges) -> u64 {
        (0..64)
            .filter(|&i| ranges.contains(i))
            .fold(0, |bits, i| bits | 1 << i)
    }

    fn bits_of(start: i64, end: i64) -> u64 {
        (start.max(0)..end.min(64)).fold(0, |bits, i| bits | 1 << i)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(i64, i64),
        Remove(i64, i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        (any::<bool>(), 0..64i64, 0..64i64).prop_map(|(insert, a, b)| {
            if insert {
                Op::Insert(a, b)
            } else {
                Op::Remove(a, b)
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Inserting and removing agree with a bitmap, and the ranges stay normalised.
        #[test]
        fn agrees_with_a_bitmap(ops in proptest::collection::vec(op(), 0..12), probe in (0..64i64, 0..64i64)) {
            let mut ranges = TimeRanges::new();
            let mut expected = 0u64;
            for op in ops {
                match op {
                    Op::Insert(a, b) => { ranges.insert(a, b); expected |= bits_of(a, b); }
                    Op::Remove(a, b) => { ranges.remove(a, b); expected &= !bits_of(a, b); }
                }
            }
            prop_assert_eq!(bitmap(&ranges), expected);
            for pair in ranges.ranges().windows(2) {
                prop_assert!(pair[0].1 < pair[1].0, "not normalised: {:?}", ranges);
            }
            prop_assert!(ranges.ranges().iter().all(|&(s, e)| s < e));
            let (a, b) = probe;
            prop_assert_eq!(bitmap(&ranges.missing(a, b)), bits_of(a, b) & !expected);
            prop_assert_eq!(bitmap(&ranges.clip(a, b)), bits_of(a, b) & expected);
            prop_assert_eq!(ranges.contains_range(a, b), bits_of(a, b) & !expected == 0);
        }

        /// Building from unsorted ranges equals inserting them one by one.
        #[test]
        fn from_unsorted_equals_inserting(pairs in proptest::collection::vec((0..64i64, 0..64i64), 0..12)) {
            let mut inserted = TimeRanges::new();
            for &(a, b) in &pairs {
                inserted.insert(a, b);
            }
            prop_assert_eq!(TimeRanges::from_unsorted(pairs), inserted);
        }
    }

    #[test]
    fn displays_iso_ranges() {
        let day = crate::MICROS_PER_DAY;
        let ranges = TimeRanges::single(0, day);
        assert_eq!(
            ranges.to_string(),
            "[1970-01-01T00:00:00Z, 1970-01-02T00:00:00Z)"
        );
        assert_eq!(TimeRanges::new().to_string(), "none");
    }
}
