//! [`PointInTimeExec`]: one stage of the training set, computed by a per-key sweep.
//!
//! Both inputs arrive hash-partitioned on the key columns (co-partitioned)
//! and sorted by key, then time — requirements the exec declares, so
//! DataFusion's optimizer inserts the repartitions and (spilling) sorts. Each
//! partition is then a merge of two sorted streams: for every run of spine
//! rows with one key, the events of that key are gathered once and grouped
//! into the buckets of each window's grid, and every window slides its parts
//! — raw events at the tail, bucket states, raw events at the head, as
//! [`SemanticsPlan::parts`] says — forward as the spine time advances. Because the
//! parts' bounds only move forward in time, each event and bucket enters and
//! leaves each part once: the cost grows with events + spine rows, never
//! their product, and a window holds at most one bucket of raw events at
//! each edge.
//!
//! With `use_tile_store`, every tile scan of the stage is one more input
//! ([`super::TileScanExec`], one per set of tile files, holding the states
//! of one or more tile sets side by side), co-partitioned with the others
//! and sorted by key, then bucket, and read forward key by key like the
//! events. A window's buckets then come from its tile set's state columns
//! of the key's tile rows wherever its tile set
//! is covered and are built from raw events elsewhere; the raw edges stay raw.
//! Unless the coverage fallback is `raw`, a row whose buckets reach a range
//! the tiles do not cover (from the key's first event on) fails the query
//! with the missing ranges.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::{SortOptions, concat_batches};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::row::{OwnedRow, Row, RowConverter, Rows, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    Distribution, EquivalenceProperties, LexOrdering, OrderingRequirements, Partitioning,
    PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::distribution_requirements::InputDistributionRequirements;
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use tessera_aggregates::{BucketSource, Part, SlidingAggregate};
use tessera_time::{EventRange, Grid, TimeRanges, WindowLength, count_before, first_from};

use super::tile_scan::TILE_BUCKET_COLUMN;
use super::time::{non_null_micros, to_micros};
use super::window_column::{stage_schema, uncovered_buckets_error, window_column};
use crate::node::{
    EVENT_TIME_COLUMN, SemanticsPlan, StagePlan, TileSetRef, WindowParts, event_argument_column,
    event_key_column, fmt_stages,
};
use crate::options::CoverageFallback;

/// A tile set a stage reads: the feature and grid it serves, what it
/// covers, and where its states are among the stage's tile scans.
#[derive(Debug, Clone)]
pub struct TileInput {
    /// The feature's position in the stage.
    pub feature: usize,
    /// The tile set.
    pub tile_set: TileSetRef,
    /// Its covered bucket ranges at the pinned version.
    pub coverage: TimeRanges,
    /// The tile scan reading it.
    pub scan: usize,
    /// Its state columns among the scan's (which follow the keys and bucket).
    pub states: Range<usize>,
}

/// The tile input (of `inputs`) that serves `feature`'s windows on `grid`, if any.
pub fn serving_input(inputs: &[TileInput], feature: usize, grid: &Grid) -> Option<usize> {
    inputs
        .iter()
        .position(|t| t.feature == feature && t.tile_set.grid == *grid)
}

/// Keys and times sort ascending with nulls first on both sides, so that the
/// row encodings of spine and event keys compare in the same order.
const SORT: SortOptions = SortOptions {
    descending: false,
    nulls_first: true,
};

