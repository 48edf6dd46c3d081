//! `min_by_n(value, by, n)` and `max_by_n(value, by, n)`: the `n` values with
//! the smallest (largest) `by`, ordered by `by`; ties go to the earlier event
//! time, then the smaller value (SEMANTICS.md §5).
//!
//! The state is the best `n` entries, kept sorted, as three parallel lists:
//! `by`, event time (microseconds; null where unknown, e.g. in plain SQL
//! aggregates) and `value`. Merging two states keeps the best `n` of both,
//! so merging is associative and commutative and the result exact.

use std::cmp::Ordering;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::utils::format_state_name;

use super::input::argument;
use super::min_max::total_order;
use crate::state::{PartialState, StateFactory};

/// The largest `n` accepted.
pub const MAX_N: usize = 10_000;

/// Makes [`ByNState`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByNFactory {
    /// Keep the largest `by` instead of the smallest.
    pub largest: bool,
    /// How many entries to keep.
    pub n: usize,
    /// Type of the values.
    pub value_type: DataType,
    /// Type of the `by` column.
    pub by_type: DataType,
    /// Whether a third argument column carries the event time (microseconds, Int64).
    pub with_time: bool,
}

/// One candidate: its ordering key, event time and value.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    by: ScalarValue,
    time: Option<i64>,
    value: ScalarValue,
}

/// The best `n` entries, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct ByNState {
    entries: Vec<Entry>,
    largest: bool,
    n: usize,
    value_type: DataType,
    by_type: DataType,
}

impl ByNState {
    fn order(&self, a: &Entry, b: &Entry) -> Ordering {
        let by = total_order(&a.by, &b.by);
        let by = if self.largest { by.reverse() } else { by };
        by.then_with(|| match (a.time, b.time) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| total_order(&a.value, &b.value))
    }

    fn offer(&mut self, entry: Entry) {
        let position = self
            .entries
            .partition_point(|e| self.order(e, &entry).is_le());
        if position < self.n {
            self.entries.insert(position, entry);
            self.entries.truncate(self.n);
        }
    }
}

impl PartialState for ByNState {
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()> {
        let (values, by) = (
            argument(arguments, 0, "by_n")?,
            argument(arguments, 1, "by_n")?,
        );
        if values.is_null(row) || by.is_null(row) {
            return Ok(());
        }
        let time = arguments
            .get(2)
            .and_then(|t| t.as_primitive_opt::<Int64Type>())
            .filter(|t| t.is_valid(row))
            .map(|t| t.value(row));
        self.offer(Entry {
            by: ScalarValue::try_from_array(by, row)?,
            time,
            value: ScalarValue::try_from_array(values, row)?,
        });
        Ok(())
    }

    fn merge(&mut self, other: &Self) -> Result<()> {
        for entry in &other.entries {
            self.offer(entry.clone());
        }
        Ok(())
    }

    fn evaluate(&self) -> Result<ScalarValue> {
        let values: Vec<ScalarValue> = self.entries.iter().map(|e| e.value.clone()).collect();
        Ok(ScalarValue::List(ScalarValue::new_list(
            &values,
            &self.value_type,
            true,
        )))
    }

    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn to_state(&self) -> Result<Vec<ScalarValue>> {
        let by: Vec<ScalarValue> = self.entries.iter().map(|e| e.by.clone()).collect();
        let times: Vec<ScalarValue> = self
            .entries
            .iter()
            .map(|e| ScalarValue::Int64(e.time))
            .collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list(&by, &self.by_type, true)),
            ScalarValue::List(ScalarValue::new_list(&times, &DataType::Int64, true)),
            self.evaluate()?,
        ])
    }

    fn size(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self
                .entries
                .iter()
                .map(|e| e.by.size() + e.value.size())
                .sum::<usize>()
    }
}

impl ByNFactory {
    /// Checks `n` and builds the factory.
    pub fn try_new(
        largest: bool,
        n: usize,
        value_type: DataType,
        by_type: DataType,
        with_time: bool,
    ) -> Result<Self> {
        if !(1..=MAX_N).contains(&n) {
            return exec_err!(
                "{}: n must be between 1 and {MAX_N}, got {n}",
                if largest { "max_by_n" } else { "min_by_n" }
            );
        }
        Ok(Self {
            largest,
            n,
            value_type,
            by_type,
            with_time,
        })
    }

    fn list_of(data_type: &DataType) -> DataType {
        DataType::List(Arc::new(Field::new("item", data_type.clone(), true)))
    }

    fn list_column<'a>(
        columns: &'a [ArrayRef],
        index: usize,
        field: &str,
    ) -> Result<&'a ListArray> {
        match columns.get(index).and_then(|c| c.as_list_opt::<i32>()) {
            Some(list) => Ok(list),
            None => exec_err!("state field '{field}' must be a List column"),
        }
    }
}

impl StateFactory for ByNFactory {
    type State = ByNState;

    fn empty(&self) -> ByNState {
        ByNState {
            entries: Vec::new(),
            largest: self.largest,
            n: self.n,
            value_type: self.value_type.clone(),
            by_type: self.by_type.clone(),
        }
    }

    /// Three list columns of equal length, best entry first: `by` (the
    /// ordering values), `time` (Int64 microseconds, null where unknown) and
    /// `value`.
    fn state_fields(&self, name: &str) -> Vec<FieldRef> {
        vec![
            Arc::new(Field::new(
                format_state_name(name, "by"),
                Self::list_of(&self.by_type),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "time"),
                Self::list_of(&DataType::Int64),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(name, "value"),
                Self::list_of(&self.value_type),
                true,
            )),
        ]
    }

    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<ByNState> {
        let (by, time, value) = (
            Self::list_column(columns, 0, "by")?,
            Self::list_column(columns, 1, "time")?,
            Self::list_column(columns, 2, "value")?,
        );
        let mut state = self.empty();
        if by.is_null(row) {
            return Ok(state);
        }
        let (by, time, value) = (by.value(row), time.value(row), value.value(row));
        if by.len() != time.len() || by.len() != value.len() || by.len() > self.n {
            return exec_err!(
                "invalid by_n state: {} / {} / {} entries for n = {}",
                by.len(),
                time.len(),
                value.len(),
                self.n
            );
        }
        let Some(times) = time.as_primitive_opt::<Int64Type>() else {
            return exec_err!("state field 'time' must hold Int64 values");
        };
        for i in 0..by.len() {
            state.offer(Entry {
                by: ScalarValue::try_from_array(&by, i)?,
                time: times.is_valid(i).then(|| times.value(i)),
                value: ScalarValue::try_from_array(&value, i)?,
            });
        }
        Ok(state)
    }

    fn result_type(&self) -> DataType {
        Self::list_of(&self.value_type)
    }
}
