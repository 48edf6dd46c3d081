//! The execution plans of a training set, one per module:
//!
//! ```text
//! RestoreSpineOrderExec            sort by __tessera_row (inserted by the optimizer), drop it
//!   PointInTimeExec (stage n)      per-key sweep; inputs co-partitioned and sorted by key, time
//!     …
//!       PointInTimeExec (stage 1)
//!         SpineEnumerateExec       spine + __tessera_row
//!         <events plan of stage 1>
//! ```

mod enumerate;
mod point_in_time;
mod spine_order;
mod time;

pub use enumerate::{ROW_COLUMN, SpineEnumerateExec};
pub use point_in_time::PointInTimeExec;
pub use spine_order::RestoreSpineOrderExec;
