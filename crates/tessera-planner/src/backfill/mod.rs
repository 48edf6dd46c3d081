//! Backfills: raw events → bucket states → tile files → one commit.
//!
//! A backfill of `[L, U)` writes, for every tile set its features need,
//! every bucket fully inside the range, `[ceil_b(L), floor_b(U))`
//! (SEMANTICS.md §7). Planning ([`plan_backfill`]) binds the features and
//! finds their tile sets (features sharing a series and aggregation share
//! one). Running ([`run_backfill`]) reads the range in time chunks, once for
//! all tile sets that read the same events (one source, keys, time column,
//! filter and grid, whatever values they aggregate): a DataFusion plan scans
//! and filters the source and projects every column they read — one scan
//! per window of chunks, split by chunk into temporary files (module
//! [`split`]), or one scan per chunk when DataFusion has no disk manager —
//! and each chunk is sorted by key and time (DataFusion's sort spills under
//! a memory limit) and folded run by run — one run per key and bucket —
//! into the state rows of every one of those tile sets at once, one batch
//! and one run at a time. Each chunk becomes one file per series, holding
//! the states of every tile set of the series side by side (so a key and
//! bucket is written once, and read once by a query needing several of its
//! aggregations). Chunks are pipelined: two are folded at once, each on a
//! task of its own, while DataFusion sorts the next and the oldest one
//! folded is encoded, written and checked. Only after every file is
//! written does one commit make all of them live, replacing
//! whatever covered those ranges before. A failure anywhere leaves
//! the store as it was, apart from unreferenced files that vacuum removes.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, partition, take};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::common::DataFusionError;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::provider_as_source;
use datafusion::execution::{SendableRecordBatchStream, SessionState};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::physical_plan::stream::RecordBatchReceiverStream;
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use tessera_aggregates::AggregateImplementation;
use tessera_definitions::FeatureName;
use tessera_tiles::{
    BUCKET_START_COLUMN, CommitRequest, RangeChange, SeriesDescription, TileFile,
    TileSetDescription, TileStore, state_column,
};
use tessera_time::{Duration, Grid, Instant, MICROS_PER_DAY, format_instant};

use split::{CHUNKS_PER_SCAN, SplitChunks};

use crate::binding::BoundFeature;
use crate::exec::time::to_micros;
use crate::tile_sets::{grids_of, key_types, tile_set_of};
use crate::training_set::{feature_columns, registry};

mod split;

/// How many chunks a backfill folds at once (each on a task of its own).
const FOLDS_IN_FLIGHT: usize = 2;

/// The chunk a backfill reads at once when none is given: 30 days, at least one bucket.
const DEFAULT_CHUNK_MICROS: i64 = 30 * MICROS_PER_DAY;

/// What to backfill.
#[derive(Debug, Clone)]
pub struct BackfillRequest {
    /// The features whose tile sets to write.
    pub features: Vec<FeatureName>,
    /// The lower bound, inclusive.
    pub lower: Instant,
    /// The upper bound, exclusive.
    pub upper: Instant,
    /// How much event time to read per chunk (and per tile file); rounded up
    /// to whole buckets. Defaults to 30 days.
    pub chunk: Option<Duration>,
}

/// One tile set a backfill writes.
#[derive(Debug, Clone)]
pub struct PlannedTileSet {
    /// Its id.
    pub id: String,
    /// What it stores (with every requested feature that uses it).
    pub description: TileSetDescription,
    /// The bucket range written, `[ceil_b(L), floor_b(U))`.
    pub range: (Instant, Instant),
    /// The chunks read, in order.
    pub chunks: Vec<(Instant, Instant)>,
    feature: BoundFeature,
    grid: Grid,
}

/// The tile sets of a backfill and how they are read.
#[derive(Debug, Clone)]
pub struct BackfillPlan {
    /// The requested bounds.
    pub lower: Instant,
    /// See `lower`.
    pub upper: Instant,
    /// The tile sets, in request order.
    pub tile_sets: Vec<PlannedTileSet>,
}

