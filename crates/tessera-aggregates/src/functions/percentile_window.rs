//! The sliding kernel of `approx_percentile`: exact order statistics where
//! a window holds raw events only, t-digests where it holds tile states.
//!
//! A window read from raw events has every value at hand, so it needs no
//! digest: merging the digests of its parts at every spine row (a k-way
//! merge and a compression of a few hundred centroids each time) was about
//! a third of an exact training set's CPU. Here a window whose buckets are
//! all built from the loaded events is one run of consecutive events (its
//! tail, the events of its buckets and its head are adjacent), and an
//! [`OrderStatistic`] slides over that run in two heaps, at O(log n) per
//! event entering or leaving and O(1) per read. Its answer is the value a
//! t-digest gives for sets it keeps as unit centroids (the order statistic
//! at rank `floor(quantile · n)`, see [`super::approx_percentile`]): the
//! same for windows of at most 50 values, exact — so within any error bound
//! of the digest — for larger ones. Keys whose buckets come from tiles keep
//! the digest kernel ([`SlidingState`]), whose answers are within the
//! digest's bound of these.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::ops::Range;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::common::{Result, internal_err};

use super::approx_percentile::{PercentileFactory, rank_index};
use super::input::primitive;
use crate::sliding::{BucketSource, Part, SlidingAggregate};
use crate::state::{SlidingState, StateFactory, WindowOutput};

/// `approx_percentile` over a sliding window (see the module docs).
#[derive(Debug)]
pub struct PercentileWindow {
    quantile: f64,
    /// The loaded key's values and bucket runs, when every bucket is built
    /// from its events; `None` while the digests answer.
    raw: Option<RawWindow>,
    digests: SlidingState<PercentileFactory>,
    output: WindowOutput,
}

/// A key's events and where the window stands over them.
#[derive(Debug)]
struct RawWindow {
    values: Float64Array,
    /// The events `start..end` of each bucket.
    bucket_events: Vec<(usize, usize)>,
    /// The items of each part, indexed by [`Part`].
    parts: [Range<usize>; 3],
    statistic: OrderStatistic,
}

impl PercentileWindow {
    /// A window of `factory`'s quantile.
    pub fn new(factory: PercentileFactory) -> Self {
        Self {
            quantile: factory.quantile,
            raw: None,
            output: WindowOutput::new(factory.result_type(), 0),
            digests: SlidingState::new(factory),
        }
    }

    fn load_raw(
        &mut self,
        arguments: &[ArrayRef],
        bucket_events: Vec<(usize, usize)>,
    ) -> Result<()> {
        let values = primitive::<Float64Type>(arguments, 0, "approx_percentile")?.clone();
        // The heaps' buffers serve key after key.
        let statistic = match self.raw.take() {
            Some(previous) => previous.statistic.reset(values.len()),
            None => OrderStatistic::new(self.quantile, values.len()),
        };
        self.raw = Some(RawWindow {
            values,
            bucket_events,
            parts: [0..0, 0..0, 0..0],
            statistic,
        });
        Ok(())
    }
}

/// The event runs of `buckets` when every one is built from events.
fn event_runs(buckets: &[BucketSource]) -> Option<Vec<(usize, usize)>> {
    buckets
        .iter()
        .map(|source| match *source {
            BucketSource::Events(start, end) => Some((start, end)),
            BucketSource::Tile(_) => None,
        })
        .collect()
}

impl RawWindow {
    /// The events of each part, in part order.
    fn part_events(&self) -> [Range<usize>; 3] {
        let [tail, buckets, head] = self.parts.clone();
        let runs = &self.bucket_events;
        let bucket_events = if buckets.is_empty() {
            0..0
        } else {
            runs[buckets.start].0..runs[buckets.end - 1].1
        };
        [tail, bucket_events, head]
    }

    /// Whether the window is empty, and its quantile.
    fn read(&mut self) -> (bool, Option<f64>) {
        let parts = self.part_events();
        let mut non_empty = parts.iter().filter(|p| !p.is_empty());
        let Some(first) = non_empty.next() else {
            return (true, None);
        };
        let mut run = first.clone();
        for part in non_empty {
            if part.start != run.end {
                // Parts that are not adjacent (never so in a training set).
                return gathered_quantile(&self.values, &parts, self.statistic.quantile);
            }
            run.end = part.end;
        }
        self.statistic.slide(&self.values, run);
        match self.statistic.value() {
            Some(value) => (false, Some(value)),
            None => (true, None),
        }
    }
}

