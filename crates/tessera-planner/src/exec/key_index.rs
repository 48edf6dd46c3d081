//! [`KeyIndex`]: for every spine key, time ranges worked out from that key's rows.
//!
//! Per-key pruning asks, for an event or a tile row, "does any spine row of
//! this key need this time?". The answer is the union, over the key's rows,
//! of ranges that depend on the row's time (the parts it reads raw, the
//! buckets it reads from tiles). The index computes those unions once, when
//! the spine has been read, in several *slots* at once (one per tile scan of a
//! stage), so one pass over the spine serves every consumer of a stage.
//!
//! It is asked once per event and per run of tile rows — tens of millions of
//! times in a large query — so its layout is built for lookups: keys map to
//! a dense number, in key order (a single integer key column of a narrow
//! range by its offset in an array, one of a wide range by hashing its
//! value, anything else by hashing its row encoding), and every key's
//! ranges lie in one shared vector, slot after slot, so a lookup touches the
//! key map and one contiguous slice.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{HashMap, Result, exec_err};
use tessera_time::union_in_place;

use super::time::to_micros;

/// Ranges gathered for one key and slot, not yet merged.
type RangeList = Vec<(i64, i64)>;

/// Per spine key, one union of time ranges per slot.
#[derive(Debug)]
pub(crate) struct KeyIndex {
    keys: KeyMap,
    /// How many keys are numbered.
    key_count: usize,
    slots: usize,
    /// Where key `k`'s ranges in slot `s` start in `ranges` (entry `k * slots + s`);
    /// the next entry is where they end.
    offsets: Vec<usize>,
    ranges: Vec<(i64, i64)>,
    /// Per slot, the earliest start and latest end over every key.
    extents: Vec<Option<(i64, i64)>>,
}

/// How key values find their number in the index.
#[derive(Debug)]
enum KeyMap {
    /// One integer key column whose spine values lie in a narrow range
    /// (dense ids, the common case), numbered in key order before any row
    /// is indexed: `numbers[value - base]`, [`ABSENT`] for a value no spine
    /// row has. A lookup is an array read, where hashing would cost a
    /// probe into a table as large.
    Dense { base: i64, numbers: Vec<u32> },
    /// One integer key column, looked up by its value as `i64`.
    Integer(HashMap<i64, usize>),
    /// Any other keys, looked up by their row encoding.
    Rows {
        converter: RowConverter,
        numbers: HashMap<Box<[u8]>, usize>,
    },
}

/// A [`KeyMap::Dense`] entry for a value no spine row has.
const ABSENT: u32 = u32::MAX;

/// How many values wide a [`KeyMap::Dense`] range may be, per spine row
/// (4 bytes each): wider ranges are hashed.
const DENSE_VALUES_PER_ROW: usize = 8;

/// Key columns of one batch, encoded for lookups in a [`KeyIndex`].
pub(crate) enum BatchKeys {
    /// The one integer key column, as `i64`.
    Integer(Int64Array),
    /// The key columns' row encoding, and which rows have a null key.
    Rows {
        rows: Rows,
        nulls: Option<NullBuffer>,
    },
}

/// The ranges of one key in one slot, ascending and disjoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyRanges<'a>(&'a [(i64, i64)]);

impl KeyRanges<'_> {
    /// Whether `t` lies in one of the ranges.
    pub(crate) fn contains(&self, t: i64) -> bool {
        let at = self.0.partition_point(|&(_, end)| end <= t);
        self.0.get(at).is_some_and(|&(start, _)| start <= t)
    }
}

impl BatchKeys {
    /// Whether rows `a` and `b` have the same key (null keys never match anything).
    pub(crate) fn same_key(&self, a: usize, b: usize) -> bool {
        match self {
            BatchKeys::Integer(values) => {
                values.is_valid(a) && values.is_valid(b) && values.value(a) == values.value(b)
            }
            BatchKeys::Rows { rows, .. } => rows.row(a) == rows.row(b),
        }
    }

