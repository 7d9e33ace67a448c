//! Runner executables: a task whose runner is not built in runs the program
//! `wove-runner-<name>` from the runner path (see [`super::lookup`]), under
//! the same supervision as a `subprocess` task, speaking the runner protocol
//! ([`super::protocol`], documented in docs/runners.md).
//!
//! What the runner gets:
//! - on stdin, one JSON document: `{"protocol": 1, "run_id", "task_id",
//!   "task_name", "attempt", "task": <the payload's task object, untouched>}`;
//! - in its environment: the worker's (minus the payload and the signing
//!   secrets), `WOVE_RUNNER_PROTOCOL=1`, `WOVE_REPORT_FD=3`, `WOVE_RUN_ID`,
//!   `WOVE_TASK_ID`, and each top-level string, number or boolean field of the
//!   task as `WOVE_TASK_<FIELD>` (upper case, other characters `_`), so a
//!   shell runner needs no JSON parser;
//! - file descriptor 3, its report channel.
//!
//! It never sees the callback URL (and so the token), the payload, or the
//! signing secrets.

use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use wove_proto::{ErrorInfo, ErrorKind, Payload, PayloadError};

use super::process::{ended_with, kind_of, output_info, process_error, set_task_identity, stopped_outcome};
use super::protocol::{self, Message, ReportReader, Reported, Violation};
use super::{BoxFuture, Context, Finished, Outcome, Prepared, Runner, TaskValue};
use crate::config::RunnerSettings;
use crate::supervise::{self, ChildExit, DRAIN_AFTER_EXIT};

/// Longest value passed as a `WOVE_TASK_<FIELD>` variable; longer fields are
/// only on stdin.
pub const MAX_FIELD_ENV: usize = 64 * 1024;

/// A runner executable found on the runner path.
#[derive(Debug, Clone)]
pub struct ExecutableRunner {
    name: String,
    path: PathBuf,
}

impl ExecutableRunner {
    /// The runner `name`, run from `path`.
    pub fn new(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self { name: name.into(), path: path.into() }
    }
}

impl Runner for ExecutableRunner {
    fn name(&self) -> &str {
        &self.name
    }

    fn prepare(&self, payload: &Payload, settings: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
        let task = payload.task_for(&self.name)?;
        // The one field the worker reads itself; the rest are the runner's.
        let timeout = match task.fields.get("timeout_seconds") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => return Err(PayloadError::field("task.timeout_seconds", "must be a number of seconds")),
        };
        wove_proto::task::check_seconds("task.timeout_seconds", timeout)?;
        let input = serde_json::json!({
            "protocol": protocol::VERSION,
            "run_id": payload.run_id,
            "task_id": payload.task_id,
            "task_name": payload.task_name,
            "attempt": attempt(),
            "task": task,
        });
        let fields = field_env(&task.fields);
        settings.limits.check_command(&[], fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(Box::new(PreparedExecutable {
            runner: self.clone(),
            input: serde_json::to_vec(&input).unwrap_or_default(),
            fields,
            run_id: payload.run_id.clone(),
            task_id: payload.task_id.clone(),
            timeout: timeout.map(Duration::from_secs_f64).or(settings.runner_timeout),
        }))
    }
}

fn attempt() -> u32 {
    std::env::var(wove_proto::env::AWS_BATCH_JOB_ATTEMPT).ok().and_then(|a| a.parse().ok()).unwrap_or(1)
}

/// `WOVE_TASK_<FIELD>` for each top-level scalar field of the task.
fn field_env(fields: &serde_json::Map<String, Value>) -> Vec<(String, String)> {
    fields
        .iter()
        .filter_map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            let name: String =
                key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
            (text.len() <= MAX_FIELD_ENV && !text.contains('\0')).then(|| (format!("WOVE_TASK_{name}"), text))
        })
        .collect()
}

