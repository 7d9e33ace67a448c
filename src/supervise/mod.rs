//! Running one child process as a supervisor should.
//!
//! The child gets its own process group, so signals and kills reach
//! everything it started. Its output streams through to ours. It ends when
//! its process exits — not when its pipes close, which an orphaned grandchild
//! can hold open forever. Stopping it (timeout or a cancelling signal) always
//! escalates the same way: TERM to the group, a grace period, KILL.

pub mod child_exit;
pub mod escalation;
pub mod oom;
pub mod output;
pub mod reaper;

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

pub use child_exit::ChildExit;
use escalation::Escalation;
pub use output::Captured;
pub use reaper::{ReapMode, Reaper};

use crate::cgroup::MemoryCgroup;
use crate::config::TaskUser;
use crate::signals::Signals;

/// How long to keep reading output after the child exits; anything still
/// holding the pipes after that is an orphan we stop waiting for.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);
/// How long to wait for a killed process group (and stray orphans) to be gone.
pub const EMPTY_GROUP_WAIT: Duration = Duration::from_secs(5);

/// SIGKILL's number, as a child's status carries it.
const SIGKILL: i32 = Signal::SIGKILL as i32;
/// The exit code a shell gives when its child died of SIGKILL (128 + the signal).
const SHELL_SAW_SIGKILL: i32 = 128 + SIGKILL;

/// What to run and how.
#[derive(Debug)]
pub struct Job {
    /// The command; its stdio is set up here.
    pub command: Command,
    /// Bytes for stdin, then closed. `None`: stdin is `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// Stop the child after this long.
    pub timeout: Option<Duration>,
    /// How it is stopped, what is kept of its output, as whom it runs.
    pub limits: Limits,
    /// Our copies of descriptors the child inherits (a pipe's write end):
    /// closed as soon as the child is spawned, so that pipe ends when the child does.
    pub close_after_spawn: Vec<std::os::fd::OwnedFd>,
}

/// What bounds a job, whatever it runs: how it is stopped, what is kept of its output, as
/// whom it runs. The runners make it from their settings (`runner::Context::process_limits`).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Time between TERM and KILL after a timeout.
    pub grace: Duration,
    /// Time between TERM and KILL after a cancelling signal.
    pub cancel_grace: Duration,
    /// Bytes of each stream to keep at each end.
    pub keep: usize,
    /// Kill every leftover child of this process when the task ends (as init).
    pub sweep_orphans: bool,
    /// The memory cgroup the task runs in, to recognise an OOM kill.
    pub memory_cgroup: Option<MemoryCgroup>,
    /// Run the job as this user and group (the worker must be root).
    pub user: Option<TaskUser>,
}

impl Job {
    /// A job for `command` within `limits`.
    pub fn new(mut command: Command, limits: Limits) -> Self {
        if let Some(user) = limits.user {
            // As root, std also drops every supplementary group.
            command.uid(user.uid).gid(user.gid);
        }
        Self { command, stdin: None, timeout: None, limits, close_after_spawn: Vec::new() }
    }
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
    pub exit: ChildExit,
    /// Set when we stopped it.
    pub stopped: Option<Stop>,
    /// Its stdout sample.
    pub stdout: Captured,
    /// Its stderr sample.
    pub stderr: Captured,
    /// Set when it died of SIGKILL while the cgroup's OOM kill count rose.
    pub oom: Option<oom::OomKill>,
}

/// Run `job` to completion under `signals`. Errors only when it cannot start.
///
/// Its stages: start it, stream its output, watch it until it exits (stopping it on a timeout
/// or a signal), clear away what it left, and drain what it wrote.
pub async fn run(reaper: &Reaper, signals: &Signals, mut job: Job) -> std::io::Result<Report> {
    // Before the spawn, so that a signal in between is not missed.
    let mut forwarded = signals.subscribe();
    let oom = oom::OomWatch::start(job.limits.memory_cgroup.as_ref());
    let (mut child, exited) = start(reaper, &mut job)?;
    let group = Pid::from_raw(child.id() as i32);
    tracing::debug!(pid = group.as_raw(), "task process started");
    let streams = Streams::attach(&mut child, job.stdin.take(), job.limits.keep);

    let mut escalation = Escalation::new(Instant::now(), job.timeout, job.limits.grace, job.limits.cancel_grace);
    // A cancel that arrived before the child existed still counts.
    if let Some(sig) = signals.cancelled() {
        signal_all(group, escalation.on_signal(sig, Instant::now()));
    }
    let exit = watch(group, exited, &mut escalation, &mut forwarded, job.timeout).await;
    // The task is over: whatever it left in its group goes with it, and we
    // wait until the group is really gone before reporting.
    signal_group(group, Signal::SIGKILL);
    drop(child);
    let gone_by = Instant::now() + EMPTY_GROUP_WAIT;
    wait_group_empty(group, gone_by).await;
    if job.limits.sweep_orphans {
        sweep_orphans(gone_by).await;
    }
    let (stdout, stderr) = streams.drain().await;
    // SIGKILL, or the 128 + 9 of a shell whose child got it: only then is an OOM kill the cause.
    let killed = matches!(exit, ChildExit::Signaled(SIGKILL) | ChildExit::Exited(SHELL_SAW_SIGKILL));
    let oom = if killed { oom.fired() } else { None };
    Ok(Report { exit, stopped: escalation.stopped(), stdout, stderr, oom })
}

