//! What a window's values become at the end of a spine batch, shared by
//! every plan that answers windows: its output column (cast to the
//! feature's type, `DEFAULT` where the window was empty), or the error of
//! rows that needed buckets its tiles do not cover.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::zip::zip;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{DataFusionError, Result, ScalarValue, exec_datafusion_err};
use tessera_time::{TimeRanges, WindowLength, format_instant};

use crate::node::{StagePlan, TileSetRef};

/// The output column of one window: `values` cast to `result_type`, and
/// `default` (when the feature has one) where `empty` says the window held nothing.
pub(crate) fn window_column(
    values: ArrayRef,
    empty: &BooleanArray,
    result_type: &DataType,
    default: Option<&ScalarValue>,
) -> Result<ArrayRef> {
    let values = if values.data_type() == result_type {
        values
    } else {
        cast(&values, result_type)?
    };
    match default {
        Some(default) => Ok(zip(empty, &default.to_scalar()?, &values)?),
        None => Ok(values),
    }
}

/// The error of window `window` of feature `feature`, some of whose rows
/// need the `missing` buckets that `tile_set` does not cover.
pub(crate) fn uncovered_buckets_error(
    feature: &str,
    window: WindowLength,
    tile_set: &TileSetRef,
    missing: &TimeRanges,
) -> DataFusionError {
    let ranges = missing.ranges();
    let (first, last) = match (ranges.first(), ranges.last()) {
        (Some(first), Some(last)) => (first.0, last.1),
        _ => (0, 0),
    };
    exec_datafusion_err!(
        "feature {feature}: window {window} needs buckets that the tiles of series {} (tile set {}) do not cover: {missing}; backfill them (tessera aggregate backfill --feature {feature} --store-offline --lower-bound {} --upper-bound {}) or SET tessera.tile_coverage_fallback = 'raw'",
        tile_set.series,
        tile_set.id,
        format_instant(first),
        format_instant(last)
    )
}

/// The schema of a stage's output: its input's columns, then one column per
/// feature window, in the stage's order.
pub(crate) fn stage_schema(input: &Schema, stage: &StagePlan) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = input.fields().iter().cloned().collect();
    for feature in &stage.features {
        for window in &feature.windows {
            fields.push(Arc::new(Field::new(
                &window.column,
                feature.aggregate.result_type.clone(),
                true,
            )));
        }
    }
    Arc::new(Schema::new_with_metadata(fields, input.metadata().clone()))
}
