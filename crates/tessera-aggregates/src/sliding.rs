//! Sliding kernels: one function over a time-ordered FIFO window of one key's events.
//!
//! The point-in-time sweep hands a kernel every event of a key (sorted by
//! time) with [`SlidingAggregate::load`], then moves a window over them with
//! `push` / `pop` and asks for the current value with `emit` once per spine
//! row. Kernels lift each event into its partial state once, slide with
//! [`TwoStacks`], and build the output column directly.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Float64Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use datafusion::common::{Result, exec_err};

use crate::function::{AggregateKind, BoundAggregate, ValueFamily};
use crate::states::{
    CountState, ExtremeState, FloatSumState, IntSumState, Largest, MomentsState, Smallest,
};
use crate::two_stacks::{Monoid, TwoStacks};

/// One aggregate over a sliding window of one key's events.
pub trait SlidingAggregate: Send {
    /// Replaces the events with those of a new key (time-ordered); `values`
    /// is `None` for `count(*)`. Empties the window.
    fn load(&mut self, values: Option<&ArrayRef>, len: usize) -> Result<()>;
    /// Adds event `index` (of the loaded events) as the newest in the window.
    fn push(&mut self, index: usize);
    /// Removes the oldest event from the window.
    fn pop(&mut self);
    /// Appends the window's current result to the output.
    fn emit(&mut self);
    /// Appends a null (a spine row without a time).
    fn emit_null(&mut self);
    /// The output column and, per row, whether the window held no values.
    fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)>;
}

/// Creates the sliding kernel of a bound aggregate.
pub fn sliding_aggregate(aggregate: &BoundAggregate) -> Result<Box<dyn SlidingAggregate>> {
    use AggregateKind::*;
    use ValueFamily::*;
    Ok(match (aggregate.kind, aggregate.family) {
        (Count, _) => Box::new(Kernel::<CountState>::default()),
        (Sum, Some(Integer)) => Box::new(Kernel::<IntSumState>::default()),
        (Sum, Some(Float)) => Box::new(Kernel::<FloatSum>::default()),
        (Mean, Some(Integer | Float)) => Box::new(Kernel::<Average>::default()),
        (Var, Some(Integer | Float)) => Box::new(Kernel::<Variance>::default()),
        (Std, Some(Integer | Float)) => Box::new(Kernel::<StdDev>::default()),
        (Min, Some(Integer)) => Box::new(Kernel::<ExtremeState<i64, Smallest>>::default()),
        (Max, Some(Integer)) => Box::new(Kernel::<ExtremeState<i64, Largest>>::default()),
        (Min, Some(Float)) => Box::new(Kernel::<ExtremeState<f64, Smallest>>::default()),
        (Max, Some(Float)) => Box::new(Kernel::<ExtremeState<f64, Largest>>::default()),
        (Min, Some(Timestamp)) => Box::new(Kernel::<TimestampExtreme<Smallest>>::default()),
        (Max, Some(Timestamp)) => Box::new(Kernel::<TimestampExtreme<Largest>>::default()),
        (Min, Some(String)) => {
            Box::new(Kernel::<ExtremeState<std::string::String, Smallest>>::default())
        }
        (Max, Some(String)) => {
            Box::new(Kernel::<ExtremeState<std::string::String, Largest>>::default())
        }
        (kind, family) => return exec_err!("no sliding kernel for {kind} over {family:?}"),
    })
}

/// How a state is read from events and written to the output.
trait KernelState: Monoid {
    /// The output value type.
    type Output: Clone + Send;
    /// Lifts every loaded event into a state.
    fn lift_all(values: Option<&ArrayRef>, len: usize, into: &mut Vec<Self>) -> Result<()>;
    /// The result of a window, `None` for SQL null.
    fn output(&self) -> Option<Self::Output>;
    /// Whether the state holds no values.
    fn is_empty(&self) -> bool;
    /// Builds the output column.
    fn to_array(values: Vec<Option<Self::Output>>) -> ArrayRef;
}

/// Generic kernel: lifted events, a two-stacks window and the output so far.
struct Kernel<S: KernelState> {
    lifted: Vec<S>,
    window: TwoStacks<S>,
    output: Vec<Option<S::Output>>,
    empty: BooleanBufferBuilder,
}

