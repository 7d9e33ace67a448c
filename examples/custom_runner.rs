//! A worker binary with runners of its own, built on the `wove_worker` library.
//!
//! - `csv-summary` reads a CSV file and returns, for each numeric column, its
//!   count, minimum, maximum and mean. It reports progress while it reads, and
//!   fails with a structured error when the file or a column is missing.
//! - `reverse` returns its `text` reversed: the smallest runner there is.
//!
//! Every built-in runner, flag, event and exit code stays as documented.
//!
//! ```sh
//! cargo run --example custom_runner -- --print-events --payload-file examples/payloads/csv-summary.json
//! cargo run --example custom_runner -- --print-events --payload-file examples/payloads/reverse.json
//! ```

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;
use wove_worker::config::RunnerSettings;
use wove_worker::proto::{ErrorInfo, Payload, PayloadError};
use wove_worker::runner::{BoxFuture, Context, Finished, Outcome, Prepared, Registry, Runner, TaskEvents, TaskValue};

/// `{"runner": "csv-summary", "path": "...", "columns": [...], "progress_every": 1000}`
struct CsvSummary;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CsvTask {
    /// A CSV file with a header line; plain fields, no quoting.
    path: PathBuf,
    /// The columns to summarise. Default: every column whose values are all numbers.
    #[serde(default)]
    columns: Vec<String>,
    /// Report progress after this many rows.
    #[serde(default = "default_progress_every")]
    progress_every: usize,
}

fn default_progress_every() -> usize {
    1000
}

impl Runner for CsvSummary {
    fn name(&self) -> &str {
        "csv-summary"
    }

    /// Decoding here makes a bad task a bad payload, reported before anything runs.
    fn prepare(&self, payload: &Payload, _settings: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
        let task: CsvTask = payload.task_for(self.name())?.decode()?;
        if task.progress_every == 0 {
            return Err(PayloadError::Field {
                field: "task.progress_every".into(),
                problem: "must be at least 1".into(),
            });
        }
        Ok(Box::new(task))
    }
}

impl Prepared for CsvTask {
    fn run(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Finished> {
        let events = ctx.events.clone();
        Box::pin(async move {
            // File reading blocks: keep it off the worker's event loop.
            let outcome = tokio::task::spawn_blocking(move || summarise(&self, &events)).await;
            match outcome {
                Ok(Ok(summary)) => Outcome::Succeeded(TaskValue::Json(summary)),
                Ok(Err(error)) => Outcome::failed(*error),
                Err(e) => Outcome::failed(ErrorInfo::worker("SummaryPanicked", e.to_string())),
            }
            .into()
        })
    }
}

#[derive(Default)]
struct Column {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    numeric: bool,
}

fn summarise(task: &CsvTask, events: &TaskEvents) -> Result<serde_json::Value, Box<ErrorInfo>> {
    let file = std::fs::File::open(&task.path).map_err(|e| {
        ErrorInfo::task("FileNotFound", format!("cannot open {}: {e}", task.path.display()))
            .with_detail("path", task.path.display().to_string())
    })?;
    let mut lines = std::io::BufReader::new(file).lines();
    let read_error = |e: std::io::Error| Box::new(ErrorInfo::task("ReadFailed", e.to_string()).retryable(true));
    let header = lines.next().transpose().map_err(read_error)?.unwrap_or_default();
    let names: Vec<String> = header.split(',').map(|n| n.trim().to_string()).collect();
    for wanted in &task.columns {
        if !names.contains(wanted) {
            return Err(Box::new(
                ErrorInfo::task("NoSuchColumn", format!("the file has no column {wanted:?}"))
                    .with_detail("columns", names.clone()),
            ));
        }
    }
    let mut columns: Vec<Column> = names.iter().map(|_| Column { numeric: true, ..Column::default() }).collect();
    let mut rows = 0usize;
    for line in lines {
        let line = line.map_err(read_error)?;
        if line.trim().is_empty() {
            continue;
        }
        for (column, field) in columns.iter_mut().zip(line.split(',')) {
            match field.trim().parse::<f64>() {
                Ok(x) if column.numeric => {
                    column.min = if column.count == 0 { x } else { column.min.min(x) };
                    column.max = if column.count == 0 { x } else { column.max.max(x) };
                    column.sum += x;
                    column.count += 1;
                }
                _ => column.numeric = false,
            }
        }
        rows += 1;
        if rows.is_multiple_of(task.progress_every) {
            // Becomes a heartbeat event carrying this value; the runner never sees HTTP.
            events.progress(serde_json::json!({"rows": rows}));
        }
    }
    let mut summary = BTreeMap::new();
    for (name, column) in names.iter().zip(&columns) {
        let wanted =
            if task.columns.is_empty() { column.numeric && column.count > 0 } else { task.columns.contains(name) };
        if !wanted {
            continue;
        }
        if !column.numeric {
            return Err(Box::new(ErrorInfo::task(
                "NotNumeric",
                format!("column {name:?} has values that are not numbers"),
            )));
        }
        let mean = if column.count > 0 { column.sum / column.count as f64 } else { 0.0 };
        summary.insert(
            name.clone(),
            serde_json::json!({"count": column.count, "min": column.min, "max": column.max, "mean": mean}),
        );
    }
    Ok(serde_json::json!({"rows": rows, "columns": summary}))
}

/// `{"runner": "reverse", "text": "..."}`
struct Reverse;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReverseTask {
    text: String,
}

impl Runner for Reverse {
    fn name(&self) -> &str {
        "reverse"
    }

    fn prepare(&self, payload: &Payload, _settings: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
        let task: ReverseTask = payload.task_for(self.name())?.decode()?;
        Ok(Box::new(task))
    }
}

impl Prepared for ReverseTask {
    fn run(self: Box<Self>, _ctx: Context) -> BoxFuture<'static, Finished> {
        let reversed: String = self.text.chars().rev().collect();
        Box::pin(async move { Outcome::Succeeded(TaskValue::Json(reversed.into())).into() })
    }
}

fn main() -> ExitCode {
    wove_worker::run_cli(Registry::builtin().register(CsvSummary).register(Reverse))
}
