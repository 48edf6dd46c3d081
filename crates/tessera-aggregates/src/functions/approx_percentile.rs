//! `approx_percentile(value, quantile)` with an Apache DataSketches t-digest.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;
use datasketches::tdigest::TDigestMut;

use super::input::primitive;
use super::sketch_header::{ExpectedHeader, binary_image};
use crate::state::{PartialState, StateFactory};

/// The t-digest compression: about 0.5% rank error in the tails, less in the middle.
pub const TDIGEST_K: u16 = 100;

/// Makes [`PercentileState`]s for one quantile.
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileFactory {
    /// The quantile in `[0, 1]`.
    pub quantile: f64,
}

/// A t-digest of the values seen.
#[derive(Debug, Clone)]
pub struct PercentileState {
    digest: TDigestMut,
    quantile: f64,
}

impl PartialState for PercentileState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let values = primitive::<Float64Type>(arguments, 0, "approx_percentile")?;
        if values.is_valid(row) && !values.value(row).is_nan() {
            self.digest.update(values.value(row));
        }
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        self.digest.merge(&other.digest);
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        self.quantile_of(self.digest.clone())
    }

    fn is_empty(&self) -> bool {
        self.digest.is_empty()
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(
            self.digest.clone().serialize(),
        ))])
    }

    fn size(&self) -> usize {
        self.digest.estimated_size()
    }

    /// The non-empty parts merged in one pass: the crate's k-way merge of
    /// every digest's centroids, compressed once (merging one digest at a
    /// time compresses after each — a window of 30 bucket digests paid 30).
    fn merged_result(states: &[&Self]) -> Result<(bool, ScalarValue)> {
        let mut non_empty = states.iter().filter(|s| !s.is_empty()).peekable();
        let Some(first) = non_empty.peek().copied() else {
            return Ok((true, ScalarValue::Float64(None)));
        };
        let digest: TDigestMut = non_empty.map(|state| state.digest.clone()).collect();
        Ok((false, first.quantile_of(digest)?))
    }
}

impl PercentileState {
    /// The configured quantile of `digest`.
    fn quantile_of(&self, mut digest: TDigestMut) -> Result<ScalarValue> {
        match digest.quantile(self.quantile) {
            Ok(value) => Ok(ScalarValue::Float64(value)),
            Err(e) => exec_err!("approx_percentile: {e}"),
        }
    }
}

impl StateFactory for PercentileFactory {
    type State = PercentileState;

    fn empty(&self) -> PercentileState {
        PercentileState {
            digest: TDigestMut::new(TDIGEST_K).unwrap_or_default(),
            quantile: self.quantile,
        }
    }

    /// One column, `tdigest`: the Apache DataSketches t-digest image (Binary).
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        vec![Arc::new(Field::new(
            format_state_name(name, "tdigest"),
            DataType::Binary,
            true,
        ))]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<PercentileState> {
        let Some(image) = binary_image(columns, row, "tdigest")? else {
            return Ok(self.empty());
        };
        // At most a few k centroids of 16 bytes, plus buffered values, plus the preamble.
        let max_len = 64 + usize::from(TDIGEST_K) * 16 * 8;
        ExpectedHeader {
            sketch: "t-digest",
            family: 20,
            serial_version: 1,
            min_len: 8,
            max_len,
        }
        .check(image)?;
        let k = u16::from_le_bytes([image[3], image[4]]);
        if k != TDIGEST_K {
            return exec_err!("invalid t-digest state: k {k} where {TDIGEST_K} was expected");
        }
        match TDigestMut::deserialize(image) {
            Ok(digest) => Ok(PercentileState {
                digest,
                quantile: self.quantile,
            }),
            Err(e) => exec_err!("invalid t-digest state: {e}"),
        }
    }

    fn result_type(&self) -> DataType {
        DataType::Float64
    }
}
