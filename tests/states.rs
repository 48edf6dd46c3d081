//! Property tests of every function's partial state, through DataFusion's
//! `Accumulator` interface (the partial → final flow tiles use):
//!
//! * splitting the input into any number of parts, aggregating each and
//!   merging the states equals aggregating everything;
//! * merging is commutative and associative;
//! * states survive Arrow → Parquet → Arrow unchanged, and merge the same after.
//!
//! Exact functions must agree exactly (floats to 1e-9 relative); sketches
//! within their documented bounds of the exact statistic.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, FixedSizeListArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{Field, Float64Type, Schema};
use datafusion::common::{Result, ScalarValue};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use proptest::prelude::*;
use tessera::aggregates::{AggregateImplementation, Argument, BoundAggregate, Input, Output};

/// One input row: an integer, a float, a string and a 3-vector, each nullable.
type Row = (Option<i64>, Option<f64>, Option<String>, Option<[f64; 3]>);

fn row() -> impl Strategy<Value = Row> {
    (
        proptest::option::weighted(0.85, -50i64..50),
        proptest::option::weighted(0.85, (-10_000i64..10_000).prop_map(|v| v as f64 / 8.0)),
        proptest::option::weighted(0.85, "[a-f]{1,2}"),
        proptest::option::weighted(
            0.85,
            proptest::array::uniform3((-64i64..64).prop_map(|v| v as f64 / 4.0)),
        ),
    )
}

/// One argument of a call under test: a generated column, or a constant.
#[derive(Clone)]
enum Arg {
    /// `i` integers, `w` non-negative integer weights, `f` floats, `s` strings, `v` 3-vectors.
    Column(&'static str),
    Constant(ScalarValue),
}

/// The column of generated data named `name`.
fn column(rows: &[Row], name: &str) -> ArrayRef {
    match name {
        "i" => Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
        "w" => Arc::new(
            rows.iter()
                .map(|r| r.0.map(i64::abs))
                .collect::<Int64Array>(),
        ),
        "f" => Arc::new(rows.iter().map(|r| r.1).collect::<Float64Array>()),
        "s" => Arc::new(rows.iter().map(|r| r.2.clone()).collect::<StringArray>()),
        "v" => Arc::new(
            FixedSizeListArray::from_iter_primitive::<Float64Type, _, _>(
                rows.iter().map(|r| r.3.map(|v| v.map(Some).to_vec())),
                3,
            ),
        ),
        other => panic!("no column {other}"),
    }
}

/// A function call under test.
struct Spec {
    function: &'static str,
    args: Vec<Arg>,
    check: Check,
}

impl Spec {
    fn new(function: &'static str, args: Vec<Arg>, check: Check) -> Self {
        Self {
            function,
            args,
            check,
        }
    }

    /// The generated argument columns for `rows`, in call order.
    fn raw_columns(&self, rows: &[Row]) -> Vec<ArrayRef> {
        self.args
            .iter()
            .filter_map(|a| match a {
                Arg::Column(name) => Some(column(rows, name)),
                Arg::Constant(_) => None,
            })
            .collect()
    }

    /// The argument columns cast to the types the bound state reads, as the planner casts them.
    fn columns(&self, rows: &[Row]) -> Vec<ArrayRef> {
        let bound = self.bound();
        self.raw_columns(rows)
            .iter()
            .zip(&bound.columns)
            .map(|(column, (_, data_type))| {
                datafusion::arrow::compute::cast(column, data_type).unwrap()
            })
            .collect()
    }

    /// The bound function.
    fn implementation(&self) -> Arc<dyn AggregateImplementation> {
        self.bound().implementation().unwrap()
    }

