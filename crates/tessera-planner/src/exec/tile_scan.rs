//! [`TileScanExec`]: the live rows of some tile sets that some spine row reads.
//!
//! The physical planner pins a snapshot of the store and gives each tile set
//! of a stage a scan of the files live at that version, spread over the
//! plan's partitions — one scan for all tile sets of a series served by the
//! same files (one backfill wrote their states side by side), so each key
//! and bucket is read, repartitioned and sorted once for all of them. Every
//! file is read whole, its size and checksum checked against the commit (a
//! missing, truncated or altered file fails naming the file), and only the
//! scan's state columns are decoded and checked against the state layout the
//! query expects; keys are cast to the spine's key types and named like the
//! events plan's, so the sweep reads tiles and events the same way.
//!
//! A scan streams: it holds one file at a time, and its rows reach the sweep
//! through the hash repartition and (spilling) sort the sweep's input
//! requirements make the optimizer insert — so tile rows are bounded by
//! DataFusion's memory pool like events are, and each file is decoded once
//! per query. Which files it reads is decided once the spine is read, from
//! its earliest and latest time: those some row can reach, split evenly
//! into consecutive runs, one a partition (the spine usually reaches only
//! the latest few files, which a fixed split could give to one partition).
//! What it keeps is decided per key ([`TileReach`]), by an index built on a
//! thread of its own while the files are read: a row only if its bucket is
//! still valid in its file (later backfills may have replaced part of a
//! file) and some spine row of its key reads that bucket from this tile set
//! (it lies in the row's whole-bucket part, [`SemanticsPlan::parts`]). No
//! other row is repartitioned, sorted or turned into a bucket state.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, Schema, SchemaRef};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, exec_err, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use tessera_tiles::{LiveFile, TileStore};
use tessera_time::{Grid, WindowLength};

use super::key_index::KeyIndex;
use super::spine_times::SpineTimes;
use super::time::to_micros;
use crate::node::{SemanticsPlan, event_key_column};

/// Name of a tile scan's bucket-start column (Int64 microseconds).
pub const TILE_BUCKET_COLUMN: &str = "__tessera_bucket";

type SharedIndex = Shared<BoxFuture<'static, Result<Arc<KeyIndex>, Arc<DataFusionError>>>>;

/// Which buckets each tile scan of one stage serves to each spine key: per
/// scan (a slot of the index, shared by scans serving the same windows), the
/// union over the key's rows and the windows the scan's tile sets serve of
/// the rows' whole-bucket parts. Built once, when the spine is read, and
/// shared by the stage's scans.
pub struct TileReach {
    /// Per scan, its slot in the index.
    slots: Vec<usize>,
    /// Per slot, the windows (length and grid) its scans serve.
    windows: Arc<Vec<Vec<(WindowLength, Grid)>>>,
    semantics: SemanticsPlan,
    times: Arc<SpineTimes>,
    index: SharedIndex,
}

impl TileReach {
    /// The reach of a stage keyed by `spine_keys` (spine time `time_column`)
    /// whose scan `i` serves the windows `served[i]`.
    pub fn new(
        times: Arc<SpineTimes>,
        spine_keys: Vec<String>,
        time_column: String,
        semantics: SemanticsPlan,
        served: Vec<Vec<(WindowLength, Grid)>>,
    ) -> Self {
        // Scans serving the same windows share a slot.
        let mut distinct: Vec<Vec<(WindowLength, Grid)>> = Vec::new();
        let slots = served
            .into_iter()
            .map(
                |windows| match distinct.iter().position(|d| *d == windows) {
                    Some(slot) => slot,
                    None => {
                        distinct.push(windows);
                        distinct.len() - 1
                    }
                },
            )
            .collect();
        let windows = Arc::new(distinct);
        let index = {
            let (times, windows) = (Arc::clone(&times), Arc::clone(&windows));
            async move {
                let spine = times.get().await.map_err(Arc::new)?;
                // A large spine takes a while to index: on a thread of its
                // own, while the scans read their files.
                let build = SpawnedTask::spawn_blocking(move || {
                    KeyIndex::build(
                        &spine_keys,
                        &time_column,
                        &spine.batches,
                        windows.len(),
                        |t, slots| {
                            for (windows, out) in windows.iter().zip(slots) {
                                let row_start = out.len();
                                for window in windows {
                                    push_widening(out, row_start, body_at(semantics, window, t));
                                }
                            }
                        },
                    )
                });
                match build.join_unwind().await {
                    Ok(index) => index.map(Arc::new).map_err(Arc::new),
                    Err(e) => Err(Arc::new(DataFusionError::External(Box::new(e)))),
                }
            }
            .boxed()
            .shared()
        };
        Self {
            slots,
            windows,
            semantics,
            times,
            index,
        }
    }

