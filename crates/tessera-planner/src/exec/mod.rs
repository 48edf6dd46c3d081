//! The execution plans of a training set, one per module:
//!
//! ```text
//! RestoreSpineOrderExec            sort by __tessera_row (inserted by the optimizer), drop it
//!   PointInTimeExec (stage n)      per-key sweep; inputs co-partitioned and sorted by key, time
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
//! repartition and sort its requirements make the optimizer insert.

mod enumerate;
mod event_reach;
mod key_index;
mod point_in_time;
mod spine_order;
mod spine_times;
mod tile_scan;
pub(crate) mod time;

pub use enumerate::{ROW_COLUMN, SpineEnumerateExec};
pub use event_reach::{EventReach, EventReachExec, KeyedReach, WindowReach};
pub use point_in_time::{PointInTimeExec, TileInput, serving_input};
pub use spine_order::RestoreSpineOrderExec;
pub use spine_times::{PublishedSpine, SpineTimes, TimeExtent};
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
