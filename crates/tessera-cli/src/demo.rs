//! `tessera demo`: the main job on generated data.
//!
//! Generates a year of card transactions for users whose activity is
//! skewed (a few users make most transactions), with amounts, categories,
//! banks and 384-dimensional embeddings; defines windowed features like the
//! seed document's; and builds a training set over a spine of
//! `(user, bank, time)` rows from the last 90 days, printing a sample and
//! how long each step took.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeListArray, Float32Array, Float64Array, Int32Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Sizes and seed of the generated data.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Number of users.
    #[arg(long, default_value_t = 20_000)]
    users: usize,
    /// Number of transactions over the year.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Number of training-set rows.
    #[arg(long, default_value_t = 100_000)]
    spine_rows: usize,
    /// Dimension of the transaction embeddings.
    #[arg(long, default_value_t = 384)]
    embedding_dim: i32,
    /// Random seed; the same seed gives the same data.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Where the demo backfills its tiles (a folder, file:///path or s3://bucket/prefix).
    #[arg(long = "tile-store", default_value = tessera::planner::DEFAULT_TILE_STORE_URL)]
    tile_store: String,
}

const BANKS: [&str; 6] = ["acme", "bluebank", "citadel", "dime", "evergreen", "fjord"];
const CATEGORIES: i32 = 40;
const BATCH_ROWS: usize = 65_536;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The seed document's example features, and a few more; `{dim}` is the embedding dimension.
const FEATURES: &str = "
CREATE WINDOWED FEATURE user.total_transaction_amount FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE sum(amount) WINDOWS ('1d', '7d', '30d') WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user.transaction_count FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE count(*) WINDOWS ('1d', '7d', '30d') WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user.most_active_categories FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE approx_top_k(category, 10) WINDOWS ('30d', '60d', 'all') WITH (bucket_duration = '1h');
CREATE WINDOWED FEATURE user.avg_embedding FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE mean(embedding) WINDOWS ('30d', '60d', 'all') DEFAULT array_repeat(0.0, {dim})
    WITH (bucket_duration = '1h');
CREATE WINDOWED FEATURE user.top_5_bank_amounts FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE max_by_n(bank, amount, 5) WINDOWS ('7d', '14d') WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user.lowest_5_bank_amounts FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE min_by_n(bank, amount, 5) WINDOWS ('7d', '14d') WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user.distinct_categories FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE approx_count_distinct(category) WINDOWS ('30d') WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user.median_amount FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE approx_percentile(amount, 0.5) WINDOWS ('30d') WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user.amount_std FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE std(amount) WINDOWS ('30d') WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user.large_purchase_count FROM transactions KEY user_id TIMESTAMP ts
    AGGREGATE count(*) WINDOWS ('30d') WHERE amount > 200 DEFAULT 0 WITH (bucket_duration = '1d');
CREATE WINDOWED FEATURE user_bank.total_transaction_amount FROM transactions KEY (user_id, bank) TIMESTAMP ts
    AGGREGATE sum(amount) WINDOWS ('7d', '14d') WITH (bucket_duration = '1d');
";

