//! [`TileScanExec`]: the live rows of one tile set, read from its files.
//!
//! The physical planner pins a snapshot of the store and hands this plan the
//! files that serve the tile set at that version. Each file is one partition:
//! it is read whole, its size and checksum checked against the commit (a
//! missing, truncated or altered file fails naming the file), its columns
//! checked against the state layout the query expects, and only rows whose
//! bucket lies in the file's still-valid ranges are kept (later backfills
//! may have replaced part of a file). Keys are cast to the spine's key types
//! and named like the events plan's, so the sweep reads tiles and events the
//! same way; DataFusion co-partitions and sorts them by key and bucket.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, exec_err, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::TryStreamExt;
use tessera_tiles::{LiveFile, TileStore};

use super::time::to_micros;
use crate::node::event_key_column;

/// Name of a tile scan's bucket-start column (Int64 microseconds).
pub const TILE_BUCKET_COLUMN: &str = "__tessera_bucket";

/// Reads the live rows of one tile set at one store version.
#[derive(Debug)]
pub struct TileScanExec {
    store: TileStore,
    tile_set: String,
    version: u64,
    files: Arc<Vec<LiveFile>>,
    state_fields: Vec<FieldRef>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl TileScanExec {
    /// Scans `files` of `tile_set` (as of `version`), casting keys to
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
        fields.push(Arc::new(Field::new(TILE_BUCKET_COLUMN, DataType::Int64, false)));
        fields.extend(state_fields.iter().cloned());
        let schema = Arc::new(Schema::new(fields));
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(files.len().max(1)),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            store,
            tile_set,
            version,
            files: Arc::new(files),
            state_fields,
            schema,
            properties: Arc::new(properties),
        }
    }

    fn key_count(&self) -> usize {
        self.schema.fields().len() - 1 - self.state_fields.len()
    }
}

impl DisplayAs for TileScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let rows: u64 = self.files.iter().map(|f| f.file.rows).sum();
        write!(
            f,
            "TileScanExec: tile_set={}, version={}, files={}, rows={rows}",
            self.tile_set,
            self.version,
            self.files.len()
        )
    }
}

impl ExecutionPlan for TileScanExec {
    fn name(&self) -> &str {
        "TileScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            internal_err!("TileScanExec takes no children")
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = Arc::clone(&self.schema);
        let Some(file) = self.files.get(partition).cloned() else {
            return Ok(Box::pin(RecordBatchStreamAdapter::new(
                schema,
                futures::stream::empty(),
            )));
        };
        let store = self.store.clone();
        let reader = FileReader {
            schema: Arc::clone(&schema),
            keys: self.key_count(),
            state_fields: self.state_fields.clone(),
        };
        let batches = futures::stream::once(async move {
            let batches = store.read_tile(&file.file).await?;
            let converted = batches
                .iter()
                .map(|batch| reader.convert(&file, batch))
                .collect::<Result<Vec<_>>>()?;
            Ok::<_, datafusion::common::DataFusionError>(futures::stream::iter(
                converted.into_iter().map(Ok),
            ))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// Turns a tile file's batches into the scan's rows.
struct FileReader {
    schema: SchemaRef,
    keys: usize,
    state_fields: Vec<FieldRef>,
}

impl FileReader {
    fn convert(&self, file: &LiveFile, batch: &RecordBatch) -> Result<RecordBatch> {
        self.check_layout(file, batch)?;
        let starts = to_micros(batch.column(self.keys))?;
        let keep: BooleanArray = starts
            .iter()
            .map(|start| Some(start.is_some_and(|s| file.valid.contains(s))))
            .collect();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (i, field) in self.schema.fields().iter().take(self.keys).enumerate() {
            columns.push(cast(batch.column(i), field.data_type())?);
        }
        columns.push(Arc::new(starts));
        columns.extend(batch.columns()[self.keys + 1..].iter().cloned());
        let converted = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        Ok(filter_record_batch(&converted, &keep)?)
    }

    /// The file must hold the keys, `bucket_start`, then exactly the expected state columns.
    fn check_layout(&self, file: &LiveFile, batch: &RecordBatch) -> Result<()> {
        let found: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .skip(self.keys + 1)
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        let expected: Vec<String> = self
            .state_fields
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
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