impl BackfillPlan {
    /// How many chunk reports the backfill makes: one per series and chunk.
    pub fn chunk_count(&self) -> usize {
        let mut series: Vec<(String, usize)> = Vec::new();
        for tile_set in &self.tile_sets {
            let id = tile_set.description.series.id();
            if !series.iter().any(|(s, _)| *s == id) {
                series.push((id, tile_set.chunks.len()));
            }
        }
        series.iter().map(|(_, chunks)| chunks).sum()
    }
}

/// What one chunk of a backfill read and wrote for one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkReport {
    /// The series' tile sets, whose states its file holds.
    pub tile_sets: Vec<String>,
    /// The chunk's bucket range.
    pub start: Instant,
    /// See `start`.
    pub end: Instant,
    /// Events read. Series reading the same events share a chunk's read,
    /// whose events are reported with the first of them (0 for the others).
    pub events: u64,
    /// Tile rows (non-empty key buckets) written.
    pub tile_rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files written (0 when the chunk had no events).
    pub files: usize,
}

/// Receives a backfill's progress (the CLI draws a progress bar from it).
pub trait BackfillProgress: Send + Sync {
    /// Called after each chunk's file is written.
    fn chunk_done(&self, report: &ChunkReport);
}

/// Progress that goes nowhere.
#[derive(Debug, Default)]
pub struct NoProgress;

impl BackfillProgress for NoProgress {
    fn chunk_done(&self, _report: &ChunkReport) {}
}

/// What a finished backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// The commit that made its tiles live.
    pub version: u64,
    /// Tile sets written.
    pub tile_sets: usize,
    /// Files written (one per series and chunk with events).
    pub files: usize,
    /// Events read (once per series and chunk, however many tile sets they feed).
    pub events: u64,
    /// Tile rows written.
    pub tile_rows: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Binds the requested features and plans which tile sets to write.
pub fn plan_backfill(state: &SessionState, request: &BackfillRequest) -> Result<BackfillPlan> {
    if request.lower >= request.upper {
        return plan_err!(
            "backfill lower bound {} is not before its upper bound {}",
            format_instant(request.lower),
            format_instant(request.upper)
        );
    }
    if request.features.is_empty() {
        return plan_err!("backfill needs at least one feature");
    }
    let registry = registry(state)?;
    let mut tile_sets: Vec<PlannedTileSet> = Vec::new();
    for name in &request.features {
        let feature = BoundFeature::bind(state, registry.get(name)?)?;
        for grid in grids_of(&feature)? {
            let description = tile_set_of(&feature, grid)?;
            let id = description.id();
            if let Some(existing) = tile_sets.iter_mut().find(|t| t.id == id) {
                if !existing.description.features.contains(&name.to_string()) {
                    existing.description.features.push(name.to_string());
                }
                continue;
            }
            let range = (grid.ceil(request.lower), grid.floor(request.upper));
            if range.0 >= range.1 {
                return plan_err!(
                    "backfill range [{}, {}) holds no complete {} bucket of feature {name}",
                    format_instant(request.lower),
                    format_instant(request.upper),
                    grid.bucket()
                );
            }
            tile_sets.push(PlannedTileSet {
                chunks: chunks(grid, range, request.chunk),
                id,
                description,
                range,
                feature: feature.clone(),
                grid,
            });
        }
    }
    Ok(BackfillPlan {
        lower: request.lower,
        upper: request.upper,
        tile_sets,
    })
}

