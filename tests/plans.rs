//! Physical plans pinned with insta snapshots, one per window source: raw
//! events, buckets built from raw events, buckets with a raw continuous
//! buffer, and tiles (whose events are pruned per key) — including the
//! repartitioning and sorts the optimizer adds for the sweep's declared
//! requirements, and their absence where bucketed windows from tiles are
//! answered by lookups.

use datafusion::physical_plan::displayable;
use datafusion::prelude::SessionConfig;

use crate::common::run;

async fn physical_plan(settings: &str) -> String {
    physical_plan_of(settings, "'u.amount'").await
}

/// The plan of the training set of `features` (SQL string literals) after `settings`.
async fn physical_plan_of(settings: &str, features: &str) -> String {
    let ctx = tessera::new_context(SessionConfig::new().with_target_partitions(2));
    run(
        &ctx,
        &format!(
            "CREATE TABLE t (user_id INT, ts TIMESTAMP, amount DOUBLE) AS VALUES (1, TIMESTAMP '2025-03-01 10:00:00', 1.0);
             CREATE TABLE spine (user_id INT, ts TIMESTAMP) AS VALUES (1, TIMESTAMP '2025-03-10 00:00:00');
             CREATE WINDOWED FEATURE u.amount FROM t KEY user_id TIMESTAMP ts AGGREGATE sum(amount)
                 WINDOWS ('1d', '30d') WITH (bucket_duration = '1d', bucket_durations = '1h: 1d');
             CREATE WINDOWED FEATURE u.amount_max FROM t KEY user_id TIMESTAMP ts AGGREGATE max(amount)
                 WINDOWS ('1d', '30d') WITH (bucket_duration = '1d', bucket_durations = '1h: 1d');
             {settings}"
        ),
    )
    .await
    .unwrap();
    let frame = tessera::execute_sql(
        &ctx,
        &format!("SELECT * FROM point_in_time('spine', 'ts', {features})"),
    )
    .await
    .unwrap()
    .remove(0);
    let plan = frame.create_physical_plan().await.unwrap();
    displayable(plan.as_ref()).indent(true).to_string()
}

#[tokio::test]
async fn raw_events_plan() {
    insta::assert_snapshot!("raw_events", physical_plan("").await);
}

#[tokio::test]
async fn buckets_plan() {
    insta::assert_snapshot!(
        "buckets",
        physical_plan("SET tessera.use_materialized_offline_query = true;").await
    );
}

#[tokio::test]
async fn buffered_buckets_plan() {
    let settings = "SET tessera.use_materialized_offline_query = true; SET tessera.continuous_buffer_duration = '36h';";
    insta::assert_snapshot!("buffered_buckets", physical_plan(settings).await);
}

/// Two aggregations of one series on two grids: one scan per grid reads
/// both aggregations' states from the files they share.
#[tokio::test]
async fn tiles_plan() {
    let settings = "SET tessera.tile_store_url = 'memory://plans-tiles';
        BACKFILL WINDOWED FEATURES u.amount, u.amount_max FROM '2025-01-01T00:00:00Z' TO '2025-03-09T00:00:00Z';
        SET tessera.use_tile_store = true;";
    insta::assert_snapshot!(
        "tiles",
        physical_plan_of(settings, "'u.amount', 'u.amount_max'").await
    );
}

/// The same features bucketed from tiles: sums and maxima merge in
/// constant time, so the stage is answered by tile lookups — no
/// repartition or sort of spine or tiles, none to restore spine order, and
/// no events read (the events' plan is still there for uncovered buckets).
#[tokio::test]
async fn bucketed_tiles_plan() {
    let settings = "SET tessera.tile_store_url = 'memory://plans-bucketed-tiles';
        BACKFILL WINDOWED FEATURES u.amount, u.amount_max FROM '2025-01-01T00:00:00Z' TO '2025-03-09T00:00:00Z';
        SET tessera.use_tile_store = true;
        SET tessera.use_materialized_offline_query = true;";
    insta::assert_snapshot!(
        "bucketed_tiles",
        physical_plan_of(settings, "'u.amount', 'u.amount_max'").await
    );
}
