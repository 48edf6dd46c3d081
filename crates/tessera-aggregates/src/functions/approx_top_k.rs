//! `approx_top_k(value, k [, by] [, return_total_weight])` with an Apache
//! DataSketches frequent-items sketch.
//!
//! The result lists up to `k` values, most frequent (or heaviest, with `by`)
//! first, ties broken by the smaller value; with `return_total_weight` each
//! entry is `{value, weight}`. The sketch's map is sized at 32·k (at least
//! 64) entries, so counts are exact until that many distinct values arrive.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;
use datasketches::frequencies::{ErrorType, FrequentItemValue, FrequentItemsSketch};

use super::input::{primitive, strings};
use super::sketch_header::{ExpectedHeader, binary_image};
use crate::state::{PartialState, StateFactory};

/// A value a top-k sketch can hold: Int64 or String.
pub trait TopKValue:
    FrequentItemValue + Clone + Ord + Hash + Send + Sync + Debug + 'static
{
    /// The Arrow type of the values.
    const DATA_TYPE: DataType;
    /// Reads row `row` of argument `index`, or `None` when it is null.
    fn read(arguments: &[ArrayRef], index: usize, row: usize) -> Result<Option<Self>>;
    /// As a scalar.
    fn scalar(&self) -> ScalarValue;
}

impl TopKValue for i64 {
    const DATA_TYPE: DataType = DataType::Int64;
    fn read(arguments: &[ArrayRef], index: usize, row: usize) -> Result<Option<Self>> {
        let values = primitive::<Int64Type>(arguments, index, "approx_top_k")?;
        Ok(values.is_valid(row).then(|| values.value(row)))
    }
    fn scalar(&self) -> ScalarValue {
        ScalarValue::Int64(Some(*self))
    }
}

impl TopKValue for String {
    const DATA_TYPE: DataType = DataType::Utf8;
    fn read(arguments: &[ArrayRef], index: usize, row: usize) -> Result<Option<Self>> {
        let values = strings(arguments, index, "approx_top_k")?;
        Ok(values.is_valid(row).then(|| values.value(row).to_string()))
    }
    fn scalar(&self) -> ScalarValue {
        ScalarValue::Utf8(Some(self.clone()))
    }
}

/// The largest total weight a decoded state may claim: 2^53, far above any
/// real stream, so that sums of weights over many merges cannot overflow.
pub const MAX_TOTAL_WEIGHT: u64 = 1 << 53;

/// The largest `k` accepted: the sketch map then has 2^19 entries.
pub const MAX_K: usize = 10_000;

/// Makes [`TopKState`]s.
#[derive(Debug, Clone)]
pub struct TopKFactory<T: TopKValue> {
    /// How many values the result lists.
    pub k: usize,
    /// Whether a second column carries a non-negative integer weight.
    pub weighted: bool,
    /// Whether each result entry is `{value, weight}`.
    pub return_total_weight: bool,
    empty: FrequentItemsSketch<T>,
}

impl<T: TopKValue> TopKFactory<T> {
    /// A factory for the top `k` values, `1 <= k <= MAX_K`.
    pub fn try_new(k: usize, weighted: bool, return_total_weight: bool) -> Result<Self> {
        if !(1..=MAX_K).contains(&k) {
            return exec_err!("approx_top_k: k must be between 1 and {MAX_K}, got {k}");
        }
        let map_size = 1usize << Self::lg_max_map_size_for(k);
        match FrequentItemsSketch::new(map_size) {
            Ok(empty) => Ok(Self {
                k,
                weighted,
                return_total_weight,
                empty,
            }),
            Err(e) => exec_err!("approx_top_k: cannot size a sketch for k = {k}: {e}"),
        }
    }

    /// log2 of the sketch's maximum map size: 32·k entries, at least 64.
    pub fn lg_max_map_size(&self) -> u8 {
        Self::lg_max_map_size_for(self.k)
    }

    fn lg_max_map_size_for(k: usize) -> u8 {
        ((k.max(2) * 32).next_power_of_two().trailing_zeros() as u8).max(6)
    }

    fn entry_type() -> DataType {
        DataType::Struct(Fields::from(vec![
            Field::new("value", T::DATA_TYPE, true),
            Field::new("weight", DataType::Int64, true),
        ]))
    }
}

/// A frequent-items sketch and the parameters of its result.
#[derive(Debug, Clone)]
pub struct TopKState<T: TopKValue> {
    sketch: FrequentItemsSketch<T>,
    k: usize,
    weighted: bool,
    return_total_weight: bool,
}

