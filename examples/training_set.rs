//! Building a training set from Rust, as an offline job would.
//!
//! We register a small table of card transactions, define two windowed
//! features with the builder (the same checks as `CREATE WINDOWED FEATURE`),
//! and ask for their values as of a few `(user, time)` rows — first with
//! exact trailing windows, then with windows aligned to the 1-day buckets an
//! online store would merge. The two differ exactly where an event falls
//! between the window's true start and the bucket boundary before it.
//! Finally we backfill the features' tiles — pre-aggregated daily states —
//! and build the exact training set again from them: only the partial
//! buckets at the window edges are read from raw events, and the answers
//! are the same.
//!
//! Run it with `cargo run --example training_set`.

use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int32Array, RecordBatch, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::util::pretty::print_batches;
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionConfig;
use tessera::planner::{BackfillRequest, NoProgress, TileStore, plan_backfill, run_backfill};
use tessera::{FeatureDefinition, FeatureName, TesseraOptions, TrainingSet};

/// Microseconds of `2025-03-DD HH:00:00Z`.
fn march(day: i64, hour: i64) -> i64 {
    let march_first = 1_740_787_200_000_000; // 2025-03-01T00:00:00Z
    march_first + (day - 1) * 86_400_000_000 + hour * 3_600_000_000
}

#[tokio::main]
async fn main() -> Result<()> {
    let ctx = tessera::new_context(SessionConfig::new());

    // Events: who spent how much, when.
    let utc = Some("UTC".into());
    let transactions = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int32, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, utc.clone()),
                false,
            ),
            Field::new("amount", DataType::Float64, true),
        ])),
        vec![
            Arc::new(Int32Array::from(vec![1, 1, 1, 2, 2])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    march(1, 10),
                    march(3, 9),
                    march(9, 12),
                    march(8, 1),
                    march(9, 23),
                ])
                .with_timezone("UTC"),
            ),
            Arc::new(Float64Array::from(vec![
                Some(12.5),
                Some(80.0),
                Some(7.25),
                Some(300.0),
                None,
            ])),
        ],
    )?;
    ctx.register_table(
        "transactions",
        Arc::new(MemTable::try_new(
            transactions.schema(),
            vec![vec![transactions]],
        )?),
    )?;

    // Features: a sum over three windows, and a count of large purchases with a default.
    tessera::define_feature(
        &ctx,
        FeatureDefinition::builder("user.total_transaction_amount")
            .source("transactions")
            .key("user_id")
            .timestamp("ts")
            .aggregate("sum", ["amount"])
            .windows(["1d", "7d", "30d"])
            .bucket_duration("1d")
            .build()?,
    )?;
    tessera::define_feature(
        &ctx,
        FeatureDefinition::builder("user.large_purchases")
            .source("transactions")
            .key("user_id")
            .timestamp("ts")
            .aggregate("count", ["amount"])
            .windows(["7d"])
            .filter("amount >= 50")
            .bucket_duration("1d")
            .build()?,
    )?;

    // The spine: the rows we want features for, each at its own point in time.
    let spine = ctx
        .sql(
            "SELECT * FROM (VALUES
                (1, TIMESTAMP '2025-03-10T10:00:00Z', 'approved'),
                (2, TIMESTAMP '2025-03-10T10:00:00Z', 'declined'),
                (3, TIMESTAMP '2025-03-10T10:00:00Z', 'approved')) AS s(user_id, ts, outcome)",
        )
        .await?;

    println!("Exact windows (t - w, t]:");
    let exact = TrainingSet::new(spine.clone(), "ts")
        .feature("user.total_transaction_amount")
        .feature("user.large_purchases")
        .build()?;
    let exact_rows = exact.collect().await?;
    print_batches(&exact_rows)?;

    println!("Windows aligned to 1-day buckets [floor(t - w), t]:");
    let aligned_options = TesseraOptions {
        align_offline_chalk_window_with_materialization: true,
        ..TesseraOptions::default()
    };
    let aligned = TrainingSet::new(spine.clone(), "ts")
        .feature("user.total_transaction_amount[\"7d\"]")
        .options(aligned_options)
        .build()?;
    print_batches(&aligned.collect().await?)?;

    // Backfill every complete day of March into a tile store (an in-memory
    // one here; a folder or s3://bucket/prefix in production).
    let url = "memory://training_set_example";
    let request = BackfillRequest {
        features: vec![
            FeatureName::parse("user.total_transaction_amount")?,
            FeatureName::parse("user.large_purchases")?,
        ],
        lower: march(1, 0),
        upper: march(11, 0),
        chunk: None,
    };
    let state = ctx.state();
    let plan = plan_backfill(&state, &request)?;
    let report = run_backfill(&state, &TileStore::open(url)?, &plan, &NoProgress).await?;
    println!(
        "Backfilled {} tile sets: {} events into {} daily tiles (commit {}).",
        report.tile_sets, report.events, report.tile_rows, report.version
    );
    println!("Exact windows again, whole days from tiles:");
    let tile_options = TesseraOptions {
        use_tile_store: true,
        tile_store_url: url.to_string(),
        ..TesseraOptions::default()
    };
    let from_tiles = TrainingSet::new(spine, "ts")
        .feature("user.total_transaction_amount")
        .feature("user.large_purchases")
        .options(tile_options)
        .build()?
        .collect()
        .await?;
    print_batches(&from_tiles)?;
    assert_eq!(from_tiles, exact_rows, "tiles and raw events must agree");
    Ok(())
}
