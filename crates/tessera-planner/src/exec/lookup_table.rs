//! [`LookupTable`]: the bucket states a [`super::TileLookupExec`] stage
//! reads, grouped by key and ordered by bucket.
//!
//! The table is built once per query from every tile row the stage's scans
//! kept (those some spine row reads) and from the raw events the stage
//! reads (buckets the tiles do not cover, with `tile_coverage_fallback =
//! 'raw'`): rows are numbered by the spine's key index ([`KeyIndex`]) and
//! laid out by a counting sort on that number, so a key's buckets are one
//! contiguous, bucket-ordered run ([`KeyedBuckets`]) and a window is the
//! run's sub-range between two binary searches. The tile sets of one scan
//! share their layout; a window whose buckets also come from raw events gets
//! one of its own. States are decoded once, into each function's
//! [`BucketTable`], straight from the batches read: the layout is kept as
//! runs of consecutive rows of one batch ([`PartRows`]), decoded run after
//! run, so no state column is copied into the layout's order first.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::common::{Result, exec_err};
use tessera_aggregates::{AggregateImplementation, BucketTable, PartRows};
use tessera_time::{EventRange, Grid, TimeRanges};

use super::TileInput;
use super::key_index::KeyIndex;
use super::time::to_micros;

/// The buckets of every key in one layout: key `k`'s are
/// `offsets[k]..offsets[k + 1]`, ascending by start.
#[derive(Debug)]
pub(crate) struct KeyedBuckets {
    offsets: Vec<usize>,
    starts: Vec<i64>,
}

impl KeyedBuckets {
    /// The rows of `key`'s buckets whose start lies in `body`.
    pub(crate) fn rows(&self, key: usize, body: EventRange) -> Range<usize> {
        let (first, end) = (self.offsets[key], self.offsets[key + 1]);
        let starts = &self.starts[first..end];
        let low = body
            .start
            .map_or(0, |start| starts.partition_point(|&s| s < start));
        let high = starts.partition_point(|&s| s < body.end).max(low);
        first + low..first + high
    }

    fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * size_of::<usize>() + self.starts.capacity() * size_of::<i64>()
    }
}

/// Where a bucket row comes from: its position among the rows it is laid
/// out from (tile batches one after another, then raw buckets).
type RowAt = u32;

/// Where an event is: row `1` of batch `0`.
type EventAt = (usize, usize);

/// One bucket row to lay out: its key number, bucket start and origin.
type KeyedRow = (usize, i64, RowAt);

/// Lays `rows` out by key (a counting sort on the key number, which keeps
/// their order within a key), then orders each key's rows by bucket start.
/// Returns the layout and, per laid-out row, where it came from.
fn lay_out(key_count: usize, rows: Vec<KeyedRow>) -> (KeyedBuckets, Vec<RowAt>) {
    let mut offsets = vec![0usize; key_count + 1];
    for &(key, _, _) in &rows {
        offsets[key + 1] += 1;
    }
    for key in 0..key_count {
        offsets[key + 1] += offsets[key];
    }
    let mut next = offsets.clone();
    let (mut starts, mut order) = (vec![0i64; rows.len()], vec![0 as RowAt; rows.len()]);
    for (key, start, at) in rows {
        (starts[next[key]], order[next[key]]) = (start, at);
        next[key] += 1;
    }
    for key in 0..key_count {
        let run = offsets[key]..offsets[key + 1];
        // Tile rows come file after file, each file's in bucket order: a
        // run is out of order only where files' buckets interleave or
        // buckets built from raw events join it.
        if !starts[run.clone()].is_sorted() {
            let mut sorted: Vec<(i64, RowAt)> =
                run.clone().map(|i| (starts[i], order[i])).collect();
            sorted.sort_unstable();
            for (i, (start, at)) in run.zip(sorted) {
                (starts[i], order[i]) = (start, at);
            }
        }
    }
    (KeyedBuckets { offsets, starts }, order)
}

