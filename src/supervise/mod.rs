//! Running one child process as a supervisor should.
//!
//! The child gets its own process group, so signals and kills reach
//! everything it started. Its output streams through to ours. It ends when
//! its process exits — not when its pipes close, which an orphaned grandchild
//! can hold open forever. Stopping it (timeout or a cancelling signal) always
//! escalates the same way: TERM to the group, a grace period, KILL.

pub mod output;
pub mod reaper;

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::time::{sleep_until, Instant};

pub use output::Captured;
pub use reaper::{Reaper, Termination};

use crate::signals::Signals;

/// How long to keep reading output after the child exits; anything still
/// holding the pipes after that is an orphan we stop waiting for.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

/// What to run and how.
#[derive(Debug)]
pub struct Job {
    /// The command; its stdio is set up here.
    pub command: Command,
    /// Bytes for stdin, then closed. `None`: stdin is `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Stop the child after this long.
    pub timeout: Option<Duration>,
    /// Time between TERM and KILL.
    pub grace: Duration,
    /// Bytes of each stream to keep at each end.
    pub keep: usize,
}

/// Why the supervisor stopped the child, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The job's timeout ran out.
    Timeout,
    /// A cancelling signal arrived (SIGTERM, SIGINT).
    Cancelled(Signal),
}

/// How a supervised run went.
#[derive(Debug)]
pub struct Report {
    /// How the child ended.
    pub termination: Termination,
    /// Set when we stopped it.
    pub stopped: Option<Stop>,
    /// Its stdout sample.
    pub stdout: Captured,
    /// Its stderr sample.
    pub stderr: Captured,
}

/// Run `job` to completion under `signals`. Errors only when it cannot start.
pub async fn run(reaper: &Reaper, signals: &Signals, mut job: Job) -> std::io::Result<Report> {
    let mut forwarded = signals.subscribe();
    job.command
        .stdin(if job.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let (mut child, mut exited) = reaper.spawn(&mut job.command)?;
    let group = Pid::from_raw(child.id() as i32);
    tracing::debug!(pid = group.as_raw(), "task process started");

    let keep = job.keep;
    let stdout_seen = Arc::new(Mutex::new(Captured::new(keep)));
    let stderr_seen = Arc::new(Mutex::new(Captured::new(keep)));
    let out_task = child.stdout.take().and_then(|s| pipe::Receiver::from_owned_fd(s.into()).ok()).map(|rx| {
        let seen = stdout_seen.clone();
        tokio::spawn(output::pump(rx, tokio::io::stdout(), seen))
    });
    let err_task = child.stderr.take().and_then(|s| pipe::Receiver::from_owned_fd(s.into()).ok()).map(|rx| {
        let seen = stderr_seen.clone();
        tokio::spawn(output::pump(rx, tokio::io::stderr(), seen))
    });
    if let (Some(bytes), Some(stdin)) = (job.stdin.take(), child.stdin.take()) {
        if let Ok(mut tx) = pipe::Sender::from_owned_fd(stdin.into()) {
            // A task that does not read its input closes the pipe early: not our error.
            tokio::spawn(async move {
                let _ = tx.write_all(&bytes).await;
            });
        }
    }

    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let mut timeout_at = job.timeout.map_or(far, |t| Instant::now() + t);
    let mut kill_at = far;
    let mut stopped = None;
    // A cancel that arrived before the child existed still counts.
    if let Some(sig) = signals.cancelled() {
        stopped = Some(Stop::Cancelled(sig));
        signal_group(group, sig);
        kill_at = Instant::now() + job.grace;
    }

    let termination = loop {
        tokio::select! {
            t = &mut exited => break t.unwrap_or(Termination::Signaled(Signal::SIGKILL as i32)),
            _ = sleep_until(timeout_at) => {
                timeout_at = far;
                if stopped.is_none() {
                    tracing::warn!(timeout = ?job.timeout, "task timed out; stopping it");
                    stopped = Some(Stop::Timeout);
                    signal_group(group, Signal::SIGTERM);
                    kill_at = Instant::now() + job.grace;
                }
            }
            _ = sleep_until(kill_at) => {
                kill_at = far;
                tracing::warn!(grace = ?job.grace, "task still running after the grace period; killing its process group");
                signal_group(group, Signal::SIGKILL);
            }
            sig = forwarded.recv() => {
                let Ok(sig) = sig else { continue };
                signal_group(group, sig);
                if matches!(sig, Signal::SIGTERM | Signal::SIGINT) && stopped.is_none() {
                    stopped = Some(Stop::Cancelled(sig));
                    kill_at = Instant::now() + job.grace;
                }
            }
        }
    };
    // The task is over: whatever it left in its group goes with it.
    signal_group(group, Signal::SIGKILL);
    drop(child);

    let drain_until = Instant::now() + DRAIN_AFTER_EXIT;
    for task in [out_task, err_task].into_iter().flatten() {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(drain_until, task).await.is_err() {
            abort.abort();
            tracing::warn!("task output still open after the task exited; stopped reading it");
        }
    }
    let take = |seen: Arc<Mutex<Captured>>| std::mem::take(&mut *output::lock(&seen));
    Ok(Report { termination, stopped, stdout: take(stdout_seen), stderr: take(stderr_seen) })
}

fn signal_group(group: Pid, sig: Signal) {
    match killpg(group, sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(signal = %sig, error = %e, "cannot signal the task's process group"),
    }
}