impl<S: KernelState> Default for Kernel<S> {
    fn default() -> Self {
        Self {
            lifted: Vec::new(),
            window: TwoStacks::default(),
            output: Vec::new(),
            empty: BooleanBufferBuilder::new(0),
        }
    }
}

impl<S: KernelState> SlidingAggregate for Kernel<S> {
    fn load(&mut self, values: Option<&ArrayRef>, len: usize) -> Result<()> {
        self.lifted.clear();
        self.window.clear();
        S::lift_all(values, len, &mut self.lifted)
    }

    fn push(&mut self, index: usize) {
        self.window.push(self.lifted[index].clone());
    }

    fn pop(&mut self) {
        self.window.pop();
    }

    fn emit(&mut self) {
        let state = self.window.query();
        self.empty.append(state.is_empty());
        self.output.push(state.output());
    }

    fn emit_null(&mut self) {
        self.empty.append(false);
        self.output.push(None);
    }

    fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)> {
        let values = S::to_array(std::mem::take(&mut self.output));
        let empty = BooleanArray::new(self.empty.finish(), None);
        Ok((values, empty))
    }
}

/// Lifts a primitive column with `lift`, mapping nulls to the identity.
fn lift_primitive<T, S>(
    values: Option<&ArrayRef>,
    into: &mut Vec<S>,
    lift: impl Fn(T::Native) -> S,
) -> Result<()>
where
    T: datafusion::arrow::datatypes::ArrowPrimitiveType,
    S: Monoid,
{
    let Some(values) = values else {
        return exec_err!("aggregate expects an argument column");
    };
    let Some(array) = values.as_primitive_opt::<T>() else {
        return exec_err!(
            "aggregate expects {} values, got {}",
            T::DATA_TYPE,
            values.data_type()
        );
    };
    into.extend(
        array
            .iter()
            .map(|v| v.map(&lift).unwrap_or_else(S::identity)),
    );
    Ok(())
}

impl KernelState for CountState {
    type Output = i64;
    fn lift_all(values: Option<&ArrayRef>, len: usize, into: &mut Vec<Self>) -> Result<()> {
        match values {
            None => into.extend(std::iter::repeat_n(CountState(1), len)),
            Some(values) => {
                into.extend((0..len).map(|i| CountState(i64::from(values.is_valid(i)))))
            }
        }
        Ok(())
    }
    fn output(&self) -> Option<i64> {
        Some(self.0)
    }
    fn is_empty(&self) -> bool {
        self.0 == 0
    }
    fn to_array(values: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(Int64Array::from(values))
    }
}

impl KernelState for IntSumState {
    type Output = i64;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        lift_primitive::<Int64Type, _>(values, into, |v| IntSumState { sum: v, count: 1 })
    }
    fn output(&self) -> Option<i64> {
        Some(self.sum)
    }
    fn is_empty(&self) -> bool {
        self.count == 0
    }
    fn to_array(values: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(Int64Array::from(values))
    }
}

/// Float sum: a [`FloatSumState`] whose result is the sum (0 when empty).
#[derive(Debug, Clone, Copy, Default)]
struct FloatSum(FloatSumState);
/// Mean: a [`FloatSumState`] whose result is sum / count (null when empty).
#[derive(Debug, Clone, Copy, Default)]
struct Average(FloatSumState);

macro_rules! delegate_monoid {
    ($wrapper:ty) => {
        impl Monoid for $wrapper {
            fn identity() -> Self {
                Self(Monoid::identity())
            }
            fn combine(&mut self, other: &Self) {
                self.0.combine(&other.0)
            }
        }
    };
}
delegate_monoid!(FloatSum);
delegate_monoid!(Average);
delegate_monoid!(Variance);
delegate_monoid!(StdDev);

fn lift_float_sum(values: Option<&ArrayRef>, into: &mut Vec<FloatSumState>) -> Result<()> {
    lift_primitive::<Float64Type, _>(values, into, |v| FloatSumState { sum: v, count: 1 })
}

impl KernelState for FloatSum {
    type Output = f64;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        let mut states = Vec::new();
        lift_float_sum(values, &mut states)?;
        into.extend(states.into_iter().map(FloatSum));
        Ok(())
    }
    fn output(&self) -> Option<f64> {
        Some(self.0.sum)
    }
    fn is_empty(&self) -> bool {
        self.0.count == 0
    }
    fn to_array(values: Vec<Option<f64>>) -> ArrayRef {
        Arc::new(Float64Array::from(values))
    }
}

