//! Where a bound falls among ascending instants, searched from the front.
//!
//! A training-set sweep moves each window part forward over one key's
//! events, a few items per spine row, while a busy key has thousands of
//! events. A galloping search from the part's current position costs
//! O(log distance moved); a binary search over everything after it would
//! cost O(log events) at every row, for every window part.

/// The number of leading `times` (ascending) before `bound` — what
/// `times.partition_point(|&t| t < bound)` returns, found by doubling a
/// prefix until it reaches `bound` and searching only its last half.
pub fn count_before(times: &[i64], bound: i64) -> usize {
    let mut end = 1;
    while end < times.len() && times[end - 1] < bound {
        end *= 2;
    }
    // Every time before `end / 2` is before `bound` (the prefix was doubled past it).
    let start = end / 2;
    let end = end.min(times.len());
    start + times[start..end].partition_point(|&t| t < bound)
}
