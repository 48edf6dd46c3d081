//! Encoding tile files: Parquet bytes, their checksum, and checked decoding.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Result, exec_datafusion_err};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
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
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page)
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, Arc::clone(schema), Some(properties))?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(bytes)
}

/// Decodes a tile file's bytes, naming `path` in every error.
pub(crate) fn decode<R: ChunkReader + 'static>(path: &str, bytes: R) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|builder| builder.build())
        .map_err(|e| exec_datafusion_err!("tile file {path} is not readable Parquet: {e}"))?;
    reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| exec_datafusion_err!("tile file {path} is not readable Parquet: {e}"))
}
