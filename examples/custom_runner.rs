//! A worker binary with one extra runner, built on the `wove_worker` library.
//!
//! Payloads with `"task": {"runner": "reverse", "text": "..."}` return the
//! text reversed; every built-in runner still works.
//!
//! ```sh
//! cargo run --example custom_runner -- --print-events --payload-file examples/payloads/reverse.json
//! ```

use std::process::ExitCode;

use serde::Deserialize;
use wove_worker::config::RunnerSettings;
use wove_worker::proto::{Payload, PayloadError};
use wove_worker::runner::{BoxFuture, Context, Finished, Outcome, Prepared, Registry, Runner, TaskValue};

/// The runner: decodes its fields in `prepare`, so a bad task is a bad payload.
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
    wove_worker::run_cli(Registry::builtin().register(Reverse))
}
