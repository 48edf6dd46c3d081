//! Running SQL text and the interactive prompt.

use std::io::{BufRead, Write};

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::common::Result;
use datafusion::prelude::SessionContext;

/// Runs every statement of `text`, printing each result; stops at the first error.
pub async fn run_script(ctx: &SessionContext, text: &str) -> Result<()> {
    for statement in tessera::planner::parse_sql(ctx, text)? {
        let batches = tessera::execute_statement(ctx, statement)
            .await?
            .collect()
            .await?;
        print_batches(&batches)?;
    }
    Ok(())
}

fn print_batches(batches: &[datafusion::arrow::array::RecordBatch]) -> Result<()> {
    if batches.iter().any(|b| b.num_columns() > 0) {
        println!("{}", pretty_format_batches(batches)?);
    }
    Ok(())
}

/// Reads statements from standard input until end of input; errors are printed, not fatal.
pub async fn repl(ctx: &SessionContext) -> Result<()> {
    let stdin = std::io::stdin();
    let mut pending = String::new();
    prompt(&pending);
    for line in stdin.lock().lines() {
        let line =
            line.map_err(|e| datafusion::common::DataFusionError::Execution(e.to_string()))?;
        if pending.is_empty() && matches!(line.trim(), "\\q" | "quit" | "exit") {
            break;
        }
        pending.push_str(&line);
        pending.push('\n');
        if line.trim_end().ends_with(';') {
            if let Err(e) = run_script(ctx, &pending).await {
                eprintln!("error: {}", e.strip_backtrace());
            }
            pending.clear();
        }
        prompt(&pending);
    }
    Ok(())
}

fn prompt(pending: &str) {
    print!(
        "{}",
        if pending.is_empty() {
            "tessera> "
        } else {
            "      -> "
        }
    );
    let _ = std::io::stdout().flush();
}
