//! Planning a training set: spine + feature requests → a [`PointInTimeNode`].
//!
//! This is shared by the `point_in_time` table function and the Rust API.
//! It checks the spine (time column, key columns by name), resolves each
//! request to feature windows, binds the features, groups them into stages
//! that share one scan, and builds each stage's events plan:
//! `scan → filter(time and keys not null, WHERE) → project(keys cast to the
//! spine's key types, time, arguments)`.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{DFSchema, Result, plan_datafusion_err, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{
    Expr, ExprSchemable, Extension, LogicalPlan, LogicalPlanBuilder, col,
};
use tessera_definitions::{FeatureRegistry, FeatureRequest};
use tessera_time::WindowLength;

use crate::binding::{BoundFeature, is_time_type};
use crate::node::{
    EVENT_TIME_COLUMN, FeaturePlan, PointInTimeNode, SemanticsPlan, StagePlan, TileSetRef,
    TileSourcePlan, WindowPlan, event_argument_column, event_key_column,
};
use crate::options::TesseraOptions;
use crate::tile_sets::{grids_of, tile_set_of};

/// The registry of `state`, or an error saying Tessera is not registered.
pub fn registry(state: &SessionState) -> Result<Arc<FeatureRegistry>> {
    state
        .config()
        .get_extension::<FeatureRegistry>()
        .ok_or_else(|| {
            plan_datafusion_err!(
                "Tessera is not registered on this session: call tessera::register first"
            )
        })
}

/// The options of `state` (defaults when none were set).
pub fn options(state: &SessionState) -> TesseraOptions {
    state
        .config_options()
        .extensions
        .get::<TesseraOptions>()
        .cloned()
        .unwrap_or_default()
}

