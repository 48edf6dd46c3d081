//! Binding feature definitions to the session's catalog.
//!
//! A [`FeatureDefinition`] names a table and holds SQL text; binding resolves
//! the table, checks the key and time columns, plans the aggregate arguments,
//! the filter and the default as DataFusion expressions, and binds the
//! aggregate to the argument types. `CREATE WINDOWED FEATURE` binds once to
//! reject bad definitions early; every training-set query binds again, so a
//! table replaced since then is seen as it is now.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatchOptions;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::{
    DFSchema, DFSchemaRef, Result, ScalarValue, TableReference, plan_datafusion_err, plan_err,
};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable};
use futures::FutureExt;
use tessera_aggregates::{Argument, BoundAggregate};
use tessera_definitions::FeatureDefinition;

/// A definition resolved against the catalog.
#[derive(Debug, Clone)]
pub struct BoundFeature {
    /// The definition.
    pub definition: Arc<FeatureDefinition>,
    /// The source table.
    pub table: TableReference,
    /// Its provider.
    pub provider: Arc<dyn TableProvider>,
    /// Its schema, qualified by the table name.
    pub source_schema: DFSchemaRef,
    /// The aggregate's column arguments, already cast to their canonical types
    /// (constant parameters are part of [`Self::aggregate`]).
    pub arguments: Vec<Expr>,
    /// The filter, if any.
    pub filter: Option<Expr>,
    /// The aggregate bound to the argument types.
    pub aggregate: BoundAggregate,
    /// The `DEFAULT`, cast to the result type.
    pub default: Option<ScalarValue>,
}

impl BoundFeature {
    /// Binds `definition` in `state`, failing with an error that names the offending part.
    pub fn bind(state: &SessionState, definition: Arc<FeatureDefinition>) -> Result<Self> {
        let name = definition.name.to_string();
        let table = TableReference::from(definition.source.as_str());
        let provider = resolve_table(state, &table)
            .map_err(|e| plan_datafusion_err!("feature {name}: {}", bare_message(&e)))?;
        let source_schema = Arc::new(DFSchema::try_from_qualified_schema(
            table.clone(),
            &provider.schema(),
        )?);
        for column in definition.keys.iter().chain([&definition.timestamp]) {
            require_column(&name, &table, &source_schema, column)?;
        }
        let (_, ts_field) =
            source_schema.qualified_field_with_unqualified_name(&definition.timestamp)?;
        if !is_time_type(ts_field.data_type()) {
            return plan_err!(
                "feature {name}: TIMESTAMP column '{}' of {table} has type {}, expected a timestamp or date",
                definition.timestamp,
                ts_field.data_type()
            );
        }
        let planned = definition
            .aggregate
            .arguments
            .iter()
            .map(|text| plan_expr(state, &name, "argument", text, &source_schema))
            .collect::<Result<Vec<_>>>()?;
        let described = planned
            .iter()
            .map(|expr| describe_argument(state, expr, &source_schema))
            .collect::<Result<Vec<_>>>()?;
        let aggregate = BoundAggregate::bind(&name, &definition.aggregate.function, &described)?;
        let arguments = aggregate
            .columns
            .iter()
            .map(|(index, data_type)| planned[*index].clone().cast_to(data_type, &source_schema))
            .collect::<Result<Vec<_>>>()?;
        let filter = definition
            .filter
            .as_deref()
            .map(|text| plan_filter(state, &name, text, &source_schema))
            .transpose()?;
        let default = definition
            .default
            .as_deref()
            .map(|text| evaluate_default(state, &name, text, &aggregate.result_type))
            .transpose()?;
        Ok(Self {
            definition,
            table,
            provider,
            source_schema,
            arguments,
            filter,
            aggregate,
            default,
        })
    }
}

/// Looks up a table; catalogs that can only answer asynchronously are rejected with a clear error.
pub fn resolve_table(
    state: &SessionState,
    table: &TableReference,
) -> Result<Arc<dyn TableProvider>> {
    let schema = state.schema_for_ref(table.clone())?;
    let lookup = schema.table(table.table()).now_or_never().ok_or_else(|| {
        plan_datafusion_err!(
            "table {table} is served by an asynchronous catalog; register it in the session first"
        )
    })?;
    lookup?.ok_or_else(|| plan_datafusion_err!("unknown table '{table}'"))
}

/// Whether `data_type` can be an event or spine time.
pub fn is_time_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    )
}

fn require_column(
    feature: &str,
    table: &TableReference,
    schema: &DFSchema,
    column: &str,
) -> Result<()> {
    if schema.has_column_with_unqualified_name(column) {
        return Ok(());
    }
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    plan_err!(
        "feature {feature}: column '{column}' not found in {table}; its columns are: {}",
        columns.join(", ")
    )
}

fn plan_expr(
    state: &SessionState,
    feature: &str,
    what: &str,
    text: &str,
    schema: &DFSchema,
) -> Result<Expr> {
    state.create_logical_expr(text, schema).map_err(|e| {
        plan_datafusion_err!("feature {feature}: {what} '{text}': {}", bare_message(&e))
    })
}

fn plan_filter(state: &SessionState, feature: &str, text: &str, schema: &DFSchema) -> Result<Expr> {
    let filter = plan_expr(state, feature, "WHERE", text, schema)?;
    let data_type = filter.get_type(schema)?;
    if data_type != DataType::Boolean {
        return plan_err!(
            "feature {feature}: WHERE '{text}' has type {data_type}, expected a boolean predicate"
        );
    }
    Ok(filter)
}

/// An argument's type, and its value when it reads no column.
fn describe_argument(state: &SessionState, expr: &Expr, schema: &DFSchema) -> Result<Argument> {
    let data_type = expr.get_type(schema)?;
    let constant = if expr.column_refs().is_empty() {
        Some(evaluate_constant(state, expr.clone())?)
    } else {
        None
    };
    Ok(Argument {
        data_type,
        constant,
    })
}

/// Evaluates an expression that reads no column.
fn evaluate_constant(state: &SessionState, expr: Expr) -> Result<ScalarValue> {
    let empty = DFSchema::empty();
    let physical = state.create_physical_expr(expr, &empty)?;
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    let array = physical.evaluate(&one_row)?.into_array(1)?;
    ScalarValue::try_from_array(&array, 0)
}

/// Evaluates a `DEFAULT` literal and casts it to the feature's result type.
fn evaluate_default(
    state: &SessionState,
    feature: &str,
    text: &str,
    result_type: &DataType,
) -> Result<ScalarValue> {
    let expr = plan_expr(state, feature, "DEFAULT", text, &DFSchema::empty())?;
    let value = evaluate_constant(state, expr).map_err(|e| {
        plan_datafusion_err!(
            "feature {feature}: DEFAULT {text} is not a constant: {}",
            bare_message(&e)
        )
    })?;
    value.cast_to(result_type).map_err(|_| {
        plan_datafusion_err!(
            "feature {feature}: DEFAULT {text} cannot be cast to the result type {result_type}"
        )
    })
}

/// The message of `error` without DataFusion's kind prefix, for wrapping it in more context.
pub fn bare_message(error: &datafusion::common::DataFusionError) -> String {
    match error {
        datafusion::common::DataFusionError::Plan(message) => message.clone(),
        other => other.strip_backtrace(),
    }
}
