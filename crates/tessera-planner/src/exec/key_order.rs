//! [`KeyOrder`]: a partition's spine rows in key and time order, cut into
//! runs that are answered on their own, and [`Answers`]: the runs' answers
//! put back into the partition's order.
//!
//! A tile lookup answers a row by merging a run of its key's bucket
//! states. Answered in spine order, rows jump across the whole table at
//! every row; even sorted within a chunk of consecutive spine rows, each
//! chunk walks the whole table sparsely, and every state is a cache miss
//! (a key-sorted spine answered twice as fast on the medium benchmark).
//! So the partition's rows are ordered once by key number — the table's
//! order — and time, and cut at key boundaries into runs: each run walks
//! its own part of the table forward, densely, and rows of one key
//! sharing an answer lie together. The answers then go back into the
//! partition's order batch by batch, gathered from every run.

use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, exec_err};

use super::key_index::KeyIndex;
use super::time::to_micros;

/// One spine row to answer: 16 bytes, since a partition orders all of its rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpineRow {
    /// Its time in microseconds (meaningless when `slot` is [`NO_TIME`]).
    time: i64,
    /// Its key's number in the table, or [`NO_KEY`], or [`NO_TIME`].
    slot: u32,
    /// Where it is in the partition: batch after batch.
    at: u32,
}

/// The slot of a row with a null key (which reads nothing).
const NO_KEY: u32 = u32::MAX - 1;
/// The slot of a row with a null time (answered null).
const NO_TIME: u32 = u32::MAX;

impl SpineRow {
    /// Its key's number in the table; `None` for a null key.
    pub(crate) fn key(&self) -> Option<usize> {
        (self.slot < NO_KEY).then_some(self.slot as usize)
    }

    /// Its time in microseconds; `None` when null.
    pub(crate) fn time(&self) -> Option<i64> {
        (self.slot != NO_TIME).then_some(self.time)
    }
}

/// A partition's rows in key and time order (null keys after every key,
/// null times last), and where the runs answered at once end.
#[derive(Debug)]
pub(crate) struct KeyOrder {
    rows: Vec<SpineRow>,
    runs: Vec<Range<usize>>,
}

impl KeyOrder {
    /// Orders every row of `batches` by its key (columns `keys`, numbered
    /// by `index`) and time (column `time`), and cuts the order into runs
    /// of about `run_rows` rows, never splitting a key's rows.
    pub(crate) fn new(
        index: &KeyIndex,
        batches: &[RecordBatch],
        keys: &[usize],
        time: usize,
        run_rows: usize,
    ) -> Result<Self> {
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let key_count = index.key_count();
        if u32::try_from(total).is_err() || key_count >= NO_KEY as usize {
            return exec_err!(
                "a tile lookup answers at most {} spine rows a partition, not {total}",
                NO_KEY - 1
            );
        }
        let mut rows = Vec::with_capacity(total);
        for batch in batches {
            let columns: Vec<ArrayRef> =
                keys.iter().map(|&k| Arc::clone(batch.column(k))).collect();
            let batch_keys = index.batch_keys(&columns)?;
            let times = to_micros(batch.column(time))?;
            for (row, &time) in times.values().iter().enumerate() {
                let at = rows.len() as u32;
                let slot = match (times.is_valid(row), index.number(&batch_keys, row)) {
                    (false, _) => NO_TIME,
                    (true, None) => NO_KEY,
                    (true, Some(key)) => key as u32,
                };
                rows.push(SpineRow { time, slot, at });
            }
        }
        Ok(Self::sorted(rows, key_count, run_rows))
    }