/// Runs the demo on `ctx`.
pub async fn run(ctx: &SessionContext, args: DemoArgs) -> Result<()> {
    let year_start = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp_micros();
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let users = UserActivity::new(args.users.max(1), &mut rng);

    let started = Instant::now();
    let transactions = generate_transactions(&args, &users, year_start, &mut rng)?;
    let spine = generate_spine(&args, &users, year_start, &mut rng)?;
    ctx.register_table(
        "transactions",
        Arc::new(MemTable::try_new(transactions.0, transactions.1)?),
    )?;
    ctx.register_table(
        "spine",
        Arc::new(MemTable::try_new(spine.0, vec![spine.1])?),
    )?;
    println!(
        "generated {} transactions of {} users and {} spine rows in {:.1?}",
        args.events,
        args.users,
        args.spine_rows,
        started.elapsed()
    );

    let definitions = FEATURES.replace("{dim}", &args.embedding_dim.to_string());
    tessera::execute_sql(ctx, &definitions).await?;
    let features = tessera::planner::feature_registry(ctx)?.list()?;
    let names: Vec<String> = features.iter().map(|f| format!("'{}'", f.name)).collect();
    let columns: usize = features.iter().map(|f| f.windows.len()).sum();
    println!(
        "defined {} windowed features ({columns} feature columns)\n",
        features.len()
    );

    let query = format!(
        "SELECT * FROM point_in_time('spine', 'ts', {})",
        names.join(", ")
    );
    for (label, aligned) in [("exact", false), ("aligned", true)] {
        tessera::execute_sql(
            ctx,
            &format!("SET tessera.align_offline_chalk_window_with_materialization = {aligned}"),
        )
        .await?;
        let spinner = spinner(&format!("building the training set with {label} windows"));
        let started = Instant::now();
        let batches = tessera::execute_sql(ctx, &query)
            .await?
            .remove(0)
            .collect()
            .await?;
        let elapsed = started.elapsed();
        spinner.finish_and_clear();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        println!(
            "{label:>7}: {rows} rows x {} columns in {elapsed:.2?} ({:.0} spine rows/s over {} events)",
            batches.first().map_or(0, RecordBatch::num_columns),
            rows as f64 / elapsed.as_secs_f64(),
            args.events
        );
        if !aligned {
            print_sample(&batches)?;
        }
    }
    tessera::execute_sql(
        ctx,
        "SET tessera.align_offline_chalk_window_with_materialization = false",
    )
    .await?;
    let year = (year_start, year_start + 366 * MICROS_PER_DAY);
    backfill_and_compare(ctx, &args.tile_store, &features, year).await
}

/// Backfills every feature's tiles over `range` with a progress bar, then
/// runs the training set from raw events and from tiles and checks they agree.
async fn backfill_and_compare(
    ctx: &SessionContext,
    url: &str,
    features: &[Arc<tessera::FeatureDefinition>],
    range: (i64, i64),
) -> Result<()> {
    use tessera::planner::{
        BackfillRequest, PlanVariant, TesseraOptions, TileStore, compare_plans, plan_backfill,
        run_backfill,
    };
    let store = TileStore::open(url)?;
    let request = BackfillRequest {
        features: features.iter().map(|f| f.name.clone()).collect(),
        lower: range.0,
        upper: range.1,
        chunk: None,
    };
    let state = ctx.state();
    let plan = plan_backfill(&state, &request)?;
    println!(
        "\nbackfilling {} tile sets of {} features to {url}",
        plan.tile_sets.len(),
        features.len()
    );
    let started = Instant::now();
    let progress = crate::aggregate::BackfillBar::new(plan.chunk_count());
    let report = run_backfill(&state, &store, &plan, &progress).await;
    progress.finish();
    println!(
        "{}",
        crate::aggregate::describe_backfill(&report?, &store, started.elapsed())
    );
    let variants = [
        PlanVariant {
            label: "raw events".to_string(),
            options: TesseraOptions::default(),
        },
        PlanVariant {
            label: "tiles".to_string(),
            options: TesseraOptions {
                use_tile_store: true,
                tile_store_url: url.to_string(),
                ..TesseraOptions::default()
            },
        },
    ];
    let names: Vec<String> = features.iter().map(|f| f.name.to_string()).collect();
    let spinner = spinner("building the exact training set from raw events and from tiles");
    let comparison = compare_plans(&ctx.table("spine").await?, "ts", &names, &variants, 1e-9).await;
    spinner.finish_and_clear();
    let comparison = comparison?;
    print!("\n{comparison}");
    let disagreeing: Vec<&str> = comparison
        .columns
        .iter()
        .filter(|c| !c.agrees())
        .map(|c| c.column.as_str())
        .collect();
    let percentiles: Vec<String> = features
        .iter()
        .filter(|f| f.aggregate.function == "approx_percentile")
        .map(|f| format!("{}__", f.name))
        .collect();
    // Column names are `<feature>__<window>__`.
    let (medians, others): (Vec<&str>, Vec<&str>) = disagreeing
        .iter()
        .partition(|column| percentiles.iter().any(|p| column.starts_with(p.as_str())));
    println!(
        "tiles and raw events agree on {} of {} feature columns",
        comparison.columns.len() - disagreeing.len(),
        comparison.columns.len()
    );
    if !medians.is_empty() {
        println!(
            "  {}: raw events give the exact order statistic, tiles the t-digest's answer (within its rank error)",
            medians.join(", ")
        );
    }
    if !others.is_empty() {
        println!("  differing: {}", others.join(", "));
    }
    Ok(())
}