impl<T: TopKValue> PartialState for TopKState<T> {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let Some(item) = T::read(arguments, 0, row)? else {
            return Ok(());
        };
        let weight = if self.weighted {
            let weights = primitive::<Int64Type>(arguments, 1, "approx_top_k")?;
            if weights.is_null(row) {
                return Ok(());
            }
            match weights.value(row) {
                w if w < 0 => {
                    return exec_err!("approx_top_k: weight {w} is negative; weights must be >= 0");
                }
                0 => return Ok(()),
                w => w as u64,
            }
        } else {
            1
        };
        self.sketch.update_with_count(item, weight);
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        self.sketch.merge(&other.sketch);
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        let mut rows = self.sketch.frequent_items(ErrorType::NoFalseNegatives);
        rows.sort_by(|a, b| {
            b.estimate()
                .cmp(&a.estimate())
                .then_with(|| a.item().cmp(b.item()))
        });
        rows.truncate(self.k);
        let entries: Vec<ScalarValue> = if self.return_total_weight {
            rows.iter()
                .map(|row| {
                    datafusion::common::scalar::ScalarStructBuilder::new()
                        .with_scalar(Field::new("value", T::DATA_TYPE, true), row.item().scalar())
                        .with_scalar(
                            Field::new("weight", DataType::Int64, true),
                            ScalarValue::Int64(Some(row.estimate() as i64)),
                        )
                        .build()
                })
                .collect::<Result<_>>()?
        } else {
            rows.iter().map(|row| row.item().scalar()).collect()
        };
        let item_type = if self.return_total_weight {
            TopKFactory::<T>::entry_type()
        } else {
            T::DATA_TYPE
        };
        Ok(ScalarValue::List(ScalarValue::new_list(
            &entries, &item_type, true,
        )))
    }

    fn is_empty(&self) -> bool {
        self.sketch.is_empty()
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.sketch.serialize()))])
    }

    fn size(&self) -> usize {
        self.sketch.estimated_size()
    }
}

impl<T: TopKValue> StateFactory for TopKFactory<T> {
    type State = TopKState<T>;

    fn empty(&self) -> TopKState<T> {
        TopKState {
            sketch: self.empty.clone(),
            k: self.k,
            weighted: self.weighted,
            return_total_weight: self.return_total_weight,
        }
    }

    /// One column, `items_int64` or `items_utf8` (naming the item type, which
    /// the image does not record): the Apache DataSketches frequent-items image (Binary).
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        let column = if T::DATA_TYPE == DataType::Utf8 {
            "items_utf8"
        } else {
            "items_int64"
        };
        vec![Arc::new(Field::new(
            format_state_name(name, column),
            DataType::Binary,
            true,
        ))]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<TopKState<T>> {
        let Some(image) = binary_image(columns, row, "items")? else {
            return Ok(self.empty());
        };
        let lg_max = self.lg_max_map_size();
        // Items are at most a few hundred bytes each; bound the image by the map it may hold.
        let max_len = 64 + (1usize << lg_max) * (8 + 4 + 1024);
        ExpectedHeader {
            sketch: "frequent items",
            family: 10,
            serial_version: 1,
            min_len: 8,
            max_len,
        }
        .check(image)?;
        let (image_lg_max, image_lg_cur) = (image[3], image[4]);
        if image_lg_max != lg_max || image_lg_cur > lg_max {
            return exec_err!(
                "invalid frequent items state: map sizes 2^{image_lg_max} / 2^{image_lg_cur} where 2^{lg_max} was expected"
            );
        }
        let sketch = match FrequentItemsSketch::<T>::deserialize(image) {
            Ok(sketch) => sketch,
            Err(e) => return exec_err!("invalid frequent items state: {e}"),
        };
        // The library does not check these, and estimates (count + maximum
        // error) and merges (sums of weights) would overflow on a hostile image.
        let (weight, error) = (sketch.total_weight(), sketch.maximum_error());
        if weight > MAX_TOTAL_WEIGHT || error > weight {
            return exec_err!(
                "invalid frequent items state: total weight {weight} and maximum error {error} (at most {MAX_TOTAL_WEIGHT}, error at most the weight)"
            );
        }
        Ok(TopKState {
            sketch,
            ..self.empty()
        })
    }

    fn result_type(&self) -> DataType {
        let item = if self.return_total_weight {
            Self::entry_type()
        } else {
            T::DATA_TYPE
        };
        DataType::List(Arc::new(Field::new("item", item, true)))
    }
}
