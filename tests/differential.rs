//! Randomized differential test: every output cell equals a brute-force
//! evaluation of SEMANTICS.md §3 and §5 on the same random events and spine.
//!
//! Cases draw random grids (bucket sizes that do and do not divide the
//! windows, non-epoch origins), events and spine times placed exactly on and
//! next to bucket and window boundaries, tied timestamps, null values, null
//! keys and times, keys without events, composite keys, event keys of a
//! narrower type than the spine's, and every function of the table. The
//! brute force below reads the spec directly and shares no code with Tessera.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Field, Float32Type, Float64Type, Int64Type, Schema, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tessera::{FeatureDefinition, TesseraOptions, TrainingSet};

use crate::common::training_set_plan;

const DAY: i64 = 86_400_000_000;
const HOUR: i64 = 3_600_000_000;

/// One random event.
#[derive(Debug, Clone)]
struct Event {
    k1: Option<i32>,
    k2: Option<&'static str>,
    ts: Option<i64>,
    int_value: Option<i64>,
    float_value: Option<f64>,
    text_value: Option<String>,
    vector: Option<[Option<f32>; 3]>,
}

/// One random spine row.
#[derive(Debug, Clone)]
struct SpineRow {
    k1: Option<i64>,
    k2: Option<&'static str>,
    t: Option<i64>,
}

/// Which events a row sees: the spec's table, written with i128 floor division.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Semantics {
    Exact,
    Aligned,
    Bucketed,
}

/// A feature under test: the call, its value column and whether it has a WHERE / DEFAULT.
#[derive(Debug, Clone)]
struct FeatureCase {
    name: String,
    function: &'static str,
    column: Option<&'static str>,
    /// Further arguments, as SQL text.
    extra: &'static [&'static str],
    composite_key: bool,
    filter: bool,
    default: Option<f64>,
    windows: Vec<Option<i64>>,
}

const FUNCTIONS: [(&str, Option<&str>, &[&str]); 27] = [
    ("count", None, &[]),
    ("count", Some("f"), &[]),
    ("sum", Some("i"), &[]),
    ("sum", Some("f"), &[]),
    ("mean", Some("f"), &[]),
    ("mean", Some("i"), &[]),
    ("min", Some("i"), &[]),
    ("max", Some("i"), &[]),
    ("min", Some("f"), &[]),
    ("max", Some("f"), &[]),
    ("min", Some("s"), &[]),
    ("max", Some("s"), &[]),
    ("min", Some("d"), &[]),
    ("max", Some("d"), &[]),
    ("var", Some("f"), &[]),
    ("std", Some("i"), &[]),
    ("min_by_n", Some("s"), &["f", "2"]),
    ("max_by_n", Some("i"), &["f", "3"]),
    ("max_by_n", Some("f"), &["s", "1"]),
    ("sum", Some("v"), &[]),
    ("mean", Some("v"), &[]),
    ("approx_count_distinct", Some("s"), &[]),
    ("approx_count_distinct", Some("i"), &[]),
    ("approx_top_k", Some("i"), &["3"]),
    ("approx_top_k", Some("s"), &["2", "abs(i)", "true"]),
    ("approx_percentile", Some("f"), &["0.5"]),
    ("approx_percentile", Some("i"), &["0.9"]),
];

#[derive(Clone)]
struct Case {
    bucket: i64,
    origin: i64,
    events: Vec<Event>,
    spine: Vec<SpineRow>,
    features: Vec<FeatureCase>,
}

fn random_case(rng: &mut SmallRng) -> Case {
    random_case_of(rng, &FUNCTIONS)
}

/// The functions of [`FUNCTIONS`] whose states merge in constant time
/// (counts, and sums, means, moments and extremes of numbers and dates).
fn constant_merge_functions() -> Vec<(&'static str, Option<&'static str>, &'static [&'static str])>
{
    FUNCTIONS
        .iter()
        .copied()
        .filter(|(function, column, _)| {
            matches!(
                *function,
                "count" | "sum" | "mean" | "min" | "max" | "var" | "std"
            ) && !matches!(column, Some("v" | "s"))
        })
        .collect()
}

/// A key far from the others: a spine holding it has too wide a range of
/// integer keys to number them by offset, so its keys are hashed.
const SPARSE_KEY: i32 = 2_000_000_000;

