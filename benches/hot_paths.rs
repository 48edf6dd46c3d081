//! Criterion micro-benchmarks of Tessera's hot paths, so a regression shows
//! in isolation: per-function update throughput, state merges (sketch merges
//! included), a backfill's fold of runs into state columns, a window sliding
//! over decoded tile states, and the per-key sweep of a whole training set
//! under each plan.
//!
//! Run with `cargo bench --bench hot_paths` (release mode); see benches/README.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{
    ArrayRef, FixedSizeListArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionConfig;
use tessera::aggregates::{AggregateImplementation, Argument, BoundAggregate, Input, Output};
use tessera::{TesseraOptions, TrainingSet};

const ROWS: usize = 100_000;

fn bind(function: &str, arguments: Vec<Argument>) -> Arc<dyn AggregateImplementation> {
    BoundAggregate::bind("bench", function, &arguments)
        .unwrap()
        .implementation()
        .unwrap()
}

/// The functions benchmarked, with their argument columns.
fn cases() -> Vec<(
    &'static str,
    Arc<dyn AggregateImplementation>,
    Vec<ArrayRef>,
)> {
    let floats: ArrayRef = Arc::new(Float64Array::from_iter_values(
        (0..ROWS).map(|i| (i % 9973) as f64 / 7.0),
    ));
    let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..ROWS).map(|i| (i * 7919 % 100_003) as i64),
    ));
    let strings: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..ROWS).map(|i| format!("merchant-{}", i % 5000)),
    ));
    let vectors: ArrayRef = Arc::new(
        FixedSizeListArray::from_iter_primitive::<Float64Type, _, _>(
            (0..ROWS / 10).map(|i| {
                Some(
                    (0..384)
                        .map(move |j| Some(((i + j) % 17) as f64))
                        .collect::<Vec<_>>(),
                )
            }),
            384,
        ),
    );
    use DataType::{Float64, Int64, Utf8};
    vec![
        (
            "sum",
            bind("sum", vec![Argument::column(Float64)]),
            vec![floats.clone()],
        ),
        (
            "std",
            bind("std", vec![Argument::column(Float64)]),
            vec![floats.clone()],
        ),
        (
            "max",
            bind("max", vec![Argument::column(Int64)]),
            vec![ints.clone()],
        ),
        (
            "max_by_n",
            bind(
                "max_by_n",
                vec![
                    Argument::column(Utf8),
                    Argument::column(Float64),
                    Argument::constant(ScalarValue::Int64(Some(5))),
                ],
            ),
            vec![strings.clone(), floats.clone()],
        ),
        (
            "approx_count_distinct",
            bind("approx_count_distinct", vec![Argument::column(Int64)]),
            vec![ints.clone()],
        ),
        (
            "approx_top_k",
            bind(
                "approx_top_k",
                vec![
                    Argument::column(Utf8),
                    Argument::constant(ScalarValue::Int64(Some(10))),
                ],
            ),
            vec![strings],
        ),
        (
            "approx_percentile",
            bind(
                "approx_percentile",
                vec![
                    Argument::column(Float64),
                    Argument::constant(ScalarValue::Float64(Some(0.5))),
                ],
            ),
            vec![floats],
        ),
        (
            "mean_vector_384 (10k rows)",
            bind("mean", vec![Argument::column(vectors.data_type().clone())]),
            vec![vectors],
        ),
    ]
}

fn update(c: &mut Criterion) {
    let mut group = c.benchmark_group("update");
    for (name, implementation, columns) in cases() {
        group.throughput(Throughput::Elements(columns[0].len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut accumulator =
                    implementation.accumulator("bench", Input::Arguments, Output::Result);
                accumulator.update_batch(&columns).unwrap();
                black_box(accumulator.evaluate().unwrap())
            })
        });
    }
    group.finish();
}

fn merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge");
    for (name, implementation, columns) in cases() {
        // 1000 states of 100 rows each, merged into one.
        let parts = 1000.min(columns[0].len());
        let size = columns[0].len() / parts;
        let states: Vec<Vec<ScalarValue>> = (0..parts)
            .map(|p| {
                let part: Vec<ArrayRef> = columns.iter().map(|c| c.slice(p * size, size)).collect();
                let mut accumulator =
                    implementation.accumulator("bench", Input::Arguments, Output::Result);
                accumulator.update_batch(&part).unwrap();
                accumulator.state().unwrap()
            })
            .collect();
        let state_columns: Vec<ArrayRef> = (0..states[0].len())
            .map(|f| ScalarValue::iter_to_array(states.iter().map(|s| s[f].clone())).unwrap())
            .collect();
        group.throughput(Throughput::Elements(parts as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut accumulator =
                    implementation.accumulator("bench", Input::Arguments, Output::Result);
                accumulator.merge_batch(&state_columns).unwrap();
                black_box(accumulator.evaluate().unwrap())
            })
        });
    }
    group.finish();
}

/// Rows per run in `run_states`: the medium benchmark's events per key and day.
const RUN_ROWS: usize = 7;

