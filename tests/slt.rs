//! Runs every `sql/*.slt` file with the `sqllogictest` crate against a fresh Tessera session.
//!
//! Values are printed with Arrow's display formatting (`NULL` for null,
//! `(empty)` for the empty string); a multi-line cell (an EXPLAIN plan)
//! becomes one row per line, so plans read naturally in the files.

use std::path::PathBuf;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};

struct TesseraDb {
    ctx: SessionContext,
}

#[async_trait]
impl AsyncDB for TesseraDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let Some(frame) = tessera::execute_sql(&self.ctx, sql).await?.pop() else {
            return Ok(DBOutput::StatementComplete(0));
        };
        let columns = frame.schema().fields().len();
        let batches = frame.collect().await?;
        if columns == 0 {
            return Ok(DBOutput::StatementComplete(0));
        }
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; columns],
            rows: format_rows(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "tessera"
    }
}

fn format_rows(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, DataFusionError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| match f.value(row).to_string() {
                    s if s.is_empty() => "(empty)".to_string(),
                    s => s,
                })
                .collect();
            expand_multiline(cells, &mut rows);
        }
    }
    Ok(rows)
}

/// A row whose cells span several lines becomes one row per line; the
/// continuation rows hold only the cells that still have a line.
fn expand_multiline(cells: Vec<String>, rows: &mut Vec<Vec<String>>) {
    let lines: Vec<Vec<&str>> = cells.iter().map(|c| c.lines().collect()).collect();
    let height = lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
    rows.push(
        lines
            .iter()
            .map(|l| l.first().copied().unwrap_or("").to_string())
            .collect(),
    );
    for line in 1..height {
        rows.push(
            lines
                .iter()
                .filter_map(|l| l.get(line).map(|s| s.to_string()))
                .collect(),
        );
    }
}

#[tokio::test]
async fn sql_logic_tests() {
    let directory = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .slt files in {}",
        directory.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = Runner::new(|| async {
            let config = SessionConfig::new().with_target_partitions(2);
            Ok(TesseraDb {
                ctx: tessera::new_context(config),
            })
        });
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}
