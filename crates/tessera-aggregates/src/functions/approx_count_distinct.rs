//! `approx_count_distinct`: distinct count with an Apache DataSketches CPC sketch.
//!
//! Integers are hashed as 64-bit little-endian values and strings as their
//! UTF-8 bytes — the encodings of the other DataSketches libraries, so
//! sketches built here merge with theirs. Empty strings are skipped, as the
//! C++ and Java libraries do.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;
use datasketches::cpc::{CpcSketch, CpcUnion};
use datasketches::hash::value::raw_bytes;

use super::input::{primitive, strings};
use super::sketch_header::{ExpectedHeader, binary_image};
use crate::state::{PartialState, StateFactory, ValueColumn};

/// The default `lg_k`: 2048 registers, about 1.3% standard error.
pub const DEFAULT_LG_K: u8 = 11;

/// Makes [`CpcState`]s with one `lg_k`, over integers or strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpcFactory {
    /// log2 of the number of registers.
    pub lg_k: u8,
    /// Whether values are strings (else Int64).
    pub strings: bool,
}

/// A CPC sketch of the values seen.
#[derive(Debug, Clone)]
pub struct CpcState {
    sketch: CpcSketch,
    strings: bool,
}

impl PartialState for CpcState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        if self.strings {
            let values = strings(arguments, 0, "approx_count_distinct")?;
            if values.is_valid(row) && !values.value(row).is_empty() {
                self.sketch.update(raw_bytes::from_str(values.value(row)));
            }
        } else {
            let values = primitive::<Int64Type>(arguments, 0, "approx_count_distinct")?;
            if values.is_valid(row) {
                self.sketch.update(values.value(row));
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        if other.sketch.is_empty() {
            return Ok(());
        }
        if self.sketch.is_empty() {
            self.sketch = other.sketch.clone();
            return Ok(());
        }
        let mut union = CpcUnion::new(self.sketch.lg_k()).map_err(sketch_error)?;
        union.update(&self.sketch).map_err(sketch_error)?;
        union.update(&other.sketch).map_err(sketch_error)?;
        self.sketch = union.to_sketch();
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(
            self.sketch.estimate().round() as i64
        )))
    }

    fn is_empty(&self) -> bool {
        self.sketch.is_empty()
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.sketch.serialize()))])
    }

    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        let [cpc] = columns else {
            return exec_err!(
                "approx_count_distinct state: 1 column expected, got {}",
                columns.len()
            );
        };
        cpc.push_binary(&self.sketch.serialize())
    }

    fn size(&self) -> usize {
        self.sketch.estimated_size()
    }

    /// One union of every non-empty part and one sketch of it, rather than
    /// a union and a sketch per pairwise merge.
    fn append_merged(states: &[&Self], out: &mut ValueColumn) -> Result<bool> {
        let non_empty: Vec<&Self> = states.iter().copied().filter(|s| !s.is_empty()).collect();
        match non_empty.as_slice() {
            [] => match states.first() {
                Some(empty) => empty.append_result(out).map(|()| true),
                None => datafusion::common::internal_err!("append_merged of no states"),
            },
            [only] => only.append_result(out).map(|()| false),
            [first, ..] => {
                let mut union = CpcUnion::new(first.sketch.lg_k()).map_err(sketch_error)?;
                for state in &non_empty {
                    union.update(&state.sketch).map_err(sketch_error)?;
                }
                let estimate = union.to_sketch().estimate().round() as i64;
                out.push_i64(Some(estimate))?;
                Ok(false)
            }
        }
    }
}

fn sketch_error(error: datasketches::error::Error) -> datafusion::common::DataFusionError {
    datafusion::common::DataFusionError::Execution(format!("CPC merge: {error}"))
}

impl CpcFactory {
    fn header(&self) -> Result<ExpectedHeader> {
        let max_len = CpcSketch::max_serialized_bytes(self.lg_k).map_err(|e| {
            datafusion::common::DataFusionError::Execution(format!("CPC lg_k {}: {e}", self.lg_k))
        })?;
        Ok(ExpectedHeader {
            sketch: "CPC",
            family: 16,
            serial_version: 1,
            min_len: 8,
            max_len,
        })
    }
}

impl StateFactory for CpcFactory {
    type State = CpcState;

    fn empty(&self) -> CpcState {
        // lg_k is checked when the function is bound; fall back to the default defensively.
        let sketch = CpcSketch::new(self.lg_k).unwrap_or_default();
        CpcState {
            sketch,
            strings: self.strings,
        }
    }

    /// One column, `cpc`: the sketch's Apache DataSketches CPC image (Binary).
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        vec![Arc::new(Field::new(
            format_state_name(name, "cpc"),
            DataType::Binary,
            true,
        ))]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<CpcState> {
        let Some(image) = binary_image(columns, row, "cpc")? else {
            return Ok(self.empty());
        };
        self.header()?.check(image)?;
        if image[3] != self.lg_k {
            return exec_err!(
                "invalid CPC state: lg_k {} where {} was expected",
                image[3],
                self.lg_k
            );
        }
        match CpcSketch::deserialize(image) {
            Ok(sketch) => Ok(CpcState {
                sketch,
                strings: self.strings,
            }),
            Err(e) => exec_err!("invalid CPC state: {e}"),
        }
    }

    fn result_type(&self) -> DataType {
        DataType::Int64
    }
}