/// `range` cut into chunks of whole buckets.
fn chunks(
    grid: Grid,
    range: (Instant, Instant),
    chunk: Option<Duration>,
) -> Vec<(Instant, Instant)> {
    let bucket = grid.bucket().micros();
    let wanted = chunk.map_or(DEFAULT_CHUNK_MICROS, Duration::micros);
    let buckets_per_chunk = (wanted / bucket + i64::from(wanted % bucket != 0)).max(1);
    let step = bucket.saturating_mul(buckets_per_chunk);
    let mut chunks = Vec::new();
    let mut start = range.0;
    while start < range.1 {
        let end = start.saturating_add(step).min(range.1);
        chunks.push((start, end));
        start = end;
    }
    chunks
}

/// The number of events each planned tile set would read (for `--dry-run`).
pub async fn estimate_events(state: &SessionState, plan: &BackfillPlan) -> Result<Vec<u64>> {
    let mut counts = Vec::with_capacity(plan.tile_sets.len());
    for tile_set in &plan.tile_sets {
        let (start, end) = tile_set.range;
        let events = chunk_plan(
            &tile_set.feature,
            &argument_columns(&tile_set.feature)?,
            start,
            end,
            false,
        )?;
        counts.push(DataFrame::new(state.clone(), events).count().await? as u64);
    }
    Ok(counts)
}

/// Runs a planned backfill against `store` and commits it.
pub async fn run_backfill(
    state: &SessionState,
    store: &TileStore,
    plan: &BackfillPlan,
    progress: &dyn BackfillProgress,
) -> Result<BackfillReport> {
    let read_version = store.latest_version().await?;
    let mut report = BackfillReport {
        tile_sets: plan.tile_sets.len(),
        ..BackfillReport::default()
    };
    let mut files: Vec<TileFile> = Vec::new();
    let mut record = |outcomes: Vec<ChunkOutcome>| {
        for chunk in outcomes {
            report.events += chunk.report.events;
            report.tile_rows += chunk.report.tile_rows;
            report.bytes += chunk.report.bytes;
            report.files += chunk.report.files;
            progress.chunk_done(&chunk.report);
            files.extend(chunk.files);
        }
    };
    for group in shared_reads(&plan.tile_sets)? {
        let chunks = &group.tile_sets[0].chunks;
        let mut reads = ChunkReads::new(state, &group, chunks);
        // Up to FOLDS_IN_FLIGHT chunks are folded at once, each on a task
        // of its own, while the oldest one folded is encoded and written
        // and the next is sorted: each waits only for its own work.
        let mut folds = VecDeque::new();
        let mut writing = None;
        let mut next = 0;
        loop {
            while next < chunks.len() && folds.len() < FOLDS_IN_FLIGHT {
                let events = reads.read(next).await?;
                folds.push_back((chunks[next], spawn_fold(&group, events)?));
                next += 1;
            }
            let Some(((start, end), fold)) = folds.pop_front() else {
                break;
            };
            let fold = async move {
                fold.join_unwind()
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?
            };
            let folded = match writing.take() {
                Some(written) => {
                    let (written, folded) = futures::join!(written, fold);
                    record(written?);
                    folded?
                }
                None => fold.await?,
            };
            writing = Some(write_chunk(store, &group, folded, start, end));
        }
        if let Some(written) = writing {
            record(written.await?);
        }
    }
    let request = CommitRequest {
        operation: format!(
            "backfill [{}, {})",
            format_instant(plan.lower),
            format_instant(plan.upper)
        ),
        tile_sets: plan
            .tile_sets
            .iter()
            .map(|t| (t.id.clone(), t.description.clone()))
            .collect(),
        replace: plan
            .tile_sets
            .iter()
            .map(|t| RangeChange {
                tile_set: t.id.clone(),
                start: t.range.0,
                end: t.range.1,
            })
            .collect(),
        add: files,
        expire: Vec::new(),
    };
    report.version = store.commit(request, read_version).await?.version;
    Ok(report)
}

/// A series' chunk file, as one entry per tile set (none when the chunk had
/// no events), and what it did.
struct ChunkOutcome {
    files: Vec<TileFile>,
    report: ChunkReport,
}

