//! [`SpineEnumerateExec`]: numbers the spine's rows so that spine order survives repartitioning.
//!
//! The training set must come back in spine order, but the sweep works on
//! hash partitions sorted by key and time. This plan reads the spine's
//! partitions one after another, in partition order (the order a file scan
//! assigns its file ranges in), and appends `__tessera_row`, the row's
//! position; [`super::RestoreSpineOrderExec`] sorts by it at the end. When
//! the spine is read it publishes its earliest and latest time, and its rows
//! when a stage prunes events per key ([`SpineTimes`]), which bound the
//! events any row can see.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result, internal_err};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, Partitioning, PhysicalExpr, PhysicalSortExpr,
};
use datafusion::physical_plan::execution_plan::{
    Boundedness, ChildrenPropertiesMode, EmissionType, ReplaceChildrenOptions,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures::{StreamExt, TryStreamExt};

use super::spine_times::{PublishedSpine, SpineTimes};
use super::time::to_micros;

/// The spine row-number column.
pub const ROW_COLUMN: &str = "__tessera_row";

/// Appends `__tessera_row` to the spine, reading its partitions in order into one.
#[derive(Debug)]
pub struct SpineEnumerateExec {
    input: Arc<dyn ExecutionPlan>,
    time_column: usize,
    times: Arc<SpineTimes>,
    properties: Arc<PlanProperties>,
}

impl SpineEnumerateExec {
    /// Numbers the rows of `input`, publishing the extent of its column
    /// `time_column` to `times` at the end.
    pub fn new(input: Arc<dyn ExecutionPlan>, time_column: usize, times: Arc<SpineTimes>) -> Self {
        let mut fields: Vec<Arc<Field>> = input.schema().fields().iter().cloned().collect();
        let fields_len = fields.len();
        fields.push(Arc::new(Field::new(ROW_COLUMN, DataType::UInt64, false)));
        let schema = Arc::new(Schema::new_with_metadata(
            fields,
            input.schema().metadata().clone(),
        ));
        // Rows leave numbered in order: the numbers ascend.
        let numbers = PhysicalSortExpr::new_default(Arc::new(Column::new(ROW_COLUMN, fields_len)));
        let properties = PlanProperties::new(
            EquivalenceProperties::new_with_orderings(schema, [[numbers]]),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            input,
            time_column,
            times,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for SpineEnumerateExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "SpineEnumerateExec: column={ROW_COLUMN}")
    }
}

impl ExecutionPlan for SpineEnumerateExec {
    fn name(&self) -> &str {
        "SpineEnumerateExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    /// Row numbers record the input's order, so no sort may be moved below
    /// this plan: that would number rows in the sorted order instead.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
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
        let input = super::only_child(children, "SpineEnumerateExec")?;
        Ok(Arc::new(Self::new(
            input,
            self.time_column,
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
        if partition != 0 {
            return internal_err!("SpineEnumerateExec has one partition, asked for {partition}");
        }
        let input = Arc::clone(&self.input);
        let partitions = input.properties().output_partitioning().partition_count();
        let schema: SchemaRef = self.schema();
        let batches = futures::stream::iter(0..partitions)
            .map(move |p| input.execute(p, Arc::clone(&context)))
            .try_flatten();
        let state = Numbering {
            batches: batches.boxed(),
            schema: Arc::clone(&schema),
            time_column: self.time_column,
            next_row: 0,
            published: PublishedSpine::default(),
            times: Arc::clone(&self.times),
        };
        let numbered = futures::stream::try_unfold(state, |mut state| async move {
            match state.batches.next().await.transpose()? {
                Some(batch) => {
                    let numbered = state.number(&batch)?;
                    Ok(Some((numbered, state)))
                }
                None => {
                    state.times.publish(std::mem::take(&mut state.published));
                    Ok(None)
                }
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, numbered)))
    }
}

/// The numbering of one run of the spine, and what it will publish.
struct Numbering {
    batches: futures::stream::BoxStream<'static, Result<RecordBatch>>,
    schema: SchemaRef,
    time_column: usize,
    next_row: u64,
    published: PublishedSpine,
    times: Arc<SpineTimes>,
}

impl Numbering {
    fn number(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        for t in to_micros(batch.column(self.time_column))?.iter().flatten() {
            let extent = &mut self.published.extent;
            *extent = Some(extent.map_or((t, t), |(low, high)| (low.min(t), high.max(t))));
        }
        if self.times.keeps_rows() {
            self.published.batches.push(batch.clone());
        }
        let rows = batch.num_rows() as u64;
        let numbers: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            self.next_row..self.next_row + rows,
        ));
        self.next_row += rows;
        let mut columns = batch.columns().to_vec();
        columns.push(numbers);
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}
