//! Sliding kernels: one function over a time-ordered FIFO window of one key's events.
//!
//! The point-in-time sweep hands a kernel every event of a key (sorted by
//! time) with [`SlidingAggregate::load`], then moves the window over them
//! with `push` / `pop` and asks for the current value with `emit` once per
//! spine row. Every function slides the same way, through its partial state
//! ([`SlidingState`](crate::state::SlidingState)).

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::Result;

/// One aggregate over a sliding window of one key's events.
pub trait SlidingAggregate: Send {
    /// Replaces the events with those of a new key (time-ordered): the
    /// function's argument columns, none for `count(*)`. Empties the window.
    fn load(&mut self, arguments: &[ArrayRef]) -> Result<()>;
    /// Adds event `index` (of the loaded events) as the newest in the window.
    fn push(&mut self, index: usize);
    /// Removes the oldest event from the window.
    fn pop(&mut self);
    /// Appends the window's current result to the output.
    fn emit(&mut self);
    /// Appends a null (a spine row without a time).
    fn emit_null(&mut self);
    /// The output column and, per row, whether the window held no values.
    fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)>;
}