/// Tile sets that read the same events — one source, keys, time column,
/// filter, grid and chunks, whatever value each aggregates — and the columns
/// they read between them, so that each chunk of events is scanned and sorted
/// once for all of them.
struct SharedRead<'a> {
    tile_sets: Vec<&'a PlannedTileSet>,
    /// Every argument column some tile set reads, once each.
    columns: Vec<Expr>,
    /// Per tile set, the positions of its arguments in `columns`.
    positions: Vec<Vec<usize>>,
    /// Per series, its id and its tile sets (positions in `tile_sets`): one
    /// file per chunk each.
    series: Vec<(String, Vec<usize>)>,
}

impl<'a> SharedRead<'a> {
    fn new(tile_set: &'a PlannedTileSet, arguments: Vec<Expr>) -> Self {
        let mut read = Self {
            tile_sets: Vec::new(),
            columns: Vec::new(),
            positions: Vec::new(),
            series: Vec::new(),
        };
        read.add(tile_set, arguments);
        read
    }

    fn add(&mut self, tile_set: &'a PlannedTileSet, arguments: Vec<Expr>) {
        let series = tile_set.description.series.id();
        let member = self.tile_sets.len();
        match self.series.iter_mut().find(|(id, _)| *id == series) {
            Some((_, members)) => members.push(member),
            None => self.series.push((series, vec![member])),
        }
        let positions = arguments
            .into_iter()
            .map(
                |argument| match self.columns.iter().position(|c| *c == argument) {
                    Some(position) => position,
                    None => {
                        self.columns.push(argument);
                        self.columns.len() - 1
                    }
                },
            )
            .collect();
        self.tile_sets.push(tile_set);
        self.positions.push(positions);
    }
}

/// The columns a feature's aggregation reads from its source's events.
fn argument_columns(feature: &BoundFeature) -> Result<Vec<Expr>> {
    feature_columns(
        feature,
        &feature.definition.timestamp,
        &feature.source_schema,
    )
}

/// The planned tile sets grouped by the events they read.
fn shared_reads(tile_sets: &[PlannedTileSet]) -> Result<Vec<SharedRead<'_>>> {
    let mut groups: Vec<(String, SharedRead<'_>)> = Vec::new();
    for tile_set in tile_sets {
        let events = SeriesDescription {
            value: Vec::new(),
            ..tile_set.description.series.clone()
        }
        .id();
        let arguments = argument_columns(&tile_set.feature)?;
        match groups
            .iter_mut()
            .find(|(e, group)| *e == events && group.tile_sets[0].chunks == tile_set.chunks)
        {
            Some((_, group)) => group.add(tile_set, arguments),
            None => groups.push((events, SharedRead::new(tile_set, arguments))),
        }
    }
    Ok(groups.into_iter().map(|(_, group)| group).collect())
}

/// The events of a window of chunks split by chunk, once the window's scan is done.
type SharedSplit = Shared<BoxFuture<'static, Result<Arc<SplitChunks>, Arc<DataFusionError>>>>;

/// Reads a group's chunks, each sorted by key and time, one ahead of the
/// fold: in windows of [`CHUNKS_PER_SCAN`] split from one scan each when
/// DataFusion's disk manager gives temporary files (module [`split`]),
/// else one scan per chunk.
struct ChunkReads<'a> {
    state: &'a SessionState,
    group: &'a SharedRead<'a>,
    chunks: &'a [(Instant, Instant)],
    split: bool,
    /// The window being read (its first chunk), its split events and
    /// their schema (every chunk's).
    window: Option<(usize, SharedSplit, SchemaRef)>,
}

impl<'a> ChunkReads<'a> {
    fn new(
        state: &'a SessionState,
        group: &'a SharedRead<'a>,
        chunks: &'a [(Instant, Instant)],
    ) -> Self {
        Self {
            split: chunks.len() > 1 && state.runtime_env().disk_manager.tmp_files_enabled(),
            state,
            group,
            chunks,
            window: None,
        }
    }

