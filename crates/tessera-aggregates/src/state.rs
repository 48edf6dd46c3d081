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
//! its body, raw events at its head — each a range of consecutive items
//! (`WindowPart`) that only moves forward. A part is read in one of two
//! ways, chosen as it goes:
//!
//! - *afresh*: its items are folded into a new state (event parts) or handed
//!   to [`PartialState::append_merged`] as they are (bucket part). No state is
//!   kept between reads, so sliding costs nothing and sketches are
//!   neither cloned nor unioned pairwise. Best when a part is read about as
//!   often as its items change — training-set spines are usually sparse.
//! - *two stacks*: the front stack holds cumulative states of the oldest
//!   items, the back one running state of the newer ones, so a read costs
//!   one merge and every item is folded at most twice (amortised O(1)). Best
//!   for long windows read many times.
//!
//! A part reads afresh until the folds spent that way since its stacks were
//! last built exceed `FRESH_BUDGET` times its size, then builds its stacks
//! and uses them until items folded into the back leave (a ski-rental rule:
//! reading afresh never costs much more than the stacks would have). Merges
//! never subtract, so floating-point sums do not drift; with bucket states a
//! window holds one state per bucket rather than per event.

use std::fmt::Debug;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanArray, BooleanBufferBuilder, Float64Builder, Int64Builder,
};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, ScalarValue, internal_err};
use smallvec::SmallVec;

use crate::function::decode_states;
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
    /// Appends [`Self::to_state`] to `columns`, one value to each — what a
    /// backfill does for every key and bucket, so functions override it to
    /// write their fields without a scalar per field.
    fn append_state(&self, columns: &mut [ValueColumn]) -> Result<()> {
        for (column, value) in columns.iter_mut().zip(self.to_state()?) {
            column.push(value)?;
        }
        Ok(())
    }
    /// Heap bytes held by the state, for DataFusion's memory accounting.
    fn size(&self) -> usize;
    /// Readies a state that will be read (merged or evaluated from copies)
    /// many times, when that pays: a t-digest compresses the values it
    /// buffered, which every copy would otherwise sort again. No change of
    /// result beyond what merging may change anyway; by default nothing.
    fn settle(&mut self) {}
    /// Appends [`Self::evaluate`] to `out` — what a window does at every
    /// spine row, so functions with Float64 or Int64 results override it
    /// to push the value without making a scalar.
    fn append_result(&self, out: &mut ValueColumn) -> Result<()> {
        out.push(self.evaluate()?)
    }
    /// Appends the result of merging `states` to `out` and returns whether
    /// that merge is empty — what a window emits from its parts. A single
    /// state is evaluated as is; functions whose merges are costly
    /// (sketches) override this to merge everything at once.
    fn append_merged(states: &[&Self], out: &mut ValueColumn) -> Result<bool> {
        let Some((first, rest)) = states.split_first() else {
            return internal_err!("append_merged of no states");
        };
        if rest.is_empty() {
            first.append_result(out)?;
            return Ok(first.is_empty());
        }
        let mut merged = (*first).clone();
        for state in rest {
            merged.merge(state)?;
        }
        merged.append_result(out)?;
        Ok(merged.is_empty())
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
    /// Decodes rows `rows` of `columns` into `out`, as [`Self::decode`] does
    /// one at a time — what a tile plan does for every key's tile rows, so
    /// functions override it to check the columns' types once per run.
    fn decode_rows(
        &self,
        columns: &[ArrayRef],
        rows: Range<usize>,
        out: &mut Vec<Self::State>,
    ) -> Result<()> {
        for row in rows {
            out.push(self.decode(columns, row)?);
        }
        Ok(())
    }
    /// The type of [`PartialState::evaluate`]'s result.
    fn result_type(&self) -> DataType;
    /// The kernel that slides this function over one key's events: by
    /// default its states ([`SlidingState`]).
    fn sliding_kernel(&self) -> Box<dyn SlidingAggregate> {
        Box::new(SlidingState::new(self.clone()))
    }
}