    /// The buckets some spine row may read through `slot`: the whole-bucket
    /// parts of the slot's windows from the spine's earliest to its latest
    /// time (parts only move forward with time), `None` for a spine without
    /// times. Known once the spine is read, before the per-key index is.
    async fn reached(&self, slot: usize) -> Result<Option<(i64, i64)>> {
        let Some((first, last)) = self.times.get().await?.extent else {
            return Ok(None);
        };
        let windows = self.windows.get(slot).map_or(&[][..], Vec::as_slice);
        let start = windows
            .iter()
            .map(|w| body_at(self.semantics, w, first).0)
            .min();
        let end = windows
            .iter()
            .map(|w| body_at(self.semantics, w, last).1)
            .max();
        Ok(start.zip(end))
    }

    /// The per-key index, once the spine is read and indexed.
    pub(crate) async fn index(&self) -> Result<Arc<KeyIndex>> {
        self.index.clone().await.map_err(DataFusionError::Shared)
    }

    /// The index slot of scan `scan` (`served[scan]` when built).
    pub fn slot_of(&self, scan: usize) -> usize {
        self.slots[scan]
    }
}

/// The whole-bucket part of `window` on `grid` at row time `t`, as
/// `[start, end)` (`i64::MIN` when unbounded below).
fn body_at(semantics: SemanticsPlan, (window, grid): &(WindowLength, Grid), t: i64) -> (i64, i64) {
    let body = semantics.parts(*window, grid, t).body;
    (body.start.unwrap_or(i64::MIN), body.end)
}

/// Appends `range` to `out`, or widens the range of `out[from..]` that ends
/// where it ends: a row's windows on one grid end their bodies at the same
/// bucket (1d, 7d and 30d alike), so their union is the longest, and the
/// index merges a third of the ranges.
fn push_widening(out: &mut Vec<(i64, i64)>, from: usize, (start, end): (i64, i64)) {
    match out[from..].iter_mut().find(|(_, e)| *e == end) {
        Some(same_end) => same_end.0 = same_end.0.min(start),
        None => out.push((start, end)),
    }
}

impl fmt::Debug for TileReach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TileReach")
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

/// Scans some tile sets at one store version for the rows some spine row reads.
#[derive(Debug)]
pub struct TileScanExec {
    files: Arc<TileFiles>,
    reach: Arc<TileReach>,
    /// This scan's slot in `reach`.
    slot: usize,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// A file a scan reads: its live part, and the file's columns holding the
/// scan's state columns, in the scan's order.
#[derive(Debug, Clone)]
pub struct ScanFile {
    /// The file and the buckets it still serves (the same for every tile set of the scan).
    pub live: LiveFile,
    /// The file's column for each of the scan's state fields.
    pub states: Vec<String>,
}

/// The live files of some tile sets at one store version, and how to read them.
#[derive(Debug)]
pub struct TileFiles {
    store: TileStore,
    tile_sets: Vec<String>,
    version: u64,
    files: Vec<ScanFile>,
    state_fields: Vec<FieldRef>,
    schema: SchemaRef,
}

impl TileFiles {
    /// `files` of `tile_sets` (as of `version`), read with keys cast to
    /// `key_types` and `state_fields` (the tile sets' state fields, in
    /// order, uniquely named) expected after the keys and bucket.
    pub fn new(
        store: TileStore,
        tile_sets: Vec<String>,
        version: u64,
        files: Vec<ScanFile>,
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
            tile_sets,
            version,
            files,
            state_fields,
            schema: Arc::new(Schema::new(fields)),
        }
    }
}

impl TileScanExec {
    /// Scans `files` over at most `partitions` partitions, keeping what slot
    /// `slot` of `reach` says some spine row reads.
    pub fn new(files: TileFiles, reach: Arc<TileReach>, slot: usize, partitions: usize) -> Self {
        let partitions = partitions.clamp(1, files.files.len().max(1));
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&files.schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            files: Arc::new(files),
            reach,
            slot,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for TileScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let files = &self.files;
        let rows: u64 = files.files.iter().map(|f| f.live.file.rows).sum();
        write!(
            f,
            "TileScanExec: tile_sets=[{}] version={} files={} rows={rows}, per key: buckets some row reads",
            files.tile_sets.join(", "),
            files.version,
            files.files.len()
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
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !children.is_empty() {
            return internal_err!("TileScanExec takes no children");
        }
        Ok(self)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let partitions = self.properties.output_partitioning().partition_count();
        if partition >= partitions {
            return internal_err!(
                "TileScanExec has {partitions} partitions, asked for {partition}"
            );
        }
        let read = Arc::new(FileReader {
            files: Arc::clone(&self.files),
            reach: Arc::clone(&self.reach),
            slot: self.slot,
            baseline: BaselineMetrics::new(&self.metrics, partition),
            rows_read: MetricBuilder::new(&self.metrics).counter("tile_rows_read", partition),
        });
        let batches = futures::stream::once(async move {
            let mine = read.files_of(partition, partitions).await?;
            let kept = futures::stream::iter(mine)
                .then(move |file| {
                    let read = Arc::clone(&read);
                    async move { read.kept_rows(&file).await }
                })
                .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)));
            Ok::<_, DataFusionError>(kept.try_flatten())
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.files.schema),
            batches,
        )))
    }
}

