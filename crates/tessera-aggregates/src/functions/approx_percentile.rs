//! `approx_percentile(value, quantile)` with an Apache DataSketches t-digest.
//!
//! Most windows of a training set hold a handful of values, and a t-digest
//! of compression `k` keeps every value of a set of at most `k / 2` as its
//! own unit centroid (its scale function lets no two unit weights merge
//! there, see `TDigestMut::compress`). For such a set the digest's quantile
//! is an order statistic of the values, so a state this small holds the
//! values themselves: folding, merging and reading them costs a push, an
//! append and a selection, where a digest costs a clone, a sort and a
//! compression per read. Above `k / 2` values a state becomes a digest, and
//! small states serialize to the digest image the crate would write, so
//! both forms give the crate's answer and the same tile columns.
//!
//! A digest sorts the values it buffers whenever it is read, and windows
//! read copies of the same bucket and stack states at every row: states
//! that will be read many times compress their buffered values once
//! ([`PartialState::settle`]) when enough have accumulated.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;
use datasketches::tdigest::TDigestMut;

use super::input::primitive;
use super::percentile_window::PercentileWindow;
use super::sketch_header::{ExpectedHeader, binary_image};
use crate::sliding::SlidingAggregate;
use crate::state::{PartialState, StateFactory, ValueColumn};

/// The t-digest compression: about 0.5% rank error in the tails, less in the middle.
pub const TDIGEST_K: u16 = 100;

/// The most values a t-digest of [`TDIGEST_K`] keeps as unit centroids.
const FEW_VALUES: usize = TDIGEST_K as usize / 2;

/// Makes [`PercentileState`]s for one quantile.
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileFactory {
    /// The quantile in `[0, 1]`.
    pub quantile: f64,
}

/// The values seen, as a t-digest or (up to [`FEW_VALUES`]) as themselves.
#[derive(Debug, Clone)]
pub struct PercentileState {
    values: Values,
    quantile: f64,
    /// Values updated into the digest since this state last compressed it:
    /// a bound on those it holds unsorted (the crate also compresses on its
    /// own), which a copy's read sorts again.
    unsorted: usize,
}

/// The fewest unsorted values worth compressing a digest for before it is
/// read many times (a compression costs about what sorting this many does).
const SETTLE_AFTER: usize = 32;

#[derive(Debug, Clone)]
enum Values {
    /// At most [`FEW_VALUES`] finite values, in arrival order.
    Few(Vec<f64>),
    /// A t-digest (of more values, or decoded from an image not of that form).
    Digest(TDigestMut),
}

impl Values {
    /// The values as a digest, turning a small set into one first.
    fn digest_mut(&mut self) -> &mut TDigestMut {
        if let Values::Few(values) = self {
            *self = Values::Digest(digest_of(values));
        }
        match self {
            Values::Digest(digest) => digest,
            Values::Few(_) => unreachable!("a small set was just turned into a digest"),
        }
    }

    /// A digest of the values (a copy).
    fn to_digest(&self) -> TDigestMut {
        match self {
            Values::Few(values) => digest_of(values),
            Values::Digest(digest) => digest.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Values::Few(values) => values.is_empty(),
            Values::Digest(digest) => digest.is_empty(),
        }
    }
}

/// A digest updated with `values` in order.
fn digest_of(values: &[f64]) -> TDigestMut {
    let mut digest = empty_digest();
    for &value in values {
        digest.update(value);
    }
    digest
}

fn empty_digest() -> TDigestMut {
    TDigestMut::new(TDIGEST_K).unwrap_or_default()
}

/// The `quantile` of a small set as its t-digest answers it: a digest of
/// unit centroids returns the value at rank `floor(quantile · n)` (the
/// largest at `quantile = 1`). Reorders `values`.
fn few_quantile(values: &mut [f64], quantile: f64) -> f64 {
    let index = rank_index(quantile, values.len());
    *values.select_nth_unstable_by(index, f64::total_cmp).1
}