/// How many times its size a part may spend in folds read afresh before it
/// builds its two stacks (which cost about twice its size to build).
const FRESH_BUDGET: usize = 2;

/// One part of a window: a FIFO of consecutive items (event rows or bucket
/// states), read afresh or through two stacks (see the module docs).
#[derive(Debug, Clone)]
struct WindowPart<S> {
    /// The part's items, oldest first.
    items: Range<usize>,
    /// Cumulative states of the oldest `front.len()` items, the oldest on top:
    /// each entry aggregates its item and every newer front item.
    front: Vec<S>,
    /// The `back_folded` items after the front, folded.
    back: S,
    back_folded: usize,
    /// Folds spent reading afresh since the stacks were last built.
    fresh_folds: usize,
}

/// How a part takes part in one read of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    Empty,
    Afresh,
    Stacks,
}

impl<S: PartialState> WindowPart<S> {
    fn new(empty: S) -> Self {
        Self {
            items: 0..0,
            front: Vec::new(),
            back: empty,
            back_folded: 0,
            fresh_folds: 0,
        }
    }

    /// Empties the part, keeping its front stack's buffer for the next key.
    fn reset(&mut self, empty: S) {
        self.items = 0..0;
        self.front.clear();
        self.back = empty;
        self.back_folded = 0;
        self.fresh_folds = 0;
    }

    /// Moves the part to `items`, dropping the states of the items that left.
    fn slide(&mut self, items: Range<usize>, empty: impl FnOnce() -> S) {
        let leaving = items.start.saturating_sub(self.items.start);
        let from_front = leaving.min(self.front.len());
        self.front.truncate(self.front.len() - from_front);
        if leaving > from_front && self.back_folded > 0 {
            // Items folded into the back left: that state is stale.
            self.back = empty();
            self.back_folded = 0;
        }
        self.items = items;
    }

    fn stacks_built(&self) -> bool {
        !self.front.is_empty() || self.back_folded > 0
    }

    /// Chooses how to read the part now, bringing its stacks up to date when
    /// they are used.
    fn prepare(
        &mut self,
        items: &Items<'_, S>,
        part: Part,
        empty: impl Fn() -> S,
    ) -> Result<Reading> {
        let len = self.items.len();
        if len == 0 {
            return Ok(Reading::Empty);
        }
        if !self.stacks_built() {
            if self.fresh_folds < FRESH_BUDGET * len {
                self.fresh_folds += len;
                return Ok(Reading::Afresh);
            }
            self.build_front(items, part, &empty)?;
        }
        for item in self.items.start + self.front.len() + self.back_folded..self.items.end {
            items.fold(part, &mut self.back, item)?;
            self.back_folded += 1;
        }
        // Both stay until items leave, and every read merges copies of them.
        self.back.settle();
        if let Some(top) = self.front.last_mut() {
            top.settle();
        }
        Ok(Reading::Stacks)
    }

    /// Folds every item into the front stack, newest first, accumulating.
    fn build_front(
        &mut self,
        items: &Items<'_, S>,
        part: Part,
        empty: &impl Fn() -> S,
    ) -> Result<()> {
        let mut running = empty();
        let mut front = Vec::with_capacity(self.items.len());
        for item in self.items.clone().rev() {
            items.fold(part, &mut running, item)?;
            front.push(running.clone());
        }
        self.front = front;
        self.back = empty();
        self.back_folded = 0;
        self.fresh_folds = 0;
        Ok(())
    }

    /// The stacks' states covering the part (after `prepare` chose them).
    fn stack_states(&self) -> impl Iterator<Item = &S> {
        let back = (self.back_folded > 0).then_some(&self.back);
        self.front.last().into_iter().chain(back)
    }
}

/// The parts in [`Part`] order, which indexes [`SlidingState`]'s parts.
const PARTS: [Part; 3] = [Part::Tail, Part::Buckets, Part::Head];

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
    parts: [WindowPart<F::State>; 3],
    output: WindowOutput,
}