/// One partition's reading.
struct FileReader {
    files: Arc<TileFiles>,
    reach: Arc<TileReach>,
    slot: usize,
    baseline: BaselineMetrics,
    rows_read: Count,
}

impl FileReader {
    /// Partition `partition`'s share of the files some spine row may read:
    /// as many as the other partitions' (give or take one) whichever ones
    /// the spine reaches, and consecutive, so that partitions read one
    /// after another yield the files in the snapshot's order (by first
    /// bucket) and, unless files' buckets interleave, each key's rows in
    /// bucket order — which a tile lookup then need not sort.
    async fn files_of(&self, partition: usize, partitions: usize) -> Result<Vec<ScanFile>> {
        let Some((start, end)) = self.reach.reached(self.slot).await? else {
            return Ok(Vec::new());
        };
        let reached: Vec<&ScanFile> = self
            .files
            .files
            .iter()
            .filter(|file| !file.live.valid.clip(start, end).is_empty())
            .collect();
        let share = |p: usize| p * reached.len() / partitions;
        Ok(reached[share(partition)..share(partition + 1)]
            .iter()
            .map(|&file| file.clone())
            .collect())
    }

    /// The rows of `file` some spine row reads, with keys cast and buckets
    /// as microseconds. The file is read while the per-key index may still
    /// be building.
    async fn kept_rows(&self, scan_file: &ScanFile) -> Result<Vec<RecordBatch>> {
        let index = self.reach.index.clone().map_err(DataFusionError::Shared);
        let (index, batches) = futures::try_join!(index, self.converted_rows(scan_file))?;
        let _timer = self.baseline.elapsed_compute().timer();
        let mut kept = Vec::new();
        for batch in batches {
            let selected = self.select(&batch, &scan_file.live, &index)?;
            if selected.num_rows() > 0 {
                self.baseline.record_output(selected.num_rows());
                kept.push(selected);
            }
        }
        Ok(kept)
    }

    /// Every row of `file`, with keys cast and buckets as microseconds.
    async fn converted_rows(&self, scan_file: &ScanFile) -> Result<Vec<RecordBatch>> {
        let batches = self
            .files
            .store
            .read_tile_states(&scan_file.live.file, &scan_file.states)
            .await?;
        let _timer = self.baseline.elapsed_compute().timer();
        self.rows_read
            .add(batches.iter().map(RecordBatch::num_rows).sum());
        batches
            .iter()
            .map(|batch| self.files.convert(&scan_file.live, batch))
            .collect()
    }

    /// Rows still valid in their file whose key has a spine row reading their bucket.
    fn select(
        &self,
        batch: &RecordBatch,
        file: &LiveFile,
        index: &KeyIndex,
    ) -> Result<RecordBatch> {
        let keys = self.files.key_count();
        let batch_keys = index.batch_keys(&batch.columns()[..keys])?;
        let buckets = batch.column(keys).as_primitive::<Int64Type>();
        // Files hold each key's rows together: look a key up once per run.
        let mut read = None;
        // Plain booleans: an iterator of `Option<bool>` builds a validity bitmap too.
        let keep: Vec<bool> = (0..batch.num_rows())
            .map(|i| {
                if i == 0 || !batch_keys.same_key(i, i - 1) {
                    read = index.get(&batch_keys, i, self.slot);
                }
                let bucket = buckets.value(i);
                read.is_some_and(|read| read.contains(bucket)) && file.valid.contains(bucket)
            })
            .collect();
        let keep = BooleanArray::from(keep);
        Ok(filter_record_batch(batch, &keep)?)
    }
}

impl TileFiles {
    fn key_count(&self) -> usize {
        self.schema.fields().len() - 1 - self.state_fields.len()
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

    /// The scan's state columns, as decoded from the file, must have the
    /// expected types.
    fn check_layout(&self, file: &LiveFile, batch: &RecordBatch) -> Result<()> {
        let schema = batch.schema();
        let found = &schema.fields()[(self.key_count() + 1).min(schema.fields().len())..];
        let types_match = found.len() == self.state_fields.len()
            && found
                .iter()
                .zip(&self.state_fields)
                .all(|(f, state)| f.data_type() == state.data_type());
        if !types_match {
            let describe = |fields: &[FieldRef]| -> String {
                let described: Vec<String> = fields
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect();
                described.join(", ")
            };
            return exec_err!(
                "tile file {} has state columns [{}], expected [{}]",
                file.file.path,
                describe(found),
                describe(&self.state_fields)
            );
        }
        Ok(())
    }
}