/// The rows of one tile scan laid out by key and bucket: what its tile sets share.
pub(crate) struct ScanRows {
    layout: Arc<KeyedBuckets>,
    /// The scan's state columns, batch after batch: a source decodes its
    /// states from them straight into the layout's order.
    parts: Vec<Vec<ArrayRef>>,
    /// Where each part's rows start among all parts' rows, and where the last ends.
    bounds: Vec<usize>,
    /// The layout's rows, as runs of consecutive rows of one part.
    runs: Vec<PartRows>,
}

impl ScanRows {
    /// Numbers every row of `batches` (key columns, bucket start, state
    /// columns) by key and lays them out by key and bucket. Rows whose key
    /// no spine row has are dropped: no row reads them.
    pub(crate) fn new(
        index: &KeyIndex,
        batches: &[RecordBatch],
        key_columns: usize,
    ) -> Result<Self> {
        let bounds = part_bounds(batches.iter().map(RecordBatch::num_rows))?;
        let mut rows = Vec::with_capacity(bounds.last().copied().unwrap_or_default());
        for (batch, &first_row) in batches.iter().zip(&bounds) {
            let keys = index.batch_keys(&batch.columns()[..key_columns])?;
            let starts = batch.column(key_columns).as_primitive::<Int64Type>();
            // Files hold each key's rows together: look a key up once per run.
            let mut key = None;
            for (row, start) in starts.values().iter().enumerate() {
                if row == 0 || !keys.same_key(row, row - 1) {
                    key = index.number(&keys, row);
                }
                if let Some(key) = key {
                    rows.push((key, *start, (first_row + row) as RowAt));
                }
            }
        }
        let (layout, order) = lay_out(index.key_count(), rows);
        let runs = part_runs(&order, &bounds);
        let parts = batches
            .iter()
            .map(|batch| batch.columns()[key_columns + 1..].to_vec())
            .collect();
        Ok(Self {
            layout: Arc::new(layout),
            parts,
            bounds,
            runs,
        })
    }

    /// How many rows the scan kept.
    pub(crate) fn len(&self) -> usize {
        self.layout.starts.len()
    }

    /// Every row as laid out: key number, bucket start, and where it is
    /// among the parts' rows.
    fn keyed_rows(&self) -> Vec<KeyedRow> {
        let offsets = &self.layout.offsets;
        let mut origins = self.runs.iter().flat_map(|run| {
            let first = self.bounds[run.part];
            run.rows.clone().map(move |row| (first + row) as RowAt)
        });
        let mut rows = Vec::with_capacity(self.len());
        for key in 0..offsets.len().saturating_sub(1) {
            for row in offsets[key]..offsets[key + 1] {
                let at = origins.next().unwrap_or_default();
                rows.push((key, self.layout.starts[row], at));
            }
        }
        rows
    }

    /// The state columns `states` of every part.
    fn state_parts(&self, states: Range<usize>) -> Vec<&[ArrayRef]> {
        self.parts
            .iter()
            .map(|part| &part[states.clone()])
            .collect()
    }
}

/// Where each of parts of `lengths` rows starts when laid end to end, then
/// where the last ends; at most [`RowAt::MAX`] rows in all.
fn part_bounds(lengths: impl IntoIterator<Item = usize>) -> Result<Vec<usize>> {
    let mut bounds = vec![0];
    for length in lengths {
        bounds.push(bounds[bounds.len() - 1] + length);
    }
    let total = bounds[bounds.len() - 1];
    if RowAt::try_from(total).is_err() {
        return exec_err!(
            "a tile lookup reads at most {} bucket rows, not {total}",
            RowAt::MAX
        );
    }
    Ok(bounds)
}

/// `order` (positions among parts laid end to end, part `p` from
/// `bounds[p]` to `bounds[p + 1]`) as runs of consecutive rows of one part.
fn part_runs(order: &[RowAt], bounds: &[usize]) -> Vec<PartRows> {
    let mut runs: Vec<PartRows> = Vec::new();
    for &at in order {
        let at = at as usize;
        if let Some(last) = runs.last_mut() {
            let next = bounds[last.part] + last.rows.end;
            if next == at && at < bounds[last.part + 1] {
                last.rows.end += 1;
                continue;
            }
        }
        let part = bounds.partition_point(|&bound| bound <= at) - 1;
        let row = at - bounds[part];
        runs.push(PartRows {
            part,
            rows: row..row + 1,
        });
    }
    runs
}

