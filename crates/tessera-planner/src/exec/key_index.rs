//! [`KeyIndex`]: for every spine key, time ranges worked out from that key's rows.
//!
//! Per-key pruning asks, for an event or a tile row, "does any spine row of
//! this key need this time?". The answer is the union, over the key's rows,
//! of ranges that depend on the row's time (the parts it reads raw, the
//! buckets it reads from tiles). The index computes those unions once, when
//! the spine has been read, in several *slots* at once (one per tile set of a
//! stage), so one pass over the spine serves every consumer of a stage.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::arrow::row::{Row, RowConverter, SortField};
use datafusion::common::{HashMap, Result, exec_err};
use tessera_time::TimeRanges;

use super::time::to_micros;

/// Ranges gathered for one key and slot, not yet merged.
type RangeList = Vec<(i64, i64)>;

/// Per spine key (row-encoded), one union of time ranges per slot.
#[derive(Debug)]
pub(crate) struct KeyIndex {
    converter: RowConverter,
    ranges: HashMap<Box<[u8]>, Vec<TimeRanges>>,
    /// Per slot, the earliest start and latest end over every key.
    extents: Vec<Option<(i64, i64)>>,
}

impl KeyIndex {
    /// Indexes `spine` by its `spine_keys` columns: for each row with a key
    /// and a time `t`, `ranges_at(t, slots)` appends that row's ranges to each
    /// of the `slots` lists of its key. Rows with a null key or time need nothing.
    pub(crate) fn build(
        spine_keys: &[String],
        time_column: &str,
        spine: &[RecordBatch],
        slots: usize,
        ranges_at: impl Fn(i64, &mut [RangeList]),
    ) -> Result<Self> {
        let Some(first) = spine.first() else {
            return Ok(Self {
                converter: RowConverter::new(Vec::new())?,
                ranges: HashMap::default(),
                extents: vec![None; slots],
            });
        };
        let fields = spine_keys
            .iter()
            .map(|k| Ok(SortField::new(spine_column(first, k)?.data_type().clone())))
            .collect::<Result<Vec<_>>>()?;
        let converter = RowConverter::new(fields)?;
        let mut parts: HashMap<Box<[u8]>, Vec<RangeList>> = HashMap::default();
        for batch in spine {
            let keys = spine_keys
                .iter()
                .map(|k| spine_column(batch, k))
                .collect::<Result<Vec<_>>>()?;
            let times = to_micros(&spine_column(batch, time_column)?)?;
            let rows = converter.convert_columns(&keys)?;
            for (i, t) in times.iter().enumerate() {
                // A null key matches no event or tile row; a null time sees nothing.
                let Some(t) = t.filter(|_| keys.iter().all(|k| k.is_valid(i))) else {
                    continue;
                };
                let key = rows.row(i);
                let lists = match parts.get_mut(key.as_ref()) {
                    Some(lists) => lists,
                    None => parts
                        .entry(key.as_ref().into())
                        .or_insert_with(|| vec![Vec::new(); slots]),
                };
                ranges_at(t, lists);
            }
        }
        let ranges: HashMap<Box<[u8]>, Vec<TimeRanges>> = parts
            .into_iter()
            .map(|(key, lists)| {
                (
                    key,
                    lists.into_iter().map(TimeRanges::from_unsorted).collect(),
                )
            })
            .collect();
        let mut extents = vec![None; slots];
        for slots in ranges.values() {
            for (extent, ranges) in extents.iter_mut().zip(slots) {
                if let (Some(first), Some(last)) = (ranges.ranges().first(), ranges.ranges().last())
                {
                    let (start, end) = extent.get_or_insert((first.0, last.1));
                    *start = (*start).min(first.0);
                    *end = (*end).max(last.1);
                }
            }
        }
        Ok(Self {
            converter,
            ranges,
            extents,
        })
    }

    /// Whether some key's ranges in `slot` meet `ranges`.
    pub(crate) fn may_need(&self, slot: usize, ranges: &TimeRanges) -> bool {
        self.extents[slot].is_some_and(|(start, end)| !ranges.clip(start, end).is_empty())
    }

    /// Encodes key columns (of the spine's key types) as rows to look up.
    pub(crate) fn key_rows(&self, columns: &[ArrayRef]) -> Result<datafusion::arrow::row::Rows> {
        Ok(self.converter.convert_columns(columns)?)
    }

    /// The ranges of `key` in `slot`, or `None` when no spine row has that key.
    pub(crate) fn get(&self, key: Row<'_>, slot: usize) -> Option<&TimeRanges> {
        self.ranges.get(key.as_ref()).map(|slots| &slots[slot])
    }
}

fn spine_column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    match batch.column_by_name(name) {
        Some(column) => Ok(Arc::clone(column)),
        None => exec_err!("spine has no column {name} to prune by key"),
    }
}
