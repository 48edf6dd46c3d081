//! `tessera aggregate backfill | list | vacuum`: the tile store from the command line.
//!
//! Every subcommand first runs `--definitions FILE.sql` (the DDL that
//! registers tables and features) and opens the store named by
//! `--tile-store` (default `./tiles`).

use std::path::PathBuf;
use std::time::Instant as Clock;

use clap::{Args, Subcommand};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use indicatif::{ProgressBar, ProgressStyle};
use tessera::definitions::FeatureName;
use tessera::planner::{
    BackfillProgress, BackfillReport, BackfillRequest, ChunkReport, DEFAULT_TILE_STORE_URL,
    TileStore, estimate_events, list_aggregations, plan_backfill, run_backfill,
    vacuum_aggregations,
};
use tessera::tiles::VacuumReport;
use tessera::time::{Duration, Instant, format_instant, parse_instant};

/// Where the definitions and tiles are.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// SQL that creates the source tables and features (`CREATE TABLE`, `CREATE WINDOWED FEATURE`, …).
    #[arg(long = "definitions", value_name = "FILE.sql")]
    definitions: Option<PathBuf>,
    /// The tile store: a folder, file:///path or s3://bucket/prefix.
    #[arg(long = "tile-store", value_name = "URL", default_value = DEFAULT_TILE_STORE_URL)]
    tile_store: String,
}

