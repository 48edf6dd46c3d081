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

use std::sync::Arc;

use datafusion::common::{Result, internal_err};
use datafusion::physical_plan::ExecutionPlan;

mod enumerate;
mod event_reach;
mod key_index;
mod key_order;
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
    mut children: Vec<Arc<dyn ExecutionPlan>>,
    plan: &str,
) -> Result<Arc<dyn ExecutionPlan>> {
    match (children.pop(), children.is_empty()) {
        (Some(child), true) => Ok(child),
        _ => internal_err!("{plan} takes exactly one child"),
    }
}

/// A stage plan's children: its input (the spine or the previous stage),
/// its events, and its tile scans.
pub(crate) type StageChildren = (
    Arc<dyn ExecutionPlan>,
    Arc<dyn ExecutionPlan>,
    Vec<Arc<dyn ExecutionPlan>>,
);

/// `children` of a stage plan with `tile_scans` tile scans, split, or an
/// internal error naming `plan` when there are not that many.
pub(crate) fn stage_children(
    children: Vec<Arc<dyn ExecutionPlan>>,
    tile_scans: usize,
    plan: &str,
) -> Result<StageChildren> {
    let found = children.len();
    let mut children = children.into_iter();
    match (children.next(), children.next()) {
        (Some(input), Some(events)) if found == 2 + tile_scans => {
            Ok((input, events, children.collect()))
        }
        _ => internal_err!("{plan} takes {} children, got {found}", 2 + tile_scans),
    }
}
