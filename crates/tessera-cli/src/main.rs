//! The `tessera` command line: run SQL with feature DDL, or the demo.

mod compare;
mod demo;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use datafusion::prelude::SessionConfig;

/// Point-in-time windowed feature aggregations on Apache DataFusion.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
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
    },
    /// Generate a transactions data set, define features and build a training set.
    Demo(demo::DemoArgs),
    /// Run one training set under several option sets and compare the answers and times.
    Compare(compare::CompareArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = tessera::new_context(SessionConfig::new());
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
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.strip_backtrace());
            ExitCode::FAILURE
        }
    }
}
