//! The tile store: bucket states as immutable Parquet files on an object
//! store, and a commit log that says which of them are live.
//!
//! # Layout
//!
//! Under the store's root (a local folder, `file:///…`, or `s3://bucket/prefix`):
//!
//! ```text
//! _log/00000000000000000001.json   one commit per file, numbered from 1
//! tiles/<series id>/<random>.parquet
//! ```
//!
//! A *tile set* is one aggregation of one series (SEMANTICS.md §7): the
//! series fixes source, keys, value, filter and grid; the aggregation fixes
//! the partial state. Its id is a hash of that description, so feature names
//! never become path segments and a changed definition gets a new tile set
//! whose tiles never mix with the old ones. Coverage, replacement and expiry
//! are per tile set.
//!
//! A tile *file* belongs to one series: it holds the key columns,
//! `bucket_start` and the state columns of every tile set of the series that
//! one backfill wrote, sorted by key then bucket, so row-group statistics
//! prune by both. The aggregations of a series have a row for the same
//! `(key, bucket)` pairs, so storing them side by side writes and reads each
//! key and bucket once however many aggregations the series has. Each tile
//! set's commit entry for the file ([`TileFile`]) names the file's columns
//! that hold its states; a reader projects those.
//!
//! # Commits
//!
//! Commit `n` is written with put-if-absent (`PutMode::Create`) after every
//! file it adds is written and checked: there is no rename and no shared
//! file that two writers overwrite. A writer that loses the race for `n`
//! reads the winner; if the winner touched an overlapping range of one of its
//! tile sets the commit fails as a conflict, otherwise it retries as `n + 1`.
//! A put that reports failure but did land is recognised by the commit's
//! random id. Readers replay the log into a [`Snapshot`]: which files are
//! live, the part of each file's range that no later backfill replaced, and
//! the covered ranges. A crashed writer leaves only unreferenced files, which
//! [`TileStore::vacuum`] deletes after a grace period. Every file's size and
//! checksum are in its commit and are checked on every read.

mod commit;
mod location;
mod snapshot;
mod store;
mod tile_file;
mod tile_set;

pub use commit::{Commit, RangeChange, TileFile};
pub use location::open_object_store;
pub use snapshot::{LiveFile, Snapshot, TileSetState};
pub use store::{CommitRequest, TileStore, VacuumReport};
pub use tile_file::{BUCKET_START_COLUMN, checksum};
pub use tile_set::{SeriesDescription, StateColumn, TileSetDescription, state_column};
