//! `sum` of integers (wrapping Int64) or floats (Float64).

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, PrimitiveArray};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, FieldRef, Float64Type, Int64Type,
};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;

use super::count::int64_column;
use super::input::primitive;
use crate::state::{PartialState, StateFactory, ValueColumn};

/// A number type that sums: `i64` (wrapping, like DataFusion's `sum`) or `f64`.
pub trait Summable: Copy + Default + PartialEq + Send + Sync + Debug + 'static {
    /// Its Arrow type.
    type Arrow: ArrowPrimitiveType<Native = Self>;
    /// `self + other`.
    fn add(self, other: Self) -> Self;
    /// As a scalar.
    fn scalar(self) -> ScalarValue;
    /// Appends itself to `column`.
    fn append_to(self, column: &mut ValueColumn) -> Result<()>;
}

impl Summable for i64 {
    type Arrow = Int64Type;
    fn add(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    fn scalar(self) -> ScalarValue {
        ScalarValue::Int64(Some(self))
    }
    fn append_to(self, column: &mut ValueColumn) -> Result<()> {
        column.push_i64(Some(self))
    }
}

impl Summable for f64 {
    type Arrow = Float64Type;
    fn add(self, other: Self) -> Self {
        self + other
    }
    fn scalar(self) -> ScalarValue {
        ScalarValue::Float64(Some(self))
    }
    fn append_to(self, column: &mut ValueColumn) -> Result<()> {
        column.push_f64(Some(self))
    }
}

/// Makes [`SumState`]s of `T`.
#[derive(Debug, Clone, Default)]
pub struct SumFactory<T>(PhantomData<T>);

/// A running sum and how many values it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SumState<T> {
    /// The sum (zero when empty).
    pub sum: T,
    /// How many values were summed.
    pub count: i64,
}

impl<T: Summable> PartialState for SumState<T> {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let values = primitive::<T::Arrow>(arguments, 0, "sum")?;
        if values.is_valid(row) {
            self.sum = self.sum.add(values.value(row));
            self.count += 1;
        }
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        self.sum = self.sum.add(other.sum);
        self.count += other.count;
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        Ok(self.sum.scalar())
    }

    fn append_result(&self, out: &mut ValueColumn) -> Result<()> {
        self.sum.append_to(out)
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.sum.scalar(),
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        let [sum, count] = columns else {
            return exec_err!("sum state: 2 columns expected, got {}", columns.len());
        };
        self.sum.append_to(sum)?;
        count.push_i64(Some(self.count))
    }

    fn size(&self) -> usize {
        0
    }
}

impl<T: Summable> StateFactory for SumFactory<T> {
    type State = SumState<T>;

    fn empty(&self) -> SumState<T> {
        SumState::default()
    }

    /// Two columns: `sum` (the result type) and `count` (Int64, the values summed).
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new(
                format_state_name(name, "sum"),
                self.result_type(),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "count"),
                DataType::Int64,
                true,
            )),
        ]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<SumState<T>> {
        decode_sum(columns, row)
    }

    fn decode_rows(
        &self,
        columns: &[ArrayRef],
        rows: Range<usize>,
        out: &mut Vec<SumState<T>>,
    ) -> Result<()> {
        decode_sum_rows(columns, rows, out, |state| state)
    }

    fn result_type(&self) -> DataType {
        T::Arrow::DATA_TYPE
    }
}

/// Decodes `(sum, count)` state columns, checking their types and consistency.
pub(crate) fn decode_sum<T: Summable>(columns: &[ArrayRef], row: usize) -> Result<SumState<T>> {
    let (sums, counts) = sum_columns::<T>(columns)?;
    sum_at(sums, counts, row)
}

/// Decodes rows `rows` of `(sum, count)` state columns into `out`, each
/// state wrapped by `wrap`, checking the columns' types once.
pub(crate) fn decode_sum_rows<T: Summable, S>(
    columns: &[ArrayRef],
    rows: Range<usize>,
    out: &mut Vec<S>,
    wrap: impl Fn(SumState<T>) -> S,
) -> Result<()> {
    let (sums, counts) = sum_columns::<T>(columns)?;
    for row in rows {
        out.push(wrap(sum_at(sums, counts, row)?));
    }
    Ok(())
}

/// The `sum` and `count` state columns, checked to be of the right types.
fn sum_columns<T: Summable>(
    columns: &[ArrayRef],
) -> Result<(&PrimitiveArray<T::Arrow>, &Int64Array)> {
    let counts = int64_column(columns, 1, "count")?;
    match columns
        .first()
        .and_then(|c| c.as_primitive_opt::<T::Arrow>())
    {
        Some(sums) => Ok((sums, counts)),
        None => exec_err!("state field 'sum' must be a {} column", T::Arrow::DATA_TYPE),
    }
}

/// The sum state in row `row`, checked for consistency.
fn sum_at<T: Summable>(
    sums: &PrimitiveArray<T::Arrow>,
    counts: &Int64Array,
    row: usize,
) -> Result<SumState<T>> {
    let count = if counts.is_valid(row) {
        counts.value(row)
    } else {
        0
    };
    match (count, sums.is_valid(row)) {
        (..0, _) => exec_err!("invalid sum state: count {count} is negative"),
        (0, _) => Ok(SumState::default()),
        (_, true) => Ok(SumState {
            sum: sums.value(row),
            count,
        }),
        (_, false) => exec_err!("invalid sum state: {count} values but a null sum"),
    }
}
