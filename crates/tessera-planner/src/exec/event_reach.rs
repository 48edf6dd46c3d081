//! [`EventReachExec`]: drops events no spine row can see, before they are
//! repartitioned and sorted.
//!
//! No semantics includes an event after its row's time, and a window of
//! length `w` on grid `b` reaches back at most to `floor_b(t - w)`. Once the
//! spine is read ([`SpineTimes`]), an event is kept only if it lies in
//! `[lower, t_max]`, where `lower` is the earliest reach of any window from
//! the earliest spine time. Unbounded (`all`) windows reach back forever from
//! raw events — except with tiles, where they need raw events only in their
//! head (`floor_b(t - buffer)` on) and wherever their tile set is not covered.
//! Pruning changes no result: every event a row can see is kept.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;
use tessera_time::{Duration, Grid, TimeRanges, WindowLength};

use super::spine_times::{SpineTimes, TimeExtent};
use super::time::to_micros;

/// One window of a stage, as far as its reach into the events goes.
#[derive(Debug, Clone)]
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
}

/// Which events to keep for one spine extent.
#[derive(Debug)]
struct Keep {
    lower: i64,
    upper: i64,
    /// Coverages of unbounded windows read from tiles: events they do not cover are kept.
    uncovered_of: Vec<TimeRanges>,
}

impl Keep {
    fn keeps(&self, ts: i64) -> bool {
        ts <= self.upper && (ts >= self.lower || self.uncovered_of.iter().any(|c| !c.contains(ts)))
    }
}

impl EventReach {
    fn keep(&self, extent: TimeExtent) -> Keep {
        let Some((earliest, latest)) = extent else {
            return Keep {
                lower: i64::MAX,
                upper: i64::MIN,
                uncovered_of: Vec::new(),
            };
        };
        let mut keep = Keep {
            lower: latest,
            upper: latest,
            uncovered_of: Vec::new(),
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
        keep
    }

    fn describe(&self) -> String {
        let unbounded_raw = self
            .windows
            .iter()
            .any(|w| w.window.duration().is_none() && w.coverage.is_none());
        if unbounded_raw {
            "ts <= max(t)".to_string()
        } else {
            "floor_b(min(t) - w) <= ts <= max(t)".to_string()
        }
    }
}

/// Keeps the events some spine row can see.
#[derive(Debug)]
pub struct EventReachExec {
    input: Arc<dyn ExecutionPlan>,
    time_column: usize,
    reach: Arc<EventReach>,
    times: Arc<SpineTimes>,
}

impl EventReachExec {
    /// Filters `input`, whose column `time_column` is the event time.
    pub fn new(
        input: Arc<dyn ExecutionPlan>,
        time_column: usize,
        reach: Arc<EventReach>,
        times: Arc<SpineTimes>,
    ) -> Self {
        Self {
            input,
            time_column,
            reach,
            times,
        }
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
            reach: Arc::clone(&self.reach),
            times: Arc::clone(&self.times),
            keep: None,
        };
        let pruned = futures::stream::try_unfold(state, |mut state| async move {
            let Some(batch) = state.input.next().await.transpose()? else {
                return Ok(None);
            };
            let pruned = state.prune(&batch).await?;
            Ok(Some((pruned, state)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, pruned)))
    }
}

/// One partition's filtering, once the spine's extent is known.
struct Pruning {
    input: SendableRecordBatchStream,
    time_column: usize,
    reach: Arc<EventReach>,
    times: Arc<SpineTimes>,
    keep: Option<Keep>,
}

impl Pruning {
    async fn prune(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        if self.keep.is_none() {
            let extent = self.times.get().await?;
            self.keep = Some(self.reach.keep(extent));
        }
        let Some(keep) = &self.keep else {
            return Ok(batch.clone());
        };
        let times = to_micros(batch.column(self.time_column))?;
        let mask: BooleanArray = times
            .iter()
            .map(|t| Some(t.is_some_and(|t| keep.keeps(t))))
            .collect();
        Ok(filter_record_batch(batch, &mask)?)
    }
}
