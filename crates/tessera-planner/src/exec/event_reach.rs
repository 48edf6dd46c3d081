//! [`EventReachExec`]: drops events no spine row can see, or none needs raw,
//! before they are repartitioned and sorted.
//!
//! No semantics includes an event after its row's time, and a window of
//! length `w` on grid `b` reaches back at most to `floor_b(t - w)`. Once the
//! spine is read ([`SpineTimes`]), an event is kept only if it lies in
//! `[lower, t_max]`, where `lower` is the earliest reach of any window from
//! the earliest spine time. Unbounded (`all`) windows reach back forever from
//! raw events — except with tiles, where they need raw events only in their
//! head (`floor_b(t - buffer)` on) and wherever their tile set is not covered.
//!
//! With tiles, most events a row sees arrive as bucket states, so the stage
//! also prunes *per key*: from the spine's rows it builds, for every key, the
//! union over its rows and windows of the parts read raw
//! ([`SemanticsPlan::parts`]: the partial edge buckets, plus body buckets the
//! tiles do not cover), and keeps an event only inside its key's set. When
//! uncovered buckets are errors, this applies only if the tiles cover every
//! bucket any row could need, so that the sweep's coverage check (which
//! looks at a key's first event) sees what it would have seen unpruned.
//! Pruning changes no result: every event a row reads raw is kept.
//!
//! When no event can be kept — tiles cover every bucket of a bucketed query,
//! so no key reads anything raw — the stage never reads its input: the
//! events' scan is not started, and the query's time no longer grows with
//! the number of events. The `events_read` metric counts what was read.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, StreamExt};
use tessera_time::{Duration, EventRange, Grid, TimeRanges, WindowLength};

use super::key_index::KeyIndex;
use super::spine_times::{PublishedSpine, SpineTimes};
use super::time::to_micros;
use crate::node::{SemanticsPlan, WindowSource};

/// One window of a stage, as far as its reach into the events goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowReach {
    /// Its length.
    pub window: WindowLength,
    /// Its grid.
    pub grid: Grid,
    /// The coverage of its tile set, when it reads tiles.
    pub coverage: Option<TimeRanges>,
}

/// How far back a stage's windows reach.
#[derive(Debug, Clone)]
pub struct EventReach {
    /// Every window of the stage.
    pub windows: Vec<WindowReach>,
    /// The continuous buffer of bucketed plans (raw events from `floor_b(t - d)` on).
    pub buffer: Option<Duration>,
    /// Per-key pruning to the parts each row reads raw (stages with tiles).
    pub by_key: Option<KeyedReach>,
}

/// What per-key pruning needs to know about the stage.
#[derive(Debug, Clone)]
pub struct KeyedReach {
    /// The stage's key columns in the spine.
    pub spine_keys: Vec<String>,
    /// The spine's time column.
    pub time_column: String,
    /// How each row's windows split into raw parts and buckets.
    pub semantics: SemanticsPlan,
    /// Whether buckets the tiles do not cover fail the query.
    pub strict: bool,
}

/// Which events to keep for one spine.
#[derive(Debug)]
struct Keep {
    lower: i64,
    upper: i64,
    /// Coverages of unbounded windows read from tiles: events they do not cover are kept.
    uncovered_of: Vec<TimeRanges>,
    /// Per key (slot 0), the times some row of that key reads raw.
    keys: Option<KeyIndex>,
}

impl Keep {
    /// Keeps no event.
    fn nothing() -> Self {
        Self {
            lower: i64::MAX,
            upper: i64::MIN,
            uncovered_of: Vec::new(),
            keys: None,
        }
    }

    /// Whether no event can be kept, whatever its key and time.
    fn keeps_nothing(&self) -> bool {
        (self.lower > self.upper && self.uncovered_of.is_empty())
            || self
                .keys
                .as_ref()
                .is_some_and(|keys| keys.extent(0).is_none())
    }

    fn keeps(&self, ts: i64) -> bool {
        ts <= self.upper && (ts >= self.lower || self.uncovered_of.iter().any(|c| !c.contains(ts)))
    }

