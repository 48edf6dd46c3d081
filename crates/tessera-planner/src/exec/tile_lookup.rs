//! [`TileLookupExec`]: one stage of a bucketed training set answered by
//! looking each spine row's buckets up in a table of its tiles.
//!
//! Bucketed windows (without a continuous buffer) read whole buckets only.
//! When they come from tiles and the stage's functions merge in constant
//! time (counts, sums, means, variances, min and max of numbers), a row's
//! value is the merge of one contiguous run of its key's bucket states —
//! nothing needs to slide. So, where [`super::PointInTimeExec`] has spine,
//! events and tiles co-partitioned and sorted by key and the result sorted
//! back into spine order, this plan works like a hash join whose build side
//! is the tiles:
//!
//! 1. each partition first reads its input (the numbered spine, or the rows
//!    of the previous stage) — reading the spine is what publishes its times
//!    and rows, which the tile scans and the events wait for;
//! 2. once for all partitions, it reads every partition of every tile scan
//!    (the rows some spine row reads) and of the events (only those read
//!    raw: none when the tiles cover every bucket any row needs, and then
//!    the events' scan never starts), each partition on a task of its own,
//!    and lays them out by key and bucket in a [`LookupTable`], reserved in
//!    DataFusion's memory pool;
//! 3. it orders its input's rows by key and time ([`KeyOrder`]) — once the
//!    key index is built, while the table still is — and answers them in
//!    runs of keys, several at once on blocking threads, each run
//!    walking its own part of the table forward: per row, two binary
//!    searches in the key's buckets per window shape, and per function one
//!    merge of states from the row's bucket back to its longest window's
//!    start, emitting each shorter window on the way — once for all rows of
//!    a key whose windows hold the same buckets;
//! 4. it puts the answers back into its input's order, batch by batch
//!    ([`Answers`]).
//!
//! Rows keep their order and partition, so no sort or repartition surrounds
//! the stage, and [`super::RestoreSpineOrderExec`] finds a plan already in
//! spine order. Coverage is checked as the sweep checks it: with
//! `tile_coverage_fallback = 'raw'` the buckets the tiles do not cover are
//! built from the raw events read; otherwise a row needing such a bucket
//! (from its key's first event on) fails the query naming the ranges.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result, ScalarValue, internal_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::{EquivalenceProperties, Partitioning, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt, TryFutureExt, TryStreamExt};
use tessera_aggregates::{AggregateImplementation, WindowValues};
use tessera_time::{EventRange, Grid, TimeRanges, WindowLength};

use super::key_order::{Answers, KeyOrder, RunAnswers, SpineRow};
use super::lookup_table::{EventColumns, KeyedEvents, LookupTable, ScanRows, SourceTable};
use super::window_column::{stage_schema, uncovered_buckets_error, window_column};
use super::{TileInput, TileReach, serving_input};
use crate::node::{
    EVENT_TIME_COLUMN, SemanticsPlan, StagePlan, event_argument_column, event_key_column,
    fmt_stages,
};
use crate::options::CoverageFallback;

type SharedTable = Shared<BoxFuture<'static, Result<Arc<BuiltTable>, Arc<DataFusionError>>>>;

