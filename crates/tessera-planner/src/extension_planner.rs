//! From the logical [`PointInTimeNode`] to execution plans.
//!
//! Planning happens in three stages:
//! 1. the spine is numbered ([`SpineEnumerateExec`]) so its order can be
//!    restored, and its time range is published when it has been read;
//! 2. each stage becomes a [`PointInTimeExec`] over the previous stage's
//!    output and the stage's events plan, behind an [`EventReachExec`] that
//!    drops events outside every window's reach from that time range (and,
//!    when the stage reads tiles, every event no row of its key reads raw,
//!    for which the spine publishes its rows too) and, with tiles, one
//!    [`TileScanExec`] per set of tile files of the stage (the tile sets of a
//!    series that one backfill wrote share their files, and so one scan)
//!    that keeps the tile rows some row of their key reads; its declared
//!    requirements make the
//!    physical optimizer co-partition all inputs by key and sort them by key
//!    and time (or bucket) — or, for a stage of bucketed windows that all
//!    read tiles and merge in constant time (unless `prefer_tile_lookup` is
//!    off), a [`TileLookupExec`] over the same inputs, which loads the tile
//!    rows into a table by key and answers its input's rows in place;
//! 3. [`RestoreSpineOrderExec`] requires a single partition sorted by row number,
//!    which the optimizer satisfies with a parallel sort and a merge (or
//!    nothing, when every stage kept the spine's order).
//!
//! With `use_tile_store`, planning first pins the tile store's latest
//! snapshot: every stage gets [`TileScanExec`]s for the tile sets of its
//! features, reading the files live at that version, and the coverage at
//! that version decides which buckets come from tiles. A query therefore
//! sees one consistent version even while backfills commit.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{Result, internal_err};
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use datafusion::arrow::datatypes::{Field, FieldRef};
use tessera_tiles::{LiveFile, Snapshot, TileStore, state_column};
use tessera_time::{Grid, WindowLength};

use crate::exec::{
    EventReach, EventReachExec, KeyedReach, PointInTimeExec, RestoreSpineOrderExec, ScanFile,
    SpineEnumerateExec, SpineTimes, TileFiles, TileInput, TileLookupExec, TileReach, TileScanExec,
    WindowReach, serving_input,
};
use crate::node::{EVENT_TIME_COLUMN, PointInTimeNode, StagePlan, WindowSource, event_key_column};
use crate::options::CoverageFallback;

/// Plans [`PointInTimeNode`]s; declines every other extension node.
#[derive(Debug, Default)]
pub struct PointInTimePlanner;

#[async_trait]
impl ExtensionPlanner for PointInTimePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        session: &dyn Session,
        _planning_ctx: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(node) = node.as_any().downcast_ref::<PointInTimeNode>() else {
            return Ok(None);
        };
        let Some((spine, events)) = physical_inputs.split_first() else {
            return internal_err!("PointInTime node without inputs");
        };
        if events.len() != node.stages.len() {
            return internal_err!(
                "PointInTime node has {} stages but {} event inputs",
                node.stages.len(),
                events.len()
            );
        }
        let tiles = match &node.tiles {
            Some(source) => {
                let store = TileStore::open(&source.url)?;
                let snapshot = store.snapshot().await?;
                Some((store, snapshot, source.fallback))
            }
            None => None,
        };
        let fallback = tiles.as_ref().map_or(CoverageFallback::Error, |t| t.2);
        let mut stages = Vec::with_capacity(node.stages.len());
        for (stage, events) in node.stages.iter().zip(events) {
            let (tile_inputs, tile_scans) = match &tiles {
                Some((_, snapshot, _)) => stage_tiles(snapshot, stage)?,
                None => (Vec::new(), Vec::new()),
            };
            let reach = stage_reach(stage, &tile_inputs, node, fallback);
            stages.push((stage, events, tile_inputs, tile_scans, reach));
        }
        let keeps_rows = stages.iter().any(|(.., reach)| reach.by_key.is_some());
        let times = Arc::new(SpineTimes::new(keeps_rows));
        let spine_time = spine.schema().index_of(&node.time_column)?;
        let mut plan: Arc<dyn ExecutionPlan> = Arc::new(SpineEnumerateExec::new(
            Arc::clone(spine),
            spine_time,
            Arc::clone(&times),
        ));
        for (stage, events, tile_inputs, tile_scans, reach) in stages {
            let lookup = answers_by_lookup(node, stage, &tile_inputs)
                && lookup_fits_memory(session, &tile_scans, &tile_inputs);
            let scanned = match &tiles {
                Some((store, snapshot, _)) => {
                    let scans = StageScans {
                        store,
                        version: snapshot.version,
                        stage,
                        events,
                        node,
                        times: &times,
                        partitions: session.config().target_partitions(),
                    };
                    Some(scans.plan(&tile_inputs, tile_scans)?)
                }
                None => None,
            };
            let key_columns = (0..stage.spine_keys.len())
                .map(|i| events.schema().index_of(&event_key_column(i)))
                .collect::<Result<Vec<_>, _>>()?;
            let events = Arc::new(EventReachExec::new(
                Arc::clone(events),
                events.schema().index_of(EVENT_TIME_COLUMN)?,
                key_columns,
                Arc::new(reach),
                Arc::clone(&times),
            ));
            plan = match scanned {
                Some((tile_scans, tile_reach)) if lookup => Arc::new(TileLookupExec::try_new(
                    plan,
                    events,
                    tile_inputs,
                    tile_scans,
                    tile_reach,
                    fallback,
                    Arc::new(stage.clone()),
                    node.semantics,
                    node.time_column.clone(),
                )?),
                scanned => Arc::new(PointInTimeExec::try_new(
                    plan,
                    events,
                    tile_inputs,
                    scanned.map(|(scans, _)| scans).unwrap_or_default(),
                    fallback,
                    Arc::new(stage.clone()),
                    node.semantics,
                    node.time_column.clone(),
                )?),
            };
        }
        Ok(Some(Arc::new(RestoreSpineOrderExec::try_new(plan)?)))
    }
}

