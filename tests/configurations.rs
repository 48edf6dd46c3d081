//! DataFusion-style configuration fuzz: the same training sets under random
//! `target_partitions`, batch sizes, input partitionings and a small
//! `FairSpillPool` memory limit give identical results to a single-partition
//! baseline — from raw events and from tiles covering part of the time,
//! whose rows stream through the same repartitions and spilling sorts as
//! the events. Event times are unique per key, so the order in which a key's
//! events are folded — and with it float sums and CPC's HIP estimate — is
//! fully determined, and equality is exact.

use std::sync::Arc;

use datafusion::arrow::array::{
    Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tessera::TesseraOptions;

const FEATURES: &str = "
CREATE WINDOWED FEATURE u.sum FROM events KEY k TIMESTAMP ts AGGREGATE sum(f) WINDOWS ('1h', '1d', 'all') WITH (bucket_duration = '1h');
CREATE WINDOWED FEATURE u.std FROM events KEY k TIMESTAMP ts AGGREGATE std(f) WINDOWS ('6h') WITH (bucket_duration = '1h');
CREATE WINDOWED FEATURE u.distinct FROM events KEY k TIMESTAMP ts AGGREGATE approx_count_distinct(s) WINDOWS ('1d') WITH (bucket_duration = '2h');
CREATE WINDOWED FEATURE u.top FROM events KEY k TIMESTAMP ts AGGREGATE approx_top_k(s, 3) WINDOWS ('1d') WITH (bucket_duration = '1h');
CREATE WINDOWED FEATURE u.best FROM events KEY k TIMESTAMP ts AGGREGATE max_by_n(s, f, 2) WINDOWS ('12h') WITH (bucket_duration = '1h');
CREATE WINDOWED FEATURE u.p90 FROM events KEY k TIMESTAMP ts AGGREGATE approx_percentile(f, 0.9) WINDOWS ('1d') WITH (bucket_duration = '1h');
";

fn batches(rows: usize, rng: &mut SmallRng, events: bool) -> (Arc<Schema>, RecordBatch) {
    let base = 1_740_000_000_000_000i64;
    let keys: Vec<i64> = (0..rows).map(|_| rng.gen_range(0..40)).collect();
    // Unique per key: the row number is part of the time.
    let mut times: Vec<i64> = (0..rows)
        .map(|i| base + rng.gen_range(0..3 * 86_400) * 1_000_000 + i as i64)
        .collect();
    times.shuffle(rng);
    let mut fields = vec![
        Field::new("k", DataType::Int64, true),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ];
    let mut columns: Vec<Arc<dyn datafusion::arrow::array::Array>> = vec![
        Arc::new(Int64Array::from(keys)),
        Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
    ];
    if events {
        fields.push(Field::new("f", DataType::Float64, true));
        fields.push(Field::new("s", DataType::Utf8, true));
        columns.push(Arc::new(
            (0..rows)
                .map(|_| rng.gen_bool(0.9).then(|| rng.gen_range(-1e4..1e4)))
                .collect::<Float64Array>(),
        ));
        columns.push(Arc::new(
            (0..rows)
                .map(|_| {
                    rng.gen_bool(0.9)
                        .then(|| format!("m{}", rng.gen_range(0..30)))
                })
                .collect::<StringArray>(),
        ));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
    (schema, batch)
}

fn split(batch: &RecordBatch, partitions: usize, batch_rows: usize) -> Vec<Vec<RecordBatch>> {
    let mut output = vec![Vec::new(); partitions];
    for (i, offset) in (0..batch.num_rows()).step_by(batch_rows).enumerate() {
        output[i % partitions].push(batch.slice(offset, batch_rows.min(batch.num_rows() - offset)));
    }
    output
}

async fn training_set(
    events: &RecordBatch,
    spine: &RecordBatch,
    config: SessionConfig,
    memory_limit: Option<usize>,
    input_partitions: usize,
    options: &TesseraOptions,
) -> RecordBatch {
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = memory_limit {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime.build_arc().unwrap())
        .with_default_features();
    let ctx = SessionContext::new_with_state(tessera::register(state).build());
    let batch_rows = ctx.state().config().batch_size();
    let events_table =
        MemTable::try_new(events.schema(), split(events, input_partitions, batch_rows)).unwrap();
    ctx.register_table("events", Arc::new(events_table))
        .unwrap();
    // The spine keeps one partition so its order is well defined.
    ctx.register_table(
        "spine",
        Arc::new(
            MemTable::try_new(spine.schema(), vec![split(spine, 1, batch_rows).remove(0)]).unwrap(),
        ),
    )
    .unwrap();
    tessera::execute_sql(&ctx, FEATURES).await.unwrap();
    if options.use_tile_store {
        // Part of the time from tiles, the rest from raw events.
        tessera::execute_sql(
            &ctx,
            &format!(
                "SET tessera.tile_store_url = '{}';
                 BACKFILL WINDOWED FEATURES u.sum, u.std, u.distinct, u.top, u.best, u.p90
                 FROM '2025-02-20T00:00:00Z' TO '2025-02-21T12:00:00Z';",
                options.tile_store_url
            ),
        )
        .await
        .unwrap();
    }
    let mut request =
        tessera::TrainingSet::new(ctx.table("spine").await.unwrap(), "ts").options(options.clone());
    for feature in ["u.sum", "u.std", "u.distinct", "u.top", "u.best", "u.p90"] {
        request = request.feature(feature);
    }
    let frame = request.build().unwrap();
    let schema = frame.schema().inner().clone();
    concat_batches(&schema, &frame.collect().await.unwrap()).unwrap()
}

#[tokio::test]
async fn partitions_batch_sizes_and_memory_limits_do_not_change_results() {
    let mut rng = SmallRng::seed_from_u64(7);
    let (_, events) = batches(6_000, &mut rng, true);
    let (_, spine) = batches(700, &mut rng, false);
    let semantics = [
        TesseraOptions::default(),
        TesseraOptions {
            align_offline_chalk_window_with_materialization: true,
            ..Default::default()
        },
        TesseraOptions {
            use_materialized_offline_query: true,
            ..Default::default()
        },
        TesseraOptions {
            use_tile_store: true,
            tile_coverage_fallback: tessera::planner::CoverageFallback::Raw,
            tile_store_url: "memory://configurations-tiles".into(),
            ..Default::default()
        },
    ];
    for options in &semantics {
        let baseline = training_set(
            &events,
            &spine,
            SessionConfig::new().with_target_partitions(1),
            None,
            1,
            options,
        )
        .await;
        assert_eq!(baseline.num_rows(), 700);
        for trial in 0..4 {
            let partitions = rng.gen_range(1..9);
            let batch_size = [1, 7, 64, 1000, 8192][rng.gen_range(0..5)];
            // Every sort must hold one batch within its fair share of the
            // pool; tile batches of sketch states (up to 8192 rows of ~1 KB)
            // need a larger pool than event batches.
            let pool = if options.use_tile_store {
                64 << 20
            } else {
                16 << 20
            };
            let memory_limit = rng.gen_bool(0.5).then_some(pool);
            let input_partitions = rng.gen_range(1..5);
            let config = SessionConfig::new()
                .with_target_partitions(partitions)
                .with_batch_size(batch_size)
                // Small enough for sorts to spill within the small pool.
                .with_sort_spill_reservation_bytes(64 << 10);
            let result = training_set(
                &events,
                &spine,
                config,
                memory_limit,
                input_partitions,
                options,
            )
            .await;
            assert_eq!(
                result, baseline,
                "trial {trial}: {partitions} partitions, batch size {batch_size}, memory limit {memory_limit:?}, {input_partitions} input partitions, {options:?}"
            );
        }
    }
}

/// The sweep holds one key's events at a time and accounts for them in
/// DataFusion's memory pool: a key too large for the pool fails with a
/// resources error naming what it needed (the sorts before it spill).
#[tokio::test]
async fn a_key_larger_than_the_memory_pool_fails_with_a_resources_error() {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(1_500_000)))
        .build_arc()
        .unwrap();
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(64)
        .with_sort_spill_reservation_bytes(64 << 10);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features();
    let ctx = SessionContext::new_with_state(tessera::register(state).build());
    tessera::execute_sql(
        &ctx,
        "CREATE TABLE events AS SELECT 1 AS k, to_timestamp_seconds(1740000000 + value) AS ts,
                repeat('x', 1000) AS note FROM generate_series(1, 2000);
         CREATE TABLE spine AS SELECT 1 AS k, to_timestamp_seconds(1740009999) AS ts;
         CREATE WINDOWED FEATURE u.notes FROM events KEY k TIMESTAMP ts AGGREGATE max(note)
             WINDOWS ('1d') WITH (bucket_duration = '1h');",
    )
    .await
    .unwrap();
    let frames = tessera::execute_sql(
        &ctx,
        "SELECT * FROM point_in_time('spine', 'ts', 'u.notes')",
    )
    .await
    .unwrap();
    let error = frames
        .into_iter()
        .next()
        .unwrap()
        .collect()
        .await
        .unwrap_err()
        .strip_backtrace();
    assert!(error.contains("the events of one key need"), "{error}");
}