/// Bucket states built from raw events: one row per key and bucket.
struct RawBuckets {
    rows: Vec<(usize, i64)>,
    states: Vec<ArrayRef>,
}

/// Where a stage's events keep their keys, time and each feature's arguments.
#[derive(Debug, Clone)]
pub(crate) struct EventColumns {
    pub(crate) keys: Vec<usize>,
    pub(crate) time: usize,
    pub(crate) arguments: Vec<Vec<usize>>,
}

/// The raw events a stage read, numbered by key.
pub(crate) struct KeyedEvents {
    batches: Vec<RecordBatch>,
    /// Per event: key number, time, and where it is.
    events: Vec<(usize, i64, EventAt)>,
    /// Per key, its earliest event (`i64::MAX` when it has none).
    first: Vec<i64>,
}

impl KeyedEvents {
    /// Numbers every event of `batches` whose key some spine row has.
    pub(crate) fn new(
        index: &KeyIndex,
        batches: Vec<RecordBatch>,
        columns: &EventColumns,
    ) -> Result<Self> {
        let mut events = Vec::new();
        let mut first = vec![i64::MAX; index.key_count()];
        for (b, batch) in batches.iter().enumerate() {
            let key_columns: Vec<ArrayRef> = columns
                .keys
                .iter()
                .map(|&i| Arc::clone(batch.column(i)))
                .collect();
            let keys = index.batch_keys(&key_columns)?;
            let times = to_micros(batch.column(columns.time))?;
            for row in 0..batch.num_rows() {
                let (Some(key), false) = (index.number(&keys, row), times.is_null(row)) else {
                    continue;
                };
                let ts = times.value(row);
                first[key] = first[key].min(ts);
                events.push((key, ts, (b, row)));
            }
        }
        Ok(Self {
            batches,
            events,
            first,
        })
    }

    /// How many events were read.
    pub(crate) fn len(&self) -> usize {
        self.events.len()
    }

    /// Per key, the start on `grid` of the bucket of its earliest event.
    fn first_buckets(&self, grid: &Grid) -> Vec<Option<i64>> {
        self.first
            .iter()
            .map(|&ts| (ts != i64::MAX).then(|| grid.floor(ts)))
            .collect()
    }

