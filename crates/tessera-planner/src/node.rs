//! The training-set logical node.
//!
//! [`PointInTimeNode`] is what `point_in_time(...)` and the Rust API plan to.
//! Its first input is the spine; every further input is the event plan of one
//! *stage*: the features that share a source table, key columns, time column
//! and filter, so their events are scanned once. The node's output is the
//! spine's columns, in spine order, then one column per requested feature
//! window. The node carries everything execution needs (bound aggregates,
//! grids, defaults, the semantics), so the physical planner reads no session
//! state and the node can be serialized as is.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;

use datafusion::common::{DFSchemaRef, Result, ScalarValue, internal_err};
use datafusion::logical_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use tessera_aggregates::BoundAggregate;
use tessera_definitions::FeatureName;
use tessera_time::{Duration, EventRange, Grid, WindowLength, WindowSemantics};

use crate::options::CoverageFallback;

/// Name of the events plan's key columns: `__tessera_key_<i>`.
pub fn event_key_column(index: usize) -> String {
    format!("__tessera_key_{index}")
}

/// Name of the events plan's time column.
pub const EVENT_TIME_COLUMN: &str = "__tessera_ts";

/// Name of the events plan's column argument `argument` of feature `feature` in its stage.
pub fn event_argument_column(feature: usize, argument: usize) -> String {
    format!("__tessera_arg_{feature}_{argument}")
}

/// One output column: a window of a feature.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowPlan {
    /// The window.
    pub window: WindowLength,
    /// Its bucket grid.
    pub grid: Grid,
    /// The output column, `ns.name__<seconds>__`.
    pub column: String,
}

/// One feature of a stage and the windows requested of it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeaturePlan {
    /// The feature.
    pub name: FeatureName,
    /// Its aggregate call, as written (for EXPLAIN).
    pub call: String,
    /// The bound aggregate.
    pub aggregate: BoundAggregate,
    /// How many argument columns the aggregate reads (0 for `count(*)`).
    pub argument_columns: usize,
    /// The value of empty windows, when the feature declares one.
    pub default: Option<ScalarValue>,
    /// The requested windows.
    pub windows: Vec<WindowPlan>,
    /// With `use_tile_store`: the tile set of each grid the windows use.
    pub tile_sets: Vec<TileSetRef>,
}

impl FeaturePlan {
    /// The tile set serving the windows on `grid`, if tiles are used.
    pub fn tile_set(&self, grid: &Grid) -> Option<&TileSetRef> {
        self.tile_sets.iter().find(|t| t.grid == *grid)
    }
}

/// The tile set serving one grid of a feature (SEMANTICS.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TileSetRef {
    /// The grid.
    pub grid: Grid,
    /// The tile set's id.
    pub id: String,
    /// Its series' id.
    pub series: String,
}

/// Where a training set reads tiles from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TileSourcePlan {
    /// The tile store URL.
    pub url: String,
    /// What to do about needed ranges no backfill covers.
    pub fallback: CoverageFallback,
    /// Whether stages that can be answered by tile lookups are.
    pub lookup: bool,
}

/// Features computed from one scan of one source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StagePlan {
    /// The source table, for EXPLAIN.
    pub source: String,
    /// The spine's key columns, matched to the events plan's `__tessera_key_<i>`.
    pub spine_keys: Vec<String>,
    /// The filter on the source, for EXPLAIN.
    pub filter: Option<String>,
    /// The features.
    pub features: Vec<FeaturePlan>,
}

/// Where a window's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowSource {
    /// Exact and aligned semantics: raw events for the partial buckets at the
    /// window's edges, bucket states built from raw events in between.
    RawEdges,
    /// Complete buckets, as states built from raw events (bucketed semantics).
    Buckets,
    /// Buckets before `max(floor_b(t - w), floor_b(t - d))`, raw events from
    /// there to `t` (bucketed semantics with a continuous buffer `d`; the
    /// result is the aligned set).
    BufferedBuckets(Duration),
}

/// The events one row sees in one window, split by where they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowParts {
    /// Raw events before the first whole bucket (exact semantics' partial bucket).
    pub tail: Option<EventRange>,
    /// Whole buckets: bucket starts in this range.
    pub body: EventRange,
    /// Raw events after the last whole bucket (the still-filling bucket, or the buffer).
    pub head: Option<EventRange>,
}

/// Which events each row sees and where they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SemanticsPlan {
    /// The semantics chosen by the options.
    pub requested: WindowSemantics,
    /// The set of events each row sees (bucketed with a buffer is aligned).
    pub effective: WindowSemantics,
    /// Where every window's events come from.
    pub source: WindowSource,
}

impl SemanticsPlan {
    /// The plan the options choose.
    pub fn from_options(options: &crate::options::TesseraOptions) -> Self {
        let requested = options.semantics();
        let source = match (requested, options.continuous_buffer_duration) {
            (WindowSemantics::Bucketed, Some(buffer)) => WindowSource::BufferedBuckets(buffer),
            (WindowSemantics::Bucketed, None) => WindowSource::Buckets,
            _ => WindowSource::RawEdges,
        };
        Self {
            requested,
            effective: options.effective_semantics(),
            source,
        }
    }