    /// Starts reading chunk `i` on DataFusion's threads, so that it sorts
    /// while the chunk before it is folded and written (the first chunk of
    /// a window waits for the window's scan). Dropping the stream stops the work.
    async fn read(&mut self, i: usize) -> Result<SendableRecordBatchStream> {
        let (start, end) = self.chunks[i];
        let feature = &self.group.tile_sets[0].feature;
        if !self.split {
            let plan = chunk_plan(feature, &self.group.columns, start, end, true)?;
            let events = DataFrame::new(self.state.clone(), plan)
                .execute_stream()
                .await?;
            return Ok(read_ahead(events.schema(), async move { Ok(events) }));
        }
        let first = i - i % CHUNKS_PER_SCAN;
        let (split, schema) = match &self.window {
            Some((window, split, schema)) if *window == first => {
                (split.clone(), Arc::clone(schema))
            }
            _ => {
                let (split, schema) = self.scan_window(first)?;
                self.window = Some((first, split.clone(), Arc::clone(&schema)));
                (split, schema)
            }
        };
        let order = chunk_order(feature);
        let context = self.state.task_ctx();
        Ok(read_ahead(schema, async move {
            let split = split.await.map_err(DataFusionError::Shared)?;
            split.sorted(i - first, &order, context)
        }))
    }

    /// Starts the scan splitting the window of chunks from `first` on; the
    /// schema of the events it splits.
    fn scan_window(&self, first: usize) -> Result<(SharedSplit, SchemaRef)> {
        let window = self.chunks[first..]
            .iter()
            .take(CHUNKS_PER_SCAN)
            .copied()
            .collect::<Vec<_>>();
        let (Some(&(start, _)), Some(&(_, end))) = (window.first(), window.last()) else {
            return datafusion::common::internal_err!("backfill window at chunk {first} is empty");
        };
        let feature = &self.group.tile_sets[0].feature;
        let plan = chunk_plan(feature, &self.group.columns, start, end, false)?;
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let time_column = feature.definition.keys.len();
        let state = self.state.clone();
        let scan = SpawnedTask::spawn(async move {
            SplitChunks::scan(&state, plan, time_column, &window).await
        });
        let split = async move {
            match scan.join_unwind().await {
                Ok(split) => split.map(Arc::new).map_err(Arc::new),
                Err(e) => Err(Arc::new(DataFusionError::External(Box::new(e)))),
            }
        }
        .boxed()
        .shared();
        Ok((split, schema))
    }
}

/// Forwards the stream `events` makes to a channel from a task of its own,
/// so that it runs ahead of its reader.
fn read_ahead(
    schema: SchemaRef,
    events: impl Future<Output = Result<SendableRecordBatchStream>> + Send + 'static,
) -> SendableRecordBatchStream {
    let mut builder = RecordBatchReceiverStream::builder(schema, 2);
    let sender = builder.tx();
    builder.spawn(async move {
        let mut events = events.await?;
        while let Some(batch) = events.next().await {
            if sender.send(batch).await.is_err() {
                break;
            }
        }
        Ok(())
    });
    builder.build()
}

/// One chunk folded: its tile rows per series, and the events read.
type Folded = (Vec<SeriesRows>, u64);

/// Folds one chunk's sorted events (read once) into tile rows per series
/// of `group`, and counts the events, on a task of its own.
fn spawn_fold(
    group: &SharedRead<'_>,
    mut events: SendableRecordBatchStream,
) -> Result<SpawnedTask<Result<Folded>>> {
    let mut builder = TileRowBuilder::try_new(group)?;
    Ok(SpawnedTask::spawn(async move {
        while let Some(batch) = events.next().await {
            builder.push(batch?)?;
        }
        builder.finish()
    }))
}

