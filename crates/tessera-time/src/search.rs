//! Where a bound falls among ascending items, searched from the front.
//!
//! A training-set sweep moves each window part forward over one key's
//! events, a few items per spine row, while a busy key has thousands of
//! events; and it reads sorted inputs forward key by key, each key's run
//! starting where the last one ended. A galloping search from the current
//! position costs O(log distance moved); a binary search over everything
//! after it would cost O(log items) at every step.

/// The number of leading `times` (ascending) before `bound` — what
/// `times.partition_point(|&t| t < bound)` returns.
pub fn count_before(times: &[i64], bound: i64) -> usize {
    first_from(0, times.len(), |i| times[i] >= bound)
}

/// The first index in `low..high` where `holds` is true, `high` if none,
/// for a predicate that stays true once true: found by doubling a step
/// from `low` until it holds, then bisecting only the last step.
pub fn first_from(low: usize, high: usize, holds: impl Fn(usize) -> bool) -> usize {
    let mut step = 1;
    let mut checked = low;
    // Every index before `checked` fails.
    while checked < high && !holds(checked) {
        let next = checked + step;
        step *= 2;
        if next >= high || holds(next) {
            return bisect(checked + 1, next.min(high), &holds);
        }
        checked = next + 1;
    }
    checked
}

/// [`first_from`] by bisection of `low..high`.
fn bisect(mut low: usize, mut high: usize, holds: &impl Fn(usize) -> bool) -> usize {
    while low < high {
        let middle = low + (high - low) / 2;
        if holds(middle) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    low
}
