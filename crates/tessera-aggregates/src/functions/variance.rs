//! `var` and `std`: sample variance and standard deviation (n - 1).
//!
//! The state is count, mean and M2 (the sum of squared deviations), merged
//! with the pairwise update of Chan, Golub and LeVeque — stable where running
//! sums of squares cancel catastrophically.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;

use super::count::int64_column;
use super::input::primitive;
use crate::state::{PartialState, StateFactory, ValueColumn};

/// Makes [`MomentsState`]s; evaluates to the variance or its square root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarianceFactory {
    /// Evaluate to the standard deviation instead of the variance.
    pub standard_deviation: bool,
}

/// Count, mean and sum of squared deviations of the values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MomentsState {
    /// Number of values.
    pub count: i64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    /// Evaluate to the standard deviation.
    standard_deviation: bool,
}

impl MomentsState {
    /// Sample variance, `None` for fewer than two values.
    pub fn sample_variance(&self) -> Option<f64> {
        (self.count >= 2).then(|| self.m2 / (self.count - 1) as f64)
    }

    /// The variance, or its square root for a standard deviation.
    fn result(&self) -> Option<f64> {
        let variance = self.sample_variance();
        if self.standard_deviation {
            variance.map(f64::sqrt)
        } else {
            variance
        }
    }

    fn merge_moments(&mut self, count: i64, mean: f64, m2: f64) {
        if count == 0 {
            return;
        }
        if self.count == 0 {
            (self.count, self.mean, self.m2) = (count, mean, m2);
            return;
        }
        let total = self.count + count;
        let delta = mean - self.mean;
        let weight = count as f64 / total as f64;
        self.mean += delta * weight;
        self.m2 += m2 + delta * delta * self.count as f64 * weight;
        self.count = total;
    }
}

impl PartialState for MomentsState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let values = primitive::<Float64Type>(arguments, 0, "var")?;
        if values.is_valid(row) {
            self.merge_moments(1, values.value(row), 0.0);
        }
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        self.merge_moments(other.count, other.mean, other.m2);
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.result()))
    }

    fn append_result(&self, out: &mut ValueColumn) -> Result<()> {
        out.push_f64(self.result())
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.count)),
            ScalarValue::Float64(Some(self.mean)),
            ScalarValue::Float64(Some(self.m2)),
        ])
    }

    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        let [count, mean, m2] = columns else {
            return exec_err!("var state: 3 columns expected, got {}", columns.len());
        };
        count.push_i64(Some(self.count))?;
        mean.push_f64(Some(self.mean))?;
        m2.push_f64(Some(self.m2))
    }

    fn size(&self) -> usize {
        0
    }
}

/// The `count`, `mean` and `m2` state columns, checked to be of the right types.
struct MomentColumns<'a> {
    counts: &'a Int64Array,
    means: &'a Float64Array,
    m2s: &'a Float64Array,
}

impl<'a> MomentColumns<'a> {
    fn try_new(columns: &'a [ArrayRef]) -> Result<Self> {
        let float = |index: usize, field: &str| -> Result<&'a Float64Array> {
            match columns
                .get(index)
                .and_then(|c| c.as_primitive_opt::<Float64Type>())
            {
                Some(c) => Ok(c),
                None => exec_err!("state field '{field}' must be a Float64 column"),
            }
        };
        Ok(Self {
            counts: int64_column(columns, 0, "count")?,
            means: float(1, "mean")?,
            m2s: float(2, "m2")?,
        })
    }
}

impl VarianceFactory {
    /// The state in row `row` of `columns`, checked for consistency.
    fn moments_at(&self, columns: &MomentColumns<'_>, row: usize) -> Result<MomentsState> {
        let count = if columns.counts.is_valid(row) {
            columns.counts.value(row)
        } else {
            0
        };
        let value = |c: &Float64Array| c.is_valid(row).then(|| c.value(row));
        match (count, value(columns.means), value(columns.m2s)) {
            (0, _, _) => Ok(self.empty()),
            (n, Some(mean), Some(m2))
                if n > 0 && m2 >= 0.0 && mean.is_finite() == m2.is_finite() =>
            {
                Ok(MomentsState {
                    count: n,
                    mean,
                    m2,
                    standard_deviation: self.standard_deviation,
                })
            }
            (n, mean, m2) => {
                exec_err!("invalid variance state: count {n}, mean {mean:?}, m2 {m2:?}")
            }
        }
    }
}

impl StateFactory for VarianceFactory {
    type State = MomentsState;

    fn empty(&self) -> MomentsState {
        MomentsState {
            standard_deviation: self.standard_deviation,
            ..MomentsState::default()
        }
    }

    /// Three columns: `count` (Int64), `mean` (Float64) and `m2` (Float64, the
    /// sum of squared deviations from the mean).
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new(
                format_state_name(name, "count"),
                DataType::Int64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "mean"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "m2"),
                DataType::Float64,
                true,
            )),
        ]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<MomentsState> {
        self.moments_at(&MomentColumns::try_new(columns)?, row)
    }

    fn decode_rows(
        &self,
        columns: &[ArrayRef],
        rows: Range<usize>,
        out: &mut Vec<MomentsState>,
    ) -> Result<()> {
        let columns = MomentColumns::try_new(columns)?;
        for row in rows {
            out.push(self.moments_at(&columns, row)?);
        }
        Ok(())
    }

    fn result_type(&self) -> DataType {
        DataType::Float64
    }
}
