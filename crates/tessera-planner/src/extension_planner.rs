//! From the logical [`PointInTimeNode`] to execution plans.
//!
//! Planning happens in three stages:
//! 1. the spine is numbered ([`SpineEnumerateExec`]) so its order can be restored;
//! 2. each stage becomes a [`PointInTimeExec`] over the previous stage's
//!    output and the stage's events plan; its declared requirements make the
//!    physical optimizer co-partition both inputs by key and sort them by key
//!    and time;
//! 3. [`RestoreSpineOrderExec`] requires a single partition sorted by row number,
//!    which the optimizer satisfies with a parallel sort and a merge.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::{Result, internal_err};
use datafusion::execution::context::QueryPlanner;
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{LogicalPlan, UserDefinedLogicalNode};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

use crate::exec::{PointInTimeExec, RestoreSpineOrderExec, SpineEnumerateExec};
use crate::node::PointInTimeNode;

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
        let mut plan: Arc<dyn ExecutionPlan> = Arc::new(SpineEnumerateExec::new(Arc::clone(spine)));
        for (stage, events) in node.stages.iter().zip(events) {
            plan = Arc::new(PointInTimeExec::try_new(
                plan,
                Arc::clone(events),
                Arc::new(stage.clone()),
                node.semantics,
                node.time_column.clone(),
            )?);
        }
        Ok(Some(Arc::new(RestoreSpineOrderExec::try_new(plan)?)))
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