/// Computes the feature windows of one stage for every spine row.
#[derive(Debug)]
pub struct PointInTimeExec {
    spine: Arc<dyn ExecutionPlan>,
    events: Arc<dyn ExecutionPlan>,
    tiles: Vec<TileInput>,
    /// The scans `tiles` name.
    tile_scans: Vec<Arc<dyn ExecutionPlan>>,
    fallback: CoverageFallback,
    stage: Arc<StagePlan>,
    semantics: SemanticsPlan,
    time_column: String,
    layout: Arc<Layout>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// Column positions, resolved once.
#[derive(Debug)]
struct Layout {
    spine_keys: Vec<usize>,
    spine_time: usize,
    event_keys: Vec<usize>,
    event_time: usize,
    /// The key columns of a tile scan (its bucket column follows them).
    tile_keys: Vec<usize>,
    /// Per feature of the stage, its argument columns in the events.
    event_arguments: Vec<Vec<usize>>,
    schema: SchemaRef,
}

impl PointInTimeExec {
    /// A stage over `spine` (which carries the spine time column), `events`
    /// and the stage's tile sets with their scans (none without `use_tile_store`).
    #[allow(clippy::too_many_arguments)]
    pub fn try_new(
        spine: Arc<dyn ExecutionPlan>,
        events: Arc<dyn ExecutionPlan>,
        tiles: Vec<TileInput>,
        tile_scans: Vec<Arc<dyn ExecutionPlan>>,
        fallback: CoverageFallback,
        stage: Arc<StagePlan>,
        semantics: SemanticsPlan,
        time_column: String,
    ) -> Result<Self> {
        if let Some(input) = tiles.iter().find(|t| t.scan >= tile_scans.len()) {
            return internal_err!(
                "PointInTimeExec's tile set {} reads scan {} of {}",
                input.tile_set.id,
                input.scan,
                tile_scans.len()
            );
        }
        let layout = Arc::new(Layout::try_new(
            &spine.schema(),
            &events.schema(),
            &stage,
            &time_column,
        )?);
        let partitions = spine.properties().output_partitioning().partition_count();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&layout.schema)),
            Partitioning::UnknownPartitioning(partitions),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            spine,
            events,
            tiles,
            tile_scans,
            fallback,
            stage,
            semantics,
            time_column,
            layout,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    fn key_exprs(schema: &Schema, indices: &[usize]) -> Vec<Arc<dyn PhysicalExpr>> {
        indices
            .iter()
            .map(|&i| Arc::new(Column::new(schema.field(i).name(), i)) as Arc<dyn PhysicalExpr>)
            .collect()
    }

    fn ordering(schema: &Schema, keys: &[usize], time: usize) -> LexOrdering {
        let exprs = Self::key_exprs(schema, keys)
            .into_iter()
            .chain(Self::key_exprs(schema, &[time]))
            .map(|expr| PhysicalSortExpr::new(expr, SORT));
        LexOrdering::new(exprs).expect("keys are never empty")
    }
}

impl Layout {
    fn try_new(
        spine: &Schema,
        events: &Schema,
        stage: &StagePlan,
        time_column: &str,
    ) -> Result<Self> {
        let spine_keys = stage
            .spine_keys
            .iter()
            .map(|k| spine.index_of(k))
            .collect::<Result<Vec<_>, _>>()?;
        let event_keys = (0..spine_keys.len())
            .map(|i| events.index_of(&event_key_column(i)))
            .collect::<Result<Vec<_>, _>>()?;
        let event_arguments = stage
            .features
            .iter()
            .enumerate()
            .map(|(i, feature)| {
                (0..feature.argument_columns)
                    .map(|j| events.index_of(&event_argument_column(i, j)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            tile_keys: (0..spine_keys.len()).collect(),
            spine_keys,
            spine_time: spine.index_of(time_column)?,
            event_keys,
            event_time: events.index_of(EVENT_TIME_COLUMN)?,
            event_arguments,
            schema: stage_schema(spine, stage),
        })
    }
}

impl DisplayAs for PointInTimeExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PointInTimeExec: time={}, ", self.time_column)?;
        fmt_stages(f, &self.semantics, std::slice::from_ref(&self.stage))
    }
}