/// Writes one chunk's tile rows as a file per series of `group`. The
/// chunk's events are reported with the first series.
async fn write_chunk(
    store: &TileStore,
    group: &SharedRead<'_>,
    (outputs, events_read): Folded,
    start: Instant,
    end: Instant,
) -> Result<Vec<ChunkOutcome>> {
    // One file per series, encoded and written at once; nothing is live
    // before the commit, so their order does not matter.
    let writes = group
        .series
        .iter()
        .zip(outputs)
        .map(|((series, members), output)| async move {
            let output = output.without_repeated_columns()?;
            let tile_rows: u64 = output.batches.iter().map(|b| b.num_rows() as u64).sum();
            let files = if tile_rows == 0 {
                Vec::new()
            } else {
                store
                    .write_tiles(
                        series,
                        &output.columns,
                        &output.schema,
                        &output.batches,
                        (start, end),
                    )
                    .await?
            };
            let tile_sets = members.iter().map(|&m| group.tile_sets[m].id.clone());
            Ok::<_, datafusion::common::DataFusionError>((tile_sets.collect(), tile_rows, files))
        });
    let written = futures::future::try_join_all(writes).await?;
    let outcomes = written
        .into_iter()
        .enumerate()
        .map(|(i, (tile_sets, tile_rows, files))| ChunkOutcome {
            report: ChunkReport {
                tile_sets,
                start,
                end,
                events: if i == 0 { events_read } else { 0 },
                tile_rows,
                bytes: files.first().map_or(0, |f: &TileFile| f.size),
                files: usize::from(!files.is_empty()),
            },
            files,
        })
        .collect();
    Ok(outcomes)
}

/// `scan → filter(keys and time not null, WHERE, start <= ts < end) →
/// project(keys, time, arguments)` over `feature`'s source, sorted by key then
/// time when `sorted`.
fn chunk_plan(
    feature: &BoundFeature,
    arguments: &[Expr],
    start: Instant,
    end: Instant,
    sorted: bool,
) -> Result<LogicalPlan> {
    let definition = &feature.definition;
    let schema = &feature.source_schema;
    let micros = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let bound = |instant: Instant| {
        lit(ScalarValue::TimestampMicrosecond(
            Some(instant),
            Some("UTC".into()),
        ))
    };
    let time = col(&definition.timestamp).cast_to(&micros, schema)?;
    let mut predicate = col(&definition.timestamp).is_not_null();
    for key in &definition.keys {
        predicate = predicate.and(col(key).is_not_null());
    }
    if let Some(filter) = &feature.filter {
        predicate = predicate.and(filter.clone());
    }
    predicate = predicate
        .and(time.clone().gt_eq(bound(start)))
        .and(time.clone().lt(bound(end)));
    let mut projection: Vec<Expr> = definition.keys.iter().map(col).collect();
    projection.push(time.alias(crate::node::EVENT_TIME_COLUMN));
    for (j, argument) in arguments.iter().enumerate() {
        projection.push(
            argument
                .clone()
                .alias(crate::node::event_argument_column(0, j)),
        );
    }
    let mut plan = LogicalPlanBuilder::scan(
        feature.table.clone(),
        provider_as_source(Arc::clone(&feature.provider)),
        None,
    )?
    .filter(predicate)?
    .project(projection)?;
    if sorted {
        let order = chunk_order(feature)
            .iter()
            .map(|column| col(column).sort(true, true))
            .collect::<Vec<_>>();
        plan = plan.sort(order)?;
    }
    plan.build()
}

/// The columns a chunk's events are folded in the order of (each
/// ascending, nulls first): the keys, then the time.
fn chunk_order(feature: &BoundFeature) -> Vec<String> {
    let mut order = feature.definition.keys.clone();
    order.push(crate::node::EVENT_TIME_COLUMN.to_string());
    order
}

/// One series' tile rows of a chunk: the file's schema, the columns
/// holding each of its tile sets' states, and the rows.
struct SeriesRows {
    schema: SchemaRef,
    /// Per tile set of the series: its id and its state columns' names.
    columns: Vec<(String, Vec<String>)>,
    batches: Vec<RecordBatch>,
}

