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

use super::{BoxFuture, Context, Finished, Outcome, Prepared, Runner, TaskValue};
use crate::config::RunnerSettings;
use crate::supervise::{self, ChildExit, Report, Stop};

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
        command
            .envs(&task.env)
            .env(RESULT_FILE_ENV, &result_path)
            .env("WOVE_RUN_ID", &self.run_id)
            .env("WOVE_TASK_ID", &self.task_id);
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
        let mut job = supervise::Job::new(command, &ctx);
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

/// Sizes of what the process printed.
pub(crate) fn output_info(report: &Report) -> wove_proto::OutputInfo {
    wove_proto::OutputInfo {
        stdout_bytes: report.stdout.total,
        stderr_bytes: report.stderr.total,
        truncated: report.stdout.truncated() || report.stderr.truncated(),
    }
}

/// A per-task scratch directory, removed when dropped.
/// Owned by the task's user when tasks run as another one, so it can write its result there.
pub(crate) fn scratch_dir(settings: &RunnerSettings) -> Result<tempfile::TempDir, Box<Outcome>> {
    let failed = |e: &dyn std::fmt::Display| {
        Box::new(Outcome::failed(ErrorInfo::of(
            ErrorKind::WorkDirUnavailable,
            format!("cannot create a scratch directory in {}: {e}", settings.work_dir.display()),
        )))
    };
    let dir = tempfile::Builder::new().prefix("wove-task-").tempdir_in(&settings.work_dir).map_err(|e| failed(&e))?;
    if let Some(user) = settings.task_user {
        std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).map_err(|e| failed(&e))?;
    }
    Ok(dir)
}

/// The outcome when the supervisor stopped the process (timeout or signal).
pub(crate) fn stopped_outcome(report: &Report, timeout_seconds: Option<f64>) -> Option<Outcome> {
    match report.stopped? {
        Stop::Cancelled(sig) => Some(Outcome::Cancelled(Some(sig))),
        Stop::Timeout => {
            let message = format!("task exceeded its timeout of {}s", timeout_seconds.unwrap_or_default());
            Some(Outcome::failed(process_error(ErrorKind::Timeout, message, report)))
        }
    }
}

/// `NonZeroExit`, `Killed`, or `OutOfMemory` when the cgroup saw an OOM kill.
pub(crate) fn kind_of(report: &Report) -> ErrorKind {
    match report.exit {
        _ if report.oom.is_some() => ErrorKind::OutOfMemory,
        ChildExit::Exited(_) => ErrorKind::NonZeroExit,
        ChildExit::Signaled(_) => ErrorKind::Killed,
    }
}

/// `` `prog` ended with exit code 2 ``, or, when the OOM killer did it, ``
/// `prog` was killed by the out-of-memory killer (the memory limit is 100 MiB;
/// peak usage 100 MiB) ``: the words a user acts on.
pub(crate) fn ended_with(what: &str, report: &Report) -> String {
    match (&report.oom, report.exit) {
        (Some(oom), ChildExit::Signaled(_)) => {
            format!("{what} was killed by the out-of-memory killer ({})", oom.describe())
        }
        (Some(oom), ChildExit::Exited(code)) => format!(
            "{what} ended with exit code {code}: a process of the task was killed by the out-of-memory killer ({})",
            oom.describe()
        ),
        (None, exit) => format!("{what} ended with {}", exit.describe()),
    }
}

/// An error dict describing a process: its status, output sizes and stderr tail.
pub(crate) fn process_error(kind: ErrorKind, message: String, report: &Report) -> ErrorInfo {
    let mut error = ErrorInfo::of(kind, message)
        .with_traceback(report.stderr.tail_text())
        .with_detail("stdout_bytes", report.stdout.total)
        .with_detail("stderr_bytes", report.stderr.total)
        .with_detail("output_truncated", report.stdout.truncated() || report.stderr.truncated());
    error = match report.exit {
        ChildExit::Exited(code) => error.with_detail("exit_code", code),
        ChildExit::Signaled(sig) => error.with_detail("signal", sig),
    };
    if let Some(oom) = &report.oom {
        if let Some(limit) = oom.limit {
            error = error.with_detail("memory_limit_bytes", limit);
        }
        if let Some(peak) = oom.peak {
            error = error.with_detail("memory_peak_bytes", peak);
        }
    }
    error
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
