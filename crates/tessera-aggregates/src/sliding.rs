//! Sliding kernels: one function over time-ordered windows of one key's events.
//!
//! The point-in-time sweep hands a kernel every event of a key (sorted by
//! time) with [`SlidingAggregate::load`], optionally grouped into buckets,
//! then moves the window's parts over them with `slide` and asks for the
//! current value with `emit` once per spine row. Every function slides
//! through its partial state ([`SlidingState`](crate::SlidingState)) but
//! `approx_percentile`, which answers windows of raw events with exact order
//! statistics ([`PercentileWindow`](crate::functions::PercentileWindow)).

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::common::Result;

/// Where one bucket state of a key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BucketSource {
    /// Built from the loaded events `start..end` (one bucket's run of them).
    Events(usize, usize),
    /// Decoded from row `row` of the serialized tile states given to `load`.
    Tile(usize),
}

/// A part of a window, by where its items come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Raw events at the old end of the window (partial bucket of exact windows).
    Tail = 0,
    /// Whole buckets, as states built from the events.
    Buckets = 1,
    /// Raw events at the new end of the window.
    Head = 2,
}

/// One aggregate over a sliding window of one key's events.
pub trait SlidingAggregate: Send + std::any::Any {
    /// Replaces the events with those of a new key (time-ordered): the
    /// function's argument columns (none for `count(*)`), and the key's
    /// buckets in time order, which the [`Part::Buckets`] items index: each
    /// built from a run of the events or decoded from a row of `tile_states`
    /// (serialized states laid out as the function's state fields; validated
    /// on decoding). Empties every part.
    fn load(
        &mut self,
        arguments: &[ArrayRef],
        buckets: &[BucketSource],
        tile_states: &[ArrayRef],
    ) -> Result<()>;
    /// Like [`Self::load`], but takes the bucket states `other` built for the
    /// same key and grid instead of building them again. Fails when `other`
    /// is a different function.
    fn load_sharing_buckets(
        &mut self,
        arguments: &[ArrayRef],
        other: &dyn SlidingAggregate,
    ) -> Result<()>;
    /// How many bucket states the last `load` built.
    fn bucket_count(&self) -> usize;
    /// Heap bytes of the bucket states the last `load` built (shared ones count once, where built).
    fn bucket_bytes(&self) -> usize;
    /// Makes `part` hold the items `items` (events, or buckets for
    /// [`Part::Buckets`]). Both bounds only move forward between loads: items
    /// before the new start leave the part, items up to the new end join it.
    fn slide(&mut self, part: Part, items: std::ops::Range<usize>);
    /// Appends the window's current result (all parts merged) to the output.
    fn emit(&mut self);
    /// Appends a null (a spine row without a time).
    fn emit_null(&mut self);
    /// The output column and, per row, whether the window held no values.
    fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)>;
}
