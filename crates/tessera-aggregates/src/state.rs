//! The partial-state contract every function implements, and the sliding
//! window built on it.
//!
//! A [`PartialState`] is what a bucket, a tile row or a window holds before
//! the final result: it folds input rows in, merges with another state of the
//! same function (associatively and commutatively), evaluates to the result,
//! and turns into one Arrow value per state field. A [`StateFactory`] fixes
//! the function's parameters (types, `k`, `lg_k`, …): it makes empty states,
//! names the state fields and decodes serialized states — validating them,
//! since they may come from corrupt or hostile files.
//!
//! [`SlidingState`] slides any such state over a FIFO window of one key's
//! events with the two-stacks algorithm: the back stack holds event *rows*
//! and one running state, the front stack holds cumulative states, so a
//! state is cloned once per event at most (when the stacks flip), merges
//! never subtract, and every function — sketches included — slides in
//! amortised O(1) merges per event.

use datafusion::arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};
use std::fmt::Debug;

use crate::sliding::SlidingAggregate;

/// A mergeable, serializable partial aggregate.
pub trait PartialState: Clone + Send + Sync + Debug + 'static {
    /// Folds row `row` of the (canonically typed) argument columns into the state.
    fn update(&mut self, arguments: &[ArrayRef], row: usize) -> Result<()>;
    /// Merges a state of the same function and parameters into this one.
    fn merge(&mut self, other: &Self) -> Result<()>;
    /// The final result.
    fn evaluate(&self) -> Result<ScalarValue>;
    /// Whether no value has been aggregated (the empty window of SEMANTICS.md §5).
    fn is_empty(&self) -> bool;
    /// The state as one value per state field, in [`StateFactory::state_fields`] order.
    fn to_state(&self) -> Result<Vec<ScalarValue>>;
    /// Heap bytes held by the state, for DataFusion's memory accounting.
    fn size(&self) -> usize;
}

/// One function with its parameters fixed: makes, describes and decodes states.
pub trait StateFactory: Clone + Send + Sync + Debug + 'static {
    /// The state this function keeps.
    type State: PartialState;
    /// The state of no values.
    fn empty(&self) -> Self::State;
    /// The state columns, named after `name` (see `format_state_name`).
    fn state_fields(&self, name: &str) -> Vec<FieldRef>;
    /// Decodes the state in row `row` of `columns` (laid out as [`Self::state_fields`]),
    /// validating it; a null state is the empty state.
    fn decode(&self, columns: &[ArrayRef], row: usize) -> Result<Self::State>;
    /// The type of [`PartialState::evaluate`]'s result.
    fn result_type(&self) -> DataType;
}

/// A [`SlidingAggregate`] for any [`StateFactory`].
#[derive(Debug)]
pub struct SlidingState<F: StateFactory> {
    factory: F,
    /// The argument columns of the loaded key's events.
    arguments: Vec<ArrayRef>,
    /// Oldest events on top; each entry aggregates itself and every newer front event.
    front: Vec<F::State>,
    /// Rows of the newer events, in arrival order, and their running state.
    back_rows: Vec<usize>,
    back: F::State,
    output: Vec<ScalarValue>,
    empty: BooleanBufferBuilder,
    /// The first error met while sliding, reported by `finish`.
    error: Option<datafusion::common::DataFusionError>,
}

impl<F: StateFactory> SlidingState<F> {
    /// An empty window of `factory`'s states.
    pub fn new(factory: F) -> Self {
        let back = factory.empty();
        Self {
            factory,
            arguments: Vec::new(),
            front: Vec::new(),
            back_rows: Vec::new(),
            back,
            output: Vec::new(),
            empty: BooleanBufferBuilder::new(0),
            error: None,
        }
    }

    fn record(&mut self, outcome: Result<()>) {
        if let Err(e) = outcome {
            self.error.get_or_insert(e);
        }
    }

    /// Moves the back stack onto the front, newest first, accumulating.
    fn flip(&mut self) -> Result<()> {
        let mut running = self.factory.empty();
        for &row in self.back_rows.iter().rev() {
            running.update(&self.arguments, row)?;
            self.front.push(running.clone());
        }
        self.back_rows.clear();
        self.back = self.factory.empty();
        Ok(())
    }

    fn current(&self) -> Result<F::State> {
        let mut state = self
            .front
            .last()
            .cloned()
            .unwrap_or_else(|| self.factory.empty());
        state.merge(&self.back)?;
        Ok(state)
    }
}

impl<F: StateFactory> SlidingAggregate for SlidingState<F> {
    fn load(&mut self, arguments: &[ArrayRef]) -> Result<()> {
        self.arguments = arguments.to_vec();
        self.front.clear();
        self.back_rows.clear();
        self.back = self.factory.empty();
        Ok(())
    }

    fn push(&mut self, index: usize) {
        let outcome = self.back.update(&self.arguments, index);
        self.back_rows.push(index);
        self.record(outcome);
    }

    fn pop(&mut self) {
        if self.front.is_empty() {
            let outcome = self.flip();
            self.record(outcome);
        }
        self.front.pop();
    }

    fn emit(&mut self) {
        match self
            .current()
            .and_then(|state| Ok((state.is_empty(), state.evaluate()?)))
        {
            Ok((empty, value)) => {
                self.empty.append(empty);
                self.output.push(value);
            }
            Err(e) => {
                self.empty.append(false);
                self.output.push(ScalarValue::Null);
                self.record(Err(e));
            }
        }
    }

    fn emit_null(&mut self) {
        self.empty.append(false);
        self.output.push(ScalarValue::Null);
    }

    fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let result_type = self.factory.result_type();
        let null = ScalarValue::try_from(&result_type)?;
        let values = std::mem::take(&mut self.output)
            .into_iter()
            .map(|v| if v.is_null() { null.clone() } else { v });
        let array = if self.empty.is_empty() {
            datafusion::arrow::array::new_empty_array(&result_type)
        } else {
            ScalarValue::iter_to_array(values)?
        };
        Ok((array, BooleanArray::new(self.empty.finish(), None)))
    }
}