    /// Orders `rows` by slot (a counting sort over the `key_count` keys,
    /// then null keys and null times, which keeps their order within a
    /// slot), then each key's rows by time, and cuts runs of about
    /// `run_rows` rows at slot boundaries.
    fn sorted(rows: Vec<SpineRow>, key_count: usize, run_rows: usize) -> Self {
        let position = |slot: u32| match slot {
            NO_KEY => key_count,
            NO_TIME => key_count + 1,
            key => key as usize,
        };
        let slots = key_count + 2;
        let mut starts = vec![0usize; slots + 1];
        for row in &rows {
            starts[position(row.slot) + 1] += 1;
        }
        for slot in 0..slots {
            starts[slot + 1] += starts[slot];
        }
        let unplaced = SpineRow {
            time: 0,
            slot: NO_TIME,
            at: 0,
        };
        let mut sorted = vec![unplaced; rows.len()];
        let mut next = starts.clone();
        for row in rows {
            let slot = position(row.slot);
            sorted[next[slot]] = row;
            next[slot] += 1;
        }
        let mut runs = Vec::new();
        let mut run_start = 0;
        for slot in 0..slots {
            let slot_rows = &mut sorted[starts[slot]..starts[slot + 1]];
            if !slot_rows.is_sorted_by_key(|row| row.time) {
                // Stable: rows of one key and time keep the partition's order.
                slot_rows.sort_by_key(|row| row.time);
            }
            if starts[slot + 1] - run_start >= run_rows {
                runs.push(run_start..starts[slot + 1]);
                run_start = starts[slot + 1];
            }
        }
        if run_start < sorted.len() {
            runs.push(run_start..sorted.len());
        }
        Self { rows: sorted, runs }
    }

    /// The rows, in key and time order.
    pub(crate) fn rows(&self) -> &[SpineRow] {
        &self.rows
    }

    /// The runs answered at once: ranges of [`Self::rows`], in order.
    pub(crate) fn runs(&self) -> &[Range<usize>] {
        &self.runs
    }
}

/// The answers of one run: per window, a column of distinct answers, and
/// per row of the run, which answer it takes.
#[derive(Debug)]
pub(crate) struct RunAnswers {
    pub(crate) columns: Vec<ArrayRef>,
    pub(crate) taken: Vec<u32>,
}

/// Every run's answers, one column per window, and per row of the
/// partition, which answer it takes.
#[derive(Debug)]
pub(crate) struct Answers {
    columns: Vec<ArrayRef>,
    /// Per row of the partition (batch after batch): its answer's position in `columns`.
    taken: UInt32Array,
}

impl Answers {
    /// The answers of `runs` (answered in `order`'s runs, in order).
    pub(crate) fn new(order: &KeyOrder, runs: Vec<RunAnswers>) -> Result<Self> {
        let windows = runs.first().map_or(0, |run| run.columns.len());
        let columns = (0..windows)
            .map(|window| {
                let values: Vec<&dyn Array> = runs
                    .iter()
                    .map(|run| run.columns[window].as_ref())
                    .collect();
                Ok(concat(&values)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut taken = vec![0u32; order.rows.len()];
        let mut first_answer = 0;
        for (range, run) in order.runs.iter().zip(&runs) {
            for (row, &answer) in order.rows[range.clone()].iter().zip(&run.taken) {
                taken[row.at as usize] = first_answer + answer;
            }
            first_answer += run.columns.first().map_or(0, |c| c.len() as u32);
        }
        Ok(Self {
            columns,
            taken: UInt32Array::from(taken),
        })
    }

    /// Heap bytes held, for DataFusion's memory accounting.
    pub(crate) fn heap_bytes(&self) -> usize {
        let columns: usize = self
            .columns
            .iter()
            .map(|column| column.get_array_memory_size())
            .sum();
        columns + self.taken.get_array_memory_size()
    }

    /// `batch` (whose rows are the partition's from `first` on) with every
    /// window's answers appended, as `schema`.
    pub(crate) fn attach(
        &self,
        batch: &RecordBatch,
        first: usize,
        schema: &SchemaRef,
    ) -> Result<RecordBatch> {
        let taken = self.taken.slice(first, batch.num_rows());
        let mut columns = batch.columns().to_vec();
        for values in &self.columns {
            columns.push(take(values, &taken, None)?);
        }
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}
