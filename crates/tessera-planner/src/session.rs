//! Putting Tessera on a DataFusion session and running its SQL.
//!
//! [`register`] adds the options extension, the feature registry, the
//! `point_in_time` table function and the query planner to a
//! [`SessionStateBuilder`]. [`execute_sql`] runs SQL text that may mix feature
//! DDL with any DataFusion statement; the CLI, the sqllogictest runner and the
//! Rust API all go through it.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::TableFunction;
use datafusion::common::Result;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use tessera_definitions::{
    FeatureDefinition, FeatureRegistry, TesseraParser, TesseraStatement, format_bucket_durations,
};

use tessera_tiles::{TileStore, VacuumReport};

use crate::aggregations::{list_aggregations, vacuum_aggregations};
use crate::backfill::{BackfillReport, BackfillRequest, NoProgress, plan_backfill, run_backfill};
use crate::binding::BoundFeature;
use crate::extension_planner::TesseraQueryPlanner;
use crate::options::TesseraOptions;
use crate::table_function::PointInTimeFunction;
use crate::training_set::{options, registry};

/// Adds Tessera to a session under construction: options, registry, SQL
/// functions, the `point_in_time` table function and the query planner.
pub fn register(mut builder: SessionStateBuilder) -> SessionStateBuilder {
    let config = builder.config().take().unwrap_or_default();
    builder = builder
        .with_config(tessera_config(config))
        .with_query_planner(Arc::new(TesseraQueryPlanner));
    let (aggregates, scalars) = tessera_aggregates::sql_functions();
    builder
        .aggregate_functions()
        .get_or_insert_with(Vec::new)
        .extend(aggregates.into_iter().map(Arc::new));
    builder
        .scalar_functions()
        .get_or_insert_with(Vec::new)
        .extend(scalars.into_iter().map(Arc::new));
    builder
        .table_functions()
        .get_or_insert_with(HashMap::new)
        .insert(
            "point_in_time".to_string(),
            Arc::new(TableFunction::new(
                "point_in_time".to_string(),
                Arc::new(PointInTimeFunction),
            )),
        );
    builder
}

/// `config` with Tessera's options, a feature registry and `information_schema` (for `SHOW`).
pub fn tessera_config(mut config: SessionConfig) -> SessionConfig {
    if config
        .options()
        .extensions
        .get::<TesseraOptions>()
        .is_none()
    {
        config = config.with_option_extension(TesseraOptions::default());
    }
    if config.get_extension::<FeatureRegistry>().is_none() {
        config = config.with_extension(Arc::new(FeatureRegistry::new()));
    }
    config.with_information_schema(true)
}

/// A new session context with DataFusion's defaults and Tessera registered.
pub fn new_context(config: SessionConfig) -> SessionContext {
    let builder = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features();
    SessionContext::new_with_state(register(builder).build())
}

/// The feature registry of `ctx`'s session.
pub fn feature_registry(ctx: &SessionContext) -> Result<Arc<FeatureRegistry>> {
    registry(&ctx.state())
}

/// Parses SQL text into statements, using the session's dialect.
pub fn parse_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<TesseraStatement>> {
    let dialect_name = ctx.state().config_options().sql_parser.dialect;
    let dialect =
        datafusion::sql::sqlparser::dialect::dialect_from_str(dialect_name).ok_or_else(|| {
            datafusion::common::DataFusionError::Plan(format!(
                "unsupported SQL dialect {dialect_name}"
            ))
        })?;
    Ok(TesseraParser::new(sql, dialect.as_ref())?
        .parse_statements()?
        .into())
}

/// Runs every statement of `sql` in order and returns the result of each.
pub async fn execute_sql(ctx: &SessionContext, sql: &str) -> Result<Vec<DataFrame>> {
    let mut results = Vec::new();
    for statement in parse_sql(ctx, sql)? {
        results.push(execute_statement(ctx, statement).await?);
    }
    Ok(results)
}