    fn bound(&self) -> BoundAggregate {
        let sample = self.raw_columns(&[]);
        let mut columns = sample.iter();
        let arguments: Vec<Argument> = self
            .args
            .iter()
            .map(|a| match a {
                Arg::Column(_) => Argument {
                    data_type: columns.next().unwrap().data_type().clone(),
                    constant: None,
                },
                Arg::Constant(value) => Argument {
                    data_type: value.data_type(),
                    constant: Some(value.clone()),
                },
            })
            .collect();
        BoundAggregate::bind("property", self.function, &arguments).unwrap()
    }
}

#[derive(Clone, Copy)]
enum Check {
    Exact,
    /// CPC: merged and whole sketches hold the same coupons, so their
    /// estimates (HIP or ICON) agree within 3 standard errors, or 1. Accuracy
    /// against the exact count is statistical and checked over thousands of
    /// cells by the differential test — an adversarial search like proptest's
    /// can always find a rare hash collision.
    Distinct,
}

fn specs() -> Vec<Spec> {
    use Arg::{Column as C, Constant as K};
    use ScalarValue::{Boolean, Float64, Int64};
    vec![
        Spec::new("count", vec![C("s")], Check::Exact),
        Spec::new("sum", vec![C("i")], Check::Exact),
        Spec::new("sum", vec![C("f")], Check::Exact),
        Spec::new("sum", vec![C("v")], Check::Exact),
        Spec::new("mean", vec![C("f")], Check::Exact),
        Spec::new("mean", vec![C("v")], Check::Exact),
        Spec::new("min", vec![C("s")], Check::Exact),
        Spec::new("max", vec![C("f")], Check::Exact),
        Spec::new("var", vec![C("f")], Check::Exact),
        Spec::new("std", vec![C("i")], Check::Exact),
        Spec::new(
            "min_by_n",
            vec![C("s"), C("f"), K(Int64(Some(3)))],
            Check::Exact,
        ),
        Spec::new(
            "max_by_n",
            vec![C("i"), C("s"), K(Int64(Some(2)))],
            Check::Exact,
        ),
        Spec::new("approx_count_distinct", vec![C("i")], Check::Distinct),
        Spec::new("approx_count_distinct", vec![C("s")], Check::Distinct),
        // Below the sketch's map capacity, frequent items are counted exactly.
        Spec::new(
            "approx_top_k",
            vec![C("i"), K(Int64(Some(3)))],
            Check::Exact,
        ),
        Spec::new(
            "approx_top_k",
            vec![C("s"), K(Int64(Some(2))), C("w"), K(Boolean(Some(true)))],
            Check::Exact,
        ),
        // A t-digest of fewer values than its compression keeps every value.
        Spec::new(
            "approx_percentile",
            vec![C("f"), K(Float64(Some(0.5)))],
            Check::Exact,
        ),
    ]
}

fn state_of(
    implementation: &Arc<dyn AggregateImplementation>,
    part: &[ArrayRef],
) -> Result<Vec<ScalarValue>> {
    let mut accumulator = implementation.accumulator("p", Input::Arguments, Output::Result);
    accumulator.update_batch(part)?;
    accumulator.state()
}

fn state_arrays(state: &[ScalarValue]) -> Result<Vec<ArrayRef>> {
    state.iter().map(|v| v.to_array()).collect()
}

/// Merges states (each a row of state columns) and returns the merged state and result.
fn merge(
    implementation: &Arc<dyn AggregateImplementation>,
    states: &[Vec<ScalarValue>],
) -> Result<(Vec<ScalarValue>, ScalarValue)> {
    let mut accumulator = implementation.accumulator("p", Input::Arguments, Output::Result);
    for state in states {
        accumulator.merge_batch(&state_arrays(state)?)?;
    }
    Ok((accumulator.state()?, accumulator.evaluate()?))
}

fn result_of(
    implementation: &Arc<dyn AggregateImplementation>,
    all: &[ArrayRef],
) -> Result<ScalarValue> {
    let mut accumulator = implementation.accumulator("p", Input::Arguments, Output::Result);
    accumulator.update_batch(all)?;
    accumulator.evaluate()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-9
}

fn agree(check: Check, expected: &ScalarValue, actual: &ScalarValue) -> bool {
    if expected.is_null() || actual.is_null() {
        return expected.is_null() == actual.is_null();
    }
    match (check, expected, actual) {
        (Check::Distinct, ScalarValue::Int64(Some(a)), ScalarValue::Int64(Some(b))) => {
            (a - b).abs() as f64 <= (3.0 * 0.0153 * (*a.max(b)) as f64).max(1.0)
        }
        (_, ScalarValue::Float64(Some(a)), ScalarValue::Float64(Some(b))) => close(*a, *b),
        (_, ScalarValue::FixedSizeList(a), ScalarValue::FixedSizeList(b)) => {
            let (a, b) = (a.values(), b.values());
            let (a, b) = (
                a.as_any().downcast_ref::<Float64Array>().unwrap(),
                b.as_any().downcast_ref::<Float64Array>().unwrap(),
            );
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| match (x, y) {
                    (Some(x), Some(y)) => close(x, y),
                    (x, y) => x == y,
                })
        }
        _ => expected == actual,
    }
}