/// The position of the `quantile` among `n > 0` sorted values, as a t-digest
/// of unit centroids answers it: `floor(quantile · n)`, the last at `quantile = 1`.
pub(super) fn rank_index(quantile: f64, n: usize) -> usize {
    ((quantile * n as f64) as usize).min(n - 1)
}

/// The quantile of every value of `parts` (at most [`FEW_VALUES`] in all),
/// gathered on the stack.
fn quantile_of_parts<'a>(parts: impl Iterator<Item = &'a [f64]>, quantile: f64) -> f64 {
    let mut gathered = [0.0; FEW_VALUES];
    let mut len = 0;
    for part in parts {
        gathered[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    few_quantile(&mut gathered[..len], quantile)
}

impl PartialState for PercentileState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let values = primitive::<Float64Type>(arguments, 0, "approx_percentile")?;
        // The digest ignores NaN and infinities; a small set must too.
        if !values.is_valid(row) || !values.value(row).is_finite() {
            return Ok(());
        }
        let value = values.value(row);
        match &mut self.values {
            Values::Few(few) if few.len() < FEW_VALUES => few.push(value),
            Values::Few(few) => {
                self.unsorted = few.len() + 1;
                self.values.digest_mut().update(value);
            }
            Values::Digest(digest) => {
                self.unsorted += 1;
                digest.update(value);
            }
        }
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        match (&mut self.values, &other.values) {
            (_, other) if other.is_empty() => {}
            (Values::Few(mine), Values::Few(theirs)) if mine.len() + theirs.len() <= FEW_VALUES => {
                mine.extend_from_slice(theirs);
            }
            // The crate's merge leaves the digest compressed, which later
            // merges and reads of it rely on (a digest's buffered values are
            // sorted again at every read of a copy).
            (values, Values::Few(theirs)) => {
                values.digest_mut().merge(&digest_of(theirs));
                self.unsorted = 0;
            }
            (values, Values::Digest(theirs)) => {
                values.digest_mut().merge(theirs);
                self.unsorted = 0;
            }
        }
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        match &self.values {
            Values::Few(values) if values.is_empty() => Ok(ScalarValue::Float64(None)),
            Values::Few(values) => Ok(ScalarValue::Float64(Some(quantile_of_parts(
                std::iter::once(values.as_slice()),
                self.quantile,
            )))),
            Values::Digest(digest) => self.quantile_of(digest.clone()),
        }
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(
            self.values.to_digest().serialize(),
        ))])
    }

    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        let [digest] = columns else {
            return exec_err!(
                "approx_percentile state: 1 column expected, got {}",
                columns.len()
            );
        };
        digest.push_binary(&self.values.to_digest().serialize())
    }

    fn settle(&mut self) {
        if let Values::Digest(digest) = &mut self.values
            && self.unsorted >= SETTLE_AFTER
        {
            // Freezing compresses; the thawed digest keeps the centroids.
            *digest = std::mem::take(digest).freeze().unfreeze();
            self.unsorted = 0;
        }
    }

    fn size(&self) -> usize {
        match &self.values {
            Values::Few(values) => values.capacity() * size_of::<f64>(),
            Values::Digest(digest) => digest.estimated_size(),
        }
    }

    /// The non-empty parts merged in one pass: small sets gathered on the
    /// stack while they stay small in all, else the crate's k-way merge of
    /// every digest's centroids, compressed once (merging one digest at a
    /// time compresses after each — a window of 30 bucket digests paid 30).
    fn append_merged(states: &[&Self], out: &mut ValueColumn) -> Result<bool> {
        let mut non_empty = states.iter().filter(|s| !s.is_empty()).peekable();
        let Some(first) = non_empty.peek().copied() else {
            out.push_f64(None)?;
            return Ok(true);
        };
        if let Some(few) = few_values_of(states) {
            out.push_f64(Some(quantile_of_parts(few, first.quantile)))?;
            return Ok(false);
        }
        let digest: TDigestMut = non_empty.map(|state| state.values.to_digest()).collect();
        out.push(first.quantile_of(digest)?)?;
        Ok(false)
    }
}

