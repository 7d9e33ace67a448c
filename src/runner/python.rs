//! The `python` runner: a Wove callable, run the way Wove's own worker runs it.
//!
//! A small helper script embedded in this binary is run by the image's
//! interpreter. It unpickles the callable and its arguments with cloudpickle,
//! runs it (awaiting a coroutine), and writes the pickled result, or the
//! pickled exception with Wove's error dict, to a file — not to stdout, which
//! the task may print to. The events are then what `python -m
//! wove.backend_worker` would have sent.

use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use wove_proto::task::PythonTask;
use wove_proto::{ErrorInfo, ErrorKind, Payload, PayloadError};

use super::subprocess::{ended_with, kind_of, output_info, process_error, scratch_dir, stopped_outcome};
use super::{BoxFuture, Context, Finished, Outcome, Prepared, Runner, TaskValue};
use crate::config::RunnerSettings;
use crate::supervise;

/// The helper's source, run with `python3 -c`.
pub const HELPER: &str = include_str!("python_helper.py");

/// Runs Wove callables (`callable_pickle` + `args_pickle`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PythonRunner;

impl Runner for PythonRunner {
    fn name(&self) -> &str {
        wove_proto::task::PYTHON_RUNNER
    }

    fn prepare(&self, payload: &Payload, settings: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
        let options: PythonTask = match &payload.task {
            Some(spec) => spec.decode()?,
            None => PythonTask::default(),
        };
        let missing = |field: &str| PayloadError::Field {
            field: field.into(),
            problem: "missing (required by the python runner)".into(),
        };
        let callable_pickle = payload.callable_pickle.clone().ok_or_else(|| missing("callable_pickle"))?;
        let args_pickle = payload.args_pickle.clone().ok_or_else(|| missing("args_pickle"))?;
        options.validate()?;
        Ok(Box::new(PreparedPython {
            interpreter: options.interpreter.unwrap_or_else(|| settings.python.clone()),
            timeout_seconds: options.timeout_seconds,
            input: serde_json::json!({"callable_pickle": callable_pickle, "args_pickle": args_pickle}),
        }))
    }
}

struct PreparedPython {
    interpreter: String,
    timeout_seconds: Option<f64>,
    input: serde_json::Value,
}

/// What the helper writes back.
#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum HelperOutcome {
    Ok { result_pickle: String },
    Error { error: ErrorInfo, exception_pickle: Option<String> },
    Cancelled,
    SetupError { kind: String, message: String },
}

impl Prepared for PreparedPython {
    fn run(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Finished> {
        Box::pin(async move { self.execute(ctx).await })
    }
}

impl PreparedPython {
    async fn execute(self, ctx: Context) -> Finished {
        let scratch = match scratch_dir(&ctx.settings) {
            Ok(dir) => dir,
            Err(outcome) => return (*outcome).into(),
        };
        let in_path = scratch.path().join("input.json");
        let out_path = scratch.path().join("outcome.json");
        if let Err(e) = std::fs::write(&in_path, self.input.to_string()) {
            let error = ErrorInfo::of(ErrorKind::WorkDirUnavailable, format!("cannot write the task input: {e}"));
            return Outcome::failed(error).into();
        }

        let mut command = Command::new(&self.interpreter);
        command.arg("-c").arg(HELPER).arg(&in_path).arg(&out_path);
        ctx.settings.remove_secrets(&mut command);
        let mut job = supervise::Job::new(command, &ctx);
        job.timeout = self.timeout_seconds.map(Duration::from_secs_f64);
        let report = match supervise::run(&ctx.reaper, &ctx.signals, job).await {
            Ok(report) => report,
            Err(e) => {
                let message = format!("cannot start the Python interpreter `{}`: {e}", self.interpreter);
                return Outcome::failed(ErrorInfo::of(ErrorKind::InterpreterNotFound, message)).into();
            }
        };
        let output = Some(output_info(&report));
        if let Some(outcome) = stopped_outcome(&report, self.timeout_seconds) {
            return Finished { outcome, output };
        }
        let written = std::fs::read(&out_path).ok().and_then(|b| serde_json::from_slice::<HelperOutcome>(&b).ok());
        let outcome = match written {
            Some(HelperOutcome::Ok { result_pickle }) => Outcome::Succeeded(TaskValue::Pickle(result_pickle)),
            Some(HelperOutcome::Error { error, exception_pickle }) => Outcome::Failed { error, exception_pickle },
            // Wove's worker answers a task's own CancelledError with task_cancelled.
            Some(HelperOutcome::Cancelled) => Outcome::Cancelled(None),
            Some(HelperOutcome::SetupError { kind, message }) => Outcome::failed(ErrorInfo::worker(kind, message)),
            None => {
                // The interpreter died before reporting: a crash, os._exit, or the OOM killer.
                let message = format!("{}, before reporting an outcome", ended_with("the Python process", &report));
                Outcome::failed(process_error(kind_of(&report), message, &report))
            }
        };
        Finished { outcome, output }
    }
}
