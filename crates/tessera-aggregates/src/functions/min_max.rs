//! `min` and `max` of integers, floats, timestamps and strings.
//!
//! Values are kept as scalars of the canonical input type. Floats order NaN
//! above every number (as SQL engines do) and treat -0.0 and 0.0 as equal.

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;

use super::input::argument;
use crate::state::{PartialState, StateFactory, ValueColumn};

/// Makes [`ExtremeState`]s of one value type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtremeFactory {
    /// Keep the largest value instead of the smallest.
    pub largest: bool,
    /// The canonical value type.
    pub value_type: DataType,
}

/// The smallest (or largest) value seen, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtremeState {
    value: Option<ScalarValue>,
    largest: bool,
}

/// A total order on scalars of one type: NaN sorts above every float.
pub(crate) fn total_order(a: &ScalarValue, b: &ScalarValue) -> Ordering {
    match (a, b) {
        (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => float_order(*x, *y),
        _ => a.partial_cmp(b).unwrap_or(Ordering::Equal),
    }
}

/// The order of [`total_order`] on floats: NaN above every number, -0.0 equal to 0.0.
fn float_order(x: f64, y: f64) -> Ordering {
    x.partial_cmp(&y)
        .unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
}

impl ExtremeState {
    /// Whether a candidate ordered `order` against the current value replaces it.
    fn improves(&self, order: Ordering) -> bool {
        if self.largest {
            order.is_gt()
        } else {
            order.is_lt()
        }
    }

    fn offer(&mut self, candidate: &ScalarValue) {
        if candidate.is_null() {
            return;
        }
        let better = self
            .value
            .as_ref()
            .is_none_or(|current| self.improves(total_order(candidate, current)));
        if better {
            self.value = Some(candidate.clone());
        }
    }

    /// [`Self::offer`] for a float, without making a scalar unless it is kept.
    fn offer_float(&mut self, candidate: f64) {
        match self.value {
            Some(ScalarValue::Float64(Some(current))) => {
                if self.improves(float_order(candidate, current)) {
                    self.value = Some(ScalarValue::Float64(Some(candidate)));
                }
            }
            _ => self.offer(&ScalarValue::Float64(Some(candidate))),
        }
    }

    /// [`Self::offer`] for an integer, without making a scalar unless it is kept.
    fn offer_integer(&mut self, candidate: i64) {
        match self.value {
            Some(ScalarValue::Int64(Some(current))) => {
                if self.improves(candidate.cmp(&current)) {
                    self.value = Some(ScalarValue::Int64(Some(candidate)));
                }
            }
            _ => self.offer(&ScalarValue::Int64(Some(candidate))),
        }
    }
}

impl PartialState for ExtremeState {
    /// Floats and integers — what most features aggregate — are compared
    /// in place; other types go through a scalar.
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let column = argument(arguments, 0, "min/max")?;
        if column.is_null(row) {
            return Ok(());
        }
        if let Some(values) = column.as_primitive_opt::<Float64Type>() {
            self.offer_float(values.value(row));
        } else if let Some(values) = column.as_primitive_opt::<Int64Type>() {
            self.offer_integer(values.value(row));
        } else {
            self.offer(&ScalarValue::try_from_array(column, row)?);
        }
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        match &other.value {
            Some(ScalarValue::Float64(Some(value))) => self.offer_float(*value),
            Some(ScalarValue::Int64(Some(value))) => self.offer_integer(*value),
            Some(value) => self.offer(value),
            None => {}
        }
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        Ok(self.value.clone().unwrap_or(ScalarValue::Null))
    }

    fn append_result(&self, out: &mut ValueColumn) -> Result<()> {
        match &self.value {
            Some(ScalarValue::Float64(value)) => out.push_f64(*value),
            Some(ScalarValue::Int64(value)) => out.push_i64(*value),
            Some(value) => out.push(value.clone()),
            None => out.push(ScalarValue::Null),
        }
    }

    fn is_empty(&self) -> bool {
        self.value.is_none()
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.value.clone().unwrap_or(ScalarValue::Null)])
    }

    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        let [column] = columns else {
            return exec_err!("min/max state: 1 column expected, got {}", columns.len());
        };
        match &self.value {
            None => {
                column.push_null();
                Ok(())
            }
            Some(ScalarValue::Float64(value)) => column.push_f64(*value),
            Some(ScalarValue::Int64(value)) => column.push_i64(*value),
            Some(value) => column.push(value.clone()),
        }
    }

    fn size(&self) -> usize {
        self.value
            .as_ref()
            .map_or(0, |v| v.size() - std::mem::size_of_val(v))
    }
}

impl ExtremeFactory {
    /// The state's one column, checked to be of the value type.
    fn state_column<'a>(&self, columns: &'a [ArrayRef]) -> Result<&'a ArrayRef> {
        let Some(column) = columns.first() else {
            return exec_err!("min/max state has no column");
        };
        if column.data_type() != &self.value_type {
            return exec_err!(
                "min/max state must be {}, got {}",
                self.value_type,
                column.data_type()
            );
        }
        Ok(column)
    }

    /// A state holding `value` (none when empty).
    fn state(&self, value: Option<ScalarValue>) -> ExtremeState {
        ExtremeState {
            value,
            largest: self.largest,
        }
    }
}

/// The value in row `row` of a state column, `None` when null. Tile plans
/// decode a state per key and bucket: floats and integers skip the generic
/// scalar conversion.
fn extreme_at(column: &ArrayRef, row: usize) -> Result<Option<ScalarValue>> {
    if column.is_null(row) {
        Ok(None)
    } else if let Some(values) = column.as_primitive_opt::<Float64Type>() {
        Ok(Some(ScalarValue::Float64(Some(values.value(row)))))
    } else if let Some(values) = column.as_primitive_opt::<Int64Type>() {
        Ok(Some(ScalarValue::Int64(Some(values.value(row)))))
    } else {
        Ok(Some(ScalarValue::try_from_array(column, row)?))
    }
}

impl StateFactory for ExtremeFactory {
    type State = ExtremeState;

    fn empty(&self) -> ExtremeState {
        self.state(None)
    }

    /// One column, `min` or `max`, of the value type; null when empty.
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        let field = if self.largest { "max" } else { "min" };
        vec![Arc::new(Field::new(
            format_state_name(name, field),
            self.value_type.clone(),
            true,
        ))]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<ExtremeState> {
        let column = self.state_column(columns)?;
        Ok(self.state(extreme_at(column, row)?))
    }

    fn decode_rows(
        &self,
        columns: &[ArrayRef],
        rows: Range<usize>,
        out: &mut Vec<ExtremeState>,
    ) -> Result<()> {
        let column = self.state_column(columns)?;
        for row in rows {
            out.push(self.state(extreme_at(column, row)?));
        }
        Ok(())
    }

    fn result_type(&self) -> DataType {
        self.value_type.clone()
    }
}
