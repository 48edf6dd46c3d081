//! A DataFusion [`Accumulator`] over any [`StateFactory`].
//!
//! One accumulator serves every SQL form of a function: it folds either raw
//! argument rows or serialized states in, and gives out either the result or
//! the state (as DataFusion's own state columns, or as one struct value for
//! the `_state` / `_merge` functions).

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::Fields;
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::Accumulator;

use crate::state::{PartialState, StateFactory};

/// What an accumulator reads from `update_batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The function's argument columns.
    Arguments,
    /// One struct column of serialized states (the `_merge` functions).
    States,
}

/// What an accumulator's `evaluate` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The function's result.
    Result,
    /// The state as one struct value (the `_state` and `_merge` functions).
    State,
}

/// Accumulates one group with a factory's state.
#[derive(Debug)]
pub struct StateAccumulator<F: StateFactory> {
    factory: F,
    state: F::State,
    input: Input,
    output: Output,
    /// The struct type of [`Output::State`] results.
    state_fields: Fields,
}

impl<F: StateFactory> StateAccumulator<F> {
    /// An accumulator of `factory`'s states, named `name` in its state fields.
    pub fn new(factory: F, name: &str, input: Input, output: Output) -> Self {
        let state_fields = Fields::from(factory.state_fields(name));
        let state = factory.empty();
        Self {
            factory,
            state,
            input,
            output,
            state_fields,
        }
    }

    fn merge_states(&mut self, columns: &[ArrayRef]) -> Result<()> {
        for row in 0..columns.first().map_or(0, |c| c.len()) {
            let other = crate::function::decode_state(&self.factory, columns, row)?;
            self.state.merge(&other)?;
        }
        Ok(())
    }

    fn state_struct(&self) -> Result<ScalarValue> {
        let mut builder = datafusion::common::scalar::ScalarStructBuilder::new();
        for (field, value) in self.state_fields.iter().zip(self.state.to_state()?) {
            let value = if value.is_null() {
                ScalarValue::try_from(field.data_type())?
            } else {
                value
            };
            builder = builder.with_scalar(Arc::clone(field), value);
        }
        builder.build()
    }
}

/// The columns of a struct column of states, with the struct's nulls pushed into them.
pub fn struct_columns(states: &ArrayRef) -> Result<Vec<ArrayRef>> {
    let Some(states) = states.as_struct_opt() else {
        return datafusion::common::exec_err!(
            "expected a struct of states, got {}",
            states.data_type()
        );
    };
    let Some(nulls) = states.nulls() else {
        return Ok(states.columns().to_vec());
    };
    states
        .columns()
        .iter()
        .map(|column| {
            let merged = datafusion::arrow::buffer::NullBuffer::union(Some(nulls), column.nulls());
            Ok(datafusion::arrow::array::make_array(
                column.to_data().into_builder().nulls(merged).build()?,
            ))
        })
        .collect()
}

impl<F: StateFactory> Accumulator for StateAccumulator<F> {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        match self.input {
            Input::Arguments => {
                for row in 0..values.first().map_or(0, |c| c.len()) {
                    self.state.update(values, row)?;
                }
                Ok(())
            }
            Input::States => match values.first() {
                Some(states) => self.merge_states(&struct_columns(states)?),
                None => Ok(()),
            },
        }
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.merge_states(states)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = self.state.to_state()?;
        self.state_fields
            .iter()
            .zip(values)
            .map(|(field, value)| {
                if value.is_null() {
                    ScalarValue::try_from(field.data_type())
                } else {
                    Ok(value)
                }
            })
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        match self.output {
            Output::State => self.state_struct(),
            Output::Result => {
                let value = self.state.evaluate()?;
                let result_type = self.factory.result_type();
                match value {
                    ScalarValue::Null => ScalarValue::try_from(&result_type),
                    value if value.data_type() != result_type => value.cast_to(&result_type),
                    value => Ok(value),
                }
            }
        }
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.state.size()
    }
}
