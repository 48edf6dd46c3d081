//! The plan-equivalence harness: one training set, several option sets.
//!
//! [`compare_plans`] runs the same training-set request under each
//! [`PlanVariant`], timing each, and reports per feature column whether every
//! variant agrees with the first (the baseline), the largest numeric
//! difference and how many rows differ. Floats agree within a relative
//! tolerance; everything else must be equal. This is how a user checks that
//! a faster plan (buckets, later tiles) gives the answers of the exact one —
//! and how our own tests compare plans.

use std::fmt;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::config::ExtensionOptions;
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::dataframe::DataFrame;

use crate::api::TrainingSet;
use crate::options::TesseraOptions;

/// One way to run the training set.
#[derive(Debug, Clone)]
pub struct PlanVariant {
    /// Name in the report.
    pub label: String,
    /// The options to plan with.
    pub options: TesseraOptions,
}

impl PlanVariant {
    /// A variant from `label[:key=value,key=value]`: `exact`, `aligned`, `bucketed`
    /// and `buffered` (bucketed with a 36h continuous buffer) start from
    /// their semantics; the keys are option names without the `tessera.` prefix.
    pub fn parse(text: &str) -> Result<Self> {
        let (label, settings) = text.split_once(':').unwrap_or((text, ""));
        let mut options = TesseraOptions::default();
        let preset: &[(&str, &str)] = match label {
            "exact" => &[],
            "aligned" => &[("align_offline_chalk_window_with_materialization", "true")],
            "bucketed" => &[("use_materialized_offline_query", "true")],
            "buffered" => &[
                ("use_materialized_offline_query", "true"),
                ("continuous_buffer_duration", "36h"),
            ],
            _ if settings.is_empty() => {
                return plan_err!(
                    "unknown plan variant '{label}': use exact, aligned, bucketed, buffered, or name:option=value,…"
                );
            }
            _ => &[],
        };
        for (key, value) in preset {
            options.set(key, value)?;
        }
        for setting in settings.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((key, value)) = setting.split_once('=') else {
                return plan_err!("plan variant '{text}': expected option=value, got '{setting}'");
            };
            options.set(key.trim(), value.trim())?;
        }
        Ok(Self {
            label: label.to_string(),
            options,
        })
    }
}

/// How one variant ran.
#[derive(Debug, Clone)]
pub struct VariantRun {
    /// The variant's label.
    pub label: String,
    /// Wall time to plan and collect the training set.
    pub elapsed: Duration,
    /// Rows returned.
    pub rows: usize,
}

/// How one feature column of one variant compares with the baseline.
#[derive(Debug, Clone)]
pub struct ColumnComparison {
    /// The feature column.
    pub column: String,
    /// The variant compared with the baseline.
    pub variant: String,
    /// Rows whose values differ beyond the tolerance.
    pub differing_rows: usize,
    /// The largest absolute difference of numeric values, if any were compared.
    pub max_difference: Option<f64>,
}

impl ColumnComparison {
    /// Whether every row agrees.
    pub fn agrees(&self) -> bool {
        self.differing_rows == 0
    }
}

/// The result of [`compare_plans`].
#[derive(Debug, Clone)]
pub struct PlanComparison {
    /// Every variant's run, baseline first.
    pub runs: Vec<VariantRun>,
    /// Per feature column and non-baseline variant.
    pub columns: Vec<ColumnComparison>,
}

impl PlanComparison {
    /// Whether every column of every variant agrees with the baseline.
    pub fn all_agree(&self) -> bool {
        self.columns.iter().all(ColumnComparison::agrees)
    }
}