/// A random case whose features call `functions`.
fn random_case_of(
    rng: &mut SmallRng,
    functions: &[(&'static str, Option<&'static str>, &'static [&'static str])],
) -> Case {
    let bucket = *[HOUR, 6 * HOUR, DAY, 7 * HOUR + 13_000, 2 * DAY]
        .choose(rng)
        .unwrap();
    let origin = if rng.gen_bool(0.5) {
        0
    } else {
        rng.gen_range(-3 * DAY..3 * DAY)
    };
    let base = 20_000 * DAY; // 2024-10-04
    let span_buckets = (30 * DAY / bucket).max(4);
    let instant = |rng: &mut SmallRng| -> i64 {
        let on_grid = origin
            + (base - origin).div_euclid(bucket) * bucket
            + rng.gen_range(0..span_buckets) * bucket;
        match rng.gen_range(0..4) {
            0 => on_grid,
            1 => on_grid + rng.gen_range(-1..=1),
            2 => on_grid + rng.gen_range(0..bucket),
            _ => base + rng.gen_range(0..30 * DAY),
        }
    };
    // Key 0 is also the value arrow keeps under a null key: a null must not find it.
    let keys1 = [Some(0), Some(1), Some(2), Some(SPARSE_KEY), None];
    let keys2 = [Some("a"), Some("b"), None];
    let mut events: Vec<Event> = (0..rng.gen_range(0..250))
        .map(|_| Event {
            k1: *keys1.choose(rng).unwrap(),
            k2: *keys2.choose(rng).unwrap(),
            ts: (!rng.gen_bool(0.03)).then(|| instant(rng)),
            int_value: (!rng.gen_bool(0.15)).then(|| rng.gen_range(-1000..1000)),
            float_value: (!rng.gen_bool(0.15))
                .then(|| f64::from(rng.gen_range(-100_000..100_000)) / 100.0),
            text_value: (!rng.gen_bool(0.15)).then(|| format!("v{}", rng.gen_range(0..50))),
            vector: (!rng.gen_bool(0.15)).then(|| {
                [0, 1, 2].map(|_| {
                    (!rng.gen_bool(0.1)).then(|| f32::from(rng.gen_range(-100i16..100)) / 4.0)
                })
            }),
        })
        .collect();
    // Ties: duplicate some event times exactly.
    for i in 0..events.len() / 5 {
        let j = rng.gen_range(0..events.len());
        events[j].ts = events[i].ts;
    }
    let event_times: Vec<i64> = events.iter().filter_map(|e| e.ts).collect();
    let spine = (0..rng.gen_range(1..80))
        .map(|_| SpineRow {
            k1: [Some(0), Some(1), Some(2), Some(3), Some(SPARSE_KEY), None]
                .choose(rng)
                .unwrap()
                .map(i64::from),
            k2: *keys2.choose(rng).unwrap(),
            t: if rng.gen_bool(0.05) {
                None
            } else if !event_times.is_empty() && rng.gen_bool(0.3) {
                // Exactly at an event, or one microsecond either side of it.
                Some(event_times.choose(rng).unwrap() + rng.gen_range(-1..=1))
            } else {
                Some(instant(rng))
            },
        })
        .collect();
    let window_choices = [
        Some(HOUR),
        Some(DAY),
        Some(3 * DAY + 5_000),
        Some(7 * DAY),
        Some(bucket),
        None,
    ];
    let features = (0..rng.gen_range(1..5))
        .map(|i| {
            let (function, column, extra) = *functions.choose(rng).unwrap();
            let count = rng.gen_range(1..4);
            let mut windows: Vec<Option<i64>> = window_choices
                .choose_multiple(rng, count)
                .copied()
                .collect();
            windows.sort();
            windows.dedup();
            let numeric_default = matches!((function, column), ("count", _) | ("sum", Some("i")));
            FeatureCase {
                name: format!("t.f{i}"),
                function,
                column,
                extra,
                composite_key: rng.gen_bool(0.5),
                filter: rng.gen_bool(0.25),
                default: (numeric_default && rng.gen_bool(0.3)).then_some(-7.0),
                windows,
            }
        })
        .collect();
    Case {
        bucket,
        origin,
        events,
        spine,
        features,
    }
}