impl SeriesRows {
    /// The rows with every state column that repeats an earlier one in all
    /// of them (aggregations of one series often keep the same count or
    /// sum) stored once: the tile sets whose state it is name the earlier
    /// column instead.
    fn without_repeated_columns(self) -> Result<Self> {
        let leading = self.schema.index_of(BUCKET_START_COLUMN)? + 1;
        let fields = self.schema.fields();
        // Per column, the column that holds its values.
        let mut stored_as: Vec<usize> = (0..fields.len()).collect();
        for column in leading..fields.len() {
            let repeated = (leading..column).find(|&earlier| {
                stored_as[earlier] == earlier
                    && fields[earlier].data_type() == fields[column].data_type()
                    && self
                        .batches
                        .iter()
                        .all(|batch| batch.column(earlier) == batch.column(column))
            });
            if let Some(earlier) = repeated {
                stored_as[column] = earlier;
            }
        }
        let kept: Vec<usize> = (0..fields.len()).filter(|&c| stored_as[c] == c).collect();
        let stored_name = |column: &String| -> Result<String> {
            let index = self.schema.index_of(column)?;
            Ok(fields[stored_as[index]].name().clone())
        };
        let columns = self
            .columns
            .iter()
            .map(|(tile_set, names)| {
                let names = names.iter().map(stored_name).collect::<Result<_>>()?;
                Ok((tile_set.clone(), names))
            })
            .collect::<Result<_>>()?;
        let batches = self
            .batches
            .iter()
            .map(|batch| batch.project(&kept))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Self {
            schema: Arc::new(self.schema.project(&kept)?),
            columns,
            batches,
        })
    }
}

/// Folds a key- and time-sorted event stream into tile rows, one per key and
/// bucket, for several aggregations of the same events at once.
struct TileRowBuilder {
    keys: usize,
    grid: Grid,
    /// Per aggregation: its implementation and the positions of its
    /// arguments among the read columns.
    aggregations: Vec<(Arc<dyn AggregateImplementation>, Vec<usize>)>,
    /// Per series: its file's rows so far, and its aggregations in column order.
    series: Vec<(SeriesRows, Vec<usize>)>,
    /// The last run of the previous batch, which the next batch may continue.
    carry: Option<RecordBatch>,
    events: u64,
}