/// Whether `stage` is answered by tile lookups ([`TileLookupExec`]) rather
/// than a sweep: the query prefers them, its windows read whole buckets
/// only, every one from tiles, and its functions merge in constant time (a
/// lookup merges a window's buckets afresh at every row, where the sweep
/// slides: cheap for sums and moments, not for sketches).
fn answers_by_lookup(node: &PointInTimeNode, stage: &StagePlan, tiles: &[TileInput]) -> bool {
    let every_window_from_tiles = stage.features.iter().enumerate().all(|(index, feature)| {
        feature
            .windows
            .iter()
            .all(|window| serving_input(tiles, index, &window.grid).is_some())
    });
    node.tiles.as_ref().is_some_and(|t| t.lookup)
        && node.semantics.source == WindowSource::Buckets
        && every_window_from_tiles
        && stage
            .features
            .iter()
            .all(|feature| feature.aggregate.merges_in_constant_time())
}

/// Estimated bytes of a lookup table per tile row and tile set: a decoded
/// state (8 to 32 bytes for these functions) and the row's share of the
/// layout and of the columns read while the table is built.
const LOOKUP_BYTES_PER_STATE: u64 = 64;

/// Whether a lookup table of every row of `scans`' files, for the tile sets
/// `tiles`, would take at most half of a bounded memory pool. A lookup's
/// table cannot spill where a sweep's sorts can, so under a memory limit
/// the lookup is chosen only when it surely fits (the table holds only the
/// rows some spine row reads, often far fewer).
fn lookup_fits_memory(session: &dyn Session, scans: &[ScanSpec], tiles: &[TileInput]) -> bool {
    let MemoryLimit::Finite(limit) = session.runtime_env().memory_pool.memory_limit() else {
        return true;
    };
    let rows: u64 = scans
        .iter()
        .flat_map(|scan| &scan.files)
        .map(|file| file.live.file.rows)
        .sum();
    let estimate = rows.saturating_mul(LOOKUP_BYTES_PER_STATE * tiles.len().max(1) as u64);
    estimate <= limit as u64 / 2
}

/// How far back `stage`'s windows reach into its events, and — when the
/// stage reads tiles — how to prune its events per key.
fn stage_reach(
    stage: &StagePlan,
    tiles: &[TileInput],
    node: &PointInTimeNode,
    fallback: CoverageFallback,
) -> EventReach {
    let windows = stage
        .features
        .iter()
        .enumerate()
        .flat_map(|(index, feature)| {
            feature.windows.iter().map(move |window| WindowReach {
                window: window.window,
                grid: window.grid,
                coverage: serving_input(tiles, index, &window.grid)
                    .map(|i| tiles[i].coverage.clone()),
            })
        })
        .collect();
    let buffer = match node.semantics.source {
        WindowSource::BufferedBuckets(buffer) => Some(buffer),
        _ => None,
    };
    let by_key = (!tiles.is_empty()).then(|| KeyedReach {
        spine_keys: stage.spine_keys.clone(),
        time_column: node.time_column.clone(),
        semantics: node.semantics,
        strict: fallback == CoverageFallback::Error,
    });
    EventReach {
        windows,
        buffer,
        by_key,
    }
}

/// What one tile scan of a stage reads: files live at the pinned version
/// and, per file, the columns of the tile sets it serves.
struct ScanSpec {
    /// The tile sets it serves, with their state columns among its own.
    tile_sets: Vec<(String, std::ops::Range<usize>)>,
    files: Vec<ScanFile>,
    /// The tile sets' state fields, in order, named uniquely.
    state_fields: Vec<FieldRef>,
}

impl ScanSpec {
    fn new(files: &[LiveFile]) -> Self {
        Self {
            tile_sets: Vec::new(),
            files: files
                .iter()
                .map(|live| ScanFile {
                    live: live.clone(),
                    states: Vec::new(),
                })
                .collect(),
            state_fields: Vec::new(),
        }
    }

    /// Whether the scan reads exactly `files` (by path and valid buckets).
    fn reads(&self, files: &[LiveFile]) -> bool {
        self.files.len() == files.len()
            && self.files.iter().zip(files).all(|(mine, other)| {
                mine.live.file.path == other.file.path && mine.live.valid == other.valid
            })
    }

