//! The partial-state contract every function implements, and the sliding
//! windows built on it.
//!
//! A [`PartialState`] is what a bucket, a tile row or a window holds before
//! the final result: it folds input rows in, merges with another state of the
//! same function (associatively and commutatively), evaluates to the result,
//! and turns into one Arrow value per state field. A [`StateFactory`] fixes
//! the function's parameters (types, `k`, `lg_k`, …): it makes empty states,
//! names the state fields and decodes serialized states — validating them,
//! since they may come from corrupt or hostile files.
//!
//! [`SlidingState`] slides any such state over one key's events. A window is
//! made of up to three [`Part`]s — raw events at its tail, bucket states in
//! its body, raw events at its head — each a FIFO window of its own items run
//! with the two-stacks algorithm: the back stack holds item indices and one
//! running state, the front stack holds cumulative states. Merges never
//! subtract, so floating-point sums do not drift and sketches slide in
//! amortised O(1) merges per item; with bucket states the window holds one
//! state per bucket rather than per event.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, BooleanBufferBuilder};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue};

use crate::function::decode_state;
use crate::sliding::{BucketSource, Part, SlidingAggregate};

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
    /// Whether the merge of `states` is empty, and its result — what a
    /// window emits from its parts. A single state is evaluated as is;
    /// functions whose merges are costly (sketches) override this to merge
    /// everything at once.
    fn merged_result(states: &[&Self]) -> Result<(bool, ScalarValue)> {
        let Some((first, rest)) = states.split_first() else {
            return datafusion::common::internal_err!("merged_result of no states");
        };
        if rest.is_empty() {
            return Ok((first.is_empty(), first.evaluate()?));
        }
        let mut merged = (*first).clone();
        for state in rest {
            merged.merge(state)?;
        }
        Ok((merged.is_empty(), merged.evaluate()?))
    }
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

/// One part of a window: a FIFO of items (event rows or bucket states) in two stacks.
#[derive(Debug, Clone)]
struct TwoStacks<S> {
    /// Oldest items on top; each entry aggregates itself and every newer front item.
    front: Vec<S>,
    /// Indices of the newer items, in arrival order, and their running state.
    back_items: Vec<usize>,
    back: S,
}

impl<S: PartialState> TwoStacks<S> {
    fn new(empty: S) -> Self {
        Self {
            front: Vec::new(),
            back_items: Vec::new(),
            back: empty,
        }
    }
}

/// Where a part's items come from.
#[derive(Debug)]
struct Items<'a, S> {
    arguments: &'a [ArrayRef],
    buckets: &'a [S],
}

impl<S: PartialState> Items<'_, S> {
    fn fold(&self, part: Part, state: &mut S, index: usize) -> Result<()> {
        match part {
            Part::Buckets => state.merge(&self.buckets[index]),
            Part::Tail | Part::Head => state.update(self.arguments, index),
        }
    }
}

/// A [`SlidingAggregate`] for any [`StateFactory`].
#[derive(Debug)]
pub struct SlidingState<F: StateFactory> {
    factory: F,
    /// The argument columns of the loaded key's events.
    arguments: Vec<ArrayRef>,
    /// The loaded key's bucket states, one per run of events given to `load`;
    /// shared with windows of the same function on the same grid.
    buckets: Arc<Vec<F::State>>,
    /// Heap bytes of `buckets` when this kernel built them, else 0.
    bucket_bytes: usize,
    /// The tail, bucket and head parts, indexed by [`Part`].
    parts: [TwoStacks<F::State>; 3],
    output: Vec<ScalarValue>,
    empty: BooleanBufferBuilder,
    /// The first error met while sliding, reported by `finish`.
    error: Option<datafusion::common::DataFusionError>,
}

