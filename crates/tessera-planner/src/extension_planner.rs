//! From the logical [`PointInTimeNode`] to execution plans.
//!
//! Planning happens in three stages:
//! 1. the spine is numbered ([`SpineEnumerateExec`]) so its order can be
//!    restored, and its time range is published when it has been read;
//! 2. each stage becomes a [`PointInTimeExec`] over the previous stage's
//!    output and the stage's events plan, behind an [`EventReachExec`] that
//!    drops events outside every window's reach from that time range (and,
//!    when the stage reads tiles, every event no row of its key reads raw,
//!    for which the spine publishes its rows too); its
//!    declared requirements make the physical optimizer co-partition both
//!    inputs by key and sort them by key and time;
//! 3. [`RestoreSpineOrderExec`] requires a single partition sorted by row number,
//!    which the optimizer satisfies with a parallel sort and a merge.
//!
//! With `use_tile_store`, planning first pins the tile store's latest
//! snapshot: every stage gets one [`TileSource`] per tile set of its
//! features, listing the files live at that version, and the coverage at
//! that version decides which buckets come from tiles. A query therefore
//! sees one consistent version even while backfills commit.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{Result, internal_err};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use tessera_tiles::{Snapshot, TileStore};

use crate::exec::{
    EventReach, EventReachExec, KeyedReach, PointInTimeExec, RestoreSpineOrderExec,
    SpineEnumerateExec, SpineTimes, TileInput, TileSource, WindowReach,
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
        _session: &dyn Session,
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
            let tile_inputs = match &tiles {
                Some((store, snapshot, _)) => stage_tiles(store, snapshot, stage, events)?,
                None => Vec::new(),
            };
            let reach = stage_reach(stage, &tile_inputs, node, fallback);
            stages.push((stage, events, tile_inputs, reach));
        }
        let keeps_rows = stages.iter().any(|(.., reach)| reach.by_key.is_some());
        let times = Arc::new(SpineTimes::new(keeps_rows));
        let spine_time = spine.schema().index_of(&node.time_column)?;
        let mut plan: Arc<dyn ExecutionPlan> = Arc::new(SpineEnumerateExec::new(
            Arc::clone(spine),
            spine_time,
            Arc::clone(&times),
        ));
        for (stage, events, tile_inputs, reach) in stages {
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
            plan = Arc::new(PointInTimeExec::try_new(
                plan,
                events,
                tile_inputs,
                fallback,
                Arc::new(stage.clone()),
                node.semantics,
                node.time_column.clone(),
            )?);
        }
        Ok(Some(Arc::new(RestoreSpineOrderExec::try_new(plan)?)))
    }
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
                coverage: tiles
                    .iter()
                    .find(|t| t.feature == index && t.tile_set.grid == window.grid)
                    .map(|t| t.coverage.clone()),
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

/// One [`TileInput`] per tile set of `stage`'s features, at `snapshot`.
fn stage_tiles(
    store: &TileStore,
    snapshot: &Snapshot,
    stage: &StagePlan,
    events: &Arc<dyn ExecutionPlan>,
) -> Result<Vec<TileInput>> {
    let key_types = (0..stage.spine_keys.len())
        .map(|i| {
            Ok(events
                .schema()
                .field_with_name(&event_key_column(i))?
                .data_type()
                .clone())
        })
        .collect::<Result<Vec<_>>>()?;
    let mut inputs = Vec::new();
    for (index, feature) in stage.features.iter().enumerate() {
        let state_fields = feature
            .aggregate
            .implementation()?
            .state_fields(feature.aggregate.kind.name());
        for tile_set in &feature.tile_sets {
            let files = snapshot
                .tile_set(&tile_set.id)
                .map(|state| state.files.clone())
                .unwrap_or_default();
            let source = TileSource::new(
                store.clone(),
                tile_set.id.clone(),
                snapshot.version,
                files,
                &key_types,
                state_fields.clone(),
            );
            inputs.push(TileInput {
                feature: index,
                tile_set: tile_set.clone(),
                coverage: snapshot.coverage(&tile_set.id),
                source: Arc::new(source),
            });
        }
    }
    Ok(inputs)
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