/// Prints the first rows; vector columns are summarised by their first elements.
fn print_sample(batches: &[RecordBatch]) -> Result<()> {
    let Some(first) = batches.first() else {
        return Ok(());
    };
    let rows = first.slice(0, first.num_rows().min(6));
    let schema = rows.schema();
    let (vectors, scalars): (Vec<usize>, Vec<usize>) = (0..schema.fields().len())
        .partition(|&i| matches!(schema.field(i).data_type(), DataType::FixedSizeList(_, _)));
    println!("{}", pretty_format_batches(&[rows.project(&scalars)?])?);
    for i in vectors {
        let column = rows.column(i).as_fixed_size_list();
        let head: Vec<String> = (0..column.len().min(3))
            .map(|row| {
                let values = column.value(row);
                let values = values.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                let shown: Vec<String> = values
                    .values()
                    .iter()
                    .take(3)
                    .map(|v| format!("{v:.3}"))
                    .collect();
                format!("[{}, … {} dims]", shown.join(", "), values.len())
            })
            .collect();
        println!("{}: {}", schema.field(i).name(), head.join("  "));
    }
    Ok(())
}

fn spinner(message: &str) -> ProgressBar {
    let spinner = ProgressBar::new_spinner().with_message(message.to_string());
    spinner.enable_steady_tick(Duration::from_millis(100));
    spinner
}

fn progress(total: usize, message: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64).with_message(message.to_string());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>24} [{bar:40}] {human_pos}/{human_len} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Zipf-like activity: user `i` transacts in proportion to `1 / (i + 1)^0.9`.
struct UserActivity {
    cumulative: Vec<f64>,
    home_bank: Vec<u8>,
}

impl UserActivity {
    fn new(users: usize, rng: &mut SmallRng) -> Self {
        let mut total = 0.0;
        let cumulative = (0..users)
            .map(|i| {
                total += 1.0 / ((i + 1) as f64).powf(0.9);
                total
            })
            .collect();
        let home_bank = (0..users)
            .map(|_| rng.gen_range(0..BANKS.len() as u8))
            .collect();
        Self {
            cumulative,
            home_bank,
        }
    }

    fn sample(&self, rng: &mut SmallRng) -> usize {
        let target = rng.r#gen::<f64>() * self.cumulative.last().copied().unwrap_or(0.0);
        self.cumulative
            .partition_point(|&c| c < target)
            .min(self.cumulative.len() - 1)
    }
}

fn transactions_schema(embedding_dim: i32) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("user_id", DataType::Int32, false),
        Field::new("bank", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", DataType::Float64, true),
        Field::new("category", DataType::Int32, false),
        Field::new(
            "embedding",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                embedding_dim,
            ),
            true,
        ),
    ]))
}

type Partitions = (SchemaRef, Vec<Vec<RecordBatch>>);