/// The bounds of consecutive runs of [`RUN_ROWS`] of `rows` rows (the last may be shorter).
fn run_bounds(rows: usize) -> Vec<usize> {
    let mut bounds: Vec<usize> = (0..rows).step_by(RUN_ROWS).collect();
    bounds.push(rows);
    bounds.dedup();
    bounds
}

/// A backfill's fold: the state of every run of [`RUN_ROWS`] rows,
/// serialized into state columns (one tile row per run).
fn run_states(c: &mut Criterion) {
    let mut group = c.benchmark_group("run_states");
    for (name, implementation, columns) in cases() {
        let rows = columns[0].len();
        let bounds = run_bounds(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(name, |b| {
            b.iter(|| black_box(implementation.run_states(&columns, &bounds).unwrap()))
        });
    }
    group.finish();
}

/// Buckets in [`tile_windows`]' sliding window: the medium benchmark's 30d.
const WINDOW_BUCKETS: usize = 30;

/// A tile plan's per-key work: a window kernel loads serialized bucket
/// states (one tile row per run of [`RUN_ROWS`] rows, decoded a run of
/// rows at a time), then slides a window of [`WINDOW_BUCKETS`] buckets over
/// them and emits its value at every bucket.
fn tile_windows(c: &mut Criterion) {
    use tessera::aggregates::{BucketSource, Part};
    let mut group = c.benchmark_group("tile_windows");
    for (name, implementation, columns) in cases() {
        let rows = columns[0].len();
        let bounds = run_bounds(rows);
        let states = implementation.run_states(&columns, &bounds).unwrap();
        let buckets: Vec<BucketSource> = (0..bounds.len() - 1).map(BucketSource::Tile).collect();
        group.throughput(Throughput::Elements(buckets.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut window = implementation.sliding();
                window.load(&columns, &buckets, &states).unwrap();
                for end in 1..=buckets.len() {
                    window.slide(Part::Buckets, end.saturating_sub(WINDOW_BUCKETS)..end);
                    window.emit();
                }
                black_box(window.finish().unwrap())
            })
        });
    }
    group.finish();
}

/// 200k events of 2k skewed keys over 90 days, 20k spine rows.
fn sweep_context() -> datafusion::prelude::SessionContext {
    let ctx = tessera::new_context(SessionConfig::new().with_target_partitions(2));
    let events = 200_000usize;
    let day = 86_400_000_000i64;
    let utc = Some("UTC".into());
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
            false,
        ),
        Field::new("amount", DataType::Float64, false),
        Field::new("merchant", DataType::Int64, false),
    ]));
    let key = |i: usize| ((i * i) % 2003 % 2000) as i64;
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(Int64Array::from_iter_values((0..events).map(key))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..events).map(|i| (i as i64 * 7919 % 90) * day + i as i64 * 1_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from_iter_values(
                (0..events).map(|i| (i % 997) as f64),
            )),
            Arc::new(Int64Array::from_iter_values(
                (0..events).map(|i| (i % 311) as i64),
            )),
        ],
    )
    .unwrap();
    ctx.register_table(
        "events",
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap()),
    )
    .unwrap();
    let spine_schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, utc), false),
    ]));
    let spine = RecordBatch::try_new(
        Arc::clone(&spine_schema),
        vec![
            Arc::new(Int64Array::from_iter_values((0..20_000).map(key))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..20_000).map(|i| 60 * day + (i as i64 * 104_729 % (30 * day))),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    ctx.register_table(
        "spine",
        Arc::new(MemTable::try_new(spine_schema, vec![vec![spine]]).unwrap()),
    )
    .unwrap();
    ctx
}

fn sweep(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ctx = sweep_context();
    runtime
        .block_on(tessera::execute_sql(
            &ctx,
            "CREATE WINDOWED FEATURE u.sum FROM events KEY user_id TIMESTAMP ts AGGREGATE sum(amount)
                 WINDOWS ('1d', '7d', '30d') WITH (bucket_duration = '1d');
             CREATE WINDOWED FEATURE u.merchants FROM events KEY user_id TIMESTAMP ts AGGREGATE approx_count_distinct(merchant)
                 WINDOWS ('30d') WITH (bucket_duration = '1d');",
        ))
        .unwrap();
    let mut group = c.benchmark_group("sweep_200k_events_20k_rows");
    group.sample_size(10);
    let plans = [
        ("exact", TesseraOptions::default()),
        (
            "aligned",
            TesseraOptions {
                align_offline_chalk_window_with_materialization: true,
                ..Default::default()
            },
        ),
        (
            "bucketed",
            TesseraOptions {
                use_materialized_offline_query: true,
                ..Default::default()
            },
        ),
    ];
    for (label, options) in plans {
        group.bench_with_input(
            BenchmarkId::from_parameter(label),
            &options,
            |b, options| {
                b.iter(|| {
                    runtime.block_on(async {
                        let spine = ctx.table("spine").await.unwrap();
                        let frame = TrainingSet::new(spine, "ts")
                            .feature("u.sum")
                            .feature("u.merchants")
                            .options(options.clone())
                            .build()
                            .unwrap();
                        black_box(frame.collect().await.unwrap())
                    })
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, update, merge, run_states, tile_windows, sweep);
criterion_main!(benches);