struct PreparedExecutable {
    runner: ExecutableRunner,
    input: Vec<u8>,
    fields: Vec<(String, String)>,
    run_id: String,
    task_id: String,
    timeout: Option<Duration>,
}

impl Prepared for PreparedExecutable {
    fn run(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Finished> {
        Box::pin(async move { self.execute(ctx).await })
    }
}

impl PreparedExecutable {
    async fn execute(self, ctx: Context) -> Finished {
        let (read_end, write_end) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(ends) => ends,
            Err(e) => return spawn_failed(&self.runner, &format!("cannot make its report channel: {e}")),
        };
        let mut command = Command::new(&self.runner.path);
        ctx.settings.remove_secrets(&mut command);
        command
            .envs(self.fields.iter().map(|(k, v)| (k, v)))
            .env("WOVE_RUNNER_PROTOCOL", protocol::VERSION.to_string())
            .env("WOVE_REPORT_FD", protocol::REPORT_FD.to_string());
        set_task_identity(&mut command, &self.run_id, &self.task_id);
        put_at_fd_3(&mut command, &write_end);

        let reader = ReportReader::for_results_of(ctx.settings.limits.result_bytes);
        let reader = tokio::spawn(read_reports(read_end, reader, ctx.events.clone()));
        let mut job = supervise::Job::new(command, ctx.process_limits());
        job.stdin = Some(self.input);
        job.timeout = self.timeout;
        // Our copy of the write end must close once the child has its own, or
        // the channel would never reach end-of-file.
        job.close_after_spawn.push(write_end);
        let report = match supervise::run(&ctx.reaper, &ctx.signals, job).await {
            Ok(report) => report,
            Err(e) => {
                reader.abort();
                return spawn_failed(&self.runner, &e.to_string());
            }
        };
        tracing::info!(runner = %self.runner.name, status = %report.exit.describe(), "runner process ended");
        // Descendants that outlive the runner may hold the channel open: read
        // what is there, for at most as long as its output is drained.
        let abort = reader.abort_handle();
        let reported = match tokio::time::timeout(DRAIN_AFTER_EXIT, reader).await {
            Ok(Ok(reported)) => reported,
            _ => {
                abort.abort();
                tracing::warn!(runner = %self.runner.name, "report channel still open after the runner exited");
                Reported::default()
            }
        };
        for problem in &reported.problems {
            tracing::warn!(runner = %self.runner.name, "report channel: {problem}");
        }
        let output = Some(output_info(&report));
        let name = &self.runner.name;
        let stopped = stopped_outcome(&report, self.timeout.map(|t| t.as_secs_f64()));
        let outcome = match (stopped, reported.violation, reported.outcome) {
            (Some(stopped), _, _) => stopped,
            // A line too long to read may have been the result: never a success without it.
            (None, Some(Violation::TooLong { limit }), _) => {
                let message = format!(
                    "runner `{name}` wrote a report line longer than {limit} bytes, more than a result may be \
                     (--max-result-bytes, plus room for the message)"
                );
                Outcome::failed(process_error(ErrorKind::ResultTooLarge, message, &report))
            }
            // The runner's own error says more than our complaint about its other lines.
            (None, Some(violation), Some(Message::Error(e))) => {
                Outcome::failed(runner_error(e, &report).with_detail("report_problem", violation.to_string()))
            }
            (None, Some(violation), _) => {
                let message = format!("runner `{name}` broke the runner protocol: {violation}");
                Outcome::failed(process_error(ErrorKind::InvalidReport, message, &report))
            }
            // A structured error stands whatever the exit code; the code travels with it.
            (None, None, Some(Message::Error(e))) => Outcome::failed(runner_error(e, &report)),
            (None, None, Some(Message::Result(value))) if report.exit == ChildExit::Exited(0) => {
                Outcome::Succeeded(TaskValue::Json(value))
            }
            (None, None, None) if report.exit == ChildExit::Exited(0) => {
                Outcome::Succeeded(TaskValue::Json(Value::Null))
            }
            (None, None, _) => {
                let message = ended_with(&format!("runner `{}`", self.runner.name), &report);
                Outcome::failed(process_error(kind_of(&report), message, &report))
            }
        };
        Finished { outcome, output }
    }
}