impl KernelState for Average {
    type Output = f64;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        let mut states = Vec::new();
        lift_float_sum(values, &mut states)?;
        into.extend(states.into_iter().map(Average));
        Ok(())
    }
    fn output(&self) -> Option<f64> {
        (self.0.count > 0).then(|| self.0.sum / self.0.count as f64)
    }
    fn is_empty(&self) -> bool {
        self.0.count == 0
    }
    fn to_array(values: Vec<Option<f64>>) -> ArrayRef {
        Arc::new(Float64Array::from(values))
    }
}

/// Sample variance over [`MomentsState`].
#[derive(Debug, Clone, Copy, Default)]
struct Variance(MomentsState);
/// Sample standard deviation over [`MomentsState`].
#[derive(Debug, Clone, Copy, Default)]
struct StdDev(MomentsState);

impl KernelState for Variance {
    type Output = f64;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        lift_primitive::<Float64Type, _>(values, into, |v| Variance(MomentsState::of(v)))
    }
    fn output(&self) -> Option<f64> {
        self.0.sample_variance()
    }
    fn is_empty(&self) -> bool {
        self.0.count == 0
    }
    fn to_array(values: Vec<Option<f64>>) -> ArrayRef {
        Arc::new(Float64Array::from(values))
    }
}

impl KernelState for StdDev {
    type Output = f64;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        lift_primitive::<Float64Type, _>(values, into, |v| StdDev(MomentsState::of(v)))
    }
    fn output(&self) -> Option<f64> {
        self.0.sample_variance().map(f64::sqrt)
    }
    fn is_empty(&self) -> bool {
        self.0.count == 0
    }
    fn to_array(values: Vec<Option<f64>>) -> ArrayRef {
        Arc::new(Float64Array::from(values))
    }
}

impl<E: crate::states::Extreme> KernelState for ExtremeState<i64, E> {
    type Output = i64;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        lift_primitive::<Int64Type, _>(values, into, |v| Self::of(Some(v)))
    }
    fn output(&self) -> Option<i64> {
        self.value
    }
    fn is_empty(&self) -> bool {
        self.value.is_none()
    }
    fn to_array(values: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(Int64Array::from(values))
    }
}

impl<E: crate::states::Extreme> KernelState for ExtremeState<f64, E> {
    type Output = f64;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        lift_primitive::<Float64Type, _>(values, into, |v| Self::of(Some(v)))
    }
    fn output(&self) -> Option<f64> {
        self.value
    }
    fn is_empty(&self) -> bool {
        self.value.is_none()
    }
    fn to_array(values: Vec<Option<f64>>) -> ArrayRef {
        Arc::new(Float64Array::from(values))
    }
}

impl<E: crate::states::Extreme> KernelState for ExtremeState<String, E> {
    type Output = String;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        let Some(array) = values.and_then(|v| v.as_string_opt::<i32>()) else {
            return exec_err!("min/max over strings expects Utf8 values");
        };
        into.extend(array.iter().map(|v| Self::of(v.map(str::to_string))));
        Ok(())
    }
    fn output(&self) -> Option<String> {
        self.value.clone()
    }
    fn is_empty(&self) -> bool {
        self.value.is_none()
    }
    fn to_array(values: Vec<Option<String>>) -> ArrayRef {
        Arc::new(StringArray::from(values))
    }
}

/// min/max over UTC microsecond timestamps.
#[derive(Debug, Clone)]
struct TimestampExtreme<E>(ExtremeState<i64, E>);

impl<E: crate::states::Extreme> Monoid for TimestampExtreme<E> {
    fn identity() -> Self {
        Self(Monoid::identity())
    }
    fn combine(&mut self, other: &Self) {
        self.0.combine(&other.0)
    }
}

impl<E: crate::states::Extreme> KernelState for TimestampExtreme<E> {
    type Output = i64;
    fn lift_all(values: Option<&ArrayRef>, _: usize, into: &mut Vec<Self>) -> Result<()> {
        lift_primitive::<TimestampMicrosecondType, _>(values, into, |v| {
            Self(ExtremeState::of(Some(v)))
        })
    }
    fn output(&self) -> Option<i64> {
        self.0.value
    }
    fn is_empty(&self) -> bool {
        self.0.value.is_none()
    }
    fn to_array(values: Vec<Option<i64>>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    }
}
