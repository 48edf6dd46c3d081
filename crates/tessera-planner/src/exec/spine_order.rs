//! [`RestoreSpineOrderExec`]: returns the training set in spine order.
//!
//! It requires a single input partition sorted by `__tessera_row` and drops
//! that column. Declaring the requirement, rather than planting a sort,
//! lets DataFusion's `EnforceDistribution` / `EnforceSorting` insert a
//! partition-parallel (spilling) sort and a sort-preserving merge — and means
//! no optimizer pass can remove them as "unneeded".

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    Distribution, EquivalenceProperties, LexOrdering, OrderingRequirements, Partitioning,
    PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::StreamExt;

use super::enumerate::ROW_COLUMN;

/// Sorts by `__tessera_row` (through its requirements) and removes it.
#[derive(Debug)]
pub struct RestoreSpineOrderExec {
    input: Arc<dyn ExecutionPlan>,
    row_column: usize,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl RestoreSpineOrderExec {
    /// Restores spine order of `input`, which must have a `__tessera_row` column.
    pub fn try_new(input: Arc<dyn ExecutionPlan>) -> Result<Self> {
        let input_schema = input.schema();
        let row_column = input_schema.index_of(ROW_COLUMN)?;
        let kept: Vec<usize> = (0..input_schema.fields().len())
            .filter(|&i| i != row_column)
            .collect();
        let schema = Arc::new(input_schema.project(&kept)?);
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            row_column,
            schema,
            properties: Arc::new(properties),
        })
    }

    fn row_ordering(&self) -> LexOrdering {
        let column = Arc::new(Column::new(ROW_COLUMN, self.row_column));
        LexOrdering::new([PhysicalSortExpr::new(column, SortOptions::default())])
            .expect("one sort expression")
    }
}

impl DisplayAs for RestoreSpineOrderExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "RestoreSpineOrderExec: by={ROW_COLUMN}")
    }
}

impl ExecutionPlan for RestoreSpineOrderExec {
    fn name(&self) -> &str {
        "RestoreSpineOrderExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![Some(OrderingRequirements::from(self.row_ordering()))]
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
        let input = super::only_child(children, "RestoreSpineOrderExec")?;
        Ok(Arc::new(Self::try_new(input)?))
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
        if partition != 0 {
            return internal_err!("RestoreSpineOrderExec has one partition, asked for {partition}");
        }
        let row_column = self.row_column;
        let schema = Arc::clone(&self.schema);
        let output_schema = Arc::clone(&schema);
        let stream = self.input.execute(0, context)?.map(move |batch| {
            let mut batch = batch?;
            batch.remove_column(row_column);
            Ok(batch.with_schema(Arc::clone(&output_schema))?)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