    /// The mask of `batch`'s events to keep.
    fn mask(
        &self,
        batch: &RecordBatch,
        time_column: usize,
        key_columns: &[usize],
    ) -> Result<BooleanArray> {
        let times = to_micros(batch.column(time_column))?;
        // Plain booleans: an iterator of `Option<bool>` builds a validity bitmap too.
        let Some(keys) = &self.keys else {
            let keep: Vec<bool> = times
                .iter()
                .map(|t| t.is_some_and(|t| self.keeps(t)))
                .collect();
            return Ok(BooleanArray::from(keep));
        };
        let columns: Vec<ArrayRef> = key_columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let batch_keys = keys.batch_keys(&columns)?;
        let keep: Vec<bool> = times
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.is_some_and(|t| {
                    self.keeps(t)
                        && keys
                            .get(&batch_keys, i, 0)
                            .is_some_and(|raw| raw.contains(t))
                })
            })
            .collect();
        Ok(BooleanArray::from(keep))
    }
}

/// Appends to `out` the times the row at `t` reads raw in `window`: its edges,
/// and its whole buckets unless tiles cover them.
fn raw_parts(window: &WindowReach, semantics: &SemanticsPlan, t: i64, out: &mut Vec<(i64, i64)>) {
    let parts = semantics.parts(window.window, &window.grid, t);
    let bounds = |range: EventRange| (range.start.unwrap_or(i64::MIN), range.end);
    out.extend(parts.tail.into_iter().chain(parts.head).map(bounds));
    let (start, end) = bounds(parts.body);
    match &window.coverage {
        None => out.push((start, end)),
        Some(coverage) if coverage.contains_range(start, end) => {}
        Some(coverage) => out.extend_from_slice(coverage.missing(start, end).ranges()),
    }
}

impl EventReach {
    fn keep(&self, spine: &PublishedSpine) -> Result<Keep> {
        let Some((earliest, latest)) = spine.extent else {
            return Ok(Keep::nothing());
        };
        if self.reads_only_covered_buckets(earliest, latest) {
            // Every row's index entry would be empty: building it costs a
            // pass over the spine on the way to the tiles.
            return Ok(Keep::nothing());
        }
        let mut keep = Keep {
            lower: latest,
            upper: latest,
            uncovered_of: Vec::new(),
            keys: None,
        };
        for window in &self.windows {
            let reach = match (window.window.duration(), &window.coverage) {
                (Some(length), _) => window.grid.floor(earliest.saturating_sub(length.micros())),
                (None, Some(coverage)) => {
                    keep.uncovered_of.push(coverage.clone());
                    let head = self.buffer.map_or(0, Duration::micros);
                    window.grid.floor(earliest.saturating_sub(head))
                }
                (None, None) => i64::MIN,
            };
            keep.lower = keep.lower.min(reach);
        }
        if let Some(keyed) = self
            .by_key
            .as_ref()
            .filter(|k| !k.strict || self.fully_covered(earliest, latest))
        {
            let windows = self.distinct_windows();
            keep.keys = Some(KeyIndex::build(
                &keyed.spine_keys,
                &keyed.time_column,
                &spine.batches,
                1,
                |t, raw| {
                    for window in &windows {
                        raw_parts(window, &keyed.semantics, t, &mut raw[0]);
                    }
                },
            )?);
        }
        Ok(keep)
    }

    /// Whether no row in `[earliest, latest]` reads any event raw: the
    /// stage's windows are whole buckets only, every one from tiles that
    /// cover each bucket such a row could need.
    fn reads_only_covered_buckets(&self, earliest: i64, latest: i64) -> bool {
        self.by_key
            .as_ref()
            .is_some_and(|keyed| keyed.semantics.source == WindowSource::Buckets)
            && self.windows.iter().all(|w| w.coverage.is_some())
            && self.fully_covered(earliest, latest)
    }