/// Whether the values of `parts` (counted as often as parts hold them) are
/// none, and their quantile.
fn gathered_quantile(
    values: &Float64Array,
    parts: &[Range<usize>],
    quantile: f64,
) -> (bool, Option<f64>) {
    let mut gathered: Vec<f64> = parts
        .iter()
        .flat_map(|part| part.clone())
        .filter_map(|i| counted(values, i))
        .collect();
    if gathered.is_empty() {
        return (true, None);
    }
    let index = rank_index(quantile, gathered.len());
    let value = *gathered.select_nth_unstable_by(index, f64::total_cmp).1;
    (false, Some(value))
}

/// Event `i`'s value, if the digest would count it (not null, finite).
fn counted(values: &Float64Array, i: usize) -> Option<f64> {
    (values.is_valid(i) && values.value(i).is_finite()).then(|| values.value(i))
}

/// One event's value in a heap, ordered by value, then position.
#[derive(Debug, Clone, Copy)]
struct Entry {
    value: f64,
    index: usize,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.value
            .total_cmp(&other.value)
            .then(self.index.cmp(&other.index))
    }
}

/// Which heap holds an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Neither,
    Lower,
    Upper,
}

/// The order statistic of a run of events `lo..hi` that only moves forward.
///
/// `lower` holds the smallest `rank_index + 1` values of the run, `upper`
/// the rest, so the answer is `lower`'s largest. Events that left the run
/// stay in their heap until they reach its top (an event is live while
/// `index >= lo`), and `side` counts each live event where it is.
#[derive(Debug)]
struct OrderStatistic {
    quantile: f64,
    run: Range<usize>,
    lower: BinaryHeap<Entry>,
    upper: BinaryHeap<Reverse<Entry>>,
    side: Vec<Side>,
    live_lower: usize,
    live_upper: usize,
}

impl OrderStatistic {
    fn new(quantile: f64, events: usize) -> Self {
        Self {
            quantile,
            run: 0..0,
            lower: BinaryHeap::new(),
            upper: BinaryHeap::new(),
            side: vec![Side::Neither; events],
            live_lower: 0,
            live_upper: 0,
        }
    }

    /// Heap bytes at most, once every event has entered.
    fn max_bytes(&self) -> usize {
        self.side.len() * (2 * size_of::<Entry>() + size_of::<Side>())
    }

    /// Moves the run to `run`, starting over if it moved backwards.
    fn slide(&mut self, values: &Float64Array, run: Range<usize>) {
        if run.start < self.run.start || run.end < self.run.end {
            self.clear();
        }
        for index in self.run.start..run.start.min(self.run.end) {
            match self.side[index] {
                Side::Lower => self.live_lower -= 1,
                Side::Upper => self.live_upper -= 1,
                Side::Neither => {}
            }
            self.side[index] = Side::Neither;
        }
        let entering = self.run.end.max(run.start)..run.end;
        self.run = run;
        for index in entering {
            if let Some(value) = counted(values, index) {
                self.insert(Entry { value, index });
            }
        }
        self.balance();
    }

    /// The statistic of no events out of `events`, keeping the heaps' buffers.
    fn reset(mut self, events: usize) -> Self {
        self.clear();
        self.side.resize(events, Side::Neither);
        self
    }

    fn clear(&mut self) {
        self.lower.clear();
        self.upper.clear();
        self.side.fill(Side::Neither);
        self.live_lower = 0;
        self.live_upper = 0;
        self.run = 0..0;
    }

    fn insert(&mut self, entry: Entry) {
        if self.lower_top().is_some_and(|top| entry <= top) {
            self.push_lower(entry);
        } else {
            self.push_upper(entry);
        }
    }

    /// Moves values between the heaps until `lower` holds `rank_index + 1`.
    fn balance(&mut self) {
        let live = self.live_lower + self.live_upper;
        if live == 0 {
            return;
        }
        let wanted = rank_index(self.quantile, live) + 1;
        while self.live_lower > wanted {
            let entry = self.pop_lower();
            self.push_upper(entry);
        }
        while self.live_lower < wanted {
            let Reverse(entry) = self.pop_upper();
            self.push_lower(entry);
        }
    }

