//! Encoding tile files: Parquet bytes, their checksum, and checked decoding.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Result, exec_datafusion_err, exec_err};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::{ArrowSchemaConverter, ArrowWriter, ProjectionMask};
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::reader::ChunkReader;

/// The tile column holding each row's bucket start, `Timestamp(µs, UTC)`.
pub const BUCKET_START_COLUMN: &str = "bucket_start";

/// Rows per row group: small enough for statistics to prune by key and time.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The checksum recorded for a file: xxHash64 of its bytes, 16 hex digits.
pub fn checksum(bytes: &[u8]) -> String {
    format!("{:016x}", twox_hash::XxHash64::oneshot(0, bytes))
}

/// Encodes sorted tile rows as one Parquet file.
pub(crate) fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let properties = writer_properties(schema)?;
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, Arc::clone(schema), Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(bytes)
}

/// Dictionaries and page statistics for the key and bucket columns only
/// (readers prune by those); the state columns — numbers and sketch images,
/// mostly distinct — are LZ4-compressed instead, which shrinks their repeated
/// headers and small integers at a fraction of a dictionary's encoding cost.
/// With dictionaries everywhere the medium benchmark's backfill took 40 s
/// and wrote 1.04 GB; like this, 30 s and 0.90 GB (single runs).
fn writer_properties(schema: &SchemaRef) -> Result<WriterProperties> {
    let leading = schema
        .fields()
        .iter()
        .position(|f| f.name() == BUCKET_START_COLUMN)
        .map_or(0, |bucket| bucket + 1);
    let leading: Vec<&String> = schema.fields()[..leading]
        .iter()
        .map(|f| f.name())
        .collect();
    let mut builder = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::None);
    // Per leaf column: a vector state's leaf is `name.list.item`, not `name`.
    for column in ArrowSchemaConverter::new().convert(schema)?.columns() {
        let path = column.path().clone();
        builder = if path
            .parts()
            .first()
            .is_some_and(|top| leading.contains(&top))
        {
            builder.set_column_statistics_enabled(path, EnabledStatistics::Page)
        } else {
            builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_compression(path, Compression::LZ4_RAW)
        };
    }
    Ok(builder.build())
}

/// Decodes a tile file's bytes, naming `path` in every error. With
/// `states`, only the key columns, `bucket_start` and the named state
/// columns are decoded, in that order (a name may repeat); a named column
/// the file lacks is an error.
pub(crate) fn decode<R: ChunkReader + 'static>(
    path: &str,
    bytes: R,
    states: Option<&[String]>,
) -> Result<Vec<RecordBatch>> {
    let unreadable = |e: &dyn std::fmt::Display| {
        exec_datafusion_err!("tile file {path} is not readable Parquet: {e}")
    };
    // A row group a batch: the reader's default (1024 rows) costs a batch's
    // overhead (and later a filter and a concatenation) every 1024 rows.
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| unreadable(&e))?
        .with_batch_size(ROW_GROUP_ROWS);
    let Some(states) = states else {
        let reader = builder.build().map_err(|e| unreadable(&e))?;
        return reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| unreadable(&e));
    };
    let order = projection_order(path, builder.schema(), states)?;
    // A column may serve several tile sets: decode it once.
    let mut roots = order.clone();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| unreadable(&e))?;
    // The reader yields the projected columns in file order; put them in `order`'s.
    let positions: Vec<usize> = order
        .iter()
        .map(|column| roots.binary_search(column).unwrap_or_default())
        .collect();
    reader
        .map(|batch| {
            let batch = batch.map_err(|e| unreadable(&e))?;
            Ok(batch.project(&positions)?)
        })
        .collect()
}

/// The file columns to decode, in output order: the leading key and bucket
/// columns, then `states` by name.
fn projection_order(path: &str, schema: &SchemaRef, states: &[String]) -> Result<Vec<usize>> {
    let Ok(bucket) = schema.index_of(BUCKET_START_COLUMN) else {
        return exec_err!("tile file {path} has no {BUCKET_START_COLUMN} column");
    };
    let mut order: Vec<usize> = (0..=bucket).collect();
    for state in states {
        match schema.index_of(state) {
            Ok(index) if index > bucket => order.push(index),
            _ => return exec_err!("tile file {path} has no state column {state}"),
        }
    }
    Ok(order)
}
