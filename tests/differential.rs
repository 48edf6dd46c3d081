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
    Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tessera::{FeatureDefinition, TesseraOptions, TrainingSet};

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

/// A feature under test: the function, its value column and whether it has a WHERE / DEFAULT.
#[derive(Debug, Clone)]
struct FeatureCase {
    name: String,
    function: &'static str,
    column: Option<&'static str>,
    composite_key: bool,
    filter: bool,
    default: Option<f64>,
    windows: Vec<Option<i64>>,
}

const FUNCTIONS: [(&str, Option<&str>); 16] = [
    ("count", None),
    ("count", Some("f")),
    ("sum", Some("i")),
    ("sum", Some("f")),
    ("mean", Some("f")),
    ("mean", Some("i")),
    ("min", Some("i")),
    ("max", Some("i")),
    ("min", Some("f")),
    ("max", Some("f")),
    ("min", Some("s")),
    ("max", Some("s")),
    ("min", Some("d")),
    ("max", Some("d")),
    ("var", Some("f")),
    ("std", Some("i")),
];

struct Case {
    bucket: i64,
    origin: i64,
    events: Vec<Event>,
    spine: Vec<SpineRow>,
    features: Vec<FeatureCase>,
}

fn random_case(rng: &mut SmallRng) -> Case {
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
    let keys1 = [Some(1), Some(2), Some(3), None];
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
            k1: [Some(1), Some(2), Some(3), Some(4), None]
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
            let (function, column) = *FUNCTIONS.choose(rng).unwrap();
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
        builder = builder
            .aggregate(feature.function, feature.column)
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
#[derive(Debug, PartialEq)]
enum Expected {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
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
    let result = match (feature.function, feature.column) {
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
        other => panic!("unexpected result type {other}"),
    }
}

fn agrees(expected: &Expected, actual: &Expected) -> bool {
    match (expected, actual) {
        // 1e-9 relative, plus an absolute term far below any single value (0.01).
        (Expected::Float(e), Expected::Float(a)) => (e - a).abs() <= 1e-9 * e.abs() + 1e-6,
        _ => expected == actual,
    }
}

async fn check_case(
    seed: u64,
    case: &Case,
    semantics: Semantics,
    options: TesseraOptions,
    ctx: &SessionContext,
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
                assert!(
                    agrees(&expected, &got),
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
    for seed in 0..60u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let case = random_case(&mut rng);
        let ctx = register_case(&case, rng.gen_range(1..5), rng.gen_range(1..4)).await;
        for semantics in [Semantics::Exact, Semantics::Aligned, Semantics::Bucketed] {
            check_case(seed, &case, semantics, options_for(semantics, false), &ctx).await;
        }
        // Bucketed with a continuous buffer sees the aligned set (SEMANTICS.md §4).
        check_case(
            seed,
            &case,
            Semantics::Aligned,
            options_for(Semantics::Bucketed, true),
            &ctx,
        )
        .await;
    }
}