/// A stage answered by tile lookups, in its input's order.
#[derive(Debug)]
pub struct TileLookupExec {
    input: Arc<dyn ExecutionPlan>,
    events: Arc<dyn ExecutionPlan>,
    tile_scans: Vec<Arc<dyn ExecutionPlan>>,
    tiles: Vec<TileInput>,
    reach: Arc<TileReach>,
    fallback: CoverageFallback,
    stage: Arc<StagePlan>,
    semantics: SemanticsPlan,
    time_column: String,
    plan: Arc<LookupPlan>,
    /// The table, built by the first partition that needs it, for all.
    table: Mutex<Option<SharedTable>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// One window of the stage, as a lookup answers it.
#[derive(Debug)]
struct LookupWindow {
    /// The feature's name, for errors.
    feature: String,
    window: WindowLength,
    /// Its source (feature and grid) among the table's.
    source: usize,
    /// Its length and grid among the stage's distinct ones.
    shape: usize,
    /// The tile set serving it.
    tiles: TileInput,
    result_type: DataType,
    default: Option<ScalarValue>,
}

/// One feature's buckets on one grid: what the table decodes.
#[derive(Debug)]
struct SourceSpec {
    function: Arc<dyn AggregateImplementation>,
    grid: Grid,
    input: TileInput,
    /// The feature's argument columns in the events.
    arguments: Vec<usize>,
}

/// What answering the stage needs, worked out once at planning.
#[derive(Debug)]
struct LookupPlan {
    spine_keys: Vec<usize>,
    spine_time: usize,
    events: EventColumns,
    /// The key columns of the tile scans (their bucket column follows).
    tile_key_columns: usize,
    sources: Vec<SourceSpec>,
    shapes: Vec<(WindowLength, Grid)>,
    windows: Vec<LookupWindow>,
    /// Per source, its windows (positions in `windows`).
    source_windows: Vec<Vec<usize>>,
    semantics: SemanticsPlan,
    strict: bool,
    schema: SchemaRef,
}

/// The table and the memory it holds.
#[derive(Debug)]
struct BuiltTable {
    table: LookupTable,
    _reservation: Arc<MemoryReservation>,
}

impl TileLookupExec {
    /// The stage `stage` over `input` (which carries the spine's key and time
    /// columns), reading its buckets from `tile_scans` (which `tiles` name,
    /// all reading through `reach`) and, where they do not cover them, from `events`.
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        events: Arc<dyn ExecutionPlan>,
        tiles: Vec<TileInput>,
        tile_scans: Vec<Arc<dyn ExecutionPlan>>,
        reach: Arc<TileReach>,
        fallback: CoverageFallback,
        stage: Arc<StagePlan>,
        semantics: SemanticsPlan,
        time_column: String,
    ) -> Result<Self> {
        let plan = Arc::new(LookupPlan::try_new(
            &input,
            &events,
            &tiles,
            &stage,
            semantics,
            &time_column,
            fallback,
        )?);
        let ordering = input.output_ordering().cloned();
        let properties = PlanProperties::new(
            EquivalenceProperties::new_with_orderings(Arc::clone(&plan.schema), ordering),
            Partitioning::UnknownPartitioning(
                input.properties().output_partitioning().partition_count(),
            ),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            events,
            tile_scans,
            tiles,
            reach,
            fallback,
            stage,
            semantics,
            time_column,
            plan,
            table: Mutex::new(None),
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The table, building it (once) with `context`.
    fn table(&self, context: &Arc<TaskContext>) -> Result<SharedTable> {
        let mut table = self
            .table
            .lock()
            .map_err(|_| DataFusionError::Internal("TileLookupExec's table lock".into()))?;
        let build = table.get_or_insert_with(|| {
            let build = TableBuild {
                plan: Arc::clone(&self.plan),
                events: Arc::clone(&self.events),
                tile_scans: self.tile_scans.clone(),
                reach: Arc::clone(&self.reach),
                context: Arc::clone(context),
                tile_rows: MetricBuilder::new(&self.metrics).counter("tile_rows_loaded", 0),
                events_read: MetricBuilder::new(&self.metrics).counter("events_read", 0),
            };
            async move { build.run().await.map(Arc::new).map_err(Arc::new) }
                .boxed()
                .shared()
        });
        Ok(build.clone())
    }
}

impl LookupPlan {
    fn try_new(
        input: &Arc<dyn ExecutionPlan>,
        events: &Arc<dyn ExecutionPlan>,
        tiles: &[TileInput],
        stage: &StagePlan,
        semantics: SemanticsPlan,
        time_column: &str,
        fallback: CoverageFallback,
    ) -> Result<Self> {
        let (input_schema, event_schema) = (input.schema(), events.schema());
        let spine_keys = stage
            .spine_keys
            .iter()
            .map(|k| input_schema.index_of(k))
            .collect::<Result<Vec<_>, _>>()?;
        let event_arguments = stage
            .features
            .iter()
            .enumerate()
            .map(|(i, feature)| {
                (0..feature.argument_columns)
                    .map(|j| event_schema.index_of(&event_argument_column(i, j)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let event_columns = EventColumns {
            keys: (0..spine_keys.len())
                .map(|i| event_schema.index_of(&event_key_column(i)))
                .collect::<Result<Vec<_>, _>>()?,
            time: event_schema.index_of(EVENT_TIME_COLUMN)?,
            arguments: event_arguments,
        };
        let mut plan = Self {
            spine_time: input_schema.index_of(time_column)?,
            tile_key_columns: spine_keys.len(),
            spine_keys,
            events: event_columns,
            sources: Vec::new(),
            shapes: Vec::new(),
            windows: Vec::new(),
            source_windows: Vec::new(),
            semantics,
            strict: fallback == CoverageFallback::Error,
            schema: stage_schema(&input_schema, stage),
        };
        for (index, feature) in stage.features.iter().enumerate() {
            for window in &feature.windows {
                let Some(input) = serving_input(tiles, index, &window.grid) else {
                    return internal_err!(
                        "TileLookupExec: no tile set serves {} on grid {}",
                        window.column,
                        window.grid
                    );
                };
                let source = plan.source(index, &tiles[input], stage)?;
                let shape = plan.shape(window.window, window.grid);
                if plan.source_windows.len() <= source {
                    plan.source_windows.resize(source + 1, Vec::new());
                }
                plan.source_windows[source].push(plan.windows.len());
                plan.windows.push(LookupWindow {
                    feature: feature.name.to_string(),
                    window: window.window,
                    source,
                    shape,
                    tiles: tiles[input].clone(),
                    result_type: feature.aggregate.result_type.clone(),
                    default: feature.default.clone(),
                });
            }
        }
        Ok(plan)
    }

    /// The position of the source of `feature` read from `input`, added when new.
    fn source(&mut self, feature: usize, input: &TileInput, stage: &StagePlan) -> Result<usize> {
        let same = |s: &SourceSpec| s.input.feature == feature && s.grid == input.tile_set.grid;
        if let Some(known) = self.sources.iter().position(same) {
            return Ok(known);
        }
        self.sources.push(SourceSpec {
            function: stage.features[feature].aggregate.implementation()?,
            grid: input.tile_set.grid,
            input: input.clone(),
            arguments: self.events.arguments[feature].clone(),
        });
        Ok(self.sources.len() - 1)
    }

    /// The position of `window` on `grid` among the distinct shapes, added when new.
    fn shape(&mut self, window: WindowLength, grid: Grid) -> usize {
        match self.shapes.iter().position(|s| *s == (window, grid)) {
            Some(known) => known,
            None => {
                self.shapes.push((window, grid));
                self.shapes.len() - 1
            }
        }
    }

    /// Answers every window of the stage for `rows` (a run of a
    /// [`KeyOrder`]: in key and time order). Rows of one key whose windows
    /// hold the same buckets (bucketed windows depend on the row's bucket
    /// only, and busy keys have many rows a bucket) share one answer.
    fn answer_run(&self, table: &LookupTable, rows: &[SpineRow]) -> Result<RunAnswers> {
        let mut outputs: Vec<WindowValues> = self
            .windows
            .iter()
            .map(|w| table.sources[w.source].states.output(rows.len()))
            .collect();
        let mut missing = vec![TimeRanges::new(); self.windows.len()];
        // Per row, the answer (the output position) it takes.
        let mut taken = Vec::with_capacity(rows.len());
        let mut answered = 0u32;
        // The previous row's key and bodies (per shape), and this row's.
        let mut last: Option<Option<usize>> = None;
        let (mut last_bodies, mut bodies) = (Vec::new(), Vec::new());
        let mut found: Vec<Range<usize>> = Vec::with_capacity(table.searches.len());
        let mut nested: Vec<(usize, usize)> = Vec::new();
        for row in rows {
            let Some(t) = row.time() else {
                answered += 1;
                outputs.iter_mut().for_each(WindowValues::push_null);
                taken.push(answered - 1);
                last = None;
                continue;
            };
            bodies.clear();
            bodies.extend(
                self.shapes
                    .iter()
                    .map(|(window, grid)| self.semantics.parts(*window, grid, t).body),
            );
            let key = row.key();
            if last != Some(key) || last_bodies != bodies {
                answered += 1;
                let scratch = (&mut found, &mut nested);
                self.answer_row(table, key, &bodies, scratch, &mut outputs, &mut missing);
            }
            taken.push(answered - 1);
            last = Some(key);
            std::mem::swap(&mut last_bodies, &mut bodies);
        }
        let mut columns = Vec::with_capacity(self.windows.len());
        for ((window, out), missing) in self.windows.iter().zip(&mut outputs).zip(&missing) {
            if !missing.is_empty() {
                return Err(uncovered_buckets_error(
                    &window.feature,
                    window.window,
                    &window.tiles.tile_set,
                    missing,
                ));
            }
            let (values, empty) = out.finish()?;
            columns.push(window_column(
                values,
                &empty,
                &window.result_type,
                window.default.as_ref(),
            )?);
        }
        Ok(RunAnswers { columns, taken })
    }

    /// Appends the value of every window of `key` with bodies `bodies` (per
    /// shape) to `outputs`, noting uncovered buckets in `missing`.
    fn answer_row(
        &self,
        table: &LookupTable,
        key: Option<usize>,
        bodies: &[EventRange],
        (found, nested): (&mut Vec<Range<usize>>, &mut Vec<(usize, usize)>),
        outputs: &mut [WindowValues],
        missing: &mut [TimeRanges],
    ) {
        found.clear();
        found.extend(table.searches.iter().map(|&(source, shape)| {
            key.map_or(0..0, |key| {
                table.sources[source].layout.rows(key, bodies[shape])
            })
        }));
        // Bucketed windows on one grid all end at the row's bucket
        // (`floor_b(t)`), so a source's windows end at one row of its
        // layout: one merge from there back answers all of them.
        for (source, windows) in table.sources.iter().zip(&self.source_windows) {
            let rows = |w: usize| &found[table.window_searches[w]];
            nested.clear();
            nested.extend(windows.iter().map(|&w| (rows(w).start, w)));
            nested.sort_unstable_by(|a, b| b.cmp(a));
            let end = windows.first().map_or(0, |&w| rows(w).end);
            source.states.append_nested(end, nested, outputs);
        }
        if let (true, Some(key)) = (self.strict, key) {
            for (window, missing) in self.windows.iter().zip(missing) {
                let source = &table.sources[window.source];
                let body = bodies[window.shape];
                note_uncovered(source, &window.tiles.coverage, key, body, missing);
            }
        }
    }
}

/// Adds to `missing` the buckets of `body` from `key`'s first event on that
/// `coverage` does not cover (nothing when no event of the key was read:
/// then the tiles cover every bucket any row needs, or the key has none).
fn note_uncovered(
    source: &SourceTable,
    coverage: &TimeRanges,
    key: usize,
    body: EventRange,
    missing: &mut TimeRanges,
) {
    let Some(first) = source.first_needed.get(key).copied().flatten() else {
        return;
    };
    let start = body.start.map_or(first, |s| s.max(first));
    if !coverage.contains_range(start, body.end) {
        *missing = missing.union(&coverage.missing(start, body.end));
    }
}

/// Building the table: reading the tile scans and events, laying them out.
struct TableBuild {
    plan: Arc<LookupPlan>,
    events: Arc<dyn ExecutionPlan>,
    tile_scans: Vec<Arc<dyn ExecutionPlan>>,
    reach: Arc<TileReach>,
    context: Arc<TaskContext>,
    tile_rows: Count,
    events_read: Count,
}

impl TableBuild {
    async fn run(self) -> Result<BuiltTable> {
        let reservation = Arc::new(
            MemoryConsumer::new("TileLookupExec table").register(self.context.memory_pool()),
        );
        let scans = futures::future::try_join_all(
            self.tile_scans
                .iter()
                .map(|scan| read_all(scan, &self.context, &reservation)),
        );
        let (index, scans, events) = futures::try_join!(
            self.reach.index(),
            scans,
            read_all(&self.events, &self.context, &reservation)
        )?;
        let plan = Arc::clone(&self.plan);
        let number = SpawnedTask::spawn_blocking(move || -> Result<_> {
            let key_columns = plan.tile_key_columns;
            let scans = scans
                .iter()
                .map(|batches| ScanRows::new(&index, batches, key_columns))
                .collect::<Result<Vec<_>>>()?;
            let events = KeyedEvents::new(&index, events, &plan.events)?;
            Ok((index, Arc::new(scans), Arc::new(events)))
        });
        let (index, scans, events) = joined(number.join_unwind().await)?;
        self.tile_rows.add(scans.iter().map(ScanRows::len).sum());
        self.events_read.add(events.len());
        // Each source decodes its states on a thread of its own.
        let sources = (0..self.plan.sources.len()).map(|source| {
            let (plan, scans, events) = (
                Arc::clone(&self.plan),
                Arc::clone(&scans),
                Arc::clone(&events),
            );
            let key_count = index.key_count();
            let build = SpawnedTask::spawn_blocking(move || {
                let source = &plan.sources[source];
                SourceTable::build(
                    source.function.as_ref(),
                    &source.input,
                    &source.grid,
                    &source.arguments,
                    &scans[source.input.scan],
                    &events,
                    key_count,
                )
            });
            async move { joined(build.join_unwind().await) }
        });
        let sources = futures::future::try_join_all(sources).await?;
        let windows = self.plan.windows.iter().map(|w| (w.source, w.shape));
        let table = LookupTable::new(sources, windows);
        // What was read is dropped by now; the table stays.
        let table_bytes = table.heap_bytes();
        let read_bytes = reservation.size();
        grow(&reservation, table_bytes, "its table of bucket states")?;
        reservation.shrink(read_bytes);
        Ok(BuiltTable {
            table,
            _reservation: reservation,
        })
    }
}

/// The fewest rows a run of the input is answered in, and the most.
const RUN_ROWS: std::ops::RangeInclusive<usize> = 8192..=262_144;

/// How many rows each run of a partition of `total` rows holds: large
/// ones (each walks its own part of the table), but at least four per
/// thread `parallelism` allows, so that threads finishing early find
/// another (a key's rows are never split, and a busy key makes its run long).
fn run_rows(total: usize, parallelism: usize) -> usize {
    (total / (4 * parallelism)).clamp(*RUN_ROWS.start(), *RUN_ROWS.end())
}

/// The rows of `batches` (a partition's input) in key and time order, cut
/// into runs, on a blocking thread. Ordering needs only the key index, ready
/// long before the table: it runs while the table is built.
async fn order_rows(
    plan: Arc<LookupPlan>,
    reach: Arc<TileReach>,
    batches: Arc<Vec<RecordBatch>>,
    parallelism: usize,
    baseline: BaselineMetrics,
) -> Result<KeyOrder> {
    let index = reach.index().await?;
    let ordering = SpawnedTask::spawn_blocking(move || {
        let _timer = baseline.elapsed_compute().timer();
        let total = batches.iter().map(RecordBatch::num_rows).sum();
        KeyOrder::new(
            &index,
            &batches,
            &plan.spine_keys,
            plan.spine_time,
            run_rows(total, parallelism),
        )
    });
    joined(ordering.join_unwind().await)
}

/// The answers of the rows of `order`, run by run, several at once on blocking threads.
async fn answer_all(
    plan: &Arc<LookupPlan>,
    table: &Arc<BuiltTable>,
    order: KeyOrder,
    parallelism: usize,
    baseline: &BaselineMetrics,
) -> Result<Answers> {
    let order = Arc::new(order);
    let runs = futures::stream::iter(0..order.runs().len())
        .map(|run| {
            let (plan, table, order) = (Arc::clone(plan), Arc::clone(table), Arc::clone(&order));
            let timer = baseline.elapsed_compute().clone();
            SpawnedTask::spawn_blocking(move || {
                let _timer = timer.timer();
                let rows = &order.rows()[order.runs()[run].clone()];
                plan.answer_run(&table.table, rows)
            })
            .join_unwind()
        })
        .buffered(parallelism)
        .map(joined)
        .try_collect::<Vec<_>>()
        .await?;
    Answers::new(&order, runs)
}

/// The result of a blocking task, its panic or cancellation as an error.
fn joined<T, E: std::error::Error + Send + Sync + 'static>(
    result: std::result::Result<Result<T>, E>,
) -> Result<T> {
    result.map_err(|e| DataFusionError::External(Box::new(e)))?
}

/// Every batch of every partition of `plan`, each partition read by a task
/// of its own (so that decoding files runs on every thread, not only on the
/// one polling the table's build) and counted in `reservation` as they arrive.
async fn read_all(
    plan: &Arc<dyn ExecutionPlan>,
    context: &Arc<TaskContext>,
    reservation: &Arc<MemoryReservation>,
) -> Result<Vec<RecordBatch>> {
    let partitions = plan.properties().output_partitioning().partition_count();
    let reads = (0..partitions).map(|partition| {
        let stream = plan.execute(partition, Arc::clone(context));
        let reservation = Arc::clone(reservation);
        let read = SpawnedTask::spawn(async move {
            stream?
                .and_then(|batch| {
                    let reservation = Arc::clone(&reservation);
                    async move {
                        let bytes = batch.get_array_memory_size();
                        grow(&reservation, bytes, "the tile rows and events it reads")?;
                        Ok(batch)
                    }
                })
                .try_collect::<Vec<_>>()
                .await
        });
        async move { joined(read.join_unwind().await) }
    });
    Ok(futures::future::try_join_all(reads)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// Grows `reservation` by `bytes`, naming `what` needed them when the pool is full.
fn grow(reservation: &MemoryReservation, bytes: usize, what: &str) -> Result<()> {
    reservation.try_grow(bytes).map_err(|e| {
        DataFusionError::ResourcesExhausted(format!(
            "a tile lookup stage needs {bytes} bytes for {what} (SET tessera.prefer_tile_lookup = false sorts and sweeps instead, spilling): {}",
            e.strip_backtrace()
        ))
    })
}

impl DisplayAs for TileLookupExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "TileLookupExec: time={}, ", self.time_column)?;
        fmt_stages(f, &self.semantics, std::slice::from_ref(&self.stage))
    }
}

impl ExecutionPlan for TileLookupExec {
    fn name(&self) -> &str {
        "TileLookupExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// Rows leave in the order and partition they came in.
    fn maintains_input_order(&self) -> Vec<bool> {
        let mut maintains = vec![false; 2 + self.tile_scans.len()];
        maintains[0] = true;
        maintains
    }

    /// Every partition of the events and tile scans is read into one table,
    /// and the input's partitions are answered as they are: more partitions
    /// would gain nothing.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; 2 + self.tile_scans.len()]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        [&self.input, &self.events]
            .into_iter()
            .chain(&self.tile_scans)
            .collect()
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
        let (input, events, tile_scans) =
            super::stage_children(children, self.tile_scans.len(), "TileLookupExec")?;
        Ok(Arc::new(Self::try_new(
            input,
            events,
            self.tiles.clone(),
            tile_scans,
            Arc::clone(&self.reach),
            self.fallback,
            Arc::clone(&self.stage),
            self.semantics,
            self.time_column.clone(),
        )?))
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
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, Arc::clone(&context))?;
        let table = self.table(&context)?;
        let (plan, reach) = (Arc::clone(&self.plan), Arc::clone(&self.reach));
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let parallelism = context.session_config().target_partitions().max(1);
        let reservation = MemoryConsumer::new(format!("TileLookupExec[{partition}] input"))
            .register(context.memory_pool());
        let answered = futures::stream::once(async move {
            // The spine must be read whole before the table can be built.
            let counted = &reservation;
            let batches: Vec<RecordBatch> = input
                .and_then(|batch| async move {
                    let bytes = batch.get_array_memory_size();
                    grow(counted, bytes, "the spine rows it answers")?;
                    Ok(batch)
                })
                .try_collect()
                .await?;
            let batches = Arc::new(batches);
            let order = order_rows(
                Arc::clone(&plan),
                reach,
                Arc::clone(&batches),
                parallelism,
                baseline.clone(),
            );
            let (table, order) = futures::try_join!(table.map_err(DataFusionError::Shared), order)?;
            let answers = answer_all(&plan, &table, order, parallelism, &baseline).await?;
            grow(
                &reservation,
                answers.heap_bytes(),
                "the answers it puts in order",
            )?;
            let (answers, schema) = (Arc::new(answers), Arc::clone(&plan.schema));
            // Each batch's answers are gathered on a blocking thread, several
            // at once: the gathers jump across every run's answers.
            let mut first = 0;
            let attached = futures::stream::iter((0..batches.len()).map(move |i| {
                let batch = batches[i].clone();
                let at = first;
                first += batch.num_rows();
                let (answers, schema, baseline) =
                    (Arc::clone(&answers), Arc::clone(&schema), baseline.clone());
                SpawnedTask::spawn_blocking(move || {
                    let _timer = baseline.elapsed_compute().timer();
                    let attached = answers.attach(&batch, at, &schema)?;
                    baseline.record_output(attached.num_rows());
                    Ok(attached)
                })
                .join_unwind()
            }))
            .buffered(parallelism)
            .map(joined)
            // The reservation lives as long as the batches it accounts for.
            .inspect(move |_| {
                let _ = &reservation;
            });
            Ok::<_, DataFusionError>(attached)
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.plan.schema),
            answered,
        )))
    }
}
