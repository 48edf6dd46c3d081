//! # Tessera
//!
//! Point-in-time windowed feature aggregations for Apache DataFusion, exact
//! by construction. Define windowed features over event tables, then ask for
//! their values as of many `(key, time)` rows at once — a *training set* —
//! through SQL or this API.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> datafusion::common::Result<()> {
//! use datafusion::prelude::SessionConfig;
//!
//! let ctx = tessera::new_context(SessionConfig::new());
//! tessera::execute_sql(&ctx, "
//!     CREATE TABLE transactions (user_id INT, ts TIMESTAMP, amount DOUBLE) AS VALUES
//!         (1, TIMESTAMP '2025-03-01 10:00:00', 10.0),
//!         (1, TIMESTAMP '2025-03-09 12:00:00', 5.0);
//!     CREATE TABLE spine (user_id INT, ts TIMESTAMP) AS VALUES (1, TIMESTAMP '2025-03-10 00:00:00');
//!     CREATE WINDOWED FEATURE user.amount_sum FROM transactions KEY user_id TIMESTAMP ts
//!         AGGREGATE sum(amount) WINDOWS ('1d', '30d') WITH (bucket_duration = '1d');
//! ").await?;
//! let frames = tessera::execute_sql(&ctx, "SELECT * FROM point_in_time('spine', 'ts', 'user.amount_sum')").await?;
//! let batches = frames.into_iter().next().unwrap().collect().await?;
//! assert_eq!(batches[0].num_rows(), 1);
//! # Ok(()) }
//! ```
//!
//! The layers, each its own crate, in the order data flows through them:
//! [`definitions`] (features and their DDL) → [`time`] (durations, grids,
//! window semantics) → [`aggregates`] (partial states) → [`tiles`] (Parquet
//! tiles of bucket states and their commit log) → [`planner`] (the
//! training-set node, options, backfills and execution).

pub use tessera_aggregates as aggregates;
pub use tessera_definitions as definitions;
pub use tessera_planner as planner;
pub use tessera_tiles as tiles;
pub use tessera_time as time;

pub use tessera_definitions::{FeatureDefinition, FeatureName};
pub use tessera_planner::{
    TesseraOptions, TrainingSet, define_feature, execute_sql, execute_statement, new_context,
    register, tessera_config,
};
