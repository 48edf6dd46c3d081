//! Aggregate states for Tessera: the function table, partial states and sliding kernels.
//!
//! Every function of SEMANTICS.md §5 has a partial state ([`PartialState`])
//! that is mergeable (associative and commutative, with the empty window as
//! identity) and serializable into Arrow state columns. The same states serve
//! every plan: the raw sweep slides them over events, and bucketed and tiled
//! plans merge them per bucket.

mod accumulator;
mod bucket_table;
mod function;
pub mod functions;
mod groups_accumulator;
mod sliding;
mod sql_functions;
mod state;

pub use accumulator::{Input, Output, StateAccumulator};
pub use bucket_table::{BucketTable, DecodedBuckets, PartRows, WindowValues};
pub use function::{
    AggregateImplementation, AggregateKind, Argument, BoundAggregate, FUNCTIONS, Parameters,
    ValueFamily,
};
pub use groups_accumulator::StateGroupsAccumulator;
pub use sliding::{BucketSource, Part, SlidingAggregate};
pub use sql_functions::{FinalFunction, SqlForm, TesseraAggregate, sql_functions};
pub use state::{PartialState, SlidingState, StateFactory, ValueColumn, run_states};
