//! Sliding kernels: one function over a time-ordered FIFO window of one key's events.
//!
//! The point-in-time sweep hands a kernel every event of a key (sorted by
//! time) with [`SlidingAggregate::load`], then moves the window over them
//! with `push` / `pop` and asks for the current value with `emit` once per
//! spine row. Every function slides the same way, through its partial state
//! ([`SlidingState`](crate::state::SlidingState)).

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::Result;

use crate::function::{AggregateKind, BoundAggregate, ValueFamily};
use crate::functions::{CountFactory, ExtremeFactory, MeanFactory, SumFactory, VarianceFactory};
use crate::state::SlidingState;

/// One aggregate over a sliding window of one key's events.
pub trait SlidingAggregate: Send {
    /// Replaces the events with those of a new key (time-ordered); `values`
    /// is `None` for `count(*)`. Empties the window.
    fn load(&mut self, values: Option<&ArrayRef>, len: usize) -> Result<()>;
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

/// Creates the sliding kernel of a bound aggregate.
pub fn sliding_aggregate(aggregate: &BoundAggregate) -> Result<Box<dyn SlidingAggregate>> {
    Ok(match (aggregate.kind, aggregate.family) {
        (AggregateKind::Count, _) => Box::new(SlidingState::new(CountFactory)),
        (AggregateKind::Sum, Some(ValueFamily::Integer)) => {
            Box::new(SlidingState::new(SumFactory::<i64>::default()))
        }
        (AggregateKind::Sum, _) => Box::new(SlidingState::new(SumFactory::<f64>::default())),
        (AggregateKind::Mean, _) => Box::new(SlidingState::new(MeanFactory)),
        (AggregateKind::Var | AggregateKind::Std, _) => {
            Box::new(SlidingState::new(VarianceFactory {
                standard_deviation: aggregate.kind == AggregateKind::Std,
            }))
        }
        (AggregateKind::Min | AggregateKind::Max, _) => {
            Box::new(SlidingState::new(ExtremeFactory {
                largest: aggregate.kind == AggregateKind::Max,
                value_type: aggregate.input_types[0].clone(),
            }))
        }
    })
}