/// `tessera aggregate …`
#[derive(Debug, Subcommand)]
pub enum AggregateCommand {
    /// Write the tiles of every complete bucket in [lower, upper) for the features.
    Backfill {
        /// A feature to backfill (repeat for several).
        #[arg(long = "feature", required = true)]
        features: Vec<String>,
        /// Write tiles to the offline tile store (the only store; required, as in the seed's CLI).
        #[arg(long = "store-offline", required = true)]
        store_offline: bool,
        /// ISO 8601 lower bound, inclusive.
        #[arg(long = "lower-bound")]
        lower_bound: String,
        /// ISO 8601 upper bound, exclusive.
        #[arg(long = "upper-bound")]
        upper_bound: String,
        /// Event time read per chunk and tile file, e.g. 30d (rounded up to whole buckets).
        #[arg(long = "chunk")]
        chunk: Option<String>,
        /// Print the tile sets, ranges and event counts without writing anything.
        #[arg(long = "dry-run")]
        dry_run: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print the store's series and tile sets with their coverage.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Expire tiles by retention and delete files no commit serves from.
    Vacuum {
        /// Expire what no query at or after this instant needs (default: now).
        #[arg(long = "horizon")]
        horizon: Option<String>,
        /// Keep unreferenced files younger than this (they may be a running backfill's), e.g. 1h.
        #[arg(long = "grace", default_value = "1h")]
        grace: String,
        /// Print what would be expired and deleted, changing nothing.
        #[arg(long = "dry-run")]
        dry_run: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs one `aggregate` subcommand.
pub async fn run(ctx: &SessionContext, command: AggregateCommand) -> Result<()> {
    match command {
        AggregateCommand::Backfill {
            features,
            store_offline: _,
            lower_bound,
            upper_bound,
            chunk,
            dry_run,
            store,
        } => {
            let store = prepare(ctx, &store).await?;
            let request = BackfillRequest {
                features: features
                    .iter()
                    .map(|f| FeatureName::parse(f))
                    .collect::<Result<_>>()?,
                lower: instant("--lower-bound", &lower_bound)?,
                upper: instant("--upper-bound", &upper_bound)?,
                chunk: chunk
                    .as_deref()
                    .map(|c| duration("--chunk", c))
                    .transpose()?,
            };
            backfill(ctx, &store, &request, dry_run).await
        }
        AggregateCommand::List { store } => {
            let store = prepare(ctx, &store).await?;
            let table = list_aggregations(&ctx.state(), &store).await?;
            println!("{}", pretty_format_batches(&[table])?);
            Ok(())
        }
        AggregateCommand::Vacuum {
            horizon,
            grace,
            dry_run,
            store,
        } => {
            let store = prepare(ctx, &store).await?;
            let horizon = match horizon {
                Some(text) => instant("--horizon", &text)?,
                None => now_micros(),
            };
            let grace =
                std::time::Duration::from_micros(duration("--grace", &grace)?.micros() as u64);
            let report = vacuum_aggregations(&ctx.state(), &store, horizon, grace, dry_run).await?;
            print_vacuum(&report, horizon, dry_run);
            Ok(())
        }
    }
}

/// Prints what a vacuum did (or, on a dry run, would do), warning about the
/// tile sets it leaves without any bucket.
fn print_vacuum(report: &VacuumReport, horizon: Instant, dry_run: bool) {
    let (expire, delete) = if dry_run {
        ("dry run: would expire", "would delete")
    } else {
        ("expired", "deleted")
    };
    println!(
        "{expire} {} range(s) (commit {}), {delete} {} file(s) ({} bytes), kept {} recent unreferenced file(s)",
        report.expired.len(),
        report
            .expire_version
            .map_or("none".to_string(), |v| v.to_string()),
        report.deleted_files.len(),
        report.deleted_bytes,
        report.kept_recent
    );
    let covers = if dry_run { "would cover" } else { "covers" };
    for tile_set in &report.emptied {
        eprintln!(
            "warning: tile set {tile_set} {covers} no bucket after this vacuum: no query at or after --horizon {} needs its buckets under its features' retention; to keep history for training sets, vacuum with an earlier --horizon",
            format_instant(horizon)
        );
    }
}

/// Runs the definitions and opens the store.
async fn prepare(ctx: &SessionContext, args: &StoreArgs) -> Result<TileStore> {
    if let Some(path) = &args.definitions {
        let text = std::fs::read_to_string(path).map_err(|e| {
            DataFusionError::Execution(format!("cannot read {}: {e}", path.display()))
        })?;
        for frame in tessera::execute_sql(ctx, &text).await? {
            frame.collect().await?;
        }
    }
    crate::set_tile_store(ctx, &args.tile_store)?;
    TileStore::open(&args.tile_store)
}

async fn backfill(
    ctx: &SessionContext,
    store: &TileStore,
    request: &BackfillRequest,
    dry_run: bool,
) -> Result<()> {
    let state = ctx.state();
    let plan = plan_backfill(&state, request)?;
    if dry_run {
        let counts = estimate_events(&state, &plan).await?;
        println!("dry run: nothing is written to {}", store.url());
        for (tile_set, events) in plan.tile_sets.iter().zip(counts) {
            let description = &tile_set.description;
            println!(
                "tile set {} (series {}): {} of {} by {} every {}, buckets [{}, {}) in {} chunk(s), {events} event(s); features {}",
                tile_set.id,
                description.series.id(),
                description.aggregation,
                description.series.source,
                description.series.keys.join(", "),
                description.series.grid()?.bucket(),
                format_instant(tile_set.range.0),
                format_instant(tile_set.range.1),
                tile_set.chunks.len(),
                description.features.join(", ")
            );
        }
        return Ok(());
    }
    let started = Clock::now();
    let progress = BackfillBar::new(plan.chunk_count());
    let report = run_backfill(&state, store, &plan, &progress).await;
    progress.finish();
    println!("{}", describe_backfill(&report?, store, started.elapsed()));
    Ok(())
}

/// One line about a finished backfill: what it wrote and how fast.
pub fn describe_backfill(
    report: &BackfillReport,
    store: &TileStore,
    elapsed: std::time::Duration,
) -> String {
    let seconds = elapsed.as_secs_f64();
    format!(
        "backfill committed version {} to {}: {} tile set(s), {} event(s) → {} tile row(s) in {} file(s), {} bytes, {:.1} s ({:.0} events/s)",
        report.version,
        store.url(),
        report.tile_sets,
        report.events,
        report.tile_rows,
        report.files,
        report.bytes,
        seconds,
        report.events as f64 / seconds.max(1e-9)
    )
}

/// Draws backfill progress on the terminal: chunks done, events, buckets, files and the event rate.
pub struct BackfillBar {
    bar: ProgressBar,
    started: Clock,
    /// Events, tile rows and files so far.
    totals: std::sync::Mutex<(u64, u64, usize)>,
}

impl BackfillBar {
    /// A bar for `chunks` chunks.
    pub fn new(chunks: usize) -> Self {
        let bar = ProgressBar::new(chunks as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} backfill [{bar:30}] {pos}/{len} chunks {msg} ({elapsed})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        Self {
            bar,
            started: Clock::now(),
            totals: std::sync::Mutex::new((0, 0, 0)),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl BackfillProgress for BackfillBar {
    fn chunk_done(&self, report: &ChunkReport) {
        let Ok(mut totals) = self.totals.lock() else {
            return;
        };
        totals.0 += report.events;
        totals.1 += report.tile_rows;
        totals.2 += report.files;
        let rate = totals.0 as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        self.bar.set_message(format!(
            "{} events, {} buckets, {} files, {rate:.0} events/s",
            totals.0, totals.1, totals.2
        ));
        self.bar.inc(1);
    }
}

fn instant(option: &str, text: &str) -> Result<i64> {
    parse_instant(text).map_err(|e| DataFusionError::Plan(format!("{option}: {e}")))
}

fn duration(option: &str, text: &str) -> Result<Duration> {
    Duration::parse(text).map_err(|e| DataFusionError::Plan(format!("{option}: {e}")))
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}
