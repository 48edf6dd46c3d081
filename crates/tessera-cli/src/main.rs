//! The `tessera` command line: run SQL with feature DDL, manage tiles, run the demo.

mod aggregate;
mod compare;
mod demo;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Point-in-time windowed feature aggregations on Apache DataFusion.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    /// Caps the memory DataFusion's operators may hold (e.g. 1G, 512M): sorts
    /// spill to disk past it; what cannot spill fails naming what needed the memory.
    #[arg(long = "memory-limit", value_name = "SIZE", global = true)]
    memory_limit: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run SQL (DataFusion SQL plus feature DDL and point_in_time); a REPL without -f or -c.
    Sql {
        /// A file of `;`-separated statements.
        #[arg(short = 'f', long = "file", conflicts_with = "command")]
        file: Option<PathBuf>,
        /// Statements given inline.
        #[arg(short = 'c', long = "command")]
        command: Option<String>,
        /// The tile store (sets tessera.tile_store_url): a folder, file:///path or s3://bucket/prefix.
        #[arg(long = "tile-store", value_name = "URL")]
        tile_store: Option<String>,
    },
    /// Backfill, list and vacuum the Parquet tiles of windowed aggregations.
    Aggregate {
        #[command(subcommand)]
        command: aggregate::AggregateCommand,
    },
    /// Generate a transactions data set, define features and build a training set.
    Demo(demo::DemoArgs),
    /// Run one training set under several option sets and compare the answers and times.
    Compare(compare::CompareArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = match new_context(cli.memory_limit.as_deref()) {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("error: {}", e.strip_backtrace());
            return ExitCode::FAILURE;
        }
    };
    if let Command::Sql {
        tile_store: Some(url),
        ..
    } = &cli.command
        && let Err(e) = set_tile_store(&ctx, url)
    {
        eprintln!("error: {}", e.strip_backtrace());
        return ExitCode::FAILURE;
    }
    let outcome = match cli.command {
        Command::Sql {
            file: Some(path), ..
        } => match std::fs::read_to_string(&path) {
            Ok(text) => sql::run_script(&ctx, &text).await,
            Err(e) => Err(datafusion::common::DataFusionError::Execution(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        },
        Command::Sql {
            command: Some(text),
            ..
        } => sql::run_script(&ctx, &text).await,
        Command::Sql { .. } => sql::repl(&ctx).await,
        Command::Demo(args) => demo::run(&ctx, args).await,
        Command::Compare(args) => compare::run(&ctx, args).await,
        Command::Aggregate { command } => aggregate::run(&ctx, command).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.strip_backtrace());
            ExitCode::FAILURE
        }
    }
}

/// Points the session's `tessera.tile_store_url` at `url`.
pub fn set_tile_store(ctx: &SessionContext, url: &str) -> datafusion::common::Result<()> {
    ctx.state_ref()
        .write()
        .config_mut()
        .options_mut()
        .set("tessera.tile_store_url", url)
}

/// A Tessera session; with `memory_limit` (e.g. `1G`), its operators share a
/// pool of that size, in which sorts spill to disk rather than fail.
fn new_context(memory_limit: Option<&str>) -> datafusion::common::Result<SessionContext> {
    let Some(limit) = memory_limit else {
        return Ok(tessera::new_context(SessionConfig::new()));
    };
    let bytes = SessionContext::parse_capacity_limit("--memory-limit", limit)?;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(bytes)))
        .build_arc()?;
    let state = SessionStateBuilder::new()
        .with_config(SessionConfig::new())
        .with_runtime_env(runtime)
        .with_default_features();
    Ok(SessionContext::new_with_state(
        tessera::register(state).build(),
    ))
}
