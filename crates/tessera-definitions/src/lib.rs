//! Windowed feature definitions for Tessera: the model, its DDL and the registry.
//!
//! This is the first layer of the data flow (definitions → time/bucket math →
//! aggregate states → tiles → planner → execution). A definition says *what*
//! a feature is; it knows nothing about how it is computed. Checks that need
//! no catalog (names, durations, grids) happen here; checks against the
//! catalog (tables, columns, types) happen in the planner when the definition
//! is registered.

mod definition;
mod name;
mod parser;
mod registry;

pub use definition::{
    AggregateCall, FeatureDefinition, FeatureDefinitionBuilder, Materialization,
    format_bucket_durations, split_bucket_durations, split_bucket_starts,
};
pub use name::{FeatureName, FeatureRequest, WindowSelector};
pub use parser::{TesseraParser, TesseraStatement};
pub use registry::FeatureRegistry;
