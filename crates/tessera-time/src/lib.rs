//! Time and bucket math for Tessera: the pure core that every plan shares.
//!
//! Everything that decides *which* events a training-set row sees lives here
//! and nowhere else: the duration grammar ([`Duration`], [`WindowLength`]),
//! the bucket grid ([`Grid`]) and the three window semantics
//! ([`WindowSemantics`]) of `SEMANTICS.md` §1–3. The crate has no DataFusion
//! dependency, so it is cheap to test exhaustively; its property tests compare
//! it against brute-force readings of the spec.
//!
//! Instants are `i64` microseconds since the Unix epoch, UTC.

mod duration;
mod error;
mod grid;
mod instant;
mod ranges;
mod search;
mod window;

pub use duration::{Duration, MAX_WINDOW_MICROS, MICROS_PER_DAY, MICROS_PER_SECOND, WindowLength};
pub use error::TimeError;
pub use grid::Grid;
pub use instant::{Instant, format_instant, parse_instant};
pub use ranges::{TimeRanges, union_in_place};
pub use search::{count_before, first_from};
pub use window::{EventRange, WindowSemantics};

#[cfg(test)]
mod properties;
