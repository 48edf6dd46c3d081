//! [`TileSource`]: the live rows of one tile set that a partition of the sweep needs.
//!
//! The physical planner pins a snapshot of the store and gives each tile set
//! of a stage a source listing the files live at that version. A sweep
//! partition asks it, once, for the rows of *its* spine keys and of the
//! buckets its spine times can reach: every file is read whole, its size and
//! checksum checked against the commit (a missing, truncated or altered file
//! fails naming the file), its columns checked against the state layout the
//! query expects, and only rows whose bucket lies in the file's still-valid
//! ranges (later backfills may have replaced part of a file), in the asked
//! time range and of an asked key are kept — so no tile row of another key
//! or another time is decoded, repartitioned or sorted. Keys are cast to the
//! spine's key types and named like the events plan's, so the sweep reads
//! tiles and events the same way.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, concat_batches, filter_record_batch, take_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, RowConverter};
use datafusion::common::{Result, exec_err};
use tessera_tiles::{LiveFile, TileStore};

use super::time::to_micros;
use crate::node::event_key_column;

/// Name of a tile source's bucket-start column (Int64 microseconds).
pub const TILE_BUCKET_COLUMN: &str = "__tessera_bucket";

/// One tile set at one store version, read for the keys and times a partition needs.
#[derive(Debug)]
pub struct TileSource {
    store: TileStore,
    tile_set: String,
    version: u64,
    files: Vec<LiveFile>,
    state_fields: Vec<FieldRef>,
    schema: SchemaRef,
}

/// The buckets and keys one sweep partition needs from a tile source.
pub struct TileRequest<'a> {
    /// The partition's distinct spine keys, ascending in `converter`'s row order.
    pub keys: &'a [OwnedRow],
    /// Encodes key columns as rows comparable with `keys`.
    pub converter: &'a RowConverter,
    /// The first bucket start needed (`i64::MIN` for unbounded windows).
    pub first_bucket: i64,
    /// The last bucket start needed.
    pub last_bucket: i64,
}

impl TileSource {
    /// Reads `files` of `tile_set` (as of `version`), casting keys to
    /// `key_types` and expecting `state_fields` after the keys and bucket.
    pub fn new(
        store: TileStore,
        tile_set: String,
        version: u64,
        files: Vec<LiveFile>,
        key_types: &[DataType],
        state_fields: Vec<FieldRef>,
    ) -> Self {
        let mut fields: Vec<FieldRef> = key_types
            .iter()
            .enumerate()
            .map(|(i, t)| Arc::new(Field::new(event_key_column(i), t.clone(), true)))
            .collect();
        fields.push(Arc::new(Field::new(
            TILE_BUCKET_COLUMN,
            DataType::Int64,
            false,
        )));
        fields.extend(state_fields.iter().cloned());
        Self {
            store,
            tile_set,
            version,
            files,
            state_fields,
            schema: Arc::new(Schema::new(fields)),
        }
    }

    fn key_count(&self) -> usize {
        self.schema.fields().len() - 1 - self.state_fields.len()
    }

    /// The rows `request` asks for, sorted by key then bucket. Files with no
    /// still-valid bucket in the requested range are not read.
    pub async fn read(&self, request: &TileRequest<'_>) -> Result<RecordBatch> {
        let mut kept = Vec::new();
        let wanted = |file: &&LiveFile| {
            !file
                .valid
                .clip(request.first_bucket, request.last_bucket.saturating_add(1))
                .is_empty()
        };
        let mut ranks = Vec::new();
        for file in self.files.iter().filter(wanted) {
            for batch in self.store.read_tile(&file.file).await? {
                let converted = self.convert(file, &batch)?;
                kept.push(self.select(&converted, file, request, &mut ranks)?);
            }
        }
        let rows = concat_batches(&self.schema, &kept)?;
        self.sorted(&rows, &ranks)
    }

    /// The file's rows with keys cast and buckets as microseconds.
    fn convert(&self, file: &LiveFile, batch: &RecordBatch) -> Result<RecordBatch> {
        self.check_layout(file, batch)?;
        let keys = self.key_count();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, field) in self.schema.fields().iter().take(keys).enumerate() {
            columns.push(cast(batch.column(i), field.data_type())?);
        }
        columns.push(Arc::new(to_micros(batch.column(keys))?));
        columns.extend(batch.columns()[keys + 1..].iter().cloned());
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Rows still valid in their file, in the requested time range, of a
    /// requested key; appends each kept row's key position in the request to `ranks`.
    fn select(
        &self,
        batch: &RecordBatch,
        file: &LiveFile,
        request: &TileRequest,
        ranks: &mut Vec<u32>,
    ) -> Result<RecordBatch> {
        let keys = self.key_count();
        let rows = request
            .converter
            .convert_columns(&batch.columns()[..keys])?;
        let buckets = batch.column(keys).as_primitive::<Int64Type>();
        // Files hold each key's rows together: look a key up once per run.
        let mut rank = None;
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                if i == 0 || rows.row(i) != rows.row(i - 1) {
                    rank = request
                        .keys
                        .binary_search_by(|key| key.row().cmp(&rows.row(i)))
                        .ok();
                }
                let bucket = buckets.value(i);
                let wanted = rank.is_some()
                    && bucket >= request.first_bucket
                    && bucket <= request.last_bucket
                    && file.valid.contains(bucket);
                if let Some(rank) = rank.filter(|_| wanted) {
                    ranks.push(rank as u32);
                }
                Some(wanted)
            })
            .collect();
        Ok(filter_record_batch(batch, &keep)?)
    }

    /// `batch` ordered by key (its position in the request, `ranks`) then bucket.
    fn sorted(&self, batch: &RecordBatch, ranks: &[u32]) -> Result<RecordBatch> {
        let buckets = batch
            .column(self.key_count())
            .as_primitive::<Int64Type>()
            .values();
        let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
        order.sort_unstable_by_key(|&i| (ranks[i as usize], buckets[i as usize]));
        Ok(take_record_batch(batch, &UInt32Array::from(order))?)
    }

    /// The file must hold the keys, `bucket_start`, then exactly the expected state columns.
    fn check_layout(&self, file: &LiveFile, batch: &RecordBatch) -> Result<()> {
        let describe = |fields: &mut dyn Iterator<Item = &FieldRef>| -> Vec<String> {
            fields
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect()
        };
        let found = describe(&mut batch.schema().fields().iter().skip(self.key_count() + 1));
        let expected = describe(&mut self.state_fields.iter());
        if found != expected || batch.num_columns() != self.schema.fields().len() {
            return exec_err!(
                "tile file {} has state columns [{}], expected [{}]",
                file.file.path,
                found.join(", "),
                expected.join(", ")
            );
        }
        Ok(())
    }
}

impl fmt::Display for TileSource {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let rows: u64 = self.files.iter().map(|f| f.file.rows).sum();
        write!(
            f,
            "tile_set={} version={} files={} rows={rows}",
            self.tile_set,
            self.version,
            self.files.len()
        )
    }
}
