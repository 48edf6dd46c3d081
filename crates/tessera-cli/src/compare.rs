//! `tessera compare`: the plan-equivalence harness from the command line.

use std::path::PathBuf;

use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use tessera::planner::{PlanVariant, compare_plans};

/// What to compare.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// SQL that defines the tables and features (run first).
    #[arg(short = 'f', long = "definitions")]
    definitions: PathBuf,
    /// The spine: a table name or a SQL query.
    #[arg(long)]
    spine: String,
    /// The spine's time column.
    #[arg(long, default_value = "ts")]
    time: String,
    /// A feature or feature window to compare (repeatable).
    #[arg(long = "feature", required = true)]
    features: Vec<String>,
    /// A plan: exact, aligned, bucketed, buffered, or name:option=value,… (repeatable; the first is the baseline).
    #[arg(long = "plan", default_values = ["exact", "aligned", "bucketed", "buffered"])]
    plans: Vec<String>,
    /// Relative tolerance for floats.
    #[arg(long, default_value_t = 1e-9)]
    tolerance: f64,
    /// Exit with status 1 unless every plan agrees with the first.
    #[arg(long)]
    require_agreement: bool,
}

/// Runs the comparison and prints its report.
pub async fn run(ctx: &SessionContext, args: CompareArgs) -> Result<()> {
    let definitions = std::fs::read_to_string(&args.definitions).map_err(|e| {
        DataFusionError::Execution(format!("cannot read {}: {e}", args.definitions.display()))
    })?;
    for frame in tessera::execute_sql(ctx, &definitions).await? {
        frame.collect().await?;
    }
    let variants = args
        .plans
        .iter()
        .map(|p| PlanVariant::parse(p))
        .collect::<Result<Vec<_>>>()?;
    let spine = match args.spine.contains(char::is_whitespace) {
        true => ctx.sql(&args.spine).await?,
        false => ctx.table(args.spine.as_str()).await?,
    };
    let report = compare_plans(
        &spine,
        &args.time,
        &args.features,
        &variants,
        args.tolerance,
    )
    .await?;
    print!("{report}");
    if args.require_agreement && !report.all_agree() {
        return Err(DataFusionError::Execution("the plans disagree".to_string()));
    }
    Ok(())
}
