//! `count`: the number of non-null values, or of rows without an argument.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;

use crate::state::{PartialState, StateFactory, ValueColumn};

/// Makes [`CountState`]s.
#[derive(Debug, Clone, Default)]
pub struct CountFactory;

/// The count so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountState(pub i64);

impl PartialState for CountState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        if arguments.first().is_none_or(|values| values.is_valid(row)) {
            self.0 += 1;
        }
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        self.0 += other.0;
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(self.0)))
    }

    fn append_result(&self, out: &mut ValueColumn) -> Result<()> {
        out.push_i64(Some(self.0))
    }

    fn is_empty(&self) -> bool {
        self.0 == 0
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Int64(Some(self.0))])
    }

    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        let [count] = columns else {
            return exec_err!("count state: 1 column expected, got {}", columns.len());
        };
        count.push_i64(Some(self.0))
    }

    fn size(&self) -> usize {
        0
    }
}

impl StateFactory for CountFactory {
    type State = CountState;

    fn empty(&self) -> CountState {
        CountState(0)
    }

    /// One column, `count`: the number of values counted (Int64, never negative).
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        vec![Arc::new(Field::new(
            format_state_name(name, "count"),
            DataType::Int64,
            true,
        ))]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<CountState> {
        count_at(int64_column(columns, 0, "count")?, row)
    }

    fn decode_rows(
        &self,
        columns: &[ArrayRef],
        rows: Range<usize>,
        out: &mut Vec<CountState>,
    ) -> Result<()> {
        let counts = int64_column(columns, 0, "count")?;
        for row in rows {
            out.push(count_at(counts, row)?);
        }
        Ok(())
    }

    fn result_type(&self) -> DataType {
        DataType::Int64
    }
}

/// The count state in row `row` of `counts`, checked.
fn count_at(counts: &Int64Array, row: usize) -> Result<CountState> {
    match counts.is_valid(row).then(|| counts.value(row)) {
        None => Ok(CountState(0)),
        Some(count) if count >= 0 => Ok(CountState(count)),
        Some(count) => exec_err!("invalid count state {count}: a count is never negative"),
    }
}

/// Column `index` of a state as Int64, or an error naming the state field.
pub(crate) fn int64_column<'a>(
    columns: &'a [ArrayRef],
    index: usize,
    field: &str,
) -> Result<&'a Int64Array> {
    match columns
        .get(index)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
    {
        Some(column) => Ok(column),
        None => exec_err!("state field '{field}' must be an Int64 column"),
    }
}
