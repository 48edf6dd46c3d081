//! Helpers shared by the suites.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::Result;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use tessera::{TesseraOptions, TrainingSet};

/// A fresh session with Tessera registered.
pub fn context() -> SessionContext {
    tessera::new_context(SessionConfig::new().with_target_partitions(4))
}

/// Runs every statement and returns the batches of the last one.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    let mut frames = tessera::execute_sql(ctx, sql).await?;
    match frames.pop() {
        Some(frame) => frame.collect().await,
        None => Ok(vec![]),
    }
}

/// Runs `sql` and renders the result as a table.
pub async fn table(ctx: &SessionContext, sql: &str) -> String {
    let batches = run(ctx, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    pretty_format_batches(&batches).unwrap().to_string()
}

/// Runs `sql`, expecting an error, and returns its message.
pub async fn error(ctx: &SessionContext, sql: &str) -> String {
    match run(ctx, sql).await {
        Ok(_) => panic!("expected an error from: {sql}"),
        Err(e) => e.strip_backtrace(),
    }
}

/// The physical plan of the training set of `features` over `spine` (its
/// time column `time`) under `options`.
pub async fn training_set_plan<'a>(
    spine: DataFrame,
    time: &str,
    features: impl IntoIterator<Item = &'a str>,
    options: TesseraOptions,
) -> Arc<dyn ExecutionPlan> {
    let mut training_set = TrainingSet::new(spine, time).options(options);
    for feature in features {
        training_set = training_set.feature(feature);
    }
    training_set
        .build()
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap()
}
