//! Aggregate states for Tessera: the function table, partial states and sliding kernels.
//!
//! Every function of SEMANTICS.md §5 has a partial state that is mergeable
//! (associative and commutative, with the empty window as identity). The
//! same states serve every plan: the raw sweep slides them over events, and
//! bucketed and tiled plans merge them per bucket.

mod function;
mod sliding;
mod states;
mod two_stacks;

pub use function::{AggregateKind, BoundAggregate, ValueFamily};
pub use sliding::{SlidingAggregate, sliding_aggregate};
pub use states::{CountState, FloatSumState, IntSumState, MomentsState};
pub use two_stacks::{Monoid, TwoStacks};
