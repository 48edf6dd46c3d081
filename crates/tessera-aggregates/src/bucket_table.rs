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

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::Result;

use crate::function::decode_states;
use crate::state::{PartialState, StateFactory, WindowOutput};

/// Decoded bucket states of one function, answering windows over ranges of them.
pub trait BucketTable: Send + Sync + Debug {
    /// Heap bytes of the decoded states, for DataFusion's memory accounting.
    fn heap_bytes(&self) -> usize;
    /// An empty output column of window values.
    fn output(&self) -> WindowValues;
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

impl<F: StateFactory> DecodedBuckets<F> {
    /// Decodes every row of `columns` (laid out as the function's state
    /// fields), validating each state; a bad one fails naming its row.
    pub fn decode(factory: F, columns: &[ArrayRef]) -> Result<Self> {
        let rows = columns.first().map_or(0, |c| c.len());
        let mut states = Vec::with_capacity(rows);
        decode_states(&factory, columns, 0..rows, &mut states)?;
        Ok(Self { factory, states })
    }
}

impl<F: StateFactory> BucketTable for DecodedBuckets<F> {
    fn heap_bytes(&self) -> usize {
        self.states.capacity() * std::mem::size_of::<F::State>()
            + self.states.iter().map(PartialState::size).sum::<usize>()
    }

    fn output(&self) -> WindowValues {
        WindowValues(WindowOutput::new(self.factory.result_type()))
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