    /// Adds tile set `id`, whose entries for the scan's files are `files`
    /// (in the scan's order), with state fields `states`; returns its state
    /// columns among the scan's.
    fn add(&mut self, id: &str, files: &[LiveFile], states: &[FieldRef]) -> std::ops::Range<usize> {
        if let Some((_, range)) = self.tile_sets.iter().find(|(t, _)| t == id) {
            return range.clone();
        }
        for (scan_file, live) in self.files.iter_mut().zip(files) {
            scan_file.states.extend(live.file.columns.iter().cloned());
        }
        let start = self.state_fields.len();
        self.state_fields.extend(states.iter().map(|f| {
            let name = state_column(id, f.name());
            Arc::new(Field::clone(f).with_name(name))
        }));
        let range = start..self.state_fields.len();
        self.tile_sets.push((id.to_string(), range.clone()));
        range
    }
}

/// One [`TileInput`] per tile set of `stage`'s features, and the scans that
/// read them at `snapshot`: tile sets with the same live files (the tile
/// sets of a series one backfill wrote) share one.
fn stage_tiles(snapshot: &Snapshot, stage: &StagePlan) -> Result<(Vec<TileInput>, Vec<ScanSpec>)> {
    let mut inputs = Vec::new();
    let mut scans: Vec<ScanSpec> = Vec::new();
    for (index, feature) in stage.features.iter().enumerate() {
        let aggregate = &feature.aggregate;
        let states = aggregate
            .implementation()?
            .state_fields(aggregate.kind.name());
        for tile_set in &feature.tile_sets {
            let mut files = snapshot
                .tile_set(&tile_set.id)
                .map(|state| state.files.clone())
                .unwrap_or_default();
            files.sort_by(|a, b| a.file.path.cmp(&b.file.path));
            let scan = match scans.iter().position(|scan| scan.reads(&files)) {
                Some(scan) => scan,
                None => {
                    scans.push(ScanSpec::new(&files));
                    scans.len() - 1
                }
            };
            inputs.push(TileInput {
                feature: index,
                tile_set: tile_set.clone(),
                coverage: snapshot.coverage(&tile_set.id),
                scan,
                states: scans[scan].add(&tile_set.id, &files, &states),
            });
        }
    }
    Ok((inputs, scans))
}

/// A stage's tile scans, in order, and the reach they share.
type StageTileScans = (Vec<Arc<dyn ExecutionPlan>>, Arc<TileReach>);

/// What planning the tile scans of one stage needs.
struct StageScans<'a> {
    store: &'a TileStore,
    version: u64,
    stage: &'a StagePlan,
    events: &'a Arc<dyn ExecutionPlan>,
    node: &'a PointInTimeNode,
    times: &'a Arc<SpineTimes>,
    partitions: usize,
}

impl StageScans<'_> {
    /// One [`TileScanExec`] per scan, in order, and the [`TileReach`] they share.
    fn plan(&self, inputs: &[TileInput], scans: Vec<ScanSpec>) -> Result<StageTileScans> {
        let key_types = (0..self.stage.spine_keys.len())
            .map(|i| {
                Ok(self
                    .events
                    .schema()
                    .field_with_name(&event_key_column(i))?
                    .data_type()
                    .clone())
            })
            .collect::<Result<Vec<_>>>()?;
        let reach = Arc::new(TileReach::new(
            Arc::clone(self.times),
            self.stage.spine_keys.clone(),
            self.node.time_column.clone(),
            self.node.semantics,
            self.served_windows(inputs, scans.len()),
        ));
        let mut plans: Vec<Arc<dyn ExecutionPlan>> = Vec::with_capacity(scans.len());
        for (index, scan) in scans.into_iter().enumerate() {
            let files = TileFiles::new(
                self.store.clone(),
                scan.tile_sets.into_iter().map(|(id, _)| id).collect(),
                self.version,
                scan.files,
                &key_types,
                scan.state_fields,
            );
            plans.push(Arc::new(TileScanExec::new(
                files,
                Arc::clone(&reach),
                reach.slot_of(index),
                self.partitions,
            )));
        }
        Ok((plans, reach))
    }

    /// Per scan, the distinct windows (length and grid) its tile sets serve.
    fn served_windows(&self, inputs: &[TileInput], scans: usize) -> Vec<Vec<(WindowLength, Grid)>> {
        let mut served = vec![Vec::new(); scans];
        for (index, feature) in self.stage.features.iter().enumerate() {
            for window in &feature.windows {
                if let Some(input) = serving_input(inputs, index, &window.grid) {
                    let window = (window.window, window.grid);
                    let scan = &mut served[inputs[input].scan];
                    if !scan.contains(&window) {
                        scan.push(window);
                    }
                }
            }
        }
        served
    }
}

/// DataFusion's physical planner with Tessera's extension planner.
#[derive(Debug, Default)]
pub struct TesseraQueryPlanner;

#[async_trait]
impl QueryPlanner for TesseraQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session_state: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        DefaultPhysicalPlanner::with_extension_planners(vec![Arc::new(PointInTimePlanner)])
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}
