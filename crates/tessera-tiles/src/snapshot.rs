//! The state of the store at one version: the log replayed.

use std::collections::{BTreeMap, BTreeSet};

use tessera_time::{Instant, TimeRanges};

use crate::{Commit, TileFile, TileSetDescription};

/// A file that still serves some of its buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// The file as committed.
    pub file: TileFile,
    /// The bucket starts it still serves: its range minus what later commits
    /// replaced or expired.
    pub valid: TimeRanges,
}

/// One tile set at a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileSetState {
    /// Its latest description.
    pub description: TileSetDescription,
    /// The bucket ranges some backfill wrote and nothing expired.
    pub coverage: TimeRanges,
    /// The files serving them, by the first bucket each serves (files
    /// never serve the same bucket, so for one backfill's files this is
    /// time order).
    pub files: Vec<LiveFile>,
}

impl TileSetState {
    /// Bytes of the live files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.file.size).sum()
    }

    /// Rows of the live files (including rows outside their valid ranges).
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.file.rows).sum()
    }
}

/// The store at one version of its log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The last commit applied (0 for an empty store).
    pub version: u64,
    /// Tile sets by id.
    pub tile_sets: BTreeMap<String, TileSetState>,
    /// Every file path any commit added, live or not.
    pub referenced: BTreeSet<String>,
}

impl Snapshot {
    /// Applies the next commit of the log.
    pub fn apply(&mut self, commit: &Commit) {
        for (id, description) in &commit.tile_sets {
            self.tile_sets
                .entry(id.clone())
                .and_modify(|state| state.description = description.clone())
                .or_insert_with(|| TileSetState {
                    description: description.clone(),
                    coverage: TimeRanges::new(),
                    files: Vec::new(),
                });
        }
        for change in commit.touched() {
            if let Some(state) = self.tile_sets.get_mut(&change.tile_set) {
                state.coverage.remove(change.start, change.end);
                for live in &mut state.files {
                    live.valid.remove(change.start, change.end);
                }
                state.files.retain(|live| !live.valid.is_empty());
            }
        }
        for change in &commit.replace {
            if let Some(state) = self.tile_sets.get_mut(&change.tile_set) {
                state.coverage.insert(change.start, change.end);
            }
        }
        for file in &commit.add {
            self.referenced.insert(file.path.clone());
            if let Some(state) = self.tile_sets.get_mut(&file.tile_set) {
                state.files.push(LiveFile {
                    file: file.clone(),
                    valid: TimeRanges::single(file.start, file.end),
                });
            }
        }
        for state in self.tile_sets.values_mut() {
            state
                .files
                .sort_by_key(|live| live.valid.ranges().first().map(|&(start, _)| start));
        }
        self.version = commit.version;
    }

    /// The tile set `id`, if any commit wrote it.
    pub fn tile_set(&self, id: &str) -> Option<&TileSetState> {
        self.tile_sets.get(id)
    }

    /// The paths of every live file.
    pub fn live_paths(&self) -> BTreeSet<&str> {
        self.tile_sets
            .values()
            .flat_map(|state| state.files.iter().map(|f| f.file.path.as_str()))
            .collect()
    }

    /// The coverage of tile set `id` (empty when unknown).
    pub fn coverage(&self, id: &str) -> TimeRanges {
        self.tile_set(id)
            .map(|state| state.coverage.clone())
            .unwrap_or_default()
    }

    /// The live files of `id` serving some bucket in `[start, end)`.
    pub fn files_for(&self, id: &str, start: Instant, end: Instant) -> Vec<LiveFile> {
        self.tile_set(id)
            .map(|state| {
                state
                    .files
                    .iter()
                    .filter(|live| !live.valid.clip(start, end).is_empty())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}