/// Spawn the child in a process group of its own, its stdio piped (stdin only when it has input).
fn start(reaper: &Reaper, job: &mut Job) -> std::io::Result<(Child, oneshot::Receiver<ChildExit>)> {
    job.command
        .stdin(if job.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let spawned = reaper.spawn(&mut job.command);
    job.close_after_spawn.clear();
    spawned
}

/// Until the child exits: the escalation's TERM and KILL when they fall due, and each
/// forwarded signal passed on to the group.
async fn watch(
    group: Pid,
    mut exited: oneshot::Receiver<ChildExit>,
    escalation: &mut Escalation,
    forwarded: &mut broadcast::Receiver<Signal>,
    timeout: Option<Duration>,
) -> ChildExit {
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    loop {
        tokio::select! {
            t = &mut exited => return t.unwrap_or(ChildExit::Signaled(SIGKILL)),
            _ = sleep_until(escalation.next_wake().unwrap_or(far)) => {
                let due = escalation.on_time(Instant::now());
                if due.contains(&Signal::SIGTERM) {
                    tracing::warn!(?timeout, "task timed out; stopping it");
                }
                if due.contains(&Signal::SIGKILL) {
                    tracing::warn!("task still running after its grace period; killing its process group");
                }
                signal_all(group, due);
            }
            sig = forwarded.recv() => {
                let Ok(sig) = sig else { continue };
                signal_all(group, escalation.on_signal(sig, Instant::now()));
            }
        }
    }
}

/// The child's output, streamed through to ours and sampled, and its input fed to it.
struct Streams {
    pumps: [Option<JoinHandle<()>>; 2],
    stdout: Arc<Mutex<Captured>>,
    stderr: Arc<Mutex<Captured>>,
}

impl Streams {
    fn attach(child: &mut Child, stdin: Option<Vec<u8>>, keep: usize) -> Self {
        let stdout = Arc::new(Mutex::new(Captured::new(keep)));
        let stderr = Arc::new(Mutex::new(Captured::new(keep)));
        let out =
            child.stdout.take().and_then(|s| pipe::Receiver::from_owned_fd(s.into()).ok()).map(|rx| {
                tokio::spawn(output::pump(rx, tokio::io::stdout(), stdout.clone(), crate::stdout::task_wrote))
            });
        let err = child
            .stderr
            .take()
            .and_then(|s| pipe::Receiver::from_owned_fd(s.into()).ok())
            .map(|rx| tokio::spawn(output::pump(rx, tokio::io::stderr(), stderr.clone(), |_| {})));
        if let (Some(bytes), Some(pipe)) = (stdin, child.stdin.take()) {
            if let Ok(mut tx) = pipe::Sender::from_owned_fd(pipe.into()) {
                // A task that does not read its input closes the pipe early: not our error.
                tokio::spawn(async move {
                    let _ = tx.write_all(&bytes).await;
                });
            }
        }
        Self { pumps: [out, err], stdout, stderr }
    }

    /// What each stream kept, after reading until it closes or [`DRAIN_AFTER_EXIT`] passes.
    async fn drain(self) -> (Captured, Captured) {
        let until = Instant::now() + DRAIN_AFTER_EXIT;
        for pump in self.pumps.into_iter().flatten() {
            let abort = pump.abort_handle();
            if tokio::time::timeout_at(until, pump).await.is_err() {
                abort.abort();
                tracing::warn!("task output still open after the task exited; stopped reading it");
            }
        }
        let take = |seen: &Mutex<Captured>| std::mem::take(&mut *output::lock(seen));
        (take(&self.stdout), take(&self.stderr))
    }
}

/// Poll until no process is left in `group` (our reaper collects the dead).
async fn wait_group_empty(group: Pid, until: Instant) {
    while Instant::now() < until {
        match killpg(group, None) {
            Err(nix::errno::Errno::ESRCH) => return,
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    tracing::warn!(pgid = group.as_raw(), "task's process group still not empty after SIGKILL");
}

/// Kill children that left the task's group (`setsid`, double forks) and
/// were reparented to us as init or subreaper; repeat until none is left,
/// since a killed one's own orphans come to us next.
async fn sweep_orphans(until: Instant) {
    loop {
        let children = own_children();
        if children.is_empty() {
            return;
        }
        if Instant::now() >= until {
            tracing::warn!(count = children.len(), "orphaned processes survive SIGKILL");
            return;
        }
        for pid in children {
            tracing::info!(pid, "killing a process the task left behind");
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Live (not yet reaped) children of this process, from every thread's `children` list.
fn own_children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut pids: Vec<i32> = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>())
        .filter(|pid| !is_zombie(*pid))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

fn signal_all(group: Pid, signals: Vec<Signal>) {
    for sig in signals {
        signal_group(group, sig);
    }
}

fn signal_group(group: Pid, sig: Signal) {
    match killpg(group, sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(signal = %sig, error = %e, "cannot signal the task's process group"),
    }
}
