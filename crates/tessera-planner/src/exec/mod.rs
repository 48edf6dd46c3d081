//! The execution plans of a training set, one per module:
//!
//! ```text
//! RestoreSpineOrderExec            sort by __tessera_row (inserted by the optimizer unless
//!                                  the rows are in spine order), drop it
//!   PointInTimeExec (stage n)      per-key sweep; inputs co-partitioned and sorted by key, time
//!   or TileLookupExec              bucketed windows from tiles looked up per row, in input order
//!     …
//!       PointInTimeExec (stage 1)
//!         SpineEnumerateExec       spine + __tessera_row
//!         EventReachExec           events some row can see (with tiles: reads raw), once the spine is read
//!           <events plan of stage 1>
//!         TileScanExec (per set of tile files, with use_tile_store)
//!                                  live tile rows some row reads, once the spine is read
//! ```
//!
//! Every input of a `PointInTimeExec` reaches it through the hash
//! repartition and sort its requirements make the optimizer insert; a
//! `TileLookupExec` reads its inputs as they come and keeps its rows in the
//! spine's order (see its module for when the planner chooses it).

mod enumerate;
mod event_reach;
mod key_index;
mod lookup_table;
mod point_in_time;
mod spine_order;
mod spine_times;
mod tile_lookup;
mod tile_scan;
pub(crate) mod time;
mod window_column;

pub use enumerate::{ROW_COLUMN, SpineEnumerateExec};
pub use event_reach::{EventReach, EventReachExec, KeyedReach, WindowReach};
pub use point_in_time::{PointInTimeExec, TileInput, serving_input};
pub use spine_order::RestoreSpineOrderExec;
pub use spine_times::{PublishedSpine, SpineTimes, TimeExtent};
pub use tile_lookup::TileLookupExec;
pub use tile_scan::{ScanFile, TILE_BUCKET_COLUMN, TileFiles, TileReach, TileScanExec};

/// The one child of a single-input plan, or an internal error naming the plan.
pub(crate) fn only_child(
    mut children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
    plan: &str,
) -> datafusion::common::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    match (children.pop(), children.is_empty()) {
        (Some(child), true) => Ok(child),
        _ => datafusion::common::internal_err!("{plan} takes exactly one child"),
    }
}
