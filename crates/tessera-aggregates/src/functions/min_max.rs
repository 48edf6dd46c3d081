//! `min` and `max` of integers, floats, timestamps and strings.
//!
//! Values are kept as the canonical input type: floats and integers unboxed,
//! others as scalars. Floats order NaN above every number (as SQL engines
//! do) and treat -0.0 and 0.0 as equal.

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, FieldRef, Float64Type, Int64Type,
};
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
    value: Option<Extreme>,
    largest: bool,
}

/// A value an [`ExtremeState`] holds: floats and integers — what most
/// features aggregate — unboxed, so that comparing, copying and emitting
/// them costs no scalar; any other type as a boxed scalar (so that a state
/// of numbers takes 24 bytes, not the size of a scalar).
#[derive(Debug, Clone, PartialEq)]
enum Extreme {
    Float(f64),
    Integer(i64),
    Other(Box<ScalarValue>),
}

impl Extreme {
    /// The value of a scalar, `None` when it is null.
    fn of(value: ScalarValue) -> Option<Self> {
        match value {
            ScalarValue::Float64(Some(v)) => Some(Self::Float(v)),
            ScalarValue::Int64(Some(v)) => Some(Self::Integer(v)),
            v if v.is_null() => None,
            v => Some(Self::Other(Box::new(v))),
        }
    }

    fn to_scalar(&self) -> ScalarValue {
        match self {
            Self::Float(v) => ScalarValue::Float64(Some(*v)),
            Self::Integer(v) => ScalarValue::Int64(Some(*v)),
            Self::Other(v) => v.as_ref().clone(),
        }
    }

    /// Its order against `other` (of the same type), as [`total_order`] has it.
    fn order(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Float(a), Self::Float(b)) => float_order(*a, *b),
            (Self::Integer(a), Self::Integer(b)) => a.cmp(b),
            (Self::Other(a), Self::Other(b)) => total_order(a, b),
            // One state holds one type: never met, but ordered all the same.
            (a, b) => total_order(&a.to_scalar(), &b.to_scalar()),
        }
    }

    /// Appends the value to `column`.
    fn push_to(&self, column: &mut ValueColumn) -> Result<()> {
        match self {
            Self::Float(v) => column.push_f64(Some(*v)),
            Self::Integer(v) => column.push_i64(Some(*v)),
            Self::Other(v) => column.push(v.as_ref().clone()),
        }
    }
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
    /// Keeps `candidate` if it beats the current value (copied only then).
    fn offer(&mut self, candidate: &Extreme) {
        let better = self.value.as_ref().is_none_or(|current| {
            let order = candidate.order(current);
            if self.largest {
                order.is_gt()
            } else {
                order.is_lt()
            }
        });
        if better {
            self.value = Some(candidate.clone());
        }
    }
}

impl PartialState for ExtremeState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let column = argument(arguments, 0, "min/max")?;
        if let Some(value) = extreme_at(column, row)? {
            self.offer(&value);
        }
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        if let Some(value) = &other.value {
            self.offer(value);
        }
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        Ok(self
            .value
            .as_ref()
            .map_or(ScalarValue::Null, Extreme::to_scalar))
    }

    fn append_result(&self, out: &mut ValueColumn) -> Result<()> {
        match &self.value {
            Some(value) => value.push_to(out),
            None => out.push(ScalarValue::Null),
        }
    }

    fn is_empty(&self) -> bool {
        self.value.is_none()
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        let [column] = columns else {
            return exec_err!("min/max state: 1 column expected, got {}", columns.len());
        };
        match &self.value {
            Some(value) => value.push_to(column),
            None => {
                column.push_null();
                Ok(())
            }
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            // The box holds the whole scalar: its inline bytes and its heap.
            Some(Extreme::Other(v)) => v.size(),
            Some(Extreme::Float(_) | Extreme::Integer(_)) | None => 0,
        }
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
    fn state(&self, value: Option<Extreme>) -> ExtremeState {
        ExtremeState {
            value,
            largest: self.largest,
        }
    }

    /// Appends to `out` the states of rows `rows` of a column of numbers,
    /// each non-null value wrapped by `extreme`.
    fn decode_numbers<T: ArrowPrimitiveType>(
        &self,
        values: &PrimitiveArray<T>,
        rows: Range<usize>,
        extreme: impl Fn(T::Native) -> Extreme,
        out: &mut Vec<ExtremeState>,
    ) {
        let value = |row| values.is_valid(row).then(|| extreme(values.value(row)));
        out.extend(rows.map(|row| self.state(value(row))));
    }
}

/// The value in row `row` of a column of the value type, `None` when null.
/// Tile plans decode a state per key and bucket, and backfills fold every
/// event: floats and integers skip the generic scalar conversion.
fn extreme_at(column: &ArrayRef, row: usize) -> Result<Option<Extreme>> {
    if column.is_null(row) {
        Ok(None)
    } else if let Some(values) = column.as_primitive_opt::<Float64Type>() {
        Ok(Some(Extreme::Float(values.value(row))))
    } else if let Some(values) = column.as_primitive_opt::<Int64Type>() {
        Ok(Some(Extreme::Integer(values.value(row))))
    } else {
        Ok(Extreme::of(ScalarValue::try_from_array(column, row)?))
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
        // The column's type is found once, not at every row.
        if let Some(values) = column.as_primitive_opt::<Float64Type>() {
            self.decode_numbers(values, rows, Extreme::Float, out);
        } else if let Some(values) = column.as_primitive_opt::<Int64Type>() {
            self.decode_numbers(values, rows, Extreme::Integer, out);
        } else {
            for row in rows {
                out.push(self.state(extreme_at(column, row)?));
            }
        }
        Ok(())
    }

    fn result_type(&self) -> DataType {
        self.value_type.clone()
    }
}