impl ExecutionPlan for PointInTimeExec {
    fn name(&self) -> &str {
        "PointInTimeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        self.input_distribution_requirements().into_per_child()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        let mut distributions = vec![
            Distribution::KeyPartitioned(Self::key_exprs(
                &self.spine.schema(),
                &self.layout.spine_keys,
            )),
            Distribution::KeyPartitioned(Self::key_exprs(
                &self.events.schema(),
                &self.layout.event_keys,
            )),
        ];
        for scan in &self.tile_scans {
            distributions.push(Distribution::KeyPartitioned(Self::key_exprs(
                &scan.schema(),
                &self.layout.tile_keys,
            )));
        }
        InputDistributionRequirements::co_partitioned(distributions)
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        let mut orderings = vec![
            Some(OrderingRequirements::from(Self::ordering(
                &self.spine.schema(),
                &self.layout.spine_keys,
                self.layout.spine_time,
            ))),
            Some(OrderingRequirements::from(Self::ordering(
                &self.events.schema(),
                &self.layout.event_keys,
                self.layout.event_time,
            ))),
        ];
        for scan in &self.tile_scans {
            orderings.push(Some(OrderingRequirements::from(Self::ordering(
                &scan.schema(),
                &self.layout.tile_keys,
                self.layout.tile_keys.len(),
            ))));
        }
        orderings
    }

    /// The sweep needs its inputs sorted by key and time; a sort pushed
    /// through it from above would break that, so it claims no order.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false; 2 + self.tile_scans.len()]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        [&self.spine, &self.events]
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
        let (spine, events, tile_scans) =
            super::stage_children(children, self.tile_scans.len(), "PointInTimeExec")?;
        Ok(Arc::new(Self::try_new(
            spine,
            events,
            self.tiles.clone(),
            tile_scans,
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
        let reservation = MemoryConsumer::new(format!("PointInTimeExec[{partition}]"))
            .register(context.memory_pool());
        let spine = self.spine.execute(partition, Arc::clone(&context))?;
        let events = self.events.execute(partition, Arc::clone(&context))?;
        let key_fields = self
            .layout
            .spine_keys
            .iter()
            .map(|&i| {
                SortField::new_with_options(self.spine.schema().field(i).data_type().clone(), SORT)
            })
            .collect();
        let converter = Arc::new(RowConverter::new(key_fields)?);
        let tile_cursors = self
            .tile_scans
            .iter()
            .map(|scan| {
                let stream = scan.execute(partition, Arc::clone(&context))?;
                Ok(EventCursor::new(
                    stream,
                    Arc::clone(&converter),
                    self.layout.tile_keys.clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut shapes = WindowShapes::new(self.semantics);
        let sweep = Sweep {
            tile_cursors,
            key_tiles: Vec::new(),
            spine,
            events: EventCursor::new(
                events,
                Arc::clone(&converter),
                self.layout.event_keys.clone(),
            ),
            converter,
            layout: Arc::clone(&self.layout),
            windows: build_windows(&self.stage, &mut shapes, &self.tiles, self.fallback)?,
            shapes,
            current_key: None,
            key_times: Vec::new(),
            key_arguments: vec![Vec::new(); self.layout.event_arguments.len()],
            stats: SweepMetrics::new(&self.metrics, partition),
            reservation,
        };
        let stream = futures::stream::try_unfold(sweep, |mut sweep| async move {
            let Some(batch) = sweep.spine.next().await.transpose()? else {
                return Ok(None);
            };
            let output = sweep.process(batch).await?;
            sweep.stats.baseline.record_output(output.num_rows());
            Ok(Some((output, sweep)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.layout.schema),
            stream,
        )))
    }
}

/// Output-row and input counters shown by `EXPLAIN ANALYZE`.
struct SweepMetrics {
    baseline: BaselineMetrics,
    events: Count,
    keys: Count,
    buckets: Count,
}

impl SweepMetrics {
    fn new(metrics: &ExecutionPlanMetricsSet, partition: usize) -> Self {
        Self {
            baseline: BaselineMetrics::new(metrics, partition),
            events: MetricBuilder::new(metrics).counter("events_matched", partition),
            keys: MetricBuilder::new(metrics).counter("spine_keys", partition),
            buckets: MetricBuilder::new(metrics).counter("buckets_built", partition),
        }
    }
}

/// Where one part of a window stands in its items: items `[oldest, next)` are in it.
#[derive(Debug, Default, Clone, Copy)]
struct PartCursor {
    oldest: usize,
    next: usize,
}

impl PartCursor {
    /// Moves the part over `times` (item times, ascending) to `[start, end)`
    /// and returns its items. Both bounds only move forward as the spine
    /// time advances.
    fn advance(&mut self, times: &[i64], range: EventRange) -> Range<usize> {
        if let Some(start) = range.start {
            self.oldest += count_before(&times[self.oldest..], start);
            self.next = self.next.max(self.oldest);
        }
        self.next += count_before(&times[self.next..], range.end);
        self.oldest..self.next
    }
}

/// A window's tile set: which scan and columns serve it, what it covers,
/// and what rows needed beyond that.
struct WindowTiles {
    scan: usize,
    states: Range<usize>,
    tile_set: TileSetRef,
    coverage: TimeRanges,
    /// Whether uncovered ranges fail the query rather than come from raw events.
    strict: bool,
    /// Needed bucket ranges the tiles do not cover (reported when `strict`).
    missing: TimeRanges,
}

/// One requested window: its sliding aggregate and where its parts stand.
struct WindowCursor {
    feature: usize,
    /// The feature's name, for errors.
    feature_name: String,
    window: WindowLength,
    grid: Grid,
    /// Its length and grid's position in [`WindowShapes`].
    shape: usize,
    aggregate: Box<dyn SlidingAggregate>,
    result_type: datafusion::arrow::datatypes::DataType,
    default: Option<datafusion::common::ScalarValue>,
    /// Start times of the loaded key's non-empty buckets on this window's grid.
    bucket_starts: Vec<i64>,
    /// Where each of those buckets comes from (kept to reuse its buffer).
    bucket_sources: Vec<BucketSource>,
    /// With `use_tile_store`: where the window's tiles come from.
    tiles: Option<WindowTiles>,
    /// The first bucket with raw events of the loaded key: nothing before it is needed.
    first_needed: Option<i64>,
    buckets: PartCursor,
}

/// The distinct lengths and grids of a stage's windows, the parts each
/// splits the current row into and the loaded key's events in its raw
/// parts — worked out once per row and shared by every window of that
/// length and grid (every feature of a stage reads the same events).
struct WindowShapes {
    semantics: SemanticsPlan,
    shapes: Vec<(WindowLength, Grid)>,
    /// Per shape, the current row's parts.
    parts: Vec<WindowParts>,
    /// Per shape, the events in the current row's tail and head parts.
    tails: Vec<PartCursor>,
    heads: Vec<PartCursor>,
}

/// What a window of one shape sees at the current row.
struct ShapeAtRow<'a> {
    parts: &'a WindowParts,
    tail: Range<usize>,
    head: Range<usize>,
}

impl WindowShapes {
    fn new(semantics: SemanticsPlan) -> Self {
        Self {
            semantics,
            shapes: Vec::new(),
            parts: Vec::new(),
            tails: Vec::new(),
            heads: Vec::new(),
        }
    }

    /// The position of `window` on `grid`, added when new.
    fn position(&mut self, window: WindowLength, grid: Grid) -> usize {
        let shape = (window, grid);
        self.shapes
            .iter()
            .position(|s| *s == shape)
            .unwrap_or_else(|| {
                self.shapes.push(shape);
                self.shapes.len() - 1
            })
    }

    /// Starts every shape's raw parts at the first event of a new key.
    fn reset(&mut self) {
        for cursors in [&mut self.tails, &mut self.heads] {
            cursors.clear();
            cursors.resize(self.shapes.len(), PartCursor::default());
        }
    }

    /// Splits every shape at row time `t`, moving its raw parts over the
    /// key's event `times`.
    fn split_at(&mut self, t: i64, times: &[i64]) {
        self.parts.clear();
        for (shape, (window, grid)) in self.shapes.iter().enumerate() {
            let parts = self.semantics.parts(*window, grid, t);
            if let Some(tail) = parts.tail {
                self.tails[shape].advance(times, tail);
            }
            if let Some(head) = parts.head {
                self.heads[shape].advance(times, head);
            }
            self.parts.push(parts);
        }
    }

    /// What windows of `shape` see at the row last split.
    fn at_row(&self, shape: usize) -> ShapeAtRow<'_> {
        let items = |cursor: &PartCursor| cursor.oldest..cursor.next;
        ShapeAtRow {
            parts: &self.parts[shape],
            tail: items(&self.tails[shape]),
            head: items(&self.heads[shape]),
        }
    }
}

fn build_windows(
    stage: &StagePlan,
    shapes: &mut WindowShapes,
    tile_inputs: &[TileInput],
    fallback: CoverageFallback,
) -> Result<Vec<WindowCursor>> {
    let mut windows = Vec::new();
    for (feature_index, feature) in stage.features.iter().enumerate() {
        for window in &feature.windows {
            let tiles =
                serving_input(tile_inputs, feature_index, &window.grid).map(|input| WindowTiles {
                    scan: tile_inputs[input].scan,
                    states: tile_inputs[input].states.clone(),
                    tile_set: tile_inputs[input].tile_set.clone(),
                    coverage: tile_inputs[input].coverage.clone(),
                    strict: fallback == CoverageFallback::Error,
                    missing: TimeRanges::new(),
                });
            windows.push(WindowCursor {
                feature: feature_index,
                feature_name: feature.name.to_string(),
                window: window.window,
                grid: window.grid,
                shape: shapes.position(window.window, window.grid),
                aggregate: feature.aggregate.implementation()?.sliding(),
                result_type: feature.aggregate.result_type.clone(),
                default: feature.default.clone(),
                bucket_starts: Vec::new(),
                bucket_sources: Vec::new(),
                tiles,
                first_needed: None,
                buckets: PartCursor::default(),
            });
        }
    }
    Ok(windows)
}

impl WindowCursor {
    /// Loads a key's events and tile rows, taking each bucket from the tiles
    /// where they cover it and building it from the events elsewhere.
    fn load(
        &mut self,
        arguments: &[ArrayRef],
        times: &[i64],
        key_tiles: &[RecordBatch],
    ) -> Result<usize> {
        let runs = bucket_runs(&self.grid, times);
        self.first_needed = times.first().map(|&ts| self.grid.floor(ts));
        let (tile_starts, tile_states): (&[i64], &[ArrayRef]) =
            match self.tiles.as_ref().map(|t| (&key_tiles[t.scan], &t.states)) {
                Some((rows, states)) => {
                    let keys = tile_key_count(rows);
                    let starts = rows.column(keys).as_primitive::<Int64Type>().values();
                    (starts, &rows.columns()[keys + 1..][states.clone()])
                }
                None => (&[], &[]),
            };
        let coverage = self.tiles.as_ref().map(|t| &t.coverage);
        merge_buckets(
            &runs,
            coverage,
            tile_starts,
            &mut self.bucket_starts,
            &mut self.bucket_sources,
        );
        self.aggregate
            .load(arguments, &self.bucket_sources, tile_states)?;
        self.buckets = PartCursor::default();
        Ok(self.aggregate.bucket_count())
    }

    /// Notes the part of `[start, end)` the tiles do not cover (from the key's
    /// first event on), when uncovered ranges are errors.
    fn require_buckets(&mut self, start: Option<i64>, end: i64) {
        let (Some(tiles), Some(first)) = (self.tiles.as_mut(), self.first_needed) else {
            return;
        };
        let start = start.map_or(first, |s| s.max(first));
        if tiles.strict && !tiles.coverage.contains_range(start, end) {
            tiles.missing = tiles.missing.union(&tiles.coverage.missing(start, end));
        }
    }

    /// Loads a key's events, taking the buckets `donor` (same feature and grid) built.
    fn load_sharing(&mut self, arguments: &[ArrayRef], donor: &WindowCursor) -> Result<()> {
        self.bucket_starts.clone_from(&donor.bucket_starts);
        self.first_needed = donor.first_needed;
        self.aggregate
            .load_sharing_buckets(arguments, donor.aggregate.as_ref())?;
        self.buckets = PartCursor::default();
        Ok(())
    }

    /// Slides the window's parts to what the row sees and emits its value.
    fn emit_at(&mut self, row: ShapeAtRow<'_>) {
        let aggregate = self.aggregate.as_mut();
        if row.parts.tail.is_some() {
            aggregate.slide(Part::Tail, row.tail);
        }
        let buckets = self.buckets.advance(&self.bucket_starts, row.parts.body);
        aggregate.slide(Part::Buckets, buckets);
        if row.parts.head.is_some() {
            aggregate.slide(Part::Head, row.head);
        }
        aggregate.emit();
        self.require_buckets(row.parts.body.start, row.parts.body.end);
    }

    /// The finished output column of one spine batch, with defaults applied.
    fn finish(&mut self) -> Result<ArrayRef> {
        if let Some(tiles) = self.tiles.as_ref().filter(|t| !t.missing.is_empty()) {
            return Err(uncovered_buckets_error(
                &self.feature_name,
                self.window,
                &tiles.tile_set,
                &tiles.missing,
            ));
        }
        let (values, empty) = self.aggregate.finish()?;
        window_column(values, &empty, &self.result_type, self.default.as_ref())
    }
}

/// The number of key columns of a tile input (everything before the bucket column).
fn tile_key_count(tile_rows: &RecordBatch) -> usize {
    tile_rows
        .schema()
        .index_of(TILE_BUCKET_COLUMN)
        .unwrap_or_default()
}

/// A key's buckets in time order, into `starts` and `sources` (cleared
/// first, so a key reuses the last one's buffers): tile rows where
/// `coverage` covers the bucket, runs of raw events everywhere else. Both
/// inputs ascend (tile rows arrive sorted by key and bucket), and covered
/// and uncovered buckets never share a start, so one merge orders them.
fn merge_buckets(
    runs: &[(i64, usize, usize)],
    coverage: Option<&TimeRanges>,
    tile_starts: &[i64],
    starts: &mut Vec<i64>,
    sources: &mut Vec<BucketSource>,
) {
    starts.clear();
    sources.clear();
    let mut raw = runs
        .iter()
        .filter(|(start, _, _)| !coverage.is_some_and(|c| c.contains(*start)))
        .map(|&(start, from, to)| (start, BucketSource::Events(from, to)))
        .peekable();
    let mut tiles = tile_starts
        .iter()
        .enumerate()
        .map(|(row, &start)| (start, BucketSource::Tile(row)))
        .peekable();
    loop {
        let next = match (raw.peek(), tiles.peek()) {
            (Some(r), Some(t)) if r.0 <= t.0 => raw.next(),
            (Some(_), Some(_)) | (None, Some(_)) => tiles.next(),
            (Some(_), None) => raw.next(),
            (None, None) => break,
        };
        if let Some((start, source)) = next {
            starts.push(start);
            sources.push(source);
        }
    }
}

/// `(bucket start, first event, end)` of each run of `times` in one bucket of `grid`.
fn bucket_runs(grid: &Grid, times: &[i64]) -> Vec<(i64, usize, usize)> {
    let mut runs: Vec<(i64, usize, usize)> = Vec::new();
    let mut previous = None;
    for (row, &ts) in times.iter().enumerate() {
        let index = grid.index(ts);
        if previous != Some(index) {
            if let Some(last) = runs.last_mut() {
                last.2 = row;
            }
            runs.push((grid.bucket_start(index), row, times.len()));
            previous = Some(index);
        }
    }
    runs
}

/// The merge of one partition's spine, events and tiles.
struct Sweep {
    spine: SendableRecordBatchStream,
    events: EventCursor,
    /// One cursor per tile scan over the partition's tile rows, and the current key's rows of each.
    tile_cursors: Vec<EventCursor>,
    key_tiles: Vec<RecordBatch>,
    converter: Arc<RowConverter>,
    layout: Arc<Layout>,
    windows: Vec<WindowCursor>,
    shapes: WindowShapes,
    /// The key of the spine rows being processed, its events' times, and
    /// per feature its events' argument columns.
    current_key: Option<OwnedRow>,
    key_times: Vec<i64>,
    key_arguments: Vec<Vec<ArrayRef>>,
    stats: SweepMetrics,
    /// The current key's events, tile rows and bucket states, in DataFusion's memory pool.
    reservation: MemoryReservation,
}

impl Sweep {
    fn spine_key_rows(&self, batch: &RecordBatch) -> Result<Rows> {
        let keys: Vec<ArrayRef> = self
            .layout
            .spine_keys
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        Ok(self.converter.convert_columns(&keys)?)
    }

    async fn process(&mut self, batch: RecordBatch) -> Result<RecordBatch> {
        // Compute time excludes the awaits, which run the upstream operators.
        let elapsed = self.stats.baseline.elapsed_compute().clone();
        let mut timer = elapsed.timer();
        let rows = self.spine_key_rows(&batch)?;
        let times = to_micros(batch.column(self.layout.spine_time))?;
        for row in 0..batch.num_rows() {
            let key = rows.row(row);
            if self
                .current_key
                .as_ref()
                .is_none_or(|current| current.row() != key)
            {
                timer.stop();
                let events = self.events.take_key(key).await?;
                self.key_tiles.clear();
                for cursor in &mut self.tile_cursors {
                    self.key_tiles.push(cursor.take_key(key).await?);
                }
                timer.restart();
                self.start_key(key, &events)?;
            }
            self.emit_row(&times, row);
        }
        let mut columns = batch.columns().to_vec();
        for window in &mut self.windows {
            columns.push(window.finish()?);
        }
        timer.done();
        Ok(RecordBatch::try_new(
            Arc::clone(&self.layout.schema),
            columns,
        )?)
    }

    fn emit_row(&mut self, times: &Int64Array, row: usize) {
        if times.is_null(row) {
            self.windows
                .iter_mut()
                .for_each(|w| w.aggregate.emit_null());
            return;
        }
        self.shapes.split_at(times.value(row), &self.key_times);
        for window in &mut self.windows {
            window.emit_at(self.shapes.at_row(window.shape));
        }
    }

    /// Resets every window onto the events of a new key.
    fn start_key(&mut self, key: Row<'_>, events: &RecordBatch) -> Result<()> {
        self.key_times = non_null_micros(events.column(self.layout.event_time))?;
        self.shapes.reset();
        for (arguments, columns) in self
            .key_arguments
            .iter_mut()
            .zip(&self.layout.event_arguments)
        {
            arguments.clear();
            arguments.extend(columns.iter().map(|&i| Arc::clone(events.column(i))));
        }
        for index in 0..self.windows.len() {
            let (earlier, rest) = self.windows.split_at_mut(index);
            let window = &mut rest[0];
            let arguments = &self.key_arguments[window.feature];
            // Windows of one feature on one grid share the bucket states the first one built.
            let donor = earlier
                .iter()
                .find(|w| w.feature == window.feature && w.grid == window.grid);
            match donor {
                Some(donor) => window.load_sharing(arguments, donor)?,
                None => self.stats.buckets.add(window.load(
                    arguments,
                    &self.key_times,
                    &self.key_tiles,
                )?),
            }
        }
        let bucket_bytes: usize = self
            .windows
            .iter()
            .map(|w| w.aggregate.bucket_bytes())
            .sum();
        let tile_bytes: usize = self
            .key_tiles
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum();
        let bytes = events.get_array_memory_size()
            + self.key_times.capacity() * 8
            + bucket_bytes
            + tile_bytes;
        self.reservation.try_resize(bytes).map_err(|e| {
            datafusion::common::DataFusionError::ResourcesExhausted(format!(
                "the events of one key need {bytes} bytes: {}",
                e.strip_backtrace()
            ))
        })?;
        self.current_key = Some(key.owned());
        self.stats.keys.add(1);
        self.stats.events.add(events.num_rows());
        Ok(())
    }
}

/// Reads a key-sorted stream (events or tile rows) forward, one key at a time.
struct EventCursor {
    stream: SendableRecordBatchStream,
    converter: Arc<RowConverter>,
    key_columns: Vec<usize>,
    /// The batch being read, its key rows, and the first unread row.
    batch: Option<(RecordBatch, Rows)>,
    offset: usize,
    exhausted: bool,
    /// The answer for a key with no events, built once: most keys of a
    /// sparse input have none, and a fresh empty batch allocates every column.
    no_events: RecordBatch,
}

impl EventCursor {
    /// A cursor over `stream`, whose `key_columns` `converter` encodes.
    fn new(
        stream: SendableRecordBatchStream,
        converter: Arc<RowConverter>,
        key_columns: Vec<usize>,
    ) -> Self {
        Self {
            no_events: RecordBatch::new_empty(stream.schema()),
            stream,
            converter,
            key_columns,
            batch: None,
            offset: 0,
            exhausted: false,
        }
    }

    /// The events whose key equals `key`, skipping smaller keys. Keys must be
    /// asked for in ascending order, as the spine's are.
    async fn take_key(&mut self, key: Row<'_>) -> Result<RecordBatch> {
        let mut pieces = Vec::new();
        while self.fill().await? {
            let Some((batch, rows)) = &self.batch else {
                break;
            };
            let n = batch.num_rows();
            let start = first_from(self.offset, n, |i| rows.row(i) >= key);
            let end = first_from(start, n, |i| rows.row(i) > key);
            if end > start {
                pieces.push(batch.slice(start, end - start));
            }
            self.offset = end;
            if end < n {
                break;
            }
        }
        match pieces.as_slice() {
            [] => Ok(self.no_events.clone()),
            [only] => Ok(only.clone()),
            _ => Ok(concat_batches(&self.stream.schema(), &pieces)?),
        }
    }

    /// Makes sure a batch with unread rows is loaded; `false` at the end of the stream.
    async fn fill(&mut self) -> Result<bool> {
        while !self.exhausted
            && self
                .batch
                .as_ref()
                .is_none_or(|(batch, _)| self.offset >= batch.num_rows())
        {
            match self.stream.next().await.transpose()? {
                Some(batch) => {
                    let keys: Vec<ArrayRef> = self
                        .key_columns
                        .iter()
                        .map(|&i| Arc::clone(batch.column(i)))
                        .collect();
                    let rows = self.converter.convert_columns(&keys)?;
                    self.batch = Some((batch, rows));
                    self.offset = 0;
                }
                None => {
                    self.exhausted = true;
                    self.batch = None;
                }
            }
        }
        Ok(self.batch.is_some())
    }
}
