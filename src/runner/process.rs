//! What the runners that start a process (subprocess, python, runner executables) make of
//! the supervisor's [`Report`]: the error kind, the words, the details and the outcome, and the
//! per-task scratch directory. One definition, so that a task killed by the OOM killer or
//! stopped by its timeout reads the same whichever runner ran it.

use std::process::Command;

use wove_proto::{ErrorInfo, ErrorKind};

use super::Outcome;
use crate::config::RunnerSettings;
use crate::supervise::{ChildExit, Report, Stop};

/// The task's identity in its environment (`WOVE_RUN_ID`, `WOVE_TASK_ID`), as every process
/// runner gives it.
pub(crate) fn set_task_identity(command: &mut Command, run_id: &str, task_id: &str) {
    command.env(wove_proto::env::RUN_ID, run_id).env(wove_proto::env::TASK_ID, task_id);
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