    /// The states, per key and bucket of `grid` that `coverage` does not
    /// cover, of the events' `arguments` columns under `function`.
    fn uncovered_buckets(
        &self,
        function: &dyn AggregateImplementation,
        arguments: &[usize],
        grid: &Grid,
        coverage: &TimeRanges,
    ) -> Result<Option<RawBuckets>> {
        let mut events: Vec<(usize, i64, i64, EventAt)> = self
            .events
            .iter()
            .map(|&(key, ts, at)| (key, grid.floor(ts), ts, at))
            .filter(|(_, bucket, _, _)| !coverage.contains(*bucket))
            .collect();
        if events.is_empty() {
            return Ok(None);
        }
        // Each bucket's events folded in time order, as the sweep folds them.
        events.sort_unstable();
        let mut rows: Vec<(usize, i64)> = Vec::new();
        let mut bounds = Vec::new();
        for (i, &(key, bucket, _, _)) in events.iter().enumerate() {
            if rows.last() != Some(&(key, bucket)) {
                rows.push((key, bucket));
                bounds.push(i);
            }
        }
        bounds.push(events.len());
        let order: Vec<EventAt> = events.iter().map(|(.., at)| *at).collect();
        let columns = arguments
            .iter()
            .map(|&column| {
                let arrays: Vec<&dyn Array> = self
                    .batches
                    .iter()
                    .map(|batch| batch.column(column).as_ref())
                    .collect();
                Ok(interleave(&arrays, &order)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let states = function.run_states(&columns, &bounds)?;
        Ok(Some(RawBuckets { rows, states }))
    }
}

/// One feature's buckets on one grid, decoded.
#[derive(Debug)]
pub(crate) struct SourceTable {
    /// Its layout (shared with the other tile sets of its scan when every
    /// bucket comes from tiles).
    pub(crate) layout: Arc<KeyedBuckets>,
    pub(crate) states: Box<dyn BucketTable>,
    /// Per key, the bucket of its earliest event read; empty when no event was.
    pub(crate) first_needed: Vec<Option<i64>>,
}

impl SourceTable {
    /// Decodes the buckets of `input` (a tile set read by `scan`), adding
    /// the buckets its tiles do not cover from `events` (which are only read
    /// where some row reads them raw).
    pub(crate) fn build(
        function: &dyn AggregateImplementation,
        input: &TileInput,
        grid: &Grid,
        arguments: &[usize],
        scan: &ScanRows,
        events: &KeyedEvents,
        key_count: usize,
    ) -> Result<Self> {
        let tile_parts = scan.state_parts(input.states.clone());
        let raw = match events.len() {
            0 => None,
            _ => events.uncovered_buckets(function, arguments, grid, &input.coverage)?,
        };
        let (layout, states) = match raw {
            None => (
                Arc::clone(&scan.layout),
                function.bucket_table(&tile_parts, &scan.runs)?,
            ),
            Some(raw) => {
                // Raw buckets are a part after the tiles'.
                let bounds = part_bounds(
                    tile_parts
                        .iter()
                        .chain([&raw.states[..]].iter())
                        .map(|part| part.first().map_or(0, |column| column.len())),
                )?;
                let first = bounds[tile_parts.len()];
                let mut rows = scan.keyed_rows();
                rows.extend(
                    raw.rows
                        .iter()
                        .enumerate()
                        .map(|(i, &(key, start))| (key, start, (first + i) as RowAt)),
                );
                let (layout, order) = lay_out(key_count, rows);
                let mut parts = tile_parts;
                parts.push(&raw.states);
                let table = function.bucket_table(&parts, &part_runs(&order, &bounds))?;
                (Arc::new(layout), table)
            }
        };
        Ok(Self {
            layout,
            states,
            first_needed: match events.len() {
                0 => Vec::new(),
                _ => events.first_buckets(grid),
            },
        })
    }
}

/// Every window source of a stage, its keys numbered by the stage's [`KeyIndex`].
#[derive(Debug)]
pub(crate) struct LookupTable {
    pub(crate) sources: Vec<SourceTable>,
    /// The distinct searches a row needs: a source whose layout to search
    /// and a window shape whose body to search for. Windows of one shape
    /// whose sources share a layout (the aggregations of one series) find
    /// the same rows.
    pub(crate) searches: Vec<(usize, usize)>,
    /// Per window of the stage, its search.
    pub(crate) window_searches: Vec<usize>,
}

impl LookupTable {
    /// The table of `sources` for windows reading source and shape `windows`.
    pub(crate) fn new(
        sources: Vec<SourceTable>,
        windows: impl IntoIterator<Item = (usize, usize)>,
    ) -> Self {
        let mut searches: Vec<(usize, usize)> = Vec::new();
        let window_searches = windows
            .into_iter()
            .map(|(source, shape)| {
                let layout = Arc::as_ptr(&sources[source].layout);
                let same = |&(s, sh): &(usize, usize)| {
                    sh == shape && Arc::as_ptr(&sources[s].layout) == layout
                };
                searches.iter().position(same).unwrap_or_else(|| {
                    searches.push((source, shape));
                    searches.len() - 1
                })
            })
            .collect();
        Self {
            sources,
            searches,
            window_searches,
        }
    }

    /// Heap bytes of the decoded states and of each layout (once, however
    /// many sources share it), for DataFusion's memory accounting.
    pub(crate) fn heap_bytes(&self) -> usize {
        let mut layouts: Vec<*const KeyedBuckets> = Vec::new();
        let mut bytes = 0;
        for source in &self.sources {
            bytes += source.states.heap_bytes();
            let layout = Arc::as_ptr(&source.layout);
            if !layouts.contains(&layout) {
                layouts.push(layout);
                bytes += source.layout.heap_bytes();
            }
        }
        bytes
    }
}