    /// The run's quantile, `None` when it holds no value.
    fn value(&mut self) -> Option<f64> {
        self.lower_top().map(|top| top.value)
    }

    fn push_lower(&mut self, entry: Entry) {
        self.side[entry.index] = Side::Lower;
        self.live_lower += 1;
        self.lower.push(entry);
    }

    fn push_upper(&mut self, entry: Entry) {
        self.side[entry.index] = Side::Upper;
        self.live_upper += 1;
        self.upper.push(Reverse(entry));
    }

    /// The largest live value of `lower`, dropping the events above it that left.
    fn lower_top(&mut self) -> Option<Entry> {
        while let Some(top) = self.lower.peek() {
            if top.index >= self.run.start {
                return Some(*top);
            }
            self.lower.pop();
        }
        None
    }

    /// Removes `lower`'s largest live value (there is one: its count says so).
    fn pop_lower(&mut self) -> Entry {
        let start = self.run.start;
        let entry = pop_live(&mut self.lower, |e| e.index >= start);
        self.live_lower -= 1;
        entry
    }

    /// Removes `upper`'s smallest live value (there is one: its count says so).
    fn pop_upper(&mut self) -> Reverse<Entry> {
        let start = self.run.start;
        let entry = pop_live(&mut self.upper, |e| e.0.index >= start);
        self.live_upper -= 1;
        entry
    }
}

/// Pops `heap`'s top live entry, dropping the departed ones above it; the
/// heap's live count guarantees one.
fn pop_live<T: Ord>(heap: &mut BinaryHeap<T>, live: impl Fn(&T) -> bool) -> T {
    loop {
        match heap.pop() {
            Some(entry) if live(&entry) => return entry,
            Some(_) => continue,
            None => unreachable!("a heap whose live count is positive holds a live entry"),
        }
    }
}

impl SlidingAggregate for PercentileWindow {
    fn load(
        &mut self,
        arguments: &[ArrayRef],
        buckets: &[BucketSource],
        tile_states: &[ArrayRef],
    ) -> Result<()> {
        match event_runs(buckets) {
            Some(runs) => self.load_raw(arguments, runs),
            None => {
                self.raw = None;
                self.digests.load(arguments, buckets, tile_states)
            }
        }
    }

    fn load_sharing_buckets(
        &mut self,
        arguments: &[ArrayRef],
        other: &dyn SlidingAggregate,
    ) -> Result<()> {
        let Some(other) = (other as &dyn std::any::Any).downcast_ref::<Self>() else {
            return internal_err!("bucket states can only be shared by windows of one function");
        };
        match &other.raw {
            Some(raw) => self.load_raw(arguments, raw.bucket_events.clone()),
            None => {
                self.raw = None;
                self.digests.load_sharing_buckets(arguments, &other.digests)
            }
        }
    }

    fn bucket_count(&self) -> usize {
        match &self.raw {
            Some(raw) => raw.bucket_events.len(),
            None => self.digests.bucket_count(),
        }
    }

    fn bucket_bytes(&self) -> usize {
        match &self.raw {
            Some(raw) => {
                raw.statistic.max_bytes()
                    + raw.bucket_events.capacity() * size_of::<(usize, usize)>()
            }
            None => self.digests.bucket_bytes(),
        }
    }

    fn slide(&mut self, part: Part, items: Range<usize>) {
        match &mut self.raw {
            Some(raw) => raw.parts[part as usize] = items,
            None => self.digests.slide(part, items),
        }
    }

    fn emit(&mut self) {
        let (raw, digests) = (&mut self.raw, &mut self.digests);
        self.output.append(|out| match raw {
            Some(raw) => {
                let (empty, value) = raw.read();
                out.push_f64(value)?;
                Ok(empty)
            }
            None => digests.read_into(out),
        });
    }

    fn emit_null(&mut self) {
        self.output.push_null();
    }

    fn finish(&mut self) -> Result<(ArrayRef, BooleanArray)> {
        self.output.finish()
    }
}
