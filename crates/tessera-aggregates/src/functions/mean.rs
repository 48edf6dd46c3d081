//! `mean`: the arithmetic mean, kept as a float sum and a count.

use std::ops::Range;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};

use super::sum::{SumFactory, SumState, decode_sum, decode_sum_rows};
use crate::state::{PartialState, StateFactory, ValueColumn};

/// Makes [`MeanState`]s.
#[derive(Debug, Clone, Default)]
pub struct MeanFactory;

/// A float sum and count; the result is their quotient, null when empty.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MeanState(pub SumState<f64>);

impl MeanState {
    /// Sum over count, `None` when empty.
    fn mean(&self) -> Option<f64> {
        (self.0.count > 0).then(|| self.0.sum / self.0.count as f64)
    }
}

impl PartialState for MeanState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        self.0.update(arguments, row)
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        self.0.merge(&other.0)?;
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.mean()))
    }

    fn append_result(&self, out: &mut ValueColumn) -> Result<()> {
        out.push_f64(self.mean())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        self.0.to_state()
    }

    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        self.0.append_state(columns)
    }

    fn size(&self) -> usize {
        0
    }
}

impl StateFactory for MeanFactory {
    type State = MeanState;

    fn empty(&self) -> MeanState {
        MeanState::default()
    }

    /// Two columns: `sum` (Float64) and `count` (Int64), as for a float `sum`.
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        SumFactory::<f64>::default().state_fields(name)
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<MeanState> {
        decode_sum(columns, row).map(MeanState)
    }

    fn decode_rows(
        &self,
        columns: &[ArrayRef],
        rows: Range<usize>,
        out: &mut Vec<MeanState>,
    ) -> Result<()> {
        decode_sum_rows(columns, rows, out, MeanState)
    }

    fn result_type(&self) -> DataType {
        DataType::Float64
    }
}
