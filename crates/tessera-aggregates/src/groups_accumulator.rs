//! A DataFusion [`GroupsAccumulator`] over any [`StateFactory`].
//!
//! DataFusion's `GroupsAccumulatorAdapter` would box one [`Accumulator`] per
//! group; this keeps one `Vec` of states indexed by group instead — the
//! layout `GROUP BY key, bucket` rollups and backfills need when groups run
//! into the millions. Heap bytes are tracked incrementally from each state's
//! `size()`, so DataFusion's memory pool sees the real footprint without a
//! walk over every group.
//!
//! [`Accumulator`]: datafusion::logical_expr::Accumulator

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, StructArray};
use datafusion::arrow::datatypes::Fields;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};

use crate::accumulator::{Input, Output, struct_columns};
use crate::function::decode_state;
use crate::state::{PartialState, StateFactory};

/// Accumulates many groups with a factory's states.
#[derive(Debug)]
pub struct StateGroupsAccumulator<F: StateFactory> {
    factory: F,
    states: Vec<F::State>,
    input: Input,
    output: Output,
    state_fields: Fields,
    /// Sum of `size()` over `states`.
    heap_bytes: usize,
}

impl<F: StateFactory> StateGroupsAccumulator<F> {
    /// Groups of `factory`'s states; struct outputs name their fields after `name`.
    pub fn new(factory: F, name: &str, input: Input, output: Output) -> Self {
        let state_fields = Fields::from(factory.state_fields(name));
        Self {
            factory,
            states: Vec::new(),
            input,
            output,
            state_fields,
            heap_bytes: 0,
        }
    }

    fn ensure_groups(&mut self, total: usize) {
        if self.states.len() < total {
            self.states.resize_with(total, || self.factory.empty());
        }
    }

    /// Applies `change` to group `group`'s state, keeping `heap_bytes` current.
    fn change(
        &mut self,
        group: usize,
        change: impl FnOnce(&mut F::State) -> Result<()>,
    ) -> Result<()> {
        let state = &mut self.states[group];
        let before = state.size();
        change(state)?;
        self.heap_bytes = (self.heap_bytes + state.size()).saturating_sub(before);
        Ok(())
    }

    fn merge_rows(
        &mut self,
        columns: &[ArrayRef],
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<()> {
        for (row, &group) in group_indices.iter().enumerate() {
            if passes(filter, row) {
                let other = decode_state(&self.factory, columns, row)?;
                self.change(group, |state| state.merge(&other))?;
            }
        }
        Ok(())
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<F::State> {
        let taken = emit_to.take_needed(&mut self.states);
        let released: usize = taken.iter().map(PartialState::size).sum();
        self.heap_bytes = self.heap_bytes.saturating_sub(released);
        taken
    }

    /// One array per state field for `states`.
    fn state_arrays(&self, states: &[F::State]) -> Result<Vec<ArrayRef>> {
        let rows = states
            .iter()
            .map(PartialState::to_state)
            .collect::<Result<Vec<_>>>()?;
        self.state_fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let typed_null = ScalarValue::try_from(field.data_type())?;
                if rows.is_empty() {
                    return Ok(datafusion::arrow::array::new_empty_array(field.data_type()));
                }
                ScalarValue::iter_to_array(rows.iter().map(|r| {
                    if r[i].is_null() {
                        typed_null.clone()
                    } else {
                        r[i].clone()
                    }
                }))
            })
            .collect()
    }
}

fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

impl<F: StateFactory> GroupsAccumulator for StateGroupsAccumulator<F> {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.ensure_groups(total_num_groups);
        match self.input {
            Input::Arguments => {
                for (row, &group) in group_indices.iter().enumerate() {
                    if passes(opt_filter, row) {
                        self.change(group, |state| state.update(values, row))?;
                    }
                }
                Ok(())
            }
            Input::States => match values.first() {
                Some(states) => {
                    self.merge_rows(&struct_columns(states)?, group_indices, opt_filter)
                }
                None => Ok(()),
            },
        }
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let states = self.take(emit_to);
        match self.output {
            Output::State => {
                let columns = self.state_arrays(&states)?;
                Ok(Arc::new(StructArray::try_new(
                    self.state_fields.clone(),
                    columns,
                    None,
                )?))
            }
            Output::Result => {
                let result_type = self.factory.result_type();
                if states.is_empty() {
                    return Ok(datafusion::arrow::array::new_empty_array(&result_type));
                }
                let typed_null = ScalarValue::try_from(&result_type)?;
                let values = states
                    .iter()
                    .map(|state| match state.evaluate()? {
                        ScalarValue::Null => Ok(typed_null.clone()),
                        value if value.data_type() != result_type => value.cast_to(&result_type),
                        value => Ok(value),
                    })
                    .collect::<Result<Vec<_>>>()?;
                ScalarValue::iter_to_array(values)
            }
        }
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let states = self.take(emit_to);
        self.state_arrays(&states)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.ensure_groups(total_num_groups);
        self.merge_rows(values, group_indices, None)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map_or(0, |v| v.len());
        let mut states = Vec::with_capacity(rows);
        for row in 0..rows {
            let mut state = self.factory.empty();
            if passes(opt_filter, row) {
                match self.input {
                    Input::Arguments => state.update(values, row)?,
                    Input::States => state.merge(&decode_state(
                        &self.factory,
                        &struct_columns(&values[0])?,
                        row,
                    )?)?,
                }
            }
            states.push(state);
        }
        self.state_arrays(&states)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.states.capacity() * std::mem::size_of::<F::State>()
            + self.heap_bytes
    }
}
