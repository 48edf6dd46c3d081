//! The partial states of the scalar functions: small, mergeable and exact to merge.
//!
//! Each state is a [`Monoid`]: merging is associative and commutative, and
//! the identity is the state of an empty window. These are the states that
//! buckets and tiles hold; the sliding kernels merge them over windows.

use crate::two_stacks::Monoid;

/// `count`: the number of (non-null) values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CountState(pub i64);

impl Monoid for CountState {
    fn identity() -> Self {
        Self(0)
    }
    fn combine(&mut self, other: &Self) {
        self.0 += other.0;
    }
}

/// Integer `sum`: a wrapping `i64` sum and the number of values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IntSumState {
    /// The sum, wrapping on overflow like DataFusion's `sum`.
    pub sum: i64,
    /// How many values were summed.
    pub count: i64,
}

impl Monoid for IntSumState {
    fn identity() -> Self {
        Self::default()
    }
    fn combine(&mut self, other: &Self) {
        self.sum = self.sum.wrapping_add(other.sum);
        self.count += other.count;
    }
}

/// Float `sum` and `mean`: the sum and the number of values.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FloatSumState {
    /// The sum.
    pub sum: f64,
    /// How many values were summed.
    pub count: i64,
}

impl Monoid for FloatSumState {
    fn identity() -> Self {
        Self::default()
    }
    fn combine(&mut self, other: &Self) {
        self.sum += other.sum;
        self.count += other.count;
    }
}

/// `var` and `std`: count, mean and the sum of squared deviations (Welford / Chan et al.).
///
/// Merging uses the pairwise update of Chan, Golub and LeVeque, which stays
/// accurate where running sums of squares cancel catastrophically.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MomentsState {
    /// Number of values.
    pub count: i64,
    /// Their mean.
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
}

impl MomentsState {
    /// The state of one value.
    pub fn of(value: f64) -> Self {
        Self {
            count: 1,
            mean: value,
            m2: 0.0,
        }
    }

    /// Sample variance, `None` for fewer than two values.
    pub fn sample_variance(&self) -> Option<f64> {
        (self.count >= 2).then(|| self.m2 / (self.count - 1) as f64)
    }
}

impl Monoid for MomentsState {
    fn identity() -> Self {
        Self::default()
    }
    fn combine(&mut self, other: &Self) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        let weight = other.count as f64 / count as f64;
        self.mean += delta * weight;
        self.m2 += other.m2 + delta * delta * self.count as f64 * weight;
        self.count = count;
    }
}

/// Which end of the order an extreme state keeps.
pub trait Extreme: Send + 'static + Clone + Copy + Default + std::fmt::Debug {
    /// Whether `candidate` should replace `current`.
    fn prefer<T: PartialOrdTotal>(candidate: &T, current: &T) -> bool;
}

/// Keeps the smallest value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smallest;
/// Keeps the largest value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Largest;

impl Extreme for Smallest {
    fn prefer<T: PartialOrdTotal>(candidate: &T, current: &T) -> bool {
        candidate.total_cmp(current).is_lt()
    }
}

impl Extreme for Largest {
    fn prefer<T: PartialOrdTotal>(candidate: &T, current: &T) -> bool {
        candidate.total_cmp(current).is_gt()
    }
}

/// A total order for the values of min/max: floats order NaN above every number.
pub trait PartialOrdTotal {
    /// Compares two values totally.
    fn total_cmp(&self, other: &Self) -> std::cmp::Ordering;
}

impl PartialOrdTotal for i64 {
    fn total_cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.cmp(other)
    }
}

impl PartialOrdTotal for f64 {
    fn total_cmp(&self, other: &Self) -> std::cmp::Ordering {
        // -0.0 and 0.0 compare equal, as in SQL; NaN is largest.
        self.partial_cmp(other)
            .unwrap_or_else(|| self.is_nan().cmp(&other.is_nan()))
    }
}

impl PartialOrdTotal for String {
    fn total_cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.cmp(other)
    }
}

/// `min` / `max`: the extreme value seen, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtremeState<T, E> {
    /// The kept value; `None` for an empty window.
    pub value: Option<T>,
    end: std::marker::PhantomData<E>,
}

impl<T, E> ExtremeState<T, E> {
    /// The state of one value.
    pub fn of(value: Option<T>) -> Self {
        Self {
            value,
            end: std::marker::PhantomData,
        }
    }
}

impl<T, E> Monoid for ExtremeState<T, E>
where
    T: PartialOrdTotal + Clone + Send + 'static,
    E: Extreme,
{
    fn identity() -> Self {
        Self::of(None)
    }
    fn combine(&mut self, other: &Self) {
        if let Some(candidate) = &other.value
            && self
                .value
                .as_ref()
                .is_none_or(|current| E::prefer(candidate, current))
        {
            self.value = Some(candidate.clone());
        }
    }
}
