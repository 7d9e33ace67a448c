//! The `python` runner: a Wove callable, run the way Wove's own worker runs it.
//!
//! A small helper script embedded in this binary is run by the image's
//! interpreter. It unpickles the callable and its arguments with cloudpickle,
//! runs it (awaiting what is awaitable), and writes the pickled result, or the
//! pickled exception with Wove's error dict, to a file — not to stdout, which
//! the task may print to. The events are then what `python -m
//! wove.backend_worker` would have sent.
//!
//! Pickles cross as raw bytes in files, both ways: the interpreter neither
//! imports `json` and `base64` on the way in nor encodes a large result on the
//! way out, and the worker encodes the result once, straight into the body.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use wove_proto::pickle::{self, Pickle};
use wove_proto::task::PythonTask;
use wove_proto::{ErrorInfo, ErrorKind, Payload, PayloadError};

use super::process::{ended_with, kind_of, output_info, process_error, scratch_dir, stopped_outcome};
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
        let decoded = |field: &str, text: &Option<String>| {
            let text = text.as_deref().ok_or_else(|| missing(field))?;
            Pickle::from_base64(text)
                .map(|p| p.0)
                .map_err(|e| PayloadError::Field { field: field.into(), problem: format!("is not valid base64: {e}") })
        };
        let callable_pickle = decoded("callable_pickle", &payload.callable_pickle)?;
        let args_pickle = decoded("args_pickle", &payload.args_pickle)?;
        options.validate()?;
        Ok(Box::new(PreparedPython {
            interpreter: options.interpreter.unwrap_or_else(|| settings.python.clone()),
            timeout_seconds: options.timeout_seconds,
            callable_pickle,
            args_pickle,
        }))
    }
}

struct PreparedPython {
    interpreter: String,
    timeout_seconds: Option<f64>,
    callable_pickle: Vec<u8>,
    args_pickle: Vec<u8>,
}

/// What the helper writes back when the callable did not return (it returned:
/// `result.pickle`).
#[derive(Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum HelperOutcome {
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
        let dir = scratch.path();
        for (name, bytes) in [("callable.pickle", &self.callable_pickle), ("args.pickle", &self.args_pickle)] {
            if let Err(e) = std::fs::write(dir.join(name), bytes) {
                let error = ErrorInfo::of(ErrorKind::WorkDirUnavailable, format!("cannot write the task input: {e}"));
                return Outcome::failed(error).into();
            }
        }
        drop((self.callable_pickle, self.args_pickle));

        let mut command = Command::new(&self.interpreter);
        command.arg("-c").arg(HELPER).arg(dir);
        ctx.settings.remove_secrets(&mut command);
        let mut job = supervise::Job::new(command, ctx.process_limits());
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
        let outcome = match read_outcome(dir, ctx.settings.limits.result_bytes) {
            Some(outcome) => outcome,
            None => {
                // The interpreter died before reporting: a crash, os._exit, or the OOM killer.
                let message = format!("{}, before reporting an outcome", ended_with("the Python process", &report));
                Outcome::failed(process_error(kind_of(&report), message, &report))
            }
        };
        Finished { outcome, output }
    }
}

/// What the helper left in `dir`, if anything.
fn read_outcome(dir: &Path, max_result_bytes: usize) -> Option<Outcome> {
    let result = dir.join("result.pickle");
    if let Ok(meta) = std::fs::metadata(&result) {
        // Refused before it is read: a result far over the limit must not cost the memory.
        let size = pickle::encoded_len(usize::try_from(meta.len()).unwrap_or(usize::MAX));
        if size > max_result_bytes {
            return Some(Outcome::failed(super::result_too_large(size, max_result_bytes)));
        }
        return match std::fs::read(&result) {
            Ok(bytes) => Some(Outcome::Succeeded(TaskValue::Pickle(Pickle(bytes)))),
            Err(e) => Some(Outcome::failed(ErrorInfo::of(
                ErrorKind::WorkDirUnavailable,
                format!("cannot read the task's result: {e}"),
            ))),
        };
    }
    let written = std::fs::read(dir.join("outcome.json")).ok()?;
    Some(match serde_json::from_slice::<HelperOutcome>(&written).ok()? {
        HelperOutcome::Error { error, exception_pickle } => Outcome::Failed { error, exception_pickle },
        // Wove's worker answers a task's own CancelledError with task_cancelled.
        HelperOutcome::Cancelled => Outcome::Cancelled(None),
        HelperOutcome::SetupError { kind, message } => Outcome::failed(ErrorInfo::worker(kind, message)),
    })
}
