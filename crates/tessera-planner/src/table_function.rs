//! The `point_in_time` table function.
//!
//! ```sql
//! SELECT * FROM point_in_time('spine', 'ts', 'user.total', 'user.other["7d"]');
//! ```
//!
//! The first argument is a table name or a SQL query giving the spine, the
//! second the spine's time column, then one or more features or feature
//! windows. The function plans the spine, then returns a view-like provider
//! whose logical plan is the [`PointInTimeNode`](crate::PointInTimeNode): DataFusion
//! inlines it, so `EXPLAIN` shows the node and the whole query is optimized
//! as one plan.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{
    Result, ScalarValue, TableReference, internal_err, plan_datafusion_err, plan_err,
};
use datafusion::datasource::{TableType, provider_as_source};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::ExecutionPlan;
use futures::FutureExt;
use tessera_definitions::FeatureRequest;

use crate::binding::{bare_message, resolve_table};
use crate::training_set::{options, plan_training_set};

/// The `point_in_time(spine, time_column, feature, ...)` table function.
#[derive(Debug, Default)]
pub struct PointInTimeFunction;

impl TableFunctionImpl for PointInTimeFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let Some(state) = args.session().as_any().downcast_ref::<SessionState>() else {
            return internal_err!("point_in_time needs a SessionState");
        };
        let texts = args
            .exprs()
            .iter()
            .enumerate()
            .map(|(i, expr)| string_argument(i, expr))
            .collect::<Result<Vec<_>>>()?;
        let (spine, time_column, features) = match texts.as_slice() {
            [spine, time_column, features @ ..] if !features.is_empty() => {
                (spine, time_column, features)
            }
            _ => {
                return plan_err!(
                    "point_in_time(spine, time_column, feature, ...) takes at least 3 arguments, got {}",
                    texts.len()
                );
            }
        };
        let requests = features
            .iter()
            .map(|f| FeatureRequest::parse(f))
            .collect::<Result<Vec<_>>>()?;
        let spine = plan_spine(state, spine)?;
        let plan = plan_training_set(state, spine, time_column, &requests, &options(state))?;
        Ok(Arc::new(PointInTimeTable { plan }))
    }
}

fn string_argument(index: usize, expr: &Expr) -> Result<String> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Ok(s.clone()),
        other => plan_err!(
            "point_in_time argument {} must be a string literal, got {other}",
            index + 1
        ),
    }
}

/// Plans the spine: a table name, or a SQL query when the text has spaces or parentheses.
pub fn plan_spine(state: &SessionState, spine: &str) -> Result<LogicalPlan> {
    let spine = spine.trim();
    if spine.contains(char::is_whitespace) || spine.starts_with('(') {
        let dialect = state.config_options().sql_parser.dialect;
        let statement = state.sql_to_statement(spine, &dialect)?;
        return state
            .statement_to_plan(statement)
            .now_or_never()
            .ok_or_else(|| {
                plan_datafusion_err!(
                    "the spine query reads a table served by an asynchronous catalog"
                )
            })?
            .map_err(|e| plan_datafusion_err!("spine query '{spine}': {}", bare_message(&e)));
    }
    let table = TableReference::from(spine);
    let provider = resolve_table(state, &table)
        .map_err(|e| plan_datafusion_err!("spine: {}", bare_message(&e)))?;
    LogicalPlanBuilder::scan(table, provider_as_source(provider), None)?.build()
}

/// A provider that only exists to be inlined as its logical plan.
#[derive(Debug)]
struct PointInTimeTable {
    plan: LogicalPlan,
}

#[async_trait]
impl TableProvider for PointInTimeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.plan.schema().inner())
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        Some(Cow::Borrowed(&self.plan))
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        internal_err!("point_in_time is planned through its logical plan and is never scanned")
    }
}
