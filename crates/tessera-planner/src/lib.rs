//! The training-set planner and its execution for Tessera.
//!
//! This layer turns feature requests into DataFusion plans:
//! [`TrainingSet`] and the `point_in_time` table function plan a
//! [`PointInTimeNode`]; [`PointInTimePlanner`] turns it into
//! execution plans ([`exec`]); [`TesseraOptions`] selects the semantics and
//! the source of buckets. [`run_backfill`] writes tiles that plans read with
//! `use_tile_store`; [`list_aggregations`] and [`vacuum_aggregations`]
//! inspect and clean the store. [`register`] puts all of it on a session.

mod aggregations;
mod api;
mod backfill;
mod binding;
mod compare;
pub mod exec;
mod extension_planner;
mod node;
mod options;
mod session;
mod table_function;
mod tile_sets;
mod training_set;

pub use aggregations::{list_aggregations, vacuum_aggregations};
pub use api::{TrainingSet, define_feature};
pub use backfill::{
    BackfillPlan, BackfillProgress, BackfillReport, BackfillRequest, ChunkReport, NoProgress,
    PlannedTileSet, estimate_events, plan_backfill, run_backfill,
};
pub use binding::BoundFeature;
pub use compare::{ColumnComparison, PlanComparison, PlanVariant, VariantRun, compare_plans};
pub use extension_planner::{PointInTimePlanner, TesseraQueryPlanner};
pub use node::{
    FeaturePlan, PointInTimeNode, SemanticsPlan, StagePlan, TileSetRef, TileSourcePlan, WindowPlan,
};
pub use options::{CoverageFallback, DEFAULT_TILE_STORE_URL, TesseraOptions};
pub use session::{
    execute_sql, execute_statement, feature_registry, new_context, parse_sql, register,
    tessera_config,
};
pub use table_function::PointInTimeFunction;
pub use tessera_tiles::TileStore;
pub use training_set::plan_training_set;