/// The values of `states` when every one is a small set and they are few in all.
fn few_values_of<'a>(states: &[&'a PercentileState]) -> Option<impl Iterator<Item = &'a [f64]>> {
    let mut total = 0;
    for state in states {
        match &state.values {
            Values::Few(values) => total += values.len(),
            Values::Digest(digest) if digest.is_empty() => {}
            Values::Digest(_) => return None,
        }
    }
    (total <= FEW_VALUES).then(|| {
        states.iter().filter_map(|state| match &state.values {
            Values::Few(values) => Some(values.as_slice()),
            Values::Digest(_) => None,
        })
    })
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
            values: Values::Few(Vec::new()),
            quantile: self.quantile,
            unsorted: 0,
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
        let values = match small_image_values(image) {
            Some(values) => Values::Few(values),
            None => match TDigestMut::deserialize(image) {
                Ok(digest) => Values::Digest(digest),
                Err(e) => return exec_err!("invalid t-digest state: {e}"),
            },
        };
        Ok(PercentileState {
            values,
            quantile: self.quantile,
            unsorted: 0,
        })
    }

    fn result_type(&self) -> DataType {
        DataType::Float64
    }

    /// Exact order statistics over raw events, digests over tiles.
    fn sliding_kernel(&self) -> Box<dyn SlidingAggregate> {
        Box::new(PercentileWindow::new(self.clone()))
    }
}

/// Flags of the t-digest image (byte 5).
const FLAG_EMPTY: u8 = 1;
const FLAG_SINGLE_VALUE: u8 = 2;
const FLAG_REVERSE_MERGE: u8 = 4;

/// The values of a t-digest image of at most [`FEW_VALUES`] unit centroids
/// (the images small states write), or `None` for any other image, which
/// the crate's decoder then reads or rejects. What it accepts is a subset of
/// what the decoder accepts: finite values, centroids in order within the
/// extrema, the extrema being the smallest and largest values, exact length.
fn small_image_values(image: &[u8]) -> Option<Vec<f64>> {
    let f64_at = |at: usize| Some(f64::from_le_bytes(image.get(at..at + 8)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(image.get(at..at + 4)?.try_into().ok()?));
    let (preamble, flags) = (*image.first()?, *image.get(5)? & !FLAG_REVERSE_MERGE);
    match (preamble, flags, image.len()) {
        (1, FLAG_EMPTY, 8) => return Some(Vec::new()),
        (1, FLAG_SINGLE_VALUE, 16) => {
            return f64_at(8).filter(|v| v.is_finite()).map(|v| vec![v]);
        }
        (2, 0, _) => {}
        _ => return None,
    }
    let centroids = usize::try_from(u32_at(8)?).ok()?;
    let buffered = usize::try_from(u32_at(12)?).ok()?;
    let count = centroids.checked_add(buffered)?;
    if !(2..=FEW_VALUES).contains(&count) || image.len() != 32 + 16 * centroids + 8 * buffered {
        return None;
    }
    let (min, max) = (f64_at(16)?, f64_at(24)?);
    let mut values = Vec::with_capacity(count);
    let mut previous = min;
    for i in 0..centroids {
        let at = 32 + 16 * i;
        let (mean, weight) = (f64_at(at)?, image.get(at + 8..at + 16)?);
        if !(mean.is_finite() && previous <= mean && mean <= max) || weight != 1u64.to_le_bytes() {
            return None;
        }
        previous = mean;
        values.push(mean);
    }
    for i in 0..buffered {
        let value = f64_at(32 + 16 * centroids + 8 * i)?;
        if !(value.is_finite() && min <= value && value <= max) {
            return None;
        }
        values.push(value);
    }
    let smallest = values.iter().copied().fold(f64::INFINITY, f64::min);
    let largest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (smallest == min && largest == max).then_some(values)
}