/// Runs one statement.
pub async fn execute_statement(
    ctx: &SessionContext,
    statement: TesseraStatement,
) -> Result<DataFrame> {
    let registry = registry(&ctx.state())?;
    match statement {
        TesseraStatement::CreateFeature {
            definition,
            or_replace,
        } => {
            let definition = Arc::new(*definition);
            BoundFeature::bind(&ctx.state(), Arc::clone(&definition))?;
            registry.register(Arc::unwrap_or_clone(definition), or_replace)?;
            empty_result(ctx)
        }
        TesseraStatement::DropFeature { name, if_exists } => {
            registry.drop_feature(&name, if_exists)?;
            empty_result(ctx)
        }
        TesseraStatement::ShowFeatures => ctx.read_batch(features_table(&registry.list()?)?),
        TesseraStatement::Backfill {
            features,
            lower,
            upper,
        } => {
            let state = ctx.state();
            let request = BackfillRequest {
                features,
                lower,
                upper,
                chunk: None,
            };
            let plan = plan_backfill(&state, &request)?;
            let store = TileStore::open(&options(&state).tile_store_url)?;
            let report = run_backfill(&state, &store, &plan, &NoProgress).await?;
            ctx.read_batch(backfill_table(&report)?)
        }
        TesseraStatement::ShowAggregations => {
            let state = ctx.state();
            let store = TileStore::open(&options(&state).tile_store_url)?;
            ctx.read_batch(list_aggregations(&state, &store).await?)
        }
        TesseraStatement::VacuumAggregations => {
            let state = ctx.state();
            let store = TileStore::open(&options(&state).tile_store_url)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64);
            let report = vacuum_aggregations(&state, &store, now, VACUUM_GRACE, false).await?;
            ctx.read_batch(vacuum_table(&report)?)
        }
        TesseraStatement::DataFusion(statement) => {
            let plan = ctx.state().statement_to_plan(*statement).await?;
            ctx.execute_logical_plan(plan).await
        }
    }
}

/// How long `VACUUM WINDOWED AGGREGATIONS` leaves unreferenced files alone:
/// long enough for any running backfill to commit them.
pub const VACUUM_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// One row of counts, all `UInt64`.
fn counts_table(counts: &[(&str, u64)]) -> Result<RecordBatch> {
    let schema = Schema::new(
        counts
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::UInt64, false))
            .collect::<Vec<_>>(),
    );
    let columns = counts
        .iter()
        .map(|(_, value)| Arc::new(UInt64Array::from(vec![*value])) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

fn backfill_table(report: &BackfillReport) -> Result<RecordBatch> {
    counts_table(&[
        ("version", report.version),
        ("tile_sets", report.tile_sets as u64),
        ("files", report.files as u64),
        ("events", report.events),
        ("tile_rows", report.tile_rows),
        ("bytes", report.bytes),
    ])
}

fn vacuum_table(report: &VacuumReport) -> Result<RecordBatch> {
    counts_table(&[
        ("expired_ranges", report.expired.len() as u64),
        ("deleted_files", report.deleted_files.len() as u64),
        ("deleted_bytes", report.deleted_bytes),
        ("kept_recent", report.kept_recent as u64),
    ])
}

fn empty_result(ctx: &SessionContext) -> Result<DataFrame> {
    Ok(DataFrame::new(
        ctx.state(),
        LogicalPlanBuilder::empty(false).build()?,
    ))
}

/// One row per feature: what `SHOW WINDOWED FEATURES` prints.
fn features_table(features: &[Arc<FeatureDefinition>]) -> Result<RecordBatch> {
    let column = |f: &dyn Fn(&FeatureDefinition) -> Option<String>| -> ArrayRef {
        Arc::new(features.iter().map(|d| f(d)).collect::<StringArray>())
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("feature", column(&|d| Some(d.name.to_string()))),
        ("source", column(&|d| Some(d.source.clone()))),
        ("key", column(&|d| Some(d.keys.join(", ")))),
        ("timestamp", column(&|d| Some(d.timestamp.clone()))),
        ("aggregate", column(&|d| Some(d.aggregate.to_string()))),
        (
            "windows",
            column(&|d| {
                Some(
                    d.windows
                        .iter()
                        .map(|w| w.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }),
        ),
        (
            "bucket_duration",
            column(&|d| d.materialization.bucket_duration.map(|b| b.to_string())),
        ),
        (
            "bucket_durations",
            column(&|d| {
                let map = &d.materialization.bucket_durations;
                (!map.is_empty()).then(|| format_bucket_durations(map))
            }),
        ),
        (
            "bucket_start",
            column(&|d| Some(tessera_time::format_instant(d.materialization.bucket_start))),
        ),
        (
            "bucket_starts",
            column(&|d| {
                let starts = &d.materialization.bucket_starts;
                (!starts.is_empty()).then(|| {
                    let entries: Vec<String> = starts
                        .iter()
                        .map(|(bucket, origin)| {
                            format!("{bucket}: {}", tessera_time::format_instant(*origin))
                        })
                        .collect();
                    entries.join("; ")
                })
            }),
        ),
        ("filter", column(&|d| d.filter.clone())),
        ("default", column(&|d| d.default.clone())),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    );
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, c)| c).collect(),
    )?)
}