    /// Whether row `row`'s key has no null.
    fn is_valid(&self, row: usize) -> bool {
        match self {
            BatchKeys::Integer(values) => values.is_valid(row),
            BatchKeys::Rows { nulls, .. } => nulls.as_ref().is_none_or(|n| n.is_valid(row)),
        }
    }
}

/// Whether keys of these types are indexed by integer value.
fn integer_keys(types: &[DataType]) -> bool {
    matches!(
        types,
        [DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32]
    )
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
        let types = match spine.first() {
            Some(first) => spine_keys
                .iter()
                .map(|k| Ok(spine_column(first, k)?.data_type().clone()))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        // Each batch's key columns, encoded, and times.
        let encoder = KeyMap::encoder(types)?;
        let batches = spine
            .iter()
            .map(|batch| {
                let columns = spine_keys
                    .iter()
                    .map(|k| spine_column(batch, k))
                    .collect::<Result<Vec<_>>>()?;
                let times = to_micros(&spine_column(batch, time_column)?)?;
                Ok((encoder.encode(&columns)?, times))
            })
            .collect::<Result<Vec<_>>>()?;
        // A null key matches no event or tile row; a null time sees nothing.
        let indexed =
            |keys: &BatchKeys, times: &Int64Array, i: usize| times.is_valid(i) && keys.is_valid(i);
        let mut keys = encoder.dense(&batches, indexed).unwrap_or(encoder);
        // Every row's ranges, tagged with their key's number and slot.
        let mut tagged: Vec<(usize, (i64, i64))> = Vec::new();
        let mut row_ranges: Vec<RangeList> = vec![Vec::new(); slots];
        let mut key_count = keys.preassigned();
        for (batch_keys, times) in &batches {
            for (i, &t) in times.values().iter().enumerate() {
                if !indexed(batch_keys, times, i) {
                    continue;
                }
                let number = keys.number_or_insert(batch_keys, i, key_count);
                key_count = key_count.max(number + 1);
                ranges_at(t, &mut row_ranges);
                for (slot, list) in row_ranges.iter_mut().enumerate() {
                    tagged.extend(list.drain(..).map(|range| (number * slots + slot, range)));
                }
            }
        }
        // Numbered in key order, a key-sorted run of rows (a tile file's)
        // numbers ascending: a lookup lays such rows out in sequence.
        if let Some(renumbered) = keys.renumber_in_key_order(key_count) {
            for (entry, _) in &mut tagged {
                *entry = renumbered[*entry / slots] * slots + *entry % slots;
            }
        }
        Ok(Self::from_tagged(keys, slots, key_count, tagged))
    }

    /// Lays the ranges of every key and slot (entry `key * slots + slot`)
    /// out one entry after another, each merged into its union: a counting
    /// sort by entry, then each entry's few ranges sorted and merged in place.
    fn from_tagged(
        keys: KeyMap,
        slots: usize,
        key_count: usize,
        tagged: Vec<(usize, (i64, i64))>,
    ) -> Self {
        let entries = key_count * slots;
        let mut starts = vec![0usize; entries + 1];
        for &(entry, _) in &tagged {
            starts[entry + 1] += 1;
        }
        for entry in 0..entries {
            starts[entry + 1] += starts[entry];
        }
        let mut ranges = vec![(0, 0); tagged.len()];
        let mut next = starts.clone();
        for (entry, range) in tagged {
            ranges[next[entry]] = range;
            next[entry] += 1;
        }
        let mut offsets = Vec::with_capacity(entries + 1);
        let mut extents: Vec<Option<(i64, i64)>> = vec![None; slots];
        let mut kept = 0;
        for entry in 0..entries {
            let merged = union_in_place(&mut ranges[starts[entry]..starts[entry + 1]]);
            ranges.copy_within(starts[entry]..starts[entry] + merged, kept);
            offsets.push(kept);
            if merged > 0 {
                let (first, last) = (ranges[kept].0, ranges[kept + merged - 1].1);
                let (start, end) = extents[entry % slots].get_or_insert((first, last));
                *start = (*start).min(first);
                *end = (*end).max(last);
            }
            kept += merged;
        }
        offsets.push(kept);
        ranges.truncate(kept);
        Self {
            keys,
            key_count,
            slots,
            offsets,
            ranges,
            extents,
        }
    }

    /// The earliest start and latest end of any key's ranges in `slot`;
    /// `None` when no key has any.
    pub(crate) fn extent(&self, slot: usize) -> Option<(i64, i64)> {
        self.extents.get(slot).copied().flatten()
    }

    /// Encodes key columns (of the spine's key types) for [`Self::get`].
    pub(crate) fn batch_keys(&self, columns: &[ArrayRef]) -> Result<BatchKeys> {
        self.keys.encode(columns)
    }

    /// How many keys the index numbers (`0..key_count()`).
    pub(crate) fn key_count(&self) -> usize {
        self.key_count
    }

    /// The number of the key of row `row` of `keys`, or `None` when no
    /// spine row (with a time) has that key.
    pub(crate) fn number(&self, keys: &BatchKeys, row: usize) -> Option<usize> {
        self.keys.number(keys, row)
    }

    /// The ranges in `slot` of the key of row `row` of `keys`, or `None` when
    /// no spine row has that key.
    pub(crate) fn get(&self, keys: &BatchKeys, row: usize, slot: usize) -> Option<KeyRanges<'_>> {
        let number = self.keys.number(keys, row)?;
        let at = number * self.slots + slot;
        Some(KeyRanges(
            &self.ranges[self.offsets[at]..self.offsets[at + 1]],
        ))
    }
}