impl TileRowBuilder {
    /// A builder for the tile sets of `group`, which read the same events on one grid.
    fn try_new(group: &SharedRead<'_>) -> Result<Self> {
        let Some(first) = group.tile_sets.first() else {
            return datafusion::common::internal_err!("a tile row builder needs a tile set");
        };
        let key_types = key_types(&first.feature)?;
        let mut key_fields: Vec<Arc<Field>> = first
            .feature
            .definition
            .keys
            .iter()
            .zip(&key_types)
            .map(|(name, data_type)| Arc::new(Field::new(name, data_type.clone(), true)))
            .collect();
        key_fields.push(Arc::new(Field::new(
            BUCKET_START_COLUMN,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )));
        let aggregations = group
            .tile_sets
            .iter()
            .zip(&group.positions)
            .map(|(tile_set, positions)| {
                Ok((
                    tile_set.feature.aggregate.implementation()?,
                    positions.clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let series = group
            .series
            .iter()
            .map(|(_, members)| {
                let mut fields = key_fields.clone();
                let mut columns = Vec::with_capacity(members.len());
                for &member in members {
                    let tile_set = group.tile_sets[member];
                    let named = tile_set_state_fields(tile_set)?;
                    columns.push((
                        tile_set.id.clone(),
                        named.iter().map(|f| f.name().clone()).collect(),
                    ));
                    fields.extend(named);
                }
                let rows = SeriesRows {
                    schema: Arc::new(Schema::new(fields)),
                    columns,
                    batches: Vec::new(),
                };
                Ok((rows, members.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            keys: key_types.len(),
            grid: first.grid,
            aggregations,
            series,
            carry: None,
            events: 0,
        })
    }

    fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.events += batch.num_rows() as u64;
        let batch = match self.carry.take() {
            Some(carry) => concat_batches(&batch.schema(), [&carry, &batch])?,
            None => batch,
        };
        let bounds = self.run_bounds(&batch)?;
        let Some(&last) = bounds.len().checked_sub(2).and_then(|i| bounds.get(i)) else {
            return Ok(());
        };
        if last > 0 {
            self.emit(&batch.slice(0, last), &bounds[..bounds.len() - 1])?;
        }
        self.carry = Some(batch.slice(last, batch.num_rows() - last));
        Ok(())
    }

    /// Per series, its tile rows; and the events folded.
    fn finish(mut self) -> Result<Folded> {
        if let Some(carry) = self.carry.take() {
            let bounds = self.run_bounds(&carry)?;
            self.emit(&carry, &bounds)?;
        }
        let rows = self.series.into_iter().map(|(rows, _)| rows).collect();
        Ok((rows, self.events))
    }

    /// `[0, b1, …, n]`: where a new key or bucket starts (the batch is
    /// sorted by key and time, so runs are partitions of keys and bucket).
    fn run_bounds(&self, batch: &RecordBatch) -> Result<Vec<usize>> {
        if batch.num_rows() == 0 {
            return Ok(vec![0]);
        }
        let times = to_micros(batch.column(self.keys))?;
        let buckets = times.values().iter().map(|&t| self.grid.index(t));
        let mut runs = batch.columns()[..self.keys].to_vec();
        runs.push(Arc::new(Int64Array::from_iter_values(buckets)));
        let mut bounds: Vec<usize> = partition(&runs)?.ranges().iter().map(|r| r.start).collect();
        bounds.push(batch.num_rows());
        Ok(bounds)
    }

    /// Appends one tile row per run of `batch`.
    fn emit(&mut self, batch: &RecordBatch, bounds: &[usize]) -> Result<()> {
        if bounds.len() < 2 {
            return Ok(());
        }
        let firsts =
            UInt32Array::from_iter_values(bounds[..bounds.len() - 1].iter().map(|&i| i as u32));
        let times = to_micros(batch.column(self.keys))?;
        let mut columns: Vec<ArrayRef> = batch.columns()[..self.keys]
            .iter()
            .map(|key| take(key.as_ref(), &firsts, None))
            .collect::<std::result::Result<_, _>>()?;
        let starts = firsts
            .values()
            .iter()
            .map(|&i| self.grid.floor(times.value(i as usize)));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from_iter_values(starts).with_timezone("UTC"),
        ));
        let read = &batch.columns()[self.keys + 1..];
        let states = self
            .aggregations
            .iter()
            .map(|(implementation, positions)| {
                let arguments: Vec<ArrayRef> =
                    positions.iter().map(|&p| Arc::clone(&read[p])).collect();
                implementation.run_states(&arguments, bounds)
            })
            .collect::<Result<Vec<_>>>()?;
        for (rows, members) in &mut self.series {
            let mut tile_columns = columns.clone();
            for &member in members.iter() {
                tile_columns.extend(states[member].iter().cloned());
            }
            rows.batches.push(RecordBatch::try_new(
                Arc::clone(&rows.schema),
                tile_columns,
            )?);
        }
        Ok(())
    }
}

/// A tile set's state fields as its series' files name them.
fn tile_set_state_fields(tile_set: &PlannedTileSet) -> Result<Vec<Arc<Field>>> {
    let aggregate = &tile_set.feature.aggregate;
    let states = aggregate
        .implementation()?
        .state_fields(aggregate.kind.name());
    Ok(states
        .iter()
        .map(|f| {
            let name = state_column(&tile_set.id, f.name());
            Arc::new(f.as_ref().clone().with_name(name))
        })
        .collect())
}