/// A runner's structured error, with its exit code beside it.
fn runner_error(e: protocol::RunnerError, report: &supervise::Report) -> ErrorInfo {
    let mut error = ErrorInfo::task(e.kind, e.message)
        .retryable(e.retryable)
        .with_traceback(e.traceback.unwrap_or_else(|| report.stderr.tail_text()));
    error.details.extend(e.details);
    if let ChildExit::Exited(code) = report.exit {
        error = error.with_detail("exit_code", code);
    }
    error
}

fn spawn_failed(runner: &ExecutableRunner, why: &str) -> Finished {
    let message = format!("cannot start runner `{}` ({}): {why}", runner.name, runner.path.display());
    Outcome::failed(ErrorInfo::of(ErrorKind::SpawnFailed, message)).into()
}

/// Make `fd` the child's file descriptor 3, open across `exec`.
fn put_at_fd_3(command: &mut Command, fd: &OwnedFd) {
    use std::os::unix::process::CommandExt as _;
    let raw = fd.as_raw_fd();
    // SAFETY: runs in the forked child before exec, and calls only dup2 and
    // fcntl, which are async-signal-safe; it touches no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if raw == protocol::REPORT_FD {
                // Already there: just let it survive exec.
                let flags = libc_fcntl_getfd(raw)?;
                libc_fcntl_setfd(raw, flags & !nix::libc::FD_CLOEXEC)?;
            } else if nix::libc::dup2(raw, protocol::REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn libc_fcntl_getfd(fd: i32) -> std::io::Result<i32> {
    // SAFETY: fcntl with F_GETFD reads a descriptor's flags and nothing else.
    let flags = unsafe { nix::libc::fcntl(fd, nix::libc::F_GETFD) };
    if flags < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(flags)
    }
}

fn libc_fcntl_setfd(fd: i32, flags: i32) -> std::io::Result<()> {
    // SAFETY: fcntl with F_SETFD sets a descriptor's flags and nothing else.
    if unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, flags) } < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Read the report channel to its end, passing heartbeats and progress on as they come.
async fn read_reports(read_end: OwnedFd, mut reader: ReportReader, events: super::TaskEvents) -> Reported {
    let Ok(mut pipe) = tokio::net::unix::pipe::Receiver::from_owned_fd(read_end) else {
        return reader.finish();
    };
    let mut buf = Vec::with_capacity(crate::supervise::output::CHUNK);
    loop {
        buf.clear();
        match pipe.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return reader.finish(),
            Ok(_) => {
                for message in reader.feed(&buf) {
                    match message {
                        Message::Heartbeat => events.heartbeat(),
                        Message::Progress(value) => events.progress(value),
                        Message::Result(_) | Message::Error(_) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_fields_become_variables() {
        let fields = serde_json::json!({
            "runner": "thumb", "path": "/data/a.png", "width": 128, "keep-ratio": true,
            "sizes": [1, 2], "opts": {"q": 1}, "nul": "a\u{0}b", "none": null,
        });
        let env: Vec<(String, String)> = field_env(fields.as_object().unwrap());
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("WOVE_TASK_PATH"), Some("/data/a.png"));
        assert_eq!(get("WOVE_TASK_WIDTH"), Some("128"));
        assert_eq!(get("WOVE_TASK_KEEP_RATIO"), Some("true"));
        assert_eq!(get("WOVE_TASK_RUNNER"), Some("thumb"));
        for absent in ["WOVE_TASK_SIZES", "WOVE_TASK_OPTS", "WOVE_TASK_NUL", "WOVE_TASK_NONE"] {
            assert_eq!(get(absent), None, "{absent}");
        }
    }
}