impl KeyMap {
    /// An empty map for keys of `types`, to encode batches with.
    fn encoder(types: Vec<DataType>) -> Result<Self> {
        Ok(match integer_keys(&types) {
            true => KeyMap::Integer(HashMap::default()),
            false => KeyMap::Rows {
                converter: RowConverter::new(types.into_iter().map(SortField::new).collect())?,
                numbers: HashMap::default(),
            },
        })
    }

    /// A [`KeyMap::Dense`] numbering, in key order, the integer keys of the
    /// rows of `batches` that `indexed` accepts, when their range is narrow
    /// enough; `None` otherwise.
    fn dense(
        &self,
        batches: &[(BatchKeys, Int64Array)],
        indexed: impl Fn(&BatchKeys, &Int64Array, usize) -> bool,
    ) -> Option<Self> {
        let KeyMap::Integer(_) = self else {
            return None;
        };
        let rows: usize = batches.iter().map(|(_, times)| times.len()).sum();
        let integers = batches
            .iter()
            .map(|(keys, _)| match keys {
                BatchKeys::Integer(values) => Some(values),
                BatchKeys::Rows { .. } => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let base = integers.iter().filter_map(|values| min(*values)).min()?;
        let top = integers.iter().filter_map(|values| max(*values)).max()?;
        let width = usize::try_from(top.checked_sub(base)?)
            .ok()?
            .checked_add(1)?;
        if width > rows.max(512) * DENSE_VALUES_PER_ROW {
            return None;
        }
        let mut numbers = vec![ABSENT; width];
        for ((keys, times), values) in batches.iter().zip(integers) {
            for (i, &value) in values.values().iter().enumerate() {
                if indexed(keys, times, i) {
                    numbers[(value - base) as usize] = 0;
                }
            }
        }
        for (next, number) in numbers.iter_mut().filter(|n| **n != ABSENT).enumerate() {
            *number = next as u32;
        }
        Some(KeyMap::Dense { base, numbers })
    }

    /// How many keys are numbered before any row is indexed.
    fn preassigned(&self) -> usize {
        match self {
            KeyMap::Dense { numbers, .. } => numbers.iter().filter(|n| **n != ABSENT).count(),
            KeyMap::Integer(_) | KeyMap::Rows { .. } => 0,
        }
    }

    fn encode(&self, columns: &[ArrayRef]) -> Result<BatchKeys> {
        match self {
            KeyMap::Dense { .. } | KeyMap::Integer(_) => match columns {
                [column] => Ok(BatchKeys::Integer(
                    cast(column, &DataType::Int64)?
                        .as_primitive::<Int64Type>()
                        .clone(),
                )),
                _ => exec_err!(
                    "an integer key index takes one key column, got {}",
                    columns.len()
                ),
            },
            KeyMap::Rows { converter, .. } => Ok(BatchKeys::Rows {
                rows: converter.convert_columns(columns)?,
                nulls: columns.iter().fold(None, |nulls, c| {
                    NullBuffer::union(nulls.as_ref(), c.nulls())
                }),
            }),
        }
    }

    fn number(&self, keys: &BatchKeys, row: usize) -> Option<usize> {
        match (self, keys) {
            (KeyMap::Dense { base, numbers }, BatchKeys::Integer(values)) => {
                let offset = values.value(row).wrapping_sub(*base) as u64;
                let number = *numbers.get(usize::try_from(offset).ok()?)?;
                (number != ABSENT && values.is_valid(row)).then_some(number as usize)
            }
            (KeyMap::Integer(numbers), BatchKeys::Integer(values)) => values
                .is_valid(row)
                .then(|| numbers.get(&values.value(row)).copied())
                .flatten(),
            (KeyMap::Rows { numbers, .. }, BatchKeys::Rows { rows, .. }) => {
                numbers.get(rows.row(row).as_ref()).copied()
            }
            _ => None,
        }
    }

    /// Renumbers the keys (numbered `0..key_count`) in ascending order of
    /// their values (of their row encoding, which sorts as the values do);
    /// returns each old number's new one, or `None` when they were numbered
    /// in key order already.
    fn renumber_in_key_order(&mut self, key_count: usize) -> Option<Vec<usize>> {
        let in_key_order: Vec<usize> = match self {
            KeyMap::Dense { .. } => return None,
            KeyMap::Integer(numbers) => {
                let mut keys: Vec<(i64, usize)> = numbers.iter().map(|(&k, &n)| (k, n)).collect();
                keys.sort_unstable();
                keys.into_iter().map(|(_, number)| number).collect()
            }
            KeyMap::Rows { numbers, .. } => {
                let mut keys: Vec<(&[u8], usize)> =
                    numbers.iter().map(|(k, &n)| (k.as_ref(), n)).collect();
                keys.sort_unstable();
                keys.into_iter().map(|(_, number)| number).collect()
            }
        };
        let mut renumbered = vec![0; key_count];
        for (new, old) in in_key_order.into_iter().enumerate() {
            renumbered[old] = new;
        }
        let numbers: Box<dyn Iterator<Item = &mut usize>> = match self {
            KeyMap::Dense { .. } => Box::new(std::iter::empty()),
            KeyMap::Integer(numbers) => Box::new(numbers.values_mut()),
            KeyMap::Rows { numbers, .. } => Box::new(numbers.values_mut()),
        };
        for number in numbers {
            *number = renumbered[*number];
        }
        Some(renumbered)
    }

    /// The number of row `row`'s (non-null) key, given `next` when it is new.
    fn number_or_insert(&mut self, keys: &BatchKeys, row: usize, next: usize) -> usize {
        if let KeyMap::Dense { .. } = self {
            return self.number(keys, row).unwrap_or(next);
        }
        match (self, keys) {
            (KeyMap::Integer(numbers), BatchKeys::Integer(values)) => {
                *numbers.entry(values.value(row)).or_insert(next)
            }
            (KeyMap::Rows { numbers, .. }, BatchKeys::Rows { rows, .. }) => {
                let key = rows.row(row);
                match numbers.get(key.as_ref()) {
                    Some(&number) => number,
                    None => *numbers.entry(key.as_ref().into()).or_insert(next),
                }
            }
            _ => next,
        }
    }
}

fn spine_column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    match batch.column_by_name(name) {
        Some(column) => Ok(Arc::clone(column)),
        None => exec_err!("spine has no column {name} to prune by key"),
    }
}