    /// Whether every window reading tiles finds every bucket a row in
    /// `[earliest, latest]` could need covered.
    fn fully_covered(&self, earliest: i64, latest: i64) -> bool {
        self.windows
            .iter()
            .all(|w| match (&w.coverage, w.window.duration()) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(coverage), Some(length)) => coverage.contains_range(
                    w.grid.floor(earliest.saturating_sub(length.micros())),
                    w.grid.floor(latest.saturating_add(1)),
                ),
            })
    }

    /// The windows, each distinct length, grid and coverage once.
    fn distinct_windows(&self) -> Vec<&WindowReach> {
        let mut distinct: Vec<&WindowReach> = Vec::new();
        for window in &self.windows {
            if !distinct.contains(&window) {
                distinct.push(window);
            }
        }
        distinct
    }

    fn describe(&self) -> String {
        let unbounded_raw = self
            .windows
            .iter()
            .any(|w| w.window.duration().is_none() && w.coverage.is_none());
        let bounds = if unbounded_raw {
            "ts <= max(t)"
        } else {
            "floor_b(min(t) - w) <= ts <= max(t)"
        };
        match self.by_key {
            Some(_) => format!("{bounds}, per key: parts read raw"),
            None => bounds.to_string(),
        }
    }
}

/// Keeps the events some spine row can see (and, with tiles, reads raw).
pub struct EventReachExec {
    input: Arc<dyn ExecutionPlan>,
    time_column: usize,
    key_columns: Vec<usize>,
    reach: Arc<EventReach>,
    times: Arc<SpineTimes>,
    /// What to keep, worked out once for all partitions when the spine is read.
    keep: SharedKeep,
    metrics: ExecutionPlanMetricsSet,
}

type SharedKeep = Shared<BoxFuture<'static, Result<Arc<Keep>, Arc<DataFusionError>>>>;

impl EventReachExec {
    /// Filters `input`, whose column `time_column` is the event time and
    /// whose `key_columns` are the stage's keys.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        time_column: usize,
        key_columns: Vec<usize>,
        reach: Arc<EventReach>,
        times: Arc<SpineTimes>,
    ) -> Self {
        let keep = {
            let (reach, times) = (Arc::clone(&reach), Arc::clone(&times));
            async move {
                let spine = times.get().await.map_err(Arc::new)?;
                reach.keep(&spine).map(Arc::new).map_err(Arc::new)
            }
            .boxed()
            .shared()
        };
        Self {
            input,
            time_column,
            key_columns,
            reach,
            times,
            keep,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl fmt::Debug for EventReachExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReachExec")
            .field("input", &self.input)
            .field("time_column", &self.time_column)
            .field("key_columns", &self.key_columns)
            .field("reach", &self.reach)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for EventReachExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "EventReachExec: {}", self.reach.describe())
    }
}

impl ExecutionPlan for EventReachExec {
    fn name(&self) -> &str {
        "EventReachExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
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
        let input = super::only_child(children, "EventReachExec")?;
        Ok(Arc::new(Self::new(
            input,
            self.time_column,
            self.key_columns.clone(),
            Arc::clone(&self.reach),
            Arc::clone(&self.times),
        )))
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

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let state = Pruning {
            input,
            time_column: self.time_column,
            key_columns: self.key_columns.clone(),
            keep: self.keep.clone(),
            baseline: BaselineMetrics::new(&self.metrics, partition),
            events_read: MetricBuilder::new(&self.metrics).counter("events_read", partition),
        };
        let pruned = futures::stream::try_unfold(state, |mut state| async move {
            let keep = state.keep.clone().await.map_err(DataFusionError::Shared)?;
            if keep.keeps_nothing() {
                return Ok(None);
            }
            let Some(batch) = state.input.next().await.transpose()? else {
                return Ok(None);
            };
            let pruned = state.prune(&keep, &batch)?;
            Ok(Some((pruned, state)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, pruned)))
    }
}

/// One partition's filtering.
struct Pruning {
    input: SendableRecordBatchStream,
    time_column: usize,
    key_columns: Vec<usize>,
    keep: SharedKeep,
    baseline: BaselineMetrics,
    events_read: Count,
}

impl Pruning {
    fn prune(&self, keep: &Keep, batch: &RecordBatch) -> Result<RecordBatch> {
        let _timer = self.baseline.elapsed_compute().timer();
        self.events_read.add(batch.num_rows());
        let mask = keep.mask(batch, self.time_column, &self.key_columns)?;
        let pruned = filter_record_batch(batch, &mask)?;
        self.baseline.record_output(pruned.num_rows());
        Ok(pruned)
    }
}