/// Writes state columns to Parquet in memory and reads them back.
fn parquet_round_trip(
    implementation: &Arc<dyn AggregateImplementation>,
    states: &[Vec<ScalarValue>],
) -> Vec<ArrayRef> {
    let fields = implementation.state_fields("p");
    let columns: Vec<ArrayRef> = (0..fields.len())
        .map(|f| ScalarValue::iter_to_array(states.iter().map(|s| s[f].clone())).unwrap())
        .collect();
    let schema = Arc::new(Schema::new(
        fields
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns.clone()).unwrap();
    let mut file = tempfile::tempfile().unwrap();
    let mut writer = ArrowWriter::try_new(file.try_clone().unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    std::io::Seek::rewind(&mut file).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let read: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(
        read[0].columns(),
        columns.as_slice(),
        "state columns change through Parquet"
    );
    read[0].columns().to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn states_split_merge_commute_associate_and_survive_parquet(
        rows in proptest::collection::vec(row(), 0..60),
        cuts in proptest::collection::vec(0usize..60, 0..5),
    ) {
        for spec in specs() {
            let all = spec.columns(&rows);
            let implementation = spec.implementation();
            let whole = result_of(&implementation, &all).unwrap();

            // Any split: aggregate the parts, merge, compare with the whole.
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (rows.len() + 1)).collect();
            bounds.extend([0, rows.len()]);
            bounds.sort_unstable();
            let states: Vec<Vec<ScalarValue>> = bounds
                .windows(2)
                .map(|w| state_of(&implementation, &spec.columns(&rows[w[0]..w[1]])).unwrap())
                .collect();
            let (_, merged) = merge(&implementation, &states).unwrap();
            prop_assert!(agree(spec.check, &whole, &merged), "{}: whole {whole:?} vs merged {merged:?}", spec.function);

            // Commutative: merging in reverse order gives the same.
            let reversed: Vec<Vec<ScalarValue>> = states.iter().rev().cloned().collect();
            let (_, backwards) = merge(&implementation, &reversed).unwrap();
            prop_assert!(agree(spec.check, &merged, &backwards), "{}: {merged:?} vs reversed {backwards:?}", spec.function);

            // Associative: (a ⊕ b) ⊕ rest equals a ⊕ (b ⊕ rest).
            if states.len() >= 3 {
                let (left, _) = merge(&implementation, &states[..2]).unwrap();
                let (_, left_first) = merge(&implementation, &[vec![left], states[2..].to_vec()].concat()).unwrap();
                let (right, _) = merge(&implementation, &states[1..]).unwrap();
                let (_, right_first) = merge(&implementation, &[states[0].clone(), right]).unwrap();
                prop_assert!(agree(spec.check, &left_first, &right_first), "{}: {left_first:?} vs {right_first:?}", spec.function);
            }

            // Parquet: the same columns come back, and merge to the same result.
            let read = parquet_round_trip(&implementation, &states);
            let mut accumulator = implementation.accumulator("p", Input::Arguments, Output::Result);
            accumulator.merge_batch(&read).unwrap();
            prop_assert_eq!(accumulator.evaluate().unwrap(), merged.clone(), "{} after Parquet", spec.function);
        }
    }
}

#[test]
fn sketch_results_are_values_not_nulls() {
    // Guards the properties above against comparing nulls with nulls.
    let rows: Vec<Row> = (0..9)
        .map(|i| {
            (
                Some(i % 4),
                Some(f64::from(i as i32)),
                Some(format!("{}", i % 3)),
                None,
            )
        })
        .collect();
    let expected = [
        ("approx_percentile", ScalarValue::Float64(Some(4.0))),
        ("approx_count_distinct", ScalarValue::Int64(Some(4))),
    ];
    for (function, value) in expected {
        let spec = specs()
            .into_iter()
            .find(|s| s.function == function)
            .unwrap();
        assert_eq!(
            result_of(&spec.implementation(), &spec.columns(&rows)).unwrap(),
            value,
            "{function}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The groups accumulator (one state vector for all groups) gives every
    /// group what a separate accumulator per group gives, and its `state` and
    /// `convert_to_state` outputs merge back to the same results.
    #[test]
    fn groups_accumulator_matches_one_accumulator_per_group(
        rows in proptest::collection::vec((row(), 0usize..4), 0..50),
    ) {
        use datafusion::logical_expr::EmitTo;
        let groups: Vec<usize> = rows.iter().map(|(_, g)| *g).collect();
        let data: Vec<Row> = rows.into_iter().map(|(r, _)| r).collect();
        for spec in specs() {
            let implementation = spec.implementation();
            let all = spec.columns(&data);
            let mut grouped = implementation.groups_accumulator("p", Input::Arguments, Output::Result);
            grouped.update_batch(&all, &groups, None, 4).unwrap();
            let states = grouped.state(EmitTo::All).unwrap();
            let mut remerged = implementation.groups_accumulator("p", Input::Arguments, Output::Result);
            remerged.merge_batch(&states, &[0, 1, 2, 3], 4).unwrap();
            let from_states = remerged.evaluate(EmitTo::All).unwrap();
            let mut converted = implementation.groups_accumulator("p", Input::Arguments, Output::Result);
            let per_row = converted.convert_to_state(&all, None).unwrap();
            converted.merge_batch(&per_row, &groups, 4).unwrap();
            let from_rows = converted.evaluate(EmitTo::All).unwrap();
            for group in 0..4 {
                let members: Vec<Row> = data.iter().zip(&groups).filter(|(_, g)| **g == group).map(|(r, _)| r.clone()).collect();
                let expected = result_of(&implementation, &spec.columns(&members)).unwrap();
                for (label, results) in [("state", &from_states), ("convert_to_state", &from_rows)] {
                    let actual = ScalarValue::try_from_array(results, group).unwrap();
                    prop_assert!(agree(spec.check, &expected, &actual), "{} via {label}, group {group}: {expected:?} vs {actual:?}", spec.function);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// What a backfill writes for consecutive runs of rows (`run_states`,
    /// each function's typed `append_state`) is, run by run, the state an
    /// accumulator of that run's rows gives (`to_state`).
    #[test]
    fn run_states_are_the_states_of_each_run(
        rows in proptest::collection::vec(row(), 1..50),
        cuts in proptest::collection::vec(0usize..50, 0..6),
    ) {
        let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c > 0 && c < rows.len()).collect();
        bounds.extend([0, rows.len()]);
        bounds.sort_unstable();
        bounds.dedup();
        for spec in specs() {
            let implementation = spec.implementation();
            let columns = implementation.run_states(&spec.columns(&rows), &bounds).unwrap();
            for (run, range) in bounds.windows(2).enumerate() {
                let expected = state_of(&implementation, &spec.columns(&rows[range[0]..range[1]])).unwrap();
                prop_assert_eq!(expected.len(), columns.len());
                for (field, (column, expected)) in columns.iter().zip(&expected).enumerate() {
                    let actual = ScalarValue::try_from_array(column, run).unwrap();
                    let same = actual == *expected || (actual.is_null() && expected.is_null());
                    prop_assert!(same, "{} run {run} field {field}: {expected:?} vs {actual:?}", spec.function);
                }
            }
        }
    }
}

/// Moves a window part's items: its end forward by `by` (`grow`), else its
/// start (past the end: a jump), within `limit` items.
fn move_part(items: &mut std::ops::Range<usize>, grow: bool, by: usize, limit: usize) {
    if grow {
        items.end = (items.end + by).min(limit);
    } else {
        items.start = (items.start + by).min(limit);
        items.end = items.end.max(items.start);
    }
}

/// The rows a window's parts hold: each item of the tail and head parts is a
/// row, each item of the bucket part (index 1) the rows of its bucket.
fn held_rows<T: Clone>(
    held: &[std::ops::Range<usize>; 3],
    buckets: &[tessera::aggregates::BucketSource],
    rows: &[T],
) -> Vec<T> {
    use tessera::aggregates::BucketSource;
    let mut members = Vec::new();
    for (part, items) in held.iter().enumerate() {
        for item in items.clone() {
            let events = match (part, buckets.get(item)) {
                (1, Some(&BucketSource::Events(start, end))) => start..end,
                _ => item..item + 1,
            };
            members.extend_from_slice(&rows[events]);
        }
    }
    members
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A sliding window's every read equals the result of the items its parts
    /// hold, whether a part is read afresh or through its two stacks: long
    /// runs of reads of unchanged parts make them build their stacks, moving
    /// starts invalidate them.
    #[test]
    fn sliding_windows_give_the_result_of_their_items(
        rows in proptest::collection::vec(row(), 1..40),
        cuts in proptest::collection::vec(0usize..40, 0..8),
        // Steps `(part, action, by)`: action 0 moves the part's end forward by
        // `by`, 1 its start (past the end: a jump), anything else reads.
        steps in proptest::collection::vec((0usize..3, 0u8..5, 1usize..4), 0..160),
    ) {
        use tessera::aggregates::{BucketSource, Part};
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (rows.len() + 1)).collect();
        bounds.extend([0, rows.len()]);
        bounds.sort_unstable();
        let buckets: Vec<BucketSource> =
            bounds.windows(2).map(|w| BucketSource::Events(w[0], w[1])).collect();
        let parts = [Part::Tail, Part::Buckets, Part::Head];
        for spec in specs() {
            let implementation = spec.implementation();
            let mut window = implementation.sliding();
            window.load(&spec.columns(&rows), &buckets, &[]).unwrap();
            // The model: the items each part holds.
            let mut held = [0..0, 0..0, 0..0];
            let mut expected = Vec::new();
            for &(part, action, by) in &steps {
                let limit = if part == 1 { buckets.len() } else { rows.len() };
                match action {
                    0 | 1 => {
                        move_part(&mut held[part], action == 0, by, limit);
                        window.slide(parts[part], held[part].clone());
                    }
                    _ => {
                        window.emit();
                        let members = held_rows(&held, &buckets, &rows);
                        expected.push(result_of(&implementation, &spec.columns(&members)).unwrap());
                    }
                }
            }
            let (values, _) = window.finish().unwrap();
            prop_assert_eq!(values.len(), expected.len());
            for (read, expected) in expected.iter().enumerate() {
                let actual = ScalarValue::try_from_array(&values, read).unwrap();
                prop_assert!(agree(spec.check, expected, &actual), "{}, read {read}: {expected:?} vs {actual:?}", spec.function);
            }
        }
    }
}

/// Floats with many ties, and now and then a value the t-digest ignores.
fn percentile_input() -> impl Strategy<Value = Option<f64>> {
    proptest::option::weighted(
        0.9,
        prop_oneof![
            12 => (-40i64..40).prop_map(|v| v as f64 / 4.0),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NAN),
        ],
    )
}

/// `approx_percentile(f, quantile)` over a Float64 column.
fn percentile(quantile: f64) -> Arc<dyn AggregateImplementation> {
    use datafusion::arrow::datatypes::DataType::Float64;
    let arguments = [
        Argument {
            data_type: Float64,
            constant: None,
        },
        Argument {
            data_type: Float64,
            constant: Some(ScalarValue::Float64(Some(quantile))),
        },
    ];
    let bound = BoundAggregate::bind("property", "approx_percentile", &arguments).unwrap();
    bound.implementation().unwrap()
}

/// The crate's t-digest of compression 100 over `values`, updated in order.
fn crate_digest(values: &[Option<f64>]) -> datasketches::tdigest::TDigestMut {
    let mut digest = datasketches::tdigest::TDigestMut::new(100).unwrap();
    values.iter().flatten().for_each(|&v| digest.update(v));
    digest
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// `approx_percentile` gives the crate's t-digest answer and writes the
    /// crate's image, whether its state holds the values themselves (up to 50)
    /// or a digest; states of at most 50 values in all merge (from their
    /// images) to exactly the crate's answer over all values.
    #[test]
    fn percentile_states_answer_as_the_crate_digest_does(
        values in proptest::collection::vec(percentile_input(), 0..90),
        quantile in prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0],
        cuts in proptest::collection::vec(0usize..90, 0..6),
    ) {
        let implementation = percentile(quantile);
        let columns = |values: &[Option<f64>]| -> Vec<ArrayRef> {
            vec![Arc::new(values.iter().copied().collect::<Float64Array>())]
        };
        let mut digest = crate_digest(&values);
        let expected = ScalarValue::Float64(digest.quantile(quantile).unwrap());
        prop_assert_eq!(result_of(&implementation, &columns(&values)).unwrap(), expected.clone());
        let state = state_of(&implementation, &columns(&values)).unwrap();
        prop_assert_eq!(&state, &vec![ScalarValue::Binary(Some(digest.serialize()))]);

        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (values.len() + 1)).collect();
        bounds.extend([0, values.len()]);
        bounds.sort_unstable();
        let states: Vec<Vec<ScalarValue>> = bounds
            .windows(2)
            .map(|w| state_of(&implementation, &columns(&values[w[0]..w[1]])).unwrap())
            .collect();
        let (_, merged) = merge(&implementation, &states).unwrap();
        if values.iter().flatten().filter(|v| v.is_finite()).count() <= 50 {
            prop_assert_eq!(merged, expected);
        } else {
            let (min, max) = (digest.min_value().unwrap(), digest.max_value().unwrap());
            let ScalarValue::Float64(Some(merged)) = merged else { panic!("{merged:?}") };
            prop_assert!((min..=max).contains(&merged), "{merged} outside [{min}, {max}]");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Windows of hundreds of values hold digests, which their stacks and
    /// bucket states compress before repeated reads: every read of a sliding
    /// median still ranks within the t-digest's error of the window's values.
    #[test]
    fn long_sliding_medians_stay_within_the_digest_bound(
        values in proptest::collection::vec((-1000i64..1000).prop_map(|v| v as f64), 60..400),
        bucket_size in 1usize..80,
        // Steps `(part, grow, by)`: a part's end moves forward by `by`, or its start.
        steps in proptest::collection::vec((0usize..3, any::<bool>(), 1usize..40), 1..60),
    ) {
        use tessera::aggregates::{BucketSource, Part};
        let column: ArrayRef = Arc::new(values.iter().copied().collect::<Float64Array>());
        let buckets: Vec<BucketSource> = (0..values.len())
            .step_by(bucket_size)
            .map(|start| BucketSource::Events(start, (start + bucket_size).min(values.len())))
            .collect();
        let mut window = percentile(0.5).sliding();
        window.load(&[column], &buckets, &[]).unwrap();
        let parts = [Part::Tail, Part::Buckets, Part::Head];
        let mut held = [0..0, 0..0, 0..0];
        let mut members_of_reads = Vec::new();
        for &(part, grow, by) in &steps {
            let limit = if part == 1 { buckets.len() } else { values.len() };
            move_part(&mut held[part], grow, by, limit);
            window.slide(parts[part], held[part].clone());
            window.emit();
            members_of_reads.push(held_rows(&held, &buckets, &values));
        }
        let (results, _) = window.finish().unwrap();
        for (read, mut members) in members_of_reads.into_iter().enumerate() {
            let actual = ScalarValue::try_from_array(&results, read).unwrap();
            if members.is_empty() {
                prop_assert!(actual.is_null(), "read {read}: {actual:?} of no values");
                continue;
            }
            let ScalarValue::Float64(Some(median)) = actual else { panic!("read {read}: {actual:?}") };
            members.sort_by(f64::total_cmp);
            let n = members.len() as f64;
            let below = members.iter().filter(|&&v| v < median).count() as f64;
            let at_most = members.iter().filter(|&&v| v <= median).count() as f64;
            // Rank error of a t-digest of compression 100 near the median: well under 5%.
            let slack = 0.05 * n + 1.0;
            prop_assert!(below <= 0.5 * n + slack && at_most >= 0.5 * n - slack,
                "read {read} of {n} values: median {median} has {below} values below, {at_most} at most");
        }
    }
}

/// The parts a training-set window splits the events `run` into, over
/// buckets of `bucket_size` events: raw events up to the first bucket
/// boundary, the whole buckets, raw events after the last.
fn adjacent_parts(run: std::ops::Range<usize>, bucket_size: usize) -> [std::ops::Range<usize>; 3] {
    let first = run.start.div_ceil(bucket_size);
    let last = (run.end / bucket_size).max(first);
    let (body_start, body_end) = (first * bucket_size, last * bucket_size);
    if body_start >= run.end {
        return [run.clone(), 0..0, run.end..run.end];
    }
    [run.start..body_start, first..last, body_end..run.end]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Over raw events, a sliding `approx_percentile` is the order statistic
    /// a digest of unit centroids gives — rank `floor(q · n)` of the finite
    /// values — at every read, for windows of any size, across keys.
    #[test]
    fn raw_sliding_percentiles_are_exact_order_statistics(
        keys in proptest::collection::vec(
            proptest::collection::vec(
                prop_oneof![
                    4 => (-50i64..50).prop_map(|v| Some(v as f64)),
                    1 => Just(None),
                    1 => Just(Some(f64::NAN)),
                ],
                0..300,
            ),
            1..3,
        ),
        quantile in prop_oneof![Just(0.0), Just(1.0), 0.0f64..=1.0],
        bucket_size in 1usize..40,
        steps in proptest::collection::vec((any::<bool>(), 0usize..60), 1..40),
    ) {
        use tessera::aggregates::{BucketSource, Part};
        let mut window = percentile(quantile).sliding();
        let mut expected = Vec::new();
        for values in &keys {
            let column: ArrayRef = Arc::new(values.iter().copied().collect::<Float64Array>());
            let buckets: Vec<BucketSource> = (0..values.len())
                .step_by(bucket_size)
                .map(|start| BucketSource::Events(start, (start + bucket_size).min(values.len())))
                .collect();
            window.load(&[column], &buckets, &[]).unwrap();
            let mut run = 0..0;
            for &(start_moves, by) in &steps {
                move_part(&mut run, !start_moves, by, values.len());
                let parts = adjacent_parts(run.clone(), bucket_size);
                for (part, items) in [Part::Tail, Part::Buckets, Part::Head].into_iter().zip(parts) {
                    window.slide(part, items);
                }
                window.emit();
                let mut finite: Vec<f64> =
                    values[run.clone()].iter().flatten().copied().filter(|v| v.is_finite()).collect();
                finite.sort_by(f64::total_cmp);
                let index = ((quantile * finite.len() as f64) as usize).min(finite.len().saturating_sub(1));
                expected.push(finite.get(index).copied());
            }
        }
        let (results, empty) = window.finish().unwrap();
        for (read, want) in expected.into_iter().enumerate() {
            let actual = ScalarValue::try_from_array(&results, read).unwrap();
            prop_assert_eq!(&actual, &ScalarValue::Float64(want), "read {}", read);
            prop_assert_eq!(empty.value(read), want.is_none(), "read {}", read);
        }
    }
}
