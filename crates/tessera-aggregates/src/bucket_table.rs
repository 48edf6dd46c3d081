//! Bucket tables: one function's decoded bucket states, read as ranges.
//!
//! A tile lookup answers a window by merging the states of a contiguous
//! range of one key's buckets, for each spine row on its own — no sliding,
//! so spine rows can be answered in any order and on any thread; a row's
//! windows of one function end at the same bucket, so one merge backwards
//! from there answers all of them. A
//! [`BucketTable`] holds those states decoded once, laid out key after key
//! and bucket after bucket by whoever built it; it is read-only, so one
//! table serves every thread answering rows.

use std::fmt::Debug;
use std::ops::Range;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::{Result, exec_err};

use crate::function::decode_states;
use crate::state::{PartialState, StateFactory, WindowOutput};

/// Decoded bucket states of one function, answering windows over ranges of them.
pub trait BucketTable: Send + Sync + Debug {
    /// Heap bytes of the decoded states, for DataFusion's memory accounting.
    fn heap_bytes(&self) -> usize;
    /// An empty output column of window values, with room for `rows` values.
    fn output(&self, rows: usize) -> WindowValues;
    /// Appends the values of nested windows that end at one row: for each
    /// `(start, out)`, the window of the states `start..end` to
    /// `outputs[out]`. Starts descend (the shortest window first), so one
    /// merge runs from `end` back to the last start and emits on the way.
    fn append_nested(&self, end: usize, windows: &[(usize, usize)], outputs: &mut [WindowValues]);
}

/// The values a [`BucketTable`] appended, one per spine row.
#[derive(Debug)]
pub struct WindowValues(WindowOutput);

impl WindowValues {
    /// Appends a null (a spine row without a time).
    pub fn push_null(&mut self) {
        self.0.push_null();
    }

    /// The values as a column and, per row, whether the window was empty;
    /// or the first error met while merging.
    pub fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)> {
        self.0.finish()
    }
}

/// The [`BucketTable`] of any [`StateFactory`]: its states, decoded once.
#[derive(Debug)]
pub struct DecodedBuckets<F: StateFactory> {
    factory: F,
    states: Vec<F::State>,
}

/// Rows of one part of a table's serialized states: `rows` of `parts[part]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRows {
    /// Which part the rows are in.
    pub part: usize,
    /// The rows, consecutive in that part.
    pub rows: Range<usize>,
}

impl<F: StateFactory> DecodedBuckets<F> {
    /// Decodes the rows of `runs`, in that order, from `parts` (each laid
    /// out as the function's state fields), validating each state; a bad
    /// one fails naming its row. The table's rows are the runs' rows one
    /// after another — so states read from several files are laid out in
    /// the table's order as they are decoded, not copied into it first.
    pub fn decode(factory: F, parts: &[&[ArrayRef]], runs: &[PartRows]) -> Result<Self> {
        let rows = runs.iter().map(|run| run.rows.len()).sum();
        let mut states = Vec::with_capacity(rows);
        for PartRows { part, rows } in runs {
            let Some(columns) = parts.get(*part) else {
                return exec_err!(
                    "bucket states asked of part {part}, of {} parts",
                    parts.len()
                );
            };
            decode_states(&factory, columns, rows.clone(), &mut states)?;
        }
        Ok(Self { factory, states })
    }
}

impl<F: StateFactory> BucketTable for DecodedBuckets<F> {
    fn heap_bytes(&self) -> usize {
        self.states.capacity() * std::mem::size_of::<F::State>()
            + self.states.iter().map(PartialState::size).sum::<usize>()
    }

    fn output(&self, rows: usize) -> WindowValues {
        WindowValues(WindowOutput::new(self.factory.result_type(), rows))
    }

    fn append_nested(&self, end: usize, windows: &[(usize, usize)], outputs: &mut [WindowValues]) {
        let mut merged: Option<F::State> = None;
        let mut error = None;
        let mut from = end;
        for &(start, out) in windows {
            for state in self.states[start.min(from)..from].iter().rev() {
                match merged.as_mut() {
                    None => merged = Some(state.clone()),
                    Some(merged) => {
                        if let Err(e) = merged.merge(state) {
                            error.get_or_insert(e);
                        }
                    }
                }
            }
            from = from.min(start);
            outputs[out].0.append(|values| {
                if let Some(e) = error.take() {
                    return Err(e);
                }
                match &merged {
                    Some(state) => {
                        state.append_result(values)?;
                        Ok(state.is_empty())
                    }
                    None => {
                        self.factory.empty().append_result(values)?;
                        Ok(true)
                    }
                }
            });
        }
    }
}
