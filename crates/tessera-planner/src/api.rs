//! The Rust API for offline jobs: a training set from a spine `DataFrame`.

use datafusion::common::Result;
use datafusion::dataframe::DataFrame;
use tessera_definitions::{FeatureDefinition, FeatureRequest};

use crate::binding::BoundFeature;
use crate::options::TesseraOptions;
use crate::training_set::{options, plan_training_set, registry};

/// Registers a feature built with [`FeatureDefinition::builder`] on the session of `ctx`,
/// with the same checks as `CREATE WINDOWED FEATURE`.
pub fn define_feature(
    ctx: &datafusion::prelude::SessionContext,
    definition: FeatureDefinition,
) -> Result<()> {
    let state = ctx.state();
    let definition = std::sync::Arc::new(definition);
    BoundFeature::bind(&state, std::sync::Arc::clone(&definition))?;
    registry(&state)?.register(std::sync::Arc::unwrap_or_clone(definition), false)
}

/// A training-set query under construction.
///
/// ```no_run
/// # async fn example(ctx: datafusion::prelude::SessionContext) -> datafusion::common::Result<()> {
/// use tessera_planner::{TesseraOptions, TrainingSet};
///
/// let spine = ctx.table("spine").await?;
/// let rows = TrainingSet::new(spine, "ts")
///     .feature("user.total_transaction_amount")
///     .options(TesseraOptions { align_offline_chalk_window_with_materialization: true, ..Default::default() })
///     .build()?
///     .collect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TrainingSet {
    spine: DataFrame,
    time_column: String,
    features: Vec<String>,
    options: Option<TesseraOptions>,
}

impl TrainingSet {
    /// A training set over `spine`, asking every feature as of `time_column`.
    pub fn new(spine: DataFrame, time_column: &str) -> Self {
        Self {
            spine,
            time_column: time_column.to_string(),
            features: Vec::new(),
            options: None,
        }
    }

    /// Adds a feature (`ns.name`) or one window of it (`ns.name["7d"]`, `ns.name__604800__`).
    pub fn feature(mut self, feature: &str) -> Self {
        self.features.push(feature.to_string());
        self
    }

    /// Options for this query only (the session's options otherwise).
    pub fn options(mut self, options: TesseraOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// Plans the training set as a `DataFrame` with the spine's columns then one per feature window.
    pub fn build(self) -> Result<DataFrame> {
        let (state, spine) = self.spine.into_parts();
        let requests = self
            .features
            .iter()
            .map(|f| FeatureRequest::parse(f))
            .collect::<Result<Vec<_>>>()?;
        let options = self.options.unwrap_or_else(|| options(&state));
        let plan = plan_training_set(&state, spine, &self.time_column, &requests, &options)?;
        Ok(DataFrame::new(state, plan))
    }
}
