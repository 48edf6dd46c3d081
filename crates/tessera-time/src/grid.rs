//! The bucket grid of SEMANTICS.md §2.
//!
//! A grid has a bucket duration `b` and an origin `o`. Bucket `i` is
//! `[o + i*b, o + (i+1)*b)`, `index(x) = floor((x - o) / b)` with true floor
//! division (also before the origin), and a bucket is complete at `t` when its
//! end is `<= t`. Arithmetic is done in `i64` where it cannot overflow and in
//! `i128` otherwise, so that no instant representable as `i64` microseconds
//! overflows (and the common case costs no 128-bit division).

use std::fmt;

use crate::{Duration, Instant, format_instant};

/// An epoch-aligned (or origin-aligned) grid of equal buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grid {
    bucket: Duration,
    origin: Instant,
}

impl Grid {
    /// A grid of `bucket`-long buckets starting at `origin` (microseconds since the epoch).
    pub fn new(bucket: Duration, origin: Instant) -> Self {
        Self { bucket, origin }
    }

    /// A grid aligned on the Unix epoch, the default origin.
    pub fn epoch_aligned(bucket: Duration) -> Self {
        Self::new(bucket, 0)
    }

    /// The bucket duration `b`.
    pub fn bucket(&self) -> Duration {
        self.bucket
    }

    /// The origin `o`.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// `index(x) = floor((x - o) / b)`.
    pub fn index(&self, x: Instant) -> i64 {
        if let Some(offset) = x.checked_sub(self.origin) {
            return offset.div_euclid(self.bucket.micros());
        }
        let offset = i128::from(x) - i128::from(self.origin);
        let index = offset.div_euclid(i128::from(self.bucket.micros()));
        // |offset| < 2^64 and b >= 1, so the index fits in i64 unless b == 1
        // and the offset spans both extremes; clamp rather than wrap.
        index.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// The start of bucket `i`, saturated to the representable range.
    pub fn bucket_start(&self, index: i64) -> Instant {
        saturate(i128::from(self.origin) + i128::from(index) * i128::from(self.bucket.micros()))
    }

    /// The (exclusive) end of bucket `i`, saturated to the representable range.
    pub fn bucket_end(&self, index: i64) -> Instant {
        self.bucket_start(index.saturating_add(1))
    }

    /// `floor_b(x)`: the start of the bucket that contains `x`.
    pub fn floor(&self, x: Instant) -> Instant {
        let fast = x.checked_sub(self.origin).and_then(|offset| {
            let b = self.bucket.micros();
            offset
                .div_euclid(b)
                .checked_mul(b)?
                .checked_add(self.origin)
        });
        if let Some(floor) = fast {
            return floor;
        }
        let b = i128::from(self.bucket.micros());
        let o = i128::from(self.origin);
        saturate(o + (i128::from(x) - o).div_euclid(b) * b)
    }

    /// `ceil_b(x)`: the first bucket start at or after `x`.
    pub fn ceil(&self, x: Instant) -> Instant {
        let floor = self.floor(x);
        if floor == x {
            floor
        } else {
            saturate(i128::from(floor) + i128::from(self.bucket.micros()))
        }
    }

    /// Whether bucket `i` is complete at time `t` (its end is `<= t`).
    pub fn is_complete(&self, index: i64, t: Instant) -> bool {
        self.bucket_end(index) <= t
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.origin == 0 {
            write!(f, "{}", self.bucket)
        } else {
            write!(f, "{} from {}", self.bucket, format_instant(self.origin))
        }
    }
}

fn saturate(value: i128) -> Instant {
    value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MICROS_PER_DAY;

    fn day_grid(origin: Instant) -> Grid {
        Grid::new(Duration::from_micros(MICROS_PER_DAY).unwrap(), origin)
    }

    #[test]
    fn floor_division_is_true_floor_before_the_origin() {
        let grid = day_grid(0);
        assert_eq!(grid.index(0), 0);
        assert_eq!(grid.index(MICROS_PER_DAY - 1), 0);
        assert_eq!(grid.index(MICROS_PER_DAY), 1);
        assert_eq!(grid.index(-1), -1);
        assert_eq!(grid.floor(-1), -MICROS_PER_DAY);
        assert_eq!(grid.index(-MICROS_PER_DAY), -1);
        assert_eq!(grid.index(-MICROS_PER_DAY - 1), -2);
    }

    #[test]
    fn non_epoch_origin_shifts_every_bucket() {
        let six_hours = MICROS_PER_DAY / 4;
        let grid = day_grid(six_hours);
        assert_eq!(grid.floor(0), six_hours - MICROS_PER_DAY);
        assert_eq!(grid.floor(six_hours), six_hours);
        assert_eq!(grid.ceil(six_hours + 1), six_hours + MICROS_PER_DAY);
        assert_eq!(grid.ceil(six_hours), six_hours);
    }

    #[test]
    fn completeness_is_end_at_or_before_t() {
        let grid = day_grid(0);
        assert!(grid.is_complete(0, MICROS_PER_DAY));
        assert!(!grid.is_complete(0, MICROS_PER_DAY - 1));
    }

    #[test]
    fn extremes_saturate_instead_of_overflowing() {
        let grid = Grid::new(Duration::from_micros(1).unwrap(), i64::MAX);
        assert_eq!(grid.floor(i64::MIN), i64::MIN);
        assert_eq!(grid.bucket_end(i64::MAX), i64::MAX);
    }
}