impl<F: StateFactory> SlidingState<F> {
    /// An empty window of `factory`'s states.
    pub fn new(factory: F) -> Self {
        let parts = [(); 3].map(|_| TwoStacks::new(factory.empty()));
        Self {
            factory,
            arguments: Vec::new(),
            buckets: Arc::new(Vec::new()),
            bucket_bytes: 0,
            parts,
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

    fn reset_parts(&mut self) {
        for stacks in &mut self.parts {
            *stacks = TwoStacks::new(self.factory.empty());
        }
    }

    fn items(&self) -> Items<'_, F::State> {
        Items {
            arguments: &self.arguments,
            buckets: &self.buckets,
        }
    }

    /// Moves a part's back stack onto its front, newest first, accumulating.
    fn flip(&mut self, part: Part) -> Result<()> {
        let mut running = self.factory.empty();
        let mut front = Vec::with_capacity(self.parts[part as usize].back_items.len());
        for &item in self.parts[part as usize].back_items.iter().rev() {
            self.items().fold(part, &mut running, item)?;
            front.push(running.clone());
        }
        let stacks = &mut self.parts[part as usize];
        stacks.front = front;
        stacks.back_items.clear();
        stacks.back = self.factory.empty();
        Ok(())
    }

    /// Whether the window is empty, and its value: the states of every part merged.
    fn current(&self) -> Result<(bool, ScalarValue)> {
        // At most two states per part (front top and back), gathered without allocating.
        let mut states = [&self.parts[0].back; 6];
        let mut count = 0;
        for stacks in &self.parts {
            if let Some(top) = stacks.front.last() {
                states[count] = top;
                count += 1;
            }
            if !stacks.back_items.is_empty() {
                states[count] = &stacks.back;
                count += 1;
            }
        }
        if count == 0 {
            let empty = self.factory.empty();
            return Ok((true, empty.evaluate()?));
        }
        F::State::merged_result(&states[..count])
    }

    fn bucket_states(
        &self,
        buckets: &[BucketSource],
        tile_states: &[ArrayRef],
    ) -> Result<Vec<F::State>> {
        buckets
            .iter()
            .map(|source| match *source {
                BucketSource::Events(start, end) => {
                    fold_rows(&self.factory, &self.arguments, start..end)
                }
                BucketSource::Tile(row) => decode_state(&self.factory, tile_states, row),
            })
            .collect()
    }
}

/// The state of `rows` of `arguments`.
fn fold_rows<F: StateFactory>(
    factory: &F,
    arguments: &[ArrayRef],
    rows: std::ops::Range<usize>,
) -> Result<F::State> {
    let mut state = factory.empty();
    for row in rows {
        state.update(arguments, row)?;
    }
    Ok(state)
}

/// The serialized states of consecutive runs of `arguments` rows: one row per
/// run `bounds[i]..bounds[i + 1]`, one column per state field (what a tile
/// file stores).
pub fn run_states<F: StateFactory>(
    factory: &F,
    arguments: &[ArrayRef],
    bounds: &[usize],
) -> Result<Vec<ArrayRef>> {
    let fields = factory.state_fields("state").len();
    let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(bounds.len()); fields];
    for run in bounds.windows(2) {
        let state = fold_rows(factory, arguments, run[0]..run[1])?;
        for (column, value) in columns.iter_mut().zip(state.to_state()?) {
            column.push(value);
        }
    }
    factory
        .state_fields("state")
        .iter()
        .zip(columns)
        .map(|(field, values)| {
            if values.is_empty() {
                Ok(datafusion::arrow::array::new_empty_array(field.data_type()))
            } else {
                // States may give an untyped null; the column needs its field's type.
                let typed_null = ScalarValue::try_from(field.data_type())?;
                let values = values.into_iter().map(|value| match value {
                    ScalarValue::Null => typed_null.clone(),
                    value => value,
                });
                let array = ScalarValue::iter_to_array(values)?;
                if array.data_type() == field.data_type() {
                    Ok(array)
                } else {
                    Ok(datafusion::arrow::compute::cast(&array, field.data_type())?)
                }
            }
        })
        .collect()
}

impl<F: StateFactory> SlidingAggregate for SlidingState<F> {
    fn load(
        &mut self,
        arguments: &[ArrayRef],
        buckets: &[BucketSource],
        tile_states: &[ArrayRef],
    ) -> Result<()> {
        self.arguments = arguments.to_vec();
        let buckets = self.bucket_states(buckets, tile_states)?;
        self.bucket_bytes = buckets.capacity() * std::mem::size_of::<F::State>()
            + buckets.iter().map(PartialState::size).sum::<usize>();
        self.buckets = Arc::new(buckets);
        self.reset_parts();
        Ok(())
    }

    fn load_sharing_buckets(
        &mut self,
        arguments: &[ArrayRef],
        other: &dyn SlidingAggregate,
    ) -> Result<()> {
        let Some(other) = (other as &dyn std::any::Any).downcast_ref::<Self>() else {
            return datafusion::common::internal_err!(
                "bucket states can only be shared by windows of one function"
            );
        };
        self.arguments = arguments.to_vec();
        self.buckets = Arc::clone(&other.buckets);
        self.bucket_bytes = 0;
        self.reset_parts();
        Ok(())
    }

    fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    fn bucket_bytes(&self) -> usize {
        self.bucket_bytes
    }

    fn push(&mut self, part: Part, index: usize) {
        let items = Items {
            arguments: &self.arguments,
            buckets: &self.buckets,
        };
        let stacks = &mut self.parts[part as usize];
        let outcome = items.fold(part, &mut stacks.back, index);
        stacks.back_items.push(index);
        self.record(outcome);
    }

    fn pop(&mut self, part: Part) {
        if self.parts[part as usize].front.is_empty() {
            let outcome = self.flip(part);
            self.record(outcome);
        }
        self.parts[part as usize].front.pop();
    }

    fn emit(&mut self) {
        match self.current() {
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