fn events_batch(events: &[Event]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k1", DataType::Int32, true),
        Field::new("k2", DataType::Utf8, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("i", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new(
            "d",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "v",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 3),
            true,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(events.iter().map(|e| e.k1).collect::<Int32Array>()),
        Arc::new(events.iter().map(|e| e.k2).collect::<StringArray>()),
        Arc::new(
            events
                .iter()
                .map(|e| e.ts)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        Arc::new(events.iter().map(|e| e.int_value).collect::<Int64Array>()),
        Arc::new(
            events
                .iter()
                .map(|e| e.float_value)
                .collect::<Float64Array>(),
        ),
        Arc::new(
            events
                .iter()
                .map(|e| e.text_value.clone())
                .collect::<StringArray>(),
        ),
        Arc::new(
            events
                .iter()
                .map(|e| e.int_value.map(|v| v * 1_000_003))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        Arc::new(
            FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                events.iter().map(|e| e.vector.map(|v| v.to_vec())),
                3,
            ),
        ),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn spine_batch(spine: &[SpineRow]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("k1", DataType::Int64, true),
        Field::new("k2", DataType::Utf8, true),
        Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("row", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(spine.iter().map(|r| r.k1).collect::<Int64Array>()),
        Arc::new(spine.iter().map(|r| r.k2).collect::<StringArray>()),
        Arc::new(
            spine
                .iter()
                .map(|r| r.t)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        Arc::new(Int64Array::from_iter_values(0..spine.len() as i64)),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn duration_text(micros: Option<i64>) -> String {
    micros.map_or_else(|| "all".to_string(), |m| format!("{}ms", m / 1000))
}

fn column_name(feature: &FeatureCase, window: Option<i64>) -> String {
    match window {
        Some(w) => format!("{}__{}__", feature.name, w / 1_000_000),
        None => format!("{}__all__", feature.name),
    }
}

async fn register_case(
    case: &Case,
    target_partitions: usize,
    batch_split: usize,
) -> SessionContext {
    let ctx = tessera::new_context(
        datafusion::prelude::SessionConfig::new().with_target_partitions(target_partitions),
    );
    let events = events_batch(&case.events);
    let partitions: Vec<Vec<RecordBatch>> = (0..batch_split)
        .map(|p| {
            let chunk = events.num_rows().div_ceil(batch_split).max(1);
            let start = (p * chunk).min(events.num_rows());
            let end = ((p + 1) * chunk).min(events.num_rows());
            vec![events.slice(start, end - start)]
        })
        .collect();
    ctx.register_table(
        "events",
        Arc::new(MemTable::try_new(events.schema(), partitions).unwrap()),
    )
    .unwrap();
    let spine = spine_batch(&case.spine);
    ctx.register_table(
        "spine",
        Arc::new(MemTable::try_new(spine.schema(), vec![vec![spine]]).unwrap()),
    )
    .unwrap();
    for feature in &case.features {
        let mut builder = FeatureDefinition::builder(&feature.name)
            .source("events")
            .key("k1")
            .timestamp("ts");
        if feature.composite_key {
            builder = builder.key("k2");
        }
        let arguments = feature
            .column
            .into_iter()
            .chain(feature.extra.iter().copied());
        builder = builder
            .aggregate(feature.function, arguments)
            .windows(feature.windows.iter().map(|w| duration_text(*w)));
        if feature.filter {
            builder = builder.filter("i IS NULL OR i % 3 <> 0");
        }
        if let Some(default) = feature.default {
            builder = builder.default_value(&format!("{default}"));
        }
        let origin = tessera::time::format_instant(case.origin);
        let definition = builder
            .bucket_duration(&format!("{}ms", case.bucket / 1000))
            .bucket_start(&origin)
            .build()
            .unwrap();
        tessera::define_feature(&ctx, definition).unwrap();
    }
    ctx
}

/// The spec's window, evaluated independently of Tessera's time crate.
fn sees(
    semantics: Semantics,
    window: Option<i64>,
    bucket: i64,
    origin: i64,
    t: i64,
    ts: i64,
) -> bool {
    let floor = |x: i128| -> i128 {
        let (b, o) = (i128::from(bucket), i128::from(origin));
        o + (x - o).div_euclid(b) * b
    };
    let (t, ts) = (i128::from(t), i128::from(ts));
    let lower_ok = |w: i64| -> bool {
        match semantics {
            Semantics::Exact => t - i128::from(w) < ts,
            Semantics::Aligned | Semantics::Bucketed => floor(t - i128::from(w)) <= ts,
        }
    };
    let upper_ok = match semantics {
        Semantics::Exact | Semantics::Aligned => ts <= t,
        Semantics::Bucketed => ts < floor(t),
    };
    upper_ok && window.is_none_or(lower_ok)
}

/// What one cell should hold.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    List(Vec<Expected>),
    /// A `{value, weight}` entry of a weighted top-k.
    Entry(Box<Expected>, i64),
    Vector(Vec<f64>),
    /// A CPC estimate of this exact distinct count.
    Distinct(i64),
    /// A t-digest estimate of quantile `q` of these values.
    Quantile(Vec<f64>, f64),
}

impl Expected {
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => a.cmp(b),
            (Self::Float(a), Self::Float(b)) => a.total_cmp(b),
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
            (a, b) => panic!("cannot order {a:?} and {b:?}"),
        }
    }
}

/// The value of column `column` of an event, as the state sees it.
fn event_value(event: &Event, column: &str) -> Option<Expected> {
    match column {
        "i" => event.int_value.map(Expected::Int),
        "d" => event.int_value.map(|v| Expected::Int(v * 1_000_003)),
        "f" => event.float_value.map(Expected::Float),
        "s" => event.text_value.clone().map(Expected::Text),
        other => panic!("no column {other}"),
    }
}

/// `min_by_n` / `max_by_n`: best `n` by `by`, ties to the earlier event, then the smaller value.
fn by_n(matching: &[&Event], value: &str, by: &str, n: usize, largest: bool) -> Expected {
    let mut entries: Vec<(Expected, i64, Expected)> = matching
        .iter()
        .filter_map(|e| Some((event_value(e, by)?, e.ts?, event_value(e, value)?)))
        .collect();
    entries.sort_by(|a, b| {
        let by = if largest {
            b.0.order(&a.0)
        } else {
            a.0.order(&b.0)
        };
        by.then(a.1.cmp(&b.1)).then_with(|| a.2.order(&b.2))
    });
    Expected::List(entries.into_iter().take(n).map(|(_, _, v)| v).collect())
}

/// `approx_top_k` computed exactly: most frequent (heaviest) first, ties to the smaller value.
fn top_k(matching: &[&Event], value: &str, k: usize, weighted: bool) -> Expected {
    let mut weights: Vec<(Expected, i64)> = Vec::new();
    for event in matching {
        let Some(item) = event_value(event, value) else {
            continue;
        };
        let weight = if weighted {
            match event.int_value {
                Some(w) if w != 0 => w.abs(),
                _ => continue,
            }
        } else {
            1
        };
        match weights.iter_mut().find(|(v, _)| *v == item) {
            Some((_, total)) => *total += weight,
            None => weights.push((item, weight)),
        }
    }
    weights.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.order(&b.0)));
    let top = weights.into_iter().take(k);
    Expected::List(if weighted {
        top.map(|(v, w)| Expected::Entry(Box::new(v), w)).collect()
    } else {
        top.map(|(v, _)| v).collect()
    })
}

/// Element-wise vector sum (or mean) over non-null vectors; null elements count as 0.
fn vector_aggregate(matching: &[&Event], mean: bool) -> Expected {
    let vectors: Vec<[Option<f32>; 3]> = matching.iter().filter_map(|e| e.vector).collect();
    if vectors.is_empty() {
        return Expected::Null;
    }
    let scale = if mean {
        1.0 / vectors.len() as f64
    } else {
        1.0
    };
    Expected::Vector(
        (0..3)
            .map(|i| {
                vectors
                    .iter()
                    .map(|v| f64::from(v[i].unwrap_or(0.0)))
                    .sum::<f64>()
                    * scale
            })
            .collect(),
    )
}

fn brute_force(
    case: &Case,
    feature: &FeatureCase,
    semantics: Semantics,
    window: Option<i64>,
    row: &SpineRow,
) -> Expected {
    let Some(t) = row.t else {
        return Expected::Null;
    };
    let matching: Vec<&Event> = case
        .events
        .iter()
        .filter(|e| {
            let key_matches = row.k1.is_some()
                && e.k1.map(i64::from) == row.k1
                && (!feature.composite_key || (row.k2.is_some() && e.k2 == row.k2));
            let passes_filter = !feature.filter || e.int_value.is_none_or(|i| i % 3 != 0);
            key_matches
                && passes_filter
                && e.ts
                    .is_some_and(|ts| sees(semantics, window, case.bucket, case.origin, t, ts))
        })
        .collect();
    let ints: Vec<i64> = matching.iter().filter_map(|e| e.int_value).collect();
    let floats: Vec<f64> = matching.iter().filter_map(|e| e.float_value).collect();
    let as_floats = |column: &str| -> Vec<f64> {
        if column == "i" {
            ints.iter().map(|&v| v as f64).collect()
        } else {
            floats.clone()
        }
    };
    let extra = feature.extra;
    let result = match (feature.function, feature.column) {
        ("min_by_n" | "max_by_n", Some(c)) => by_n(
            &matching,
            c,
            extra[0],
            extra[1].parse().unwrap(),
            feature.function == "max_by_n",
        ),
        ("approx_top_k", Some(c)) => {
            top_k(&matching, c, extra[0].parse().unwrap(), extra.len() > 1)
        }
        ("approx_count_distinct", Some(c)) => {
            let mut distinct: Vec<Expected> =
                matching.iter().filter_map(|e| event_value(e, c)).collect();
            distinct.sort_by(Expected::order);
            distinct.dedup();
            Expected::Distinct(distinct.len() as i64)
        }
        ("approx_percentile", Some(c)) => {
            let values = as_floats(c);
            if values.is_empty() {
                Expected::Null
            } else {
                Expected::Quantile(values, extra[0].parse().unwrap())
            }
        }
        ("sum" | "mean", Some("v")) => vector_aggregate(&matching, feature.function == "mean"),
        ("count", None) => Expected::Int(matching.len() as i64),
        ("count", Some(_)) => Expected::Int(floats.len() as i64),
        ("sum", Some("i")) => Expected::Int(ints.iter().sum()),
        ("sum", Some(_)) => Expected::Float(floats.iter().sum()),
        ("mean", Some(c)) => {
            let values = as_floats(c);
            if values.is_empty() {
                Expected::Null
            } else {
                Expected::Float(values.iter().sum::<f64>() / values.len() as f64)
            }
        }
        ("var" | "std", Some(c)) => {
            let values = as_floats(c);
            if values.len() < 2 {
                Expected::Null
            } else {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                    / (values.len() - 1) as f64;
                Expected::Float(if feature.function == "std" {
                    var.sqrt()
                } else {
                    var
                })
            }
        }
        (extreme, Some(c)) => {
            let smallest = extreme == "min";
            match c {
                "i" | "d" => {
                    let scale = if c == "d" { 1_000_003 } else { 1 };
                    let picked = if smallest {
                        ints.iter().min()
                    } else {
                        ints.iter().max()
                    };
                    picked.map_or(Expected::Null, |v| Expected::Int(v * scale))
                }
                "f" => {
                    let picked = floats
                        .iter()
                        .copied()
                        .reduce(|a, b| if (b < a) == smallest { b } else { a });
                    picked.map_or(Expected::Null, Expected::Float)
                }
                _ => {
                    let texts = matching.iter().filter_map(|e| e.text_value.clone());
                    let picked = if smallest { texts.min() } else { texts.max() };
                    picked.map_or(Expected::Null, Expected::Text)
                }
            }
        }
        other => panic!("no brute force for {other:?}"),
    };
    let empty = match feature.column {
        None => matching.is_empty(),
        Some("i" | "d") => ints.is_empty(),
        Some("s") => matching.iter().all(|e| e.text_value.is_none()),
        Some("v") => matching.iter().all(|e| e.vector.is_none()),
        Some(_) => floats.is_empty(),
    };
    match (feature.default, empty) {
        (Some(default), true) => Expected::Int(default as i64),
        _ => result,
    }
}

fn actual(column: &ArrayRef, row: usize) -> Expected {
    if column.is_null(row) {
        return Expected::Null;
    }
    match column.data_type() {
        DataType::Int64 => Expected::Int(column.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => Expected::Float(column.as_primitive::<Float64Type>().value(row)),
        DataType::Timestamp(_, _) => {
            Expected::Int(column.as_primitive::<TimestampMicrosecondType>().value(row))
        }
        DataType::Utf8 => Expected::Text(column.as_string::<i32>().value(row).to_string()),
        DataType::List(_) => {
            let items = column.as_list::<i32>().value(row);
            Expected::List((0..items.len()).map(|i| actual(&items, i)).collect())
        }
        DataType::Struct(_) => {
            let entry = column.as_struct();
            let weight = entry.column(1).as_primitive::<Int64Type>().value(row);
            Expected::Entry(Box::new(actual(entry.column(0), row)), weight)
        }
        DataType::FixedSizeList(_, _) => {
            let items = column.as_fixed_size_list().value(row);
            Expected::Vector(items.as_primitive::<Float64Type>().values().to_vec())
        }
        other => panic!("unexpected result type {other}"),
    }
}

/// How a cell compares with the brute force.
#[derive(Debug, PartialEq)]
enum Verdict {
    Agrees,
    /// A sketch estimate outside its 3-standard-error bound but not grossly wrong:
    /// allowed for at most 1% of sketch cells.
    SketchMiss,
    Disagrees,
}

/// CPC standard error at lg_k 11 (ICON estimator, which merged sketches use).
const CPC_STANDARD_ERROR: f64 = 0.69 / 45.25;

fn verdict(expected: &Expected, actual: &Expected) -> Verdict {
    let close = |e: f64, a: f64| (e - a).abs() <= 1e-9 * e.abs() + 1e-6;
    let judge = |within_bound: bool, roughly: bool| match (within_bound, roughly) {
        (true, _) => Verdict::Agrees,
        (false, true) => Verdict::SketchMiss,
        (false, false) => Verdict::Disagrees,
    };
    let agrees = |ok: bool| {
        if ok {
            Verdict::Agrees
        } else {
            Verdict::Disagrees
        }
    };
    match (expected, actual) {
        (Expected::Vector(e), Expected::Vector(a)) => {
            agrees(e.len() == a.len() && e.iter().zip(a).all(|(e, a)| close(*e, *a)))
        }
        (Expected::List(e), Expected::List(a)) => agrees(
            e.len() == a.len()
                && e.iter()
                    .zip(a)
                    .all(|(e, a)| verdict(e, a) == Verdict::Agrees),
        ),
        (Expected::Distinct(e), Expected::Int(a)) => {
            let error = (e - a).abs() as f64;
            judge(
                error <= (3.0 * CPC_STANDARD_ERROR * *e as f64).max(1.0),
                error <= 0.15 * *e as f64 + 2.0,
            )
        }
        // t-digest: the estimate's rank among the values is within one value and 1% of q.
        (Expected::Quantile(values, q), Expected::Float(a)) => {
            let n = values.len() as f64;
            let below = values.iter().filter(|v| **v < *a).count() as f64 / n;
            let at_most = values.iter().filter(|v| **v <= *a).count() as f64 / n;
            let rank_ok = |tolerance: f64| below <= q + tolerance && at_most >= q - tolerance;
            judge(rank_ok(1.0 / n + 0.01), rank_ok(0.1))
        }
        // 1e-9 relative, plus an absolute term far below any single value (0.01).
        (Expected::Float(e), Expected::Float(a)) => agrees(close(*e, *a)),
        _ => agrees(expected == actual),
    }
}

/// Sketch cells checked, and how many fell outside their bound.
#[derive(Debug, Default)]
struct SketchTally {
    cells: usize,
    misses: usize,
}

async fn check_case(
    seed: u64,
    case: &Case,
    semantics: Semantics,
    options: TesseraOptions,
    ctx: &SessionContext,
    tally: &mut SketchTally,
) {
    let mut training_set =
        TrainingSet::new(ctx.table("spine").await.unwrap(), "t").options(options.clone());
    for feature in &case.features {
        training_set = training_set.feature(&feature.name);
    }
    let batches = training_set.build().unwrap().collect().await.unwrap();
    let batch = concat_batches(&batches[0].schema(), &batches).unwrap();
    assert_eq!(
        batch.num_rows(),
        case.spine.len(),
        "seed {seed}: one output row per spine row"
    );
    let order = batch
        .column_by_name("row")
        .unwrap()
        .as_primitive::<Int64Type>();
    for (i, row) in case.spine.iter().enumerate() {
        assert_eq!(order.value(i), i as i64, "seed {seed}: spine order");
        for feature in &case.features {
            for window in &feature.windows {
                let name = column_name(feature, *window);
                let column = batch
                    .column_by_name(&name)
                    .unwrap_or_else(|| panic!("missing column {name}"));
                let expected = brute_force(case, feature, semantics, *window, row);
                let got = actual(column, i);
                let judged = verdict(&expected, &got);
                if matches!(expected, Expected::Distinct(_) | Expected::Quantile(..)) {
                    tally.cells += 1;
                    tally.misses += usize::from(judged == Verdict::SketchMiss);
                }
                assert!(
                    judged != Verdict::Disagrees,
                    "seed {seed} {semantics:?} {options:?}\n{} {}({:?}) window {window:?} grid {}us from {}\nrow {i} {row:?}\nexpected {expected:?}, got {got:?}",
                    feature.name,
                    feature.function,
                    feature.column,
                    case.bucket,
                    case.origin,
                );
            }
        }
    }
}

fn options_for(semantics: Semantics, buffer: bool) -> TesseraOptions {
    TesseraOptions {
        use_materialized_offline_query: semantics == Semantics::Bucketed || buffer,
        align_offline_chalk_window_with_materialization: semantics == Semantics::Aligned,
        continuous_buffer_duration: buffer.then(|| tessera::time::Duration::parse("36h").unwrap()),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_cell_matches_the_brute_force_spec() {
    let mut tally = SketchTally::default();
    for seed in 0..60u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let case = random_case(&mut rng);
        let ctx = register_case(&case, rng.gen_range(1..5), rng.gen_range(1..4)).await;
        for semantics in [Semantics::Exact, Semantics::Aligned, Semantics::Bucketed] {
            check_case(
                seed,
                &case,
                semantics,
                options_for(semantics, false),
                &ctx,
                &mut tally,
            )
            .await;
        }
        // Bucketed with a continuous buffer sees the aligned set (SEMANTICS.md §4).
        let buffered = options_for(Semantics::Bucketed, true);
        check_case(seed, &case, Semantics::Aligned, buffered, &ctx, &mut tally).await;
    }
    assert!(
        tally.cells > 500,
        "too few sketch cells to judge: {tally:?}"
    );
    assert!(
        tally.misses * 100 <= tally.cells,
        "more than 1% of sketch cells outside their bound: {tally:?}"
    );
}

/// Training sets under every option set, as one batch each.
async fn every_semantics(case: &Case, ctx: &SessionContext) -> Vec<RecordBatch> {
    let mut results = Vec::new();
    for options in [
        options_for(Semantics::Exact, false),
        options_for(Semantics::Aligned, false),
        options_for(Semantics::Bucketed, false),
        options_for(Semantics::Bucketed, true),
    ] {
        let mut training_set =
            TrainingSet::new(ctx.table("spine").await.unwrap(), "t").options(options);
        for feature in &case.features {
            training_set = training_set.feature(&feature.name);
        }
        let frame = training_set.build().unwrap();
        let schema = frame.schema().inner().clone();
        results.push(concat_batches(&schema, &frame.collect().await.unwrap()).unwrap());
    }
    results
}

/// No semantics ever sees an event with `ts > t`: planting extreme events
/// just after every key's latest spine time changes no output (beyond the
/// last bits of floats that states merged in another order give).
#[tokio::test]
async fn planted_future_events_change_nothing() {
    for seed in 100..120u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let case = random_case(&mut rng);
        let before = every_semantics(&case, &register_case(&case, 2, 2).await).await;

        let mut planted = case.clone();
        for row in &case.spine {
            let latest = case
                .spine
                .iter()
                .filter(|r| r.k1 == row.k1)
                .filter_map(|r| r.t)
                .max();
            let (Some(k1), Some(latest)) = (row.k1, latest) else {
                continue;
            };
            for later in [1, 3_600_000_000, 400 * DAY] {
                planted.events.push(Event {
                    k1: Some(k1 as i32),
                    k2: row.k2,
                    ts: Some(latest + later),
                    int_value: Some(999_999),
                    float_value: Some(1e12),
                    text_value: Some("zzz-future".to_string()),
                    vector: Some([Some(1e6); 3]),
                });
            }
        }
        let after = every_semantics(&planted, &register_case(&planted, 3, 2).await).await;
        for (before, after) in before.iter().zip(&after) {
            assert_same_cells(before, after, &format!("seed {seed}: an event after t"));
        }
    }
}

/// `after` has `before`'s schema and cells: floats to 1e-9 (partitioned
/// differently, states merge in another order), anything else exactly.
fn assert_same_cells(before: &RecordBatch, after: &RecordBatch, context: &str) {
    assert_eq!(before.schema(), after.schema(), "{context}");
    assert_eq!(before.num_rows(), after.num_rows(), "{context}");
    for (field, (b, a)) in before
        .schema()
        .fields()
        .iter()
        .zip(before.columns().iter().zip(after.columns()))
    {
        for row in 0..before.num_rows() {
            let (b, a) = (actual(b, row), actual(a, row));
            assert!(
                verdict(&b, &a) == Verdict::Agrees,
                "{context} changed {} at row {row}: {b:?} became {a:?}",
                field.name()
            );
        }
    }
}

/// Random case `seed` of `functions`, registered, with two in-memory tile
/// stores named after `prefix`: one covering every bucket any row needs,
/// one only a middle stretch that spine windows straddle.
async fn case_with_tiles(
    seed: u64,
    functions: &[(&'static str, Option<&'static str>, &'static [&'static str])],
    prefix: &str,
) -> (Case, SessionContext, [String; 2]) {
    let base = 20_000 * DAY;
    let mut rng = SmallRng::seed_from_u64(seed);
    let case = random_case_of(&mut rng, functions);
    let ctx = register_case(&case, rng.gen_range(1..5), rng.gen_range(1..4)).await;
    let full = format!("memory://{prefix}-full-{seed}");
    backfill_case(&case, &ctx, &full, base - 10 * DAY, base + 40 * DAY).await;
    let partial = format!("memory://{prefix}-partial-{seed}");
    backfill_case(
        &case,
        &ctx,
        &partial,
        base + 5 * DAY,
        base + 15 * DAY + HOUR,
    )
    .await;
    (case, ctx, [full, partial])
}

/// Backfills every feature of `case` over `[lower, upper)` into the in-memory store `url`.
async fn backfill_case(case: &Case, ctx: &SessionContext, url: &str, lower: i64, upper: i64) {
    let request = tessera::planner::BackfillRequest {
        features: case
            .features
            .iter()
            .map(|f| tessera::FeatureName::parse(&f.name).unwrap())
            .collect(),
        lower,
        upper,
        chunk: Some(tessera::time::Duration::parse("5d").unwrap()),
    };
    let state = ctx.state();
    let plan = tessera::planner::plan_backfill(&state, &request).unwrap();
    let store = tessera::planner::TileStore::open(url).unwrap();
    tessera::planner::run_backfill(&state, &store, &plan, &tessera::planner::NoProgress)
        .await
        .unwrap();
}

fn tile_options(
    semantics: Semantics,
    buffer: bool,
    url: &str,
    raw_fallback: bool,
) -> TesseraOptions {
    TesseraOptions {
        use_tile_store: true,
        tile_store_url: url.to_string(),
        tile_coverage_fallback: if raw_fallback {
            tessera::planner::CoverageFallback::Raw
        } else {
            tessera::planner::CoverageFallback::Error
        },
        ..options_for(semantics, buffer)
    }
}

/// SEMANTICS.md §4: with `use_tile_store`, every semantics gives the rows the
/// spec gives — from tiles covering everything (no fallback needed), and
/// from tiles covering only a middle stretch that spine windows straddle,
/// with the raw fallback filling the rest.
#[tokio::test]
async fn tiles_match_the_brute_force_spec() {
    let mut tally = SketchTally::default();
    for seed in 200..230u64 {
        let (case, ctx, [full, partial]) = case_with_tiles(seed, &FUNCTIONS, "differential").await;
        for (url, raw_fallback) in [(&full, false), (&partial, true)] {
            for semantics in [Semantics::Exact, Semantics::Aligned, Semantics::Bucketed] {
                let options = tile_options(semantics, false, url, raw_fallback);
                check_case(seed, &case, semantics, options, &ctx, &mut tally).await;
            }
            let buffered = tile_options(Semantics::Bucketed, true, url, raw_fallback);
            check_case(seed, &case, Semantics::Aligned, buffered, &ctx, &mut tally).await;
        }
    }
    assert!(
        tally.cells > 100,
        "too few sketch cells to judge: {tally:?}"
    );
    assert!(
        tally.misses * 100 <= tally.cells,
        "more than 1% of sketch cells outside their bound: {tally:?}"
    );
}

/// The physical plan of `case`'s training set under `options`, as text.
async fn plan_text(case: &Case, options: TesseraOptions, ctx: &SessionContext) -> String {
    let spine = ctx.table("spine").await.unwrap();
    let features = case.features.iter().map(|feature| feature.name.as_str());
    let plan = training_set_plan(spine, "t", features, options).await;
    datafusion::physical_plan::displayable(plan.as_ref())
        .indent(true)
        .to_string()
}

/// Bucketed windows of functions that merge in constant time are answered
/// by tile lookups (no sweep, no sort back into spine order), and every
/// cell is still the spec's: from tiles covering everything, and from
/// tiles covering a middle stretch with the raw fallback filling the rest.
#[tokio::test]
async fn tile_lookups_match_the_brute_force_spec() {
    let mut tally = SketchTally::default();
    let functions = constant_merge_functions();
    for seed in 300..330u64 {
        let (case, ctx, [full, partial]) = case_with_tiles(seed, &functions, "lookup").await;
        for (url, raw_fallback) in [(&full, false), (&partial, true)] {
            let options = tile_options(Semantics::Bucketed, false, url, raw_fallback);
            let plan = plan_text(&case, options.clone(), &ctx).await;
            assert!(
                plan.contains("TileLookupExec") && !plan.contains("PointInTimeExec"),
                "seed {seed}: not answered by lookups:\n{plan}"
            );
            assert!(
                !plan.contains("SortExec"),
                "seed {seed}: a lookup plan sorts:\n{plan}"
            );
            check_case(seed, &case, Semantics::Bucketed, options, &ctx, &mut tally).await;
        }
    }
}
