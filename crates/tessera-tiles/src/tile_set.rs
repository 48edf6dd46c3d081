//! What a tile set stores, and the ids derived from it.

use datafusion::common::{Result, exec_err};
use serde::{Deserialize, Serialize};
use tessera_time::{Duration, Grid};

/// The unit of storage of SEMANTICS.md §7: features that agree on all of
/// these share the series (and, per aggregation, its tiles).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesDescription {
    /// The source table.
    pub source: String,
    /// The key columns.
    pub keys: Vec<String>,
    /// The event-time column.
    pub timestamp: String,
    /// The aggregated value: the call's column arguments as SQL text.
    pub value: Vec<String>,
    /// The filter, as SQL text.
    pub filter: Option<String>,
    /// The bucket duration in microseconds.
    pub bucket_micros: i64,
    /// The grid origin in microseconds since the epoch.
    pub origin_micros: i64,
}

impl SeriesDescription {
    /// The series' id: 16 hex digits of a hash of the description.
    pub fn id(&self) -> String {
        hash_id(&serde_json::to_string(self).unwrap_or_default())
    }

    /// The series' bucket grid; an error for a description whose bucket
    /// duration is not positive (a damaged log).
    pub fn grid(&self) -> Result<Grid> {
        match Duration::from_micros(self.bucket_micros) {
            Some(bucket) => Ok(Grid::new(bucket, self.origin_micros)),
            None => exec_err!(
                "series {} of {} has an invalid bucket duration of {} µs",
                self.id(),
                self.source,
                self.bucket_micros
            ),
        }
    }
}

/// One state column of a tile file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StateColumn {
    /// The column name.
    pub name: String,
    /// Its Arrow type, as displayed by Arrow.
    pub data_type: String,
}

/// One aggregation of one series: what a tile set's files hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TileSetDescription {
    /// The series.
    pub series: SeriesDescription,
    /// The aggregate function, e.g. `sum`.
    pub function: String,
    /// The whole call with its parameters, e.g. `approx_top_k(category, 10)`.
    pub aggregation: String,
    /// The key columns' Arrow types in the tile files.
    pub key_types: Vec<String>,
    /// The state columns after the keys and `bucket_start`.
    pub state_columns: Vec<StateColumn>,
    /// The features that asked for it when it was last written (informational:
    /// not part of the id).
    pub features: Vec<String>,
}

impl TileSetDescription {
    /// The tile set's id: a hash of everything but the feature names.
    pub fn id(&self) -> String {
        let identity = (
            self.series.id(),
            &self.function,
            &self.aggregation,
            &self.key_types,
            &self.state_columns,
        );
        hash_id(&serde_json::to_string(&identity).unwrap_or_default())
    }
}

/// The name of tile set `tile_set`'s state column `state` in the files it
/// shares with the other tile sets of its series: the id keeps the names of
/// two aggregations with like-named states (`sum` of `sum` and of `mean`)
/// apart.
pub fn state_column(tile_set: &str, state: &str) -> String {
    format!("{tile_set}_{state}")
}

fn hash_id(text: &str) -> String {
    format!("{:016x}", twox_hash::XxHash64::oneshot(0, text.as_bytes()))
}
