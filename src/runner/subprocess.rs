//! The `subprocess` runner: any program in the image.
//!
//! Contract with the program (documented in docs/runners.md):
//! - its JSON `input` arrives on stdin (stdin is empty without one);
//! - it returns a result by writing JSON to the file named by
//!   `WOVE_RESULT_FILE`; no file (or an empty one) means `null`;
//! - exit code 0 is success; anything else is a `task_error` carrying the
//!   exit code and the tail of stderr;
//! - its stdout and stderr stream to the container's own.

use std::process::Command;
use std::time::Duration;

use wove_proto::task::SubprocessTask;
use wove_proto::{ErrorInfo, ErrorKind, Payload, PayloadError};

use super::process::{
    ended_with, kind_of, output_info, process_error, scratch_dir, set_task_identity, stopped_outcome,
};
use super::{BoxFuture, Context, Finished, Outcome, Prepared, Runner, TaskValue};
use crate::config::RunnerSettings;
use crate::supervise::{self, ChildExit};

/// Variable naming the file a program writes its JSON result to.
pub const RESULT_FILE_ENV: &str = "WOVE_RESULT_FILE";

/// Runs `{"runner": "subprocess", "program": ..., ...}` tasks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubprocessRunner;

impl Runner for SubprocessRunner {
    fn name(&self) -> &str {
        wove_proto::task::SUBPROCESS_RUNNER
    }

    fn prepare(&self, payload: &Payload, settings: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
        let task: SubprocessTask = payload.task_for(self.name())?.decode()?;
        task.validate()?;
        settings.limits.check_command(&task.args, task.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(Box::new(PreparedSubprocess { task, run_id: payload.run_id.clone(), task_id: payload.task_id.clone() }))
    }
}

struct PreparedSubprocess {
    task: SubprocessTask,
    run_id: String,
    task_id: String,
}

impl Prepared for PreparedSubprocess {
    fn run(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Finished> {
        Box::pin(async move { self.execute(ctx).await })
    }
}

impl PreparedSubprocess {
    async fn execute(self, ctx: Context) -> Finished {
        let scratch = match scratch_dir(&ctx.settings) {
            Ok(dir) => dir,
            Err(outcome) => return (*outcome).into(),
        };
        let result_path = scratch.path().join("result.json");
        let task = &self.task;

        let mut command = Command::new(&task.program);
        command.args(&task.args);
        if task.clear_env {
            command.env_clear();
        } else {
            ctx.settings.remove_secrets(&mut command);
        }
        command.envs(&task.env).env(RESULT_FILE_ENV, &result_path);
        set_task_identity(&mut command, &self.run_id, &self.task_id);
        if let Some(cwd) = &task.cwd {
            // Said here: a spawn that fails in `chdir` reads like a missing program.
            if !std::path::Path::new(cwd).is_dir() {
                let message = format!(
                    "cannot start `{}`: its working directory `{cwd}` (task.cwd) is not a directory",
                    task.program
                );
                return Outcome::failed(ErrorInfo::of(ErrorKind::SpawnFailed, message)).into();
            }
            command.current_dir(cwd);
        }
        let mut job = supervise::Job::new(command, ctx.process_limits());
        job.stdin = task.input.as_ref().map(|v| serde_json::to_vec(v).unwrap_or_default());
        job.timeout = task.timeout_seconds.map(Duration::from_secs_f64);
        let report = match supervise::run(&ctx.reaper, &ctx.signals, job).await {
            Ok(report) => report,
            Err(e) => {
                let error = ErrorInfo::of(ErrorKind::SpawnFailed, format!("cannot start `{}`: {e}", task.program));
                return Outcome::failed(error).into();
            }
        };
        tracing::info!(program = %task.program, status = %report.exit.describe(), "task process ended");
        let output = Some(output_info(&report));
        let outcome = if let Some(outcome) = stopped_outcome(&report, task.timeout_seconds) {
            outcome
        } else if report.exit != ChildExit::Exited(0) {
            let message = ended_with(&format!("`{}`", task.program), &report);
            Outcome::failed(process_error(kind_of(&report), message, &report))
        } else {
            match read_result(&result_path, ctx.settings.limits.result_bytes) {
                Ok(value) => Outcome::Succeeded(TaskValue::Json(value)),
                Err((kind, message)) => Outcome::failed(process_error(kind, message, &report)),
            }
        };
        Finished { outcome, output }
    }
}

/// The program's result: `null` without a file (or with an empty one), else
/// its JSON, exactly as written. The size is checked before a byte is read,
/// against the result bound (`--max-result-bytes`): a result file is its
/// result as sent, less the whitespace around it.
fn read_result(path: &std::path::Path, max_bytes: usize) -> Result<serde_json::Value, (ErrorKind, String)> {
    use std::io::Read as _;
    let unreadable =
        |e: std::io::Error| (ErrorKind::InvalidResult, format!("cannot read the result file ({RESULT_FILE_ENV}): {e}"));
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(serde_json::Value::Null),
        Err(e) => return Err(unreadable(e)),
    };
    let size = file.metadata().map_err(unreadable)?.len();
    let too_large = |size: u64| {
        (
            ErrorKind::ResultTooLarge,
            super::result_too_large_message(usize::try_from(size).unwrap_or(usize::MAX), max_bytes),
        )
    };
    if size > max_bytes as u64 {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // Still bounded if the file grows after the check (a descendant still writing).
    file.take(max_bytes as u64 + 1).read_to_end(&mut bytes).map_err(unreadable)?;
    if bytes.len() > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| (ErrorKind::InvalidResult, format!("the result file ({RESULT_FILE_ENV}) is not valid JSON: {e}")))
}