fn generate_transactions(
    args: &DemoArgs,
    users: &UserActivity,
    year_start: i64,
    rng: &mut SmallRng,
) -> Result<Partitions> {
    let schema = transactions_schema(args.embedding_dim);
    let partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut output = vec![Vec::new(); partitions];
    let bar = progress(args.events, "generating transactions");
    let mut next_id = 0i64;
    while (next_id as usize) < args.events {
        let rows = BATCH_ROWS.min(args.events - next_id as usize);
        let batch = transaction_batch(&schema, args, users, year_start, next_id, rows, rng)?;
        output[(next_id as usize / BATCH_ROWS) % partitions].push(batch);
        next_id += rows as i64;
        bar.inc(rows as u64);
    }
    bar.finish_and_clear();
    Ok((schema, output))
}

fn transaction_batch(
    schema: &SchemaRef,
    args: &DemoArgs,
    users: &UserActivity,
    year_start: i64,
    first_id: i64,
    rows: usize,
    rng: &mut SmallRng,
) -> Result<RecordBatch> {
    let user_ids: Vec<usize> = (0..rows).map(|_| users.sample(rng)).collect();
    let banks: StringArray = user_ids
        .iter()
        .map(|&u| {
            // Mostly the home bank, sometimes another.
            let bank = if rng.gen_bool(0.85) {
                users.home_bank[u] as usize
            } else {
                rng.gen_range(0..BANKS.len())
            };
            Some(BANKS[bank])
        })
        .collect();
    let times: TimestampMicrosecondArray = (0..rows)
        .map(|_| Some(year_start + rng.gen_range(0..365 * MICROS_PER_DAY)))
        .collect();
    let amounts: Float64Array = (0..rows)
        .map(|_| {
            // Log-normal amounts around 30, with 1% missing.
            (!rng.gen_bool(0.01))
                .then(|| (30.0 * (normal(rng) * 0.9).exp() * 100.0).round() / 100.0)
        })
        .collect();
    let categories: Int32Array = (0..rows)
        .map(|_| Some((rng.r#gen::<f64>().powi(2) * f64::from(CATEGORIES)) as i32))
        .collect();
    let dim = args.embedding_dim as usize;
    let values: Float32Array = (0..rows * dim)
        .map(|_| Some(rng.r#gen::<f32>() * 2.0 - 1.0))
        .collect();
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let embeddings = FixedSizeListArray::try_new(item, args.embedding_dim, Arc::new(values), None)?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(
            first_id..first_id + rows as i64,
        )),
        Arc::new(Int32Array::from_iter_values(
            user_ids.iter().map(|&u| u as i32),
        )),
        Arc::new(banks),
        Arc::new(times.with_timezone("UTC")),
        Arc::new(amounts),
        Arc::new(categories),
        Arc::new(embeddings),
    ];
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn generate_spine(
    args: &DemoArgs,
    users: &UserActivity,
    year_start: i64,
    rng: &mut SmallRng,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int32, false),
        Field::new("bank", DataType::Utf8, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("label", DataType::Int32, false),
    ]));
    let last_90_days = year_start + 275 * MICROS_PER_DAY;
    let users_ids: Vec<usize> = (0..args.spine_rows).map(|_| users.sample(rng)).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from_iter_values(
            users_ids.iter().map(|&u| u as i32),
        )),
        Arc::new(
            users_ids
                .iter()
                .map(|&u| Some(BANKS[users.home_bank[u] as usize]))
                .collect::<StringArray>(),
        ),
        Arc::new(
            (0..args.spine_rows)
                .map(|_| Some(last_90_days + rng.gen_range(0..90 * MICROS_PER_DAY)))
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
        Arc::new(Int32Array::from_iter_values(
            (0..args.spine_rows).map(|_| i32::from(rng.gen_bool(0.1))),
        )),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    let batches = (0..batch.num_rows())
        .step_by(BATCH_ROWS)
        .map(|offset| batch.slice(offset, BATCH_ROWS.min(batch.num_rows() - offset)))
        .collect();
    Ok((schema, batches))
}

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.r#gen();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
