//! Element-wise `sum` and `mean` of fixed-size float vectors (e.g. 384-dim embeddings).
//!
//! Inputs are read as `FixedSizeList<Float32, d>` (kept in single precision,
//! half the memory of a cast) or `FixedSizeList<Float64, d>`; the state is the
//! element-wise sum in double precision and the number of vectors. A null vector is skipped; a
//! null element counts as 0. The result of an empty window is null.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float32Type, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;

use super::count::int64_column;
use super::input::vectors;
use crate::state::{PartialState, StateFactory};

/// The largest vector dimension accepted.
pub const MAX_DIMENSION: i32 = 65_536;

/// Makes [`VectorSumState`]s of one dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorFactory {
    /// The vector length `d`.
    pub dimension: i32,
    /// Evaluate to the mean instead of the sum.
    pub mean: bool,
}

/// Element-wise sum and count of the vectors seen.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorSumState {
    sums: Vec<f64>,
    count: i64,
    mean: bool,
}

impl VectorFactory {
    /// The canonical input and result type, `FixedSizeList<Float64, d>`.
    pub fn vector_type(dimension: i32) -> DataType {
        DataType::FixedSizeList(
            Arc::new(Field::new("item", DataType::Float64, true)),
            dimension,
        )
    }

    fn vector_scalar(&self, values: Vec<f64>) -> Result<ScalarValue> {
        let array = datafusion::arrow::array::FixedSizeListArray::try_new(
            Arc::new(Field::new("item", DataType::Float64, true)),
            self.dimension,
            Arc::new(Float64Array::from(values)),
            None,
        )?;
        Ok(ScalarValue::FixedSizeList(Arc::new(array)))
    }
}

impl PartialState for VectorSumState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let vectors = vectors(arguments, 0, "vector sum")?;
        if vectors.is_null(row) {
            return Ok(());
        }
        let vector = vectors.value(row);
        let elements: Vec<Option<f64>> = if let Some(e) = vector.as_primitive_opt::<Float64Type>() {
            e.iter().collect()
        } else if let Some(e) = vector.as_primitive_opt::<Float32Type>() {
            e.iter().map(|v| v.map(f64::from)).collect()
        } else {
            return exec_err!(
                "vector sum: elements must be Float32 or Float64, got {}",
                vector.data_type()
            );
        };
        if elements.len() != self.sums.len() {
            return exec_err!(
                "vector of length {} where {} was expected",
                elements.len(),
                self.sums.len()
            );
        }
        for (sum, element) in self.sums.iter_mut().zip(elements) {
            *sum += element.unwrap_or(0.0);
        }
        self.count += 1;
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        if other.sums.len() != self.sums.len() {
            return exec_err!(
                "cannot merge vectors of length {} and {}",
                self.sums.len(),
                other.sums.len()
            );
        }
        self.sums
            .iter_mut()
            .zip(&other.sums)
            .for_each(|(a, b)| *a += b);
        self.count += other.count;
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        let factory = VectorFactory {
            dimension: self.sums.len() as i32,
            mean: self.mean,
        };
        if self.count == 0 {
            return ScalarValue::try_from(VectorFactory::vector_type(factory.dimension));
        }
        let scale = if self.mean {
            1.0 / self.count as f64
        } else {
            1.0
        };
        factory.vector_scalar(self.sums.iter().map(|s| s * scale).collect())
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        let factory = VectorFactory {
            dimension: self.sums.len() as i32,
            mean: self.mean,
        };
        Ok(vec![
            factory.vector_scalar(self.sums.clone())?,
            ScalarValue::Int64(Some(self.count)),
        ])
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<f64>()
    }
}

impl StateFactory for VectorFactory {
    type State = VectorSumState;

    fn empty(&self) -> VectorSumState {
        VectorSumState {
            sums: vec![0.0; self.dimension.max(0) as usize],
            count: 0,
            mean: self.mean,
        }
    }

    /// Two columns: `sum` (`FixedSizeList<Float64, d>`, the element-wise sum)
    /// and `count` (Int64, the vectors summed).
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new(
                format_state_name(name, "sum"),
                Self::vector_type(self.dimension),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "count"),
                DataType::Int64,
                true,
            )),
        ]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<VectorSumState> {
        let counts = int64_column(columns, 1, "count")?;
        let count = if counts.is_valid(row) {
            counts.value(row)
        } else {
            0
        };
        let Some(sums) = columns.first().and_then(|c| c.as_fixed_size_list_opt()) else {
            return exec_err!("state field 'sum' must be a FixedSizeList column");
        };
        if count < 0 || sums.value_length() != self.dimension {
            return exec_err!(
                "invalid vector state: count {count}, dimension {} where {} was expected",
                sums.value_length(),
                self.dimension
            );
        }
        let mut state = self.empty();
        if count == 0 {
            return Ok(state);
        }
        if sums.is_null(row) {
            return exec_err!("invalid vector state: {count} vectors but a null sum");
        }
        let vector = sums.value(row);
        let Some(elements) = vector.as_primitive_opt::<Float64Type>() else {
            return exec_err!("invalid vector state: elements must be Float64");
        };
        state
            .sums
            .iter_mut()
            .zip(elements.iter())
            .for_each(|(s, e)| *s = e.unwrap_or(0.0));
        state.count = count;
        Ok(state)
    }

    fn result_type(&self) -> DataType {
        Self::vector_type(self.dimension)
    }
}