impl fmt::Display for PlanComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let baseline = self.runs.first().map_or(0.0, |r| r.elapsed.as_secs_f64());
        writeln!(
            f,
            "{:<16} {:>12} {:>10} {:>10}",
            "plan", "time", "rows", "vs first"
        )?;
        for run in &self.runs {
            let ratio = if run.elapsed.as_secs_f64() > 0.0 {
                baseline / run.elapsed.as_secs_f64()
            } else {
                0.0
            };
            writeln!(
                f,
                "{:<16} {:>12.3?} {:>10} {:>9.2}x",
                run.label, run.elapsed, run.rows, ratio
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<48} {:<16} {:<8} {:>14} {:>14}",
            "column", "plan", "agrees", "differing rows", "max difference"
        )?;
        for column in &self.columns {
            let difference = column
                .max_difference
                .map_or("-".to_string(), |d| format!("{d:.3e}"));
            let agrees = if column.agrees() { "yes" } else { "NO" };
            writeln!(
                f,
                "{:<48} {:<16} {:<8} {:>14} {:>14}",
                column.column, column.variant, agrees, column.differing_rows, difference
            )?;
        }
        Ok(())
    }
}

/// Runs the training set of `features` over `spine` under each variant and compares.
///
/// The first variant is the baseline. `tolerance` is relative, for floats
/// (SEMANTICS.md §4 allows 1e-9 between plans).
pub async fn compare_plans(
    spine: &DataFrame,
    time_column: &str,
    features: &[String],
    variants: &[PlanVariant],
    tolerance: f64,
) -> Result<PlanComparison> {
    if variants.len() < 2 {
        return plan_err!(
            "comparing plans needs at least two variants, got {}",
            variants.len()
        );
    }
    let mut runs = Vec::with_capacity(variants.len());
    let mut results: Vec<RecordBatch> = Vec::with_capacity(variants.len());
    for variant in variants {
        let mut training_set =
            TrainingSet::new(spine.clone(), time_column).options(variant.options.clone());
        for feature in features {
            training_set = training_set.feature(feature);
        }
        let started = Instant::now();
        let frame = training_set.build()?;
        let schema = frame.schema().inner().clone();
        let batches = frame.collect().await?;
        let elapsed = started.elapsed();
        let batch = concat_batches(&schema, &batches)?;
        runs.push(VariantRun {
            label: variant.label.clone(),
            elapsed,
            rows: batch.num_rows(),
        });
        results.push(batch);
    }
    let spine_columns = spine.schema().fields().len();
    let baseline = &results[0];
    let mut columns = Vec::new();
    for (variant, result) in variants.iter().zip(&results).skip(1) {
        if result.num_rows() != baseline.num_rows() {
            return plan_err!(
                "plan '{}' returned {} rows, the baseline {}",
                variant.label,
                result.num_rows(),
                baseline.num_rows()
            );
        }
        for index in spine_columns..baseline.num_columns() {
            let (differing_rows, max_difference) =
                compare_columns(baseline.column(index), result.column(index), tolerance)?;
            columns.push(ColumnComparison {
                column: baseline.schema().field(index).name().clone(),
                variant: variant.label.clone(),
                differing_rows,
                max_difference,
            });
        }
    }
    Ok(PlanComparison { runs, columns })
}

/// Counts differing rows and the largest numeric difference between two columns.
fn compare_columns(
    expected: &ArrayRef,
    actual: &ArrayRef,
    tolerance: f64,
) -> Result<(usize, Option<f64>)> {
    let numeric = matches!(expected.data_type(), DataType::Float64 | DataType::Int64);
    let mut differing = 0;
    let mut max_difference: Option<f64> = None;
    for row in 0..expected.len() {
        let (a, b) = (
            ScalarValue::try_from_array(expected, row)?,
            ScalarValue::try_from_array(actual, row)?,
        );
        let same = match (numeric, as_f64(&a), as_f64(&b)) {
            (true, Some(x), Some(y)) => {
                let difference = (x - y).abs();
                max_difference =
                    Some(max_difference.map_or(difference, |m: f64| m.max(difference)));
                difference <= tolerance * x.abs().max(y.abs()).max(1.0)
            }
            _ => a == b,
        };
        differing += usize::from(!same);
    }
    Ok((differing, max_difference))
}

fn as_f64(value: &ScalarValue) -> Option<f64> {
    match value {
        ScalarValue::Float64(Some(v)) => Some(*v),
        ScalarValue::Int64(Some(v)) => Some(*v as f64),
        _ => None,
    }
}
