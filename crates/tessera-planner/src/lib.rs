//! The training-set planner and its execution for Tessera.
//!
//! This layer turns feature requests into DataFusion plans:
//! [`TrainingSet`] and the `point_in_time` table function plan a
//! [`PointInTimeNode`]; [`PointInTimePlanner`] turns it into
//! execution plans ([`exec`]); [`TesseraOptions`] selects the semantics.
//! [`register`] puts all of it on a session.

mod api;
mod binding;
mod compare;
pub mod exec;
mod extension_planner;
mod node;
mod options;
mod session;
mod table_function;
mod training_set;

pub use api::{TrainingSet, define_feature};
pub use binding::BoundFeature;
pub use compare::{ColumnComparison, PlanComparison, PlanVariant, VariantRun, compare_plans};
pub use extension_planner::{PointInTimePlanner, TesseraQueryPlanner};
pub use node::{FeaturePlan, PointInTimeNode, SemanticsPlan, StagePlan, WindowPlan};
pub use options::{CoverageFallback, TesseraOptions};
pub use session::{
    execute_sql, execute_statement, feature_registry, new_context, parse_sql, register,
    tessera_config,
};
pub use table_function::PointInTimeFunction;
pub use training_set::plan_training_set;