    /// How the events row time `t` sees in `window` split into raw-event
    /// edges and whole buckets. The sweep slides its parts to these ranges
    /// and event pruning keeps exactly the raw parts, so the two cannot
    /// disagree about which events a row reads raw.
    pub fn parts(&self, window: WindowLength, grid: &Grid, t: i64) -> WindowParts {
        match self.source {
            WindowSource::RawEdges => {
                // Partial buckets at the edges from raw events, whole buckets in between.
                let range = self.effective.event_range(window, grid, t);
                let start = range.start.unwrap_or(i64::MIN);
                let split_low = start.max(grid.ceil(start).min(grid.floor(range.end)));
                let split_high = grid.floor(range.end).max(split_low);
                WindowParts {
                    tail: Some(EventRange {
                        start: range.start,
                        end: split_low,
                    }),
                    body: EventRange {
                        start: Some(split_low),
                        end: split_high,
                    },
                    head: Some(EventRange {
                        start: Some(split_high),
                        end: range.end,
                    }),
                }
            }
            WindowSource::Buckets => WindowParts {
                tail: None,
                body: WindowSemantics::Bucketed.event_range(window, grid, t),
                head: None,
            },
            WindowSource::BufferedBuckets(buffer) => {
                // [floor(t - w), t] split at the buffer: buckets before it, raw events after.
                let aligned = WindowSemantics::Aligned.event_range(window, grid, t);
                let buffer_start = grid.floor(t.saturating_sub(buffer.micros()));
                let split = aligned
                    .start
                    .map_or(buffer_start, |start| start.max(buffer_start));
                WindowParts {
                    tail: None,
                    body: EventRange {
                        start: aligned.start,
                        end: split,
                    },
                    head: Some(EventRange {
                        start: Some(split),
                        end: aligned.end,
                    }),
                }
            }
        }
    }

    /// How a window is computed, for EXPLAIN (its grid is shown beside it):
    /// its buckets come from `tile_set` when given, else from raw events.
    pub fn describe_source(&self, tile_set: Option<&TileSetRef>) -> String {
        let buckets = match tile_set {
            Some(tiles) => format!("tiles of series {} (tile set {})", tiles.series, tiles.id),
            None => "buckets built from raw events".to_string(),
        };
        match self.source {
            WindowSource::RawEdges => format!("raw events at the edges, {buckets} between"),
            WindowSource::Buckets => buckets,
            WindowSource::BufferedBuckets(buffer) => {
                format!("raw events after floor_b(t - {buffer}), {buckets} before")
            }
        }
    }
}

impl fmt::Display for SemanticsPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.source {
            WindowSource::BufferedBuckets(buffer) => {
                write!(
                    f,
                    "bucketed with continuous buffer {buffer} (= {})",
                    self.effective
                )
            }
            _ => write!(f, "{}", self.effective),
        }
    }
}

/// The training-set node: spine + stages → spine columns + feature columns.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PointInTimeNode {
    /// The spine, then one events plan per stage.
    pub inputs: Vec<LogicalPlan>,
    /// The spine's time column.
    pub time_column: String,
    /// The stages, in input order.
    pub stages: Vec<StagePlan>,
    /// The semantics.
    pub semantics: SemanticsPlan,
    /// Where tiles come from, with `use_tile_store`.
    pub tiles: Option<TileSourcePlan>,
    /// Spine fields then feature fields.
    pub schema: DFSchemaRef,
}

impl PointInTimeNode {
    /// The spine input.
    pub fn spine(&self) -> &LogicalPlan {
        &self.inputs[0]
    }
}

impl PartialOrd for PointInTimeNode {
    /// Nodes are only ordered when equal: there is no meaningful order between plans.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        (self == other).then_some(Ordering::Equal)
    }
}

/// Writes the per-window summary shared by the logical and physical EXPLAIN.
pub fn fmt_stages(
    f: &mut fmt::Formatter<'_>,
    semantics: &SemanticsPlan,
    stages: &[StagePlan],
) -> fmt::Result {
    write!(f, "semantics={semantics}")?;
    for stage in stages {
        write!(
            f,
            ", stage[source={} key=({})",
            stage.source,
            stage.spine_keys.join(", ")
        )?;
        if let Some(filter) = &stage.filter {
            write!(f, " where {filter}")?;
        }
        write!(f, ": ")?;
        let mut first = true;
        for feature in &stage.features {
            for window in &feature.windows {
                if !first {
                    write!(f, "; ")?;
                }
                first = false;
                write!(
                    f,
                    "{} = {} over {} grid {} from {}",
                    window.column,
                    feature.call,
                    window.window,
                    window.grid,
                    semantics.describe_source(feature.tile_set(&window.grid))
                )?;
            }
        }
        write!(f, "]")?;
    }
    Ok(())
}

impl UserDefinedLogicalNodeCore for PointInTimeNode {
    fn name(&self) -> &str {
        "PointInTime"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        self.inputs.iter().collect()
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        vec![]
    }

    /// Feature values depend on the whole spine row and its position, so no
    /// filter is pushed below the node.
    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "PointInTime: time={}, ", self.time_column)?;
        fmt_stages(f, &self.semantics, &self.stages)
    }

    fn with_exprs_and_inputs(&self, exprs: Vec<Expr>, inputs: Vec<LogicalPlan>) -> Result<Self> {
        if !exprs.is_empty() || inputs.len() != self.inputs.len() {
            return internal_err!(
                "PointInTime expects {} inputs and no expressions",
                self.inputs.len()
            );
        }
        Ok(Self {
            inputs,
            ..self.clone()
        })
    }
}
