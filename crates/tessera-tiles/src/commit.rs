//! The commit log's entries.

use serde::{Deserialize, Serialize};
use tessera_time::Instant;

use crate::TileSetDescription;

/// One tile set's entry for a Parquet file (a file shared by the tile sets
/// of one series has one entry per tile set, with the same path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileFile {
    /// The tile set it serves.
    pub tile_set: String,
    /// Its path under the store root.
    pub path: String,
    /// The file's columns holding this tile set's states, in the order of
    /// its description's `state_columns`.
    pub columns: Vec<String>,
    /// Its size in bytes.
    pub size: u64,
    /// The xxHash64 of its bytes, as 16 hex digits.
    pub checksum: String,
    /// Its number of rows.
    pub rows: u64,
    /// The bucket range `[start, end)` it was written for: it holds every
    /// non-empty bucket of every key in that range.
    pub start: Instant,
    /// See `start`.
    pub end: Instant,
}

/// A range of one tile set's buckets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeChange {
    /// The tile set.
    pub tile_set: String,
    /// The first bucket start of the range.
    pub start: Instant,
    /// The end of the range (exclusive).
    pub end: Instant,
}

impl RangeChange {
    /// Whether both ranges name one tile set and share an instant.
    pub fn overlaps(&self, other: &RangeChange) -> bool {
        self.tile_set == other.tile_set && self.start < other.end && other.start < self.end
    }
}

/// One entry of the log: everything one backfill or vacuum changed, applied at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Its position in the log, from 1.
    pub version: u64,
    /// A random id, so a writer recognises its own commit after an ambiguous failure.
    pub commit_id: String,
    /// When it was written, ISO 8601.
    pub committed_at: String,
    /// What wrote it, e.g. `backfill [2025-01-01T00:00:00Z, 2025-02-01T00:00:00Z)`.
    pub operation: String,
    /// Descriptions of the tile sets it writes (new or refreshed).
    pub tile_sets: Vec<(String, TileSetDescription)>,
    /// Ranges whose buckets are replaced by `add` (and so become covered).
    pub replace: Vec<RangeChange>,
    /// The files it adds.
    pub add: Vec<TileFile>,
    /// Ranges that are no longer covered (expired by retention).
    pub expire: Vec<RangeChange>,
}

impl Commit {
    /// Every range this commit changes.
    pub fn touched(&self) -> impl Iterator<Item = &RangeChange> {
        self.replace.iter().chain(&self.expire)
    }

    /// The first range of `self` that overlaps one of `other`'s, if any.
    pub fn conflict_with<'a>(&'a self, other: &Commit) -> Option<&'a RangeChange> {
        self.touched()
            .find(|mine| other.touched().any(|theirs| mine.overlaps(theirs)))
    }
}