/// Plans a training set over `spine`, asking each request as of `time_column`.
pub fn plan_training_set(
    state: &SessionState,
    spine: LogicalPlan,
    time_column: &str,
    requests: &[FeatureRequest],
    options: &TesseraOptions,
) -> Result<LogicalPlan> {
    if requests.is_empty() {
        return plan_err!("point_in_time needs at least one feature");
    }
    let spine_schema = spine.schema().clone();
    check_time_column(&spine_schema, time_column)?;
    let registry = registry(state)?;
    let mut used_columns: HashSet<String> = spine_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut stages: Vec<(StageKey, BoundStage)> = Vec::new();
    for request in requests {
        let feature = BoundFeature::bind(state, registry.get(&request.feature)?)?;
        let windows = select_windows(&feature, request)?;
        check_spine_keys(&spine_schema, &feature)?;
        let window_plans = windows
            .into_iter()
            .map(|window| {
                let column = feature.definition.name.column_name(window);
                if !used_columns.insert(column.clone()) {
                    return plan_err!(
                        "output column {column} is requested twice or clashes with a spine column"
                    );
                }
                Ok(WindowPlan {
                    window,
                    grid: feature.definition.grid(window)?,
                    column,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let key = StageKey::of(&feature);
        match stages.iter_mut().find(|(k, _)| *k == key) {
            Some((_, stage)) => stage.features.push((feature, window_plans)),
            None => stages.push((
                key,
                BoundStage {
                    features: vec![(feature, window_plans)],
                },
            )),
        }
    }

    let mut inputs = vec![spine];
    let mut stage_plans = Vec::with_capacity(stages.len());
    let mut fields: Vec<(Option<datafusion::common::TableReference>, Arc<Field>)> = spine_schema
        .iter()
        .map(|(q, f)| (q.cloned(), Arc::clone(f)))
        .collect();
    for (_, stage) in stages {
        inputs.push(stage.events_plan(&spine_schema)?);
        let plan = stage.plan(options.use_tile_store)?;
        for feature in &plan.features {
            for window in &feature.windows {
                fields.push((
                    None,
                    Arc::new(Field::new(
                        &window.column,
                        feature.aggregate.result_type.clone(),
                        true,
                    )),
                ));
            }
        }
        stage_plans.push(plan);
    }
    let schema = Arc::new(DFSchema::new_with_metadata(
        fields,
        spine_schema.metadata().clone(),
    )?);
    let semantics = SemanticsPlan::from_options(options);
    let tiles = options.use_tile_store.then(|| TileSourcePlan {
        url: options.tile_store_url.clone(),
        fallback: options.tile_coverage_fallback,
        lookup: options.prefer_tile_lookup,
    });
    let node = PointInTimeNode {
        inputs,
        time_column: time_column.to_string(),
        stages: stage_plans,
        semantics,
        tiles,
        schema,
    };
    Ok(LogicalPlan::Extension(Extension {
        node: Arc::new(node),
    }))
}

fn check_time_column(spine: &DFSchema, time_column: &str) -> Result<()> {
    let Ok((_, field)) = spine.qualified_field_with_unqualified_name(time_column) else {
        let columns: Vec<&str> = spine.fields().iter().map(|f| f.name().as_str()).collect();
        return plan_err!(
            "spine has no time column '{time_column}'; its columns are: {}",
            columns.join(", ")
        );
    };
    if !is_time_type(field.data_type()) {
        return plan_err!(
            "spine time column '{time_column}' has type {}, expected a timestamp or date",
            field.data_type()
        );
    }
    Ok(())
}

fn check_spine_keys(spine: &DFSchema, feature: &BoundFeature) -> Result<()> {
    let missing: Vec<&str> = feature
        .definition
        .keys
        .iter()
        .filter(|key| !spine.has_column_with_unqualified_name(key))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return plan_err!(
            "spine is missing key column(s) {} of feature {}",
            missing.join(", "),
            feature.definition.name
        );
    }
    for key in &feature.definition.keys {
        let (_, spine_field) = spine.qualified_field_with_unqualified_name(key)?;
        let (_, event_field) = feature
            .source_schema
            .qualified_field_with_unqualified_name(key)?;
        if !can_cast_types(event_field.data_type(), spine_field.data_type()) {
            return plan_err!(
                "key column '{key}' has type {} in the spine but {} in {}",
                spine_field.data_type(),
                event_field.data_type(),
                feature.table
            );
        }
    }
    Ok(())
}

fn select_windows(feature: &BoundFeature, request: &FeatureRequest) -> Result<Vec<WindowLength>> {
    let windows = &feature.definition.windows;
    let Some(selector) = &request.window else {
        return Ok(windows.clone());
    };
    match windows.iter().find(|w| selector.matches(**w)) {
        Some(window) => Ok(vec![*window]),
        None => {
            let known: Vec<String> = windows.iter().map(|w| format!("'{w}'")).collect();
            plan_err!(
                "feature {} has no window {selector}; its windows are {}",
                feature.definition.name,
                known.join(", ")
            )
        }
    }
}

/// What features must agree on to share a scan.
#[derive(Debug, PartialEq, Eq)]
struct StageKey {
    source: String,
    keys: Vec<String>,
    timestamp: String,
    filter: Option<String>,
}

impl StageKey {
    fn of(feature: &BoundFeature) -> Self {
        let definition = &feature.definition;
        Self {
            source: definition.source.clone(),
            keys: definition.keys.clone(),
            timestamp: definition.timestamp.clone(),
            filter: definition.filter.clone(),
        }
    }
}

/// Bound features of one stage with their requested windows.
struct BoundStage {
    features: Vec<(BoundFeature, Vec<WindowPlan>)>,
}

impl BoundStage {
    fn first(&self) -> &BoundFeature {
        &self.features[0].0
    }

    /// `scan → filter → project(keys, time, arguments)`.
    fn events_plan(&self, spine: &DFSchema) -> Result<LogicalPlan> {
        let first = self.first();
        let definition = &first.definition;
        let mut predicate = col(&definition.timestamp).is_not_null();
        for key in &definition.keys {
            predicate = predicate.and(col(key).is_not_null());
        }
        if let Some(filter) = &first.filter {
            predicate = predicate.and(filter.clone());
        }
        let mut projection: Vec<Expr> = Vec::new();
        for (i, key) in definition.keys.iter().enumerate() {
            let (_, spine_field) = spine.qualified_field_with_unqualified_name(key)?;
            projection.push(
                cast_if_needed(col(key), spine_field.data_type(), &first.source_schema)?
                    .alias(event_key_column(i)),
            );
        }
        projection.push(col(&definition.timestamp).alias(EVENT_TIME_COLUMN));
        for (i, (feature, _)) in self.features.iter().enumerate() {
            let columns = feature_columns(feature, &definition.timestamp, &first.source_schema)?;
            for (j, argument) in columns.into_iter().enumerate() {
                projection.push(argument.alias(event_argument_column(i, j)));
            }
        }
        LogicalPlanBuilder::scan(
            first.table.clone(),
            provider_as_source(Arc::clone(&first.provider)),
            None,
        )?
        .filter(predicate)?
        .project(projection)?
        .build()
    }

    /// The stage's plan; with `use_tiles`, each feature names the tile set of each of its grids.
    fn plan(self, use_tiles: bool) -> Result<StagePlan> {
        let first = self.first();
        let mut plan = StagePlan {
            source: first.table.to_string(),
            spine_keys: first.definition.keys.clone(),
            filter: first.definition.filter.clone(),
            features: Vec::with_capacity(self.features.len()),
        };
        for (feature, windows) in self.features {
            let tile_sets = if use_tiles {
                tile_set_refs(&feature)?
            } else {
                Vec::new()
            };
            plan.features.push(FeaturePlan {
                name: feature.definition.name.clone(),
                call: feature.definition.aggregate.to_string(),
                argument_columns: feature.arguments.len()
                    + usize::from(feature.aggregate.needs_event_time),
                aggregate: feature.aggregate,
                default: feature.default,
                windows,
                tile_sets,
            });
        }
        Ok(plan)
    }
}

/// The tile set of each grid of `feature`.
fn tile_set_refs(feature: &BoundFeature) -> Result<Vec<TileSetRef>> {
    grids_of(feature)?
        .into_iter()
        .map(|grid| {
            let description = tile_set_of(feature, grid)?;
            Ok(TileSetRef {
                grid,
                id: description.id(),
                series: description.series.id(),
            })
        })
        .collect()
}

/// The argument columns of a feature: its column arguments, then the event
/// time in microseconds when the state breaks ties by it.
pub(crate) fn feature_columns(
    feature: &BoundFeature,
    timestamp: &str,
    schema: &DFSchema,
) -> Result<Vec<Expr>> {
    let mut columns = feature.arguments.clone();
    if feature.aggregate.needs_event_time {
        let micros = DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Microsecond,
            Some("UTC".into()),
        );
        columns.push(
            col(timestamp)
                .cast_to(&micros, schema)?
                .cast_to(&DataType::Int64, schema)?,
        );
    }
    Ok(columns)
}

fn cast_if_needed(expr: Expr, to: &DataType, schema: &DFSchema) -> Result<Expr> {
    if expr.get_type(schema)? == *to {
        Ok(expr)
    } else {
        expr.cast_to(to, schema)
    }
}