impl<F: StateFactory> SlidingState<F> {
    /// An empty window of `factory`'s states.
    pub fn new(factory: F) -> Self {
        let parts = [(); 3].map(|_| WindowPart::new(factory.empty()));
        Self {
            output: WindowOutput::new(factory.result_type(), 0),
            factory,
            arguments: Vec::new(),
            buckets: Arc::new(Vec::new()),
            bucket_bytes: 0,
            parts,
        }
    }

    /// Empties every part for a new key, keeping their buffers.
    fn reset_parts(&mut self) {
        for part in &mut self.parts {
            part.reset(self.factory.empty());
        }
    }

    /// Appends the window's value (the states of every part merged) to
    /// `out` and returns whether the window is empty.
    pub fn read_into(&mut self, out: &mut ValueColumn) -> Result<bool> {
        let items = Items {
            arguments: &self.arguments,
            buckets: &self.buckets,
        };
        read_parts(&self.factory, &items, &mut self.parts, out)
    }

    /// The states of `buckets`: folded from runs of the events, or decoded
    /// from `tile_states` a run of consecutive tile rows at a time.
    fn bucket_states(
        &self,
        buckets: &[BucketSource],
        tile_states: &[ArrayRef],
    ) -> Result<Vec<F::State>> {
        let mut states = Vec::with_capacity(buckets.len());
        // Each run is one bucket of events, or consecutive tile rows.
        for run in buckets.chunk_by(next_tile_row) {
            match run[0] {
                BucketSource::Tile(first) => {
                    let rows = first..first + run.len();
                    decode_states(&self.factory, tile_states, rows, &mut states)?;
                }
                BucketSource::Events(start, end) => {
                    // Every row whose window holds the bucket reads it.
                    let mut state = fold_rows(&self.factory, &self.arguments, start..end)?;
                    state.settle();
                    states.push(state);
                }
            }
        }
        Ok(states)
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

/// Whether `b` is the tile row right after `a`.
fn next_tile_row(a: &BucketSource, b: &BucketSource) -> bool {
    match (a, b) {
        (BucketSource::Tile(x), BucketSource::Tile(y)) => *y == x + 1,
        _ => false,
    }
}

/// Appends the merge of every part of a window over `items` to `out` and
/// returns whether it is empty (see [`SlidingState::read_into`]).
fn read_parts<F: StateFactory>(
    factory: &F,
    items: &Items<'_, F::State>,
    parts: &mut [WindowPart<F::State>; 3],
    out: &mut ValueColumn,
) -> Result<bool> {
    let mut readings = [Reading::Empty; 3];
    for ((part, window_part), reading) in PARTS.iter().zip(parts.iter_mut()).zip(&mut readings) {
        *reading = window_part.prepare(items, *part, || factory.empty())?;
    }
    let mut fresh_events: Option<F::State> = None;
    for ((part, window_part), reading) in PARTS.iter().zip(parts.iter()).zip(&readings) {
        if *reading == Reading::Afresh && *part != Part::Buckets {
            let state = fresh_events.get_or_insert_with(|| factory.empty());
            for item in window_part.items.clone() {
                items.fold(*part, state, item)?;
            }
        }
    }
    // A window is read at every spine row; its few states stay on the stack.
    let mut states: SmallVec<[&F::State; 8]> = SmallVec::new();
    for ((part, window_part), reading) in PARTS.iter().zip(parts.iter()).zip(&readings) {
        match reading {
            Reading::Stacks => states.extend(window_part.stack_states()),
            Reading::Afresh if *part == Part::Buckets => {
                states.extend(&items.buckets[window_part.items.clone()]);
            }
            Reading::Afresh | Reading::Empty => {}
        }
    }
    states.extend(fresh_events.as_ref());
    if states.is_empty() {
        factory.empty().append_result(out)?;
        return Ok(true);
    }
    F::State::append_merged(&states, out)
}

/// The serialized states of consecutive runs of `arguments` rows: one row per
/// run `bounds[i]..bounds[i + 1]`, one column per state field (what a tile
/// file stores).
pub fn run_states<F: StateFactory>(
    factory: &F,
    arguments: &[ArrayRef],
    bounds: &[usize],
) -> Result<Vec<ArrayRef>> {
    let fields = factory.state_fields("state");
    let mut columns: Vec<ValueColumn> = fields
        .iter()
        .map(|field| ValueColumn::new(field.data_type(), bounds.len().saturating_sub(1)))
        .collect();
    for run in bounds.windows(2) {
        fold_rows(factory, arguments, run[0]..run[1])?.append_state(&mut columns)?;
    }
    fields
        .iter()
        .zip(&mut columns)
        .map(|(field, column)| {
            let array = column.finish(field.data_type())?;
            if array.data_type() == field.data_type() {
                Ok(array)
            } else {
                Ok(datafusion::arrow::compute::cast(&array, field.data_type())?)
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
        self.arguments.clear();
        self.arguments.extend_from_slice(arguments);
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
            return internal_err!("bucket states can only be shared by windows of one function");
        };
        self.arguments.clear();
        self.arguments.extend_from_slice(arguments);
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

    fn slide(&mut self, part: Part, items: Range<usize>) {
        let factory = &self.factory;
        self.parts[part as usize].slide(items, || factory.empty());
    }

    fn emit(&mut self) {
        let items = Items {
            arguments: &self.arguments,
            buckets: &self.buckets,
        };
        let (factory, parts) = (&self.factory, &mut self.parts);
        self.output
            .append(|out| read_parts(factory, &items, parts, out));
    }

    fn emit_null(&mut self) {
        self.output.push_null();
    }

    fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)> {
        self.output.finish()
    }
}

/// What a window emitted, row by row: its values, whether it was empty, and
/// the first error met while sliding (reported by `finish`).
#[derive(Debug)]
pub(crate) struct WindowOutput {
    result_type: DataType,
    values: ValueColumn,
    empty: BooleanBufferBuilder,
    error: Option<datafusion::common::DataFusionError>,
}

impl WindowOutput {
    /// No rows yet, of values of `result_type`, with room for `rows` rows.
    pub(crate) fn new(result_type: DataType, rows: usize) -> Self {
        Self {
            values: ValueColumn::new(&result_type, rows),
            result_type,
            empty: BooleanBufferBuilder::new(rows),
            error: None,
        }
    }

    /// Appends one read of the window: `read` pushes its value and returns
    /// whether the window was empty. A failed read keeps its error for
    /// `finish`, which then returns nothing else.
    pub(crate) fn append(&mut self, read: impl FnOnce(&mut ValueColumn) -> Result<bool>) {
        match read(&mut self.values) {
            Ok(empty) => self.empty.append(empty),
            Err(e) => {
                self.push_null();
                self.error.get_or_insert(e);
            }
        }
    }

    /// Appends a null (a spine row without a time, or a failed read).
    pub(crate) fn push_null(&mut self) {
        self.empty.append(false);
        self.values.push_null();
    }

    /// The rows so far as the output column and the empty flags, or the first error.
    pub(crate) fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let values = self.values.finish(&self.result_type)?;
        Ok((values, BooleanArray::new(self.empty.finish(), None)))
    }
}

/// Values made one at a time (a window's results, a run's state fields),
/// kept as the column they become: Float64, Int64 and Binary values (sketch
/// images) go straight into their buffers; others (lists, strings) stay scalars
/// until `finish`, as does a typed column once a value of another type
/// comes.
#[derive(Debug)]
pub enum ValueColumn {
    /// Float64 values.
    Float64(Float64Builder),
    /// Int64 values.
    Int64(Int64Builder),
    /// Binary values (sketch images).
    Binary(BinaryBuilder),
    /// Values of any other type, or of mixed types.
    Scalars(Vec<ScalarValue>),
}

impl ValueColumn {
    /// An empty column for values of `result_type`, with room for `rows`
    /// values (a column grown value by value copies itself at every doubling).
    pub fn new(result_type: &DataType, rows: usize) -> Self {
        match result_type {
            DataType::Float64 => Self::Float64(Float64Builder::with_capacity(rows)),
            DataType::Int64 => Self::Int64(Int64Builder::with_capacity(rows)),
            DataType::Binary => Self::Binary(BinaryBuilder::with_capacity(rows, 0)),
            _ => Self::Scalars(Vec::with_capacity(rows)),
        }
    }

    /// Appends a Float64 value (null when `None`).
    #[inline]
    pub fn push_f64(&mut self, value: Option<f64>) -> Result<()> {
        match self {
            Self::Float64(values) => {
                values.append_option(value);
                Ok(())
            }
            column => column.push(ScalarValue::Float64(value)),
        }
    }

    /// Appends an Int64 value (null when `None`).
    #[inline]
    pub fn push_i64(&mut self, value: Option<i64>) -> Result<()> {
        match self {
            Self::Int64(values) => {
                values.append_option(value);
                Ok(())
            }
            column => column.push(ScalarValue::Int64(value)),
        }
    }

    /// Appends a Binary value.
    #[inline]
    pub fn push_binary(&mut self, value: &[u8]) -> Result<()> {
        match self {
            Self::Binary(values) => {
                values.append_value(value);
                Ok(())
            }
            column => column.push(ScalarValue::Binary(Some(value.to_vec()))),
        }
    }

    /// Appends one value.
    pub fn push(&mut self, value: ScalarValue) -> Result<()> {
        match (self, value) {
            (Self::Float64(values), ScalarValue::Float64(v)) => values.append_option(v),
            (Self::Int64(values), ScalarValue::Int64(v)) => values.append_option(v),
            (Self::Binary(values), ScalarValue::Binary(v)) => values.append_option(v),
            (Self::Scalars(values), value) => values.push(value),
            (column, ScalarValue::Null) => column.push_null(),
            (column, value) => column.as_scalars()?.push(value),
        }
        Ok(())
    }

    /// Appends a null.
    pub fn push_null(&mut self) {
        match self {
            Self::Float64(values) => values.append_null(),
            Self::Int64(values) => values.append_null(),
            Self::Binary(values) => values.append_null(),
            Self::Scalars(values) => values.push(ScalarValue::Null),
        }
    }

    /// The values so far as scalars, to which values of any type can be added.
    fn as_scalars(&mut self) -> Result<&mut Vec<ScalarValue>> {
        let typed: ArrayRef = match self {
            Self::Float64(values) => Arc::new(values.finish()),
            Self::Int64(values) => Arc::new(values.finish()),
            Self::Binary(values) => Arc::new(values.finish()),
            Self::Scalars(values) => return Ok(values),
        };
        let scalars = (0..typed.len())
            .map(|row| ScalarValue::try_from_array(&typed, row))
            .collect::<Result<Vec<_>>>()?;
        *self = Self::Scalars(scalars);
        match self {
            Self::Scalars(values) => Ok(values),
            Self::Float64(_) | Self::Int64(_) | Self::Binary(_) => {
                internal_err!("a column just turned into scalars")
            }
        }
    }

    /// The values so far as one array of `result_type`; the column is left empty.
    pub fn finish(&mut self, result_type: &DataType) -> Result<ArrayRef> {
        match self {
            Self::Float64(values) => Ok(Arc::new(values.finish())),
            Self::Int64(values) => Ok(Arc::new(values.finish())),
            Self::Binary(values) => Ok(Arc::new(values.finish())),
            Self::Scalars(values) if values.is_empty() => {
                Ok(datafusion::arrow::array::new_empty_array(result_type))
            }
            Self::Scalars(values) => {
                // An empty window may evaluate to an untyped null.
                let null = ScalarValue::try_from(result_type)?;
                let values = std::mem::take(values)
                    .into_iter()
                    .map(|v| if v.is_null() { null.clone() } else { v });
                ScalarValue::iter_to_array(values)
            }
        }
    }
}
