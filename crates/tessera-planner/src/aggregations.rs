//! The tile store seen through the session's features: the series table of
//! `tessera aggregate list` / `SHOW WINDOWED AGGREGATIONS`, and vacuum by
//! retention.
//!
//! A tile set's *retention* is the longest window, among the session's
//! features, that reads it (SEMANTICS.md §7); an `all` window keeps
//! everything. Tile sets no current feature reads are listed but never
//! expired: they may belong to definitions this session does not know.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::Result;
use datafusion::execution::SessionState;
use tessera_tiles::{RangeChange, TileStore, VacuumReport};
use tessera_time::{Duration, Instant, WindowLength};

use crate::binding::BoundFeature;
use crate::tile_sets::{grids_of, tile_set_of};
use crate::training_set::registry;

/// What the session's features make of one tile set.
#[derive(Debug, Clone, Default)]
struct Dependents {
    features: Vec<String>,
    /// The longest window; `None` once an `all` window reads it.
    retention: Option<Option<Duration>>,
}

impl Dependents {
    fn add(&mut self, feature: &str, window: WindowLength) {
        if !self.features.iter().any(|f| f == feature) {
            self.features.push(feature.to_string());
        }
        let longest = match (self.retention, window.duration()) {
            (Some(None), _) | (_, None) => None,
            (Some(Some(current)), Some(window)) => Some(current.max(window)),
            (None, Some(window)) => Some(window),
        };
        self.retention = Some(longest);
    }

    fn retention_text(&self) -> Option<String> {
        self.retention
            .map(|r| r.map_or_else(|| "all".to_string(), |d| d.to_string()))
    }
}

/// Tile set id → the session features that read it.
fn dependents(state: &SessionState) -> Result<BTreeMap<String, Dependents>> {
    let mut map: BTreeMap<String, Dependents> = BTreeMap::new();
    for definition in registry(state)?.list()? {
        let feature = BoundFeature::bind(state, Arc::clone(&definition))?;
        for grid in grids_of(&feature)? {
            let id = tile_set_of(&feature, grid)?.id();
            let entry = map.entry(id).or_default();
            for window in &definition.windows {
                if definition.grid(*window)? == grid {
                    entry.add(&definition.name.to_string(), *window);
                }
            }
        }
    }
    Ok(map)
}

/// One row per tile set of the store: the seed document's series table
/// (Series, Namespace, Group, Agg, Bucket, Retention, Aggregation, Dependent
/// Features) plus coverage, files, rows and bytes.
pub async fn list_aggregations(state: &SessionState, store: &TileStore) -> Result<RecordBatch> {
    let dependents = dependents(state)?;
    let snapshot = store.snapshot().await?;
    let mut rows: Vec<[Option<String>; 10]> = Vec::new();
    let mut counts: Vec<[u64; 3]> = Vec::new();
    for (id, tile_set) in &snapshot.tile_sets {
        let description = &tile_set.description;
        let series = &description.series;
        let current = dependents.get(id);
        let features = current.map_or_else(|| description.features.clone(), |d| d.features.clone());
        rows.push([
            Some(series.id()),
            Some(id.clone()),
            Some(series.source.clone()),
            Some(series.keys.join(" ")),
            Some(series.value.join(", ")),
            Some(series.grid()?.bucket().to_string()),
            current.and_then(Dependents::retention_text),
            Some(description.function.clone()),
            Some(features.join(" ")),
            Some(tile_set.coverage.to_string()),
        ]);
        counts.push([
            tile_set.files.len() as u64,
            tile_set.rows(),
            tile_set.bytes(),
        ]);
    }
    let names = [
        "series",
        "tile_set",
        "namespace",
        "group",
        "agg",
        "bucket",
        "retention",
        "aggregation",
        "dependent_features",
        "covered",
    ];
    let mut fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect();
    let mut columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| Arc::new(rows.iter().map(|r| r[i].clone()).collect::<StringArray>()) as ArrayRef)
        .collect();
    for (i, name) in ["files", "rows", "bytes"].iter().enumerate() {
        fields.push(Field::new(*name, DataType::UInt64, false));
        columns.push(Arc::new(UInt64Array::from_iter_values(
            counts.iter().map(|c| c[i]),
        )));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Expires, in every tile set a session feature reads with a bounded
/// retention `r`, the buckets no query at or after `horizon` can need
/// (those before `floor_b(horizon - r)`), then deletes unreferenced files
/// older than `grace` — or, with `dry_run`, reports what that would do and
/// changes nothing.
pub async fn vacuum_aggregations(
    state: &SessionState,
    store: &TileStore,
    horizon: Instant,
    grace: std::time::Duration,
    dry_run: bool,
) -> Result<VacuumReport> {
    let dependents = dependents(state)?;
    let snapshot = store.snapshot().await?;
    let mut expire = Vec::new();
    for (id, tile_set) in &snapshot.tile_sets {
        let Some(Some(Some(retention))) = dependents.get(id).map(|d| d.retention) else {
            continue;
        };
        let grid = tile_set.description.series.grid()?;
        let before = grid.floor(horizon.saturating_sub(retention.micros()));
        expire.push(RangeChange {
            tile_set: id.clone(),
            start: Instant::MIN,
            end: before,
        });
    }
    if dry_run {
        store.vacuum_dry_run(expire, grace).await
    } else {
        store.vacuum(expire, grace).await
    }
}
