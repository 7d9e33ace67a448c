//! Validated configuration: what the worker needs, with defaults written once.
//!
//! Pure data: building a config reads nothing. What the machine decides (the memory cgroup,
//! the runner path, the scratch directory) is read in one named place,
//! [`RunnerSettings::detect`]. The command line builds a [`Config`] from flags and environment on
//! top of it, and clap's defaults come from the `Default` impls here; code that embeds the
//! worker as a library builds one directly.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::cgroup::{MemoryCgroup, Version as CgroupVersion};
pub use crate::payload_fetch::PayloadRef;
pub use crate::task_index::TaskIndex;
pub use wove_proto::request::Signing;

/// Where the payload comes from, in the order the CLI prefers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadSource {
    /// A file holding JSON or base64 (`--payload-file`, `WOVE_BACKEND_PAYLOAD_FILE`).
    File(PathBuf),
    /// Base64 text given as the first argument, as Wove's own worker accepts.
    Argument(String),
    /// Base64 text from `WOVE_BACKEND_PAYLOAD`.
    Env(String),
    /// An object to fetch and check (`--payload-url`, `WOVE_BACKEND_PAYLOAD_URL`).
    Url(PayloadRef),
    /// Nothing was given.
    Missing,
}

/// Everything the worker needs to run one payload.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the payload comes from.
    pub payload: PayloadSource,
    /// Largest payload, in bytes of JSON (after base64 and gzip). Default 64 MiB.
    pub max_payload_bytes: usize,
    /// Longest a payload file may take to read (a FIFO, a stalled network
    /// filesystem). Default 60 s.
    pub read_timeout: Duration,
    /// Which task of a many-task payload to run. Default `None`: the index
    /// the platform sets (`JOB_COMPLETION_INDEX`, `AWS_BATCH_JOB_ARRAY_INDEX`).
    pub index: Option<TaskIndex>,
    /// How events are delivered.
    pub delivery: DeliveryConfig,
    /// How events are signed.
    pub signing: Signing,
    /// How tasks are run.
    pub runner: RunnerSettings,
    /// Print events to stdout instead of posting them.
    pub print_events: bool,
    /// Everything after the first SIGTERM/SIGINT (grace, kill, the final
    /// event's delivery) fits in this. Default 25 s, inside the 30 s that
    /// Kubernetes and AWS Batch allow before SIGKILL.
    pub shutdown_budget: Duration,
    /// Where the outcome summary goes; written only if the file exists.
    /// Default `/dev/termination-log`, Kubernetes' termination message path.
    pub termination_log: Option<PathBuf>,
    /// PEM bundle of extra CAs to trust (a private CA in front of the
    /// receiver), for delivery and for runners that download alike.
    pub ca_bundle: Option<PathBuf>,
}

impl Config {
    /// Every default, reading the payload from `payload`. Nothing is read from the machine:
    /// with [`RunnerSettings::default`] there is no OOM detection, no runner executable is
    /// looked up and scratch files go to `/tmp`. Set `runner` to [`RunnerSettings::detect`]
    /// for what the command line has.
    pub fn new(payload: PayloadSource) -> Self {
        Self {
            payload,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
            read_timeout: DEFAULT_READ_TIMEOUT,
            index: None,
            delivery: DeliveryConfig::default(),
            signing: Signing::default(),
            runner: RunnerSettings::default(),
            print_events: false,
            shutdown_budget: DEFAULT_SHUTDOWN_BUDGET,
            termination_log: Some(PathBuf::from(DEFAULT_TERMINATION_LOG)),
            ca_bundle: None,
        }
    }

    /// Time between TERM and KILL when the worker is cancelled by a signal:
    /// the kill grace, but at most half the shutdown budget, so the final
    /// event keeps the other half.
    pub fn cancel_grace(&self) -> Duration {
        self.runner.kill_grace.min(self.shutdown_budget / 2)
    }
}

/// Default for [`Config::max_payload_bytes`]: far above what a Job carries
/// (an environment string holds 128 KiB, a Secret 1 MiB), low enough that a
/// wrong file is refused at once.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Default for [`Config::read_timeout`].
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Default for [`Config::shutdown_budget`].
pub const DEFAULT_SHUTDOWN_BUDGET: Duration = Duration::from_secs(wove_proto::env::DEFAULT_SHUTDOWN_BUDGET_SECS);
/// Default for [`Config::termination_log`].
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// Delivery timing. Defaults fit Wove's receiver on a cluster network.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// Limit on one HTTP attempt (connect, send, response). Default 10 s.
    pub attempt_timeout: Duration,
    /// Total time the final event may take, retries included. Default 300 s.
    pub budget: Duration,
    /// Total time `task_started` may take; it never holds up the task. Default 30 s.
    pub started_budget: Duration,
    /// First backoff ceiling; doubles each retry. Default 0.5 s.
    pub backoff_base: Duration,
    /// Largest backoff ceiling. Default 30 s.
    pub backoff_cap: Duration,
    /// Heartbeat period. `None`: a third of the payload's
    /// `delivery_heartbeat_seconds`, and no heartbeats when that is unset.
    pub heartbeat_interval: Option<Duration>,
}

impl Default for DeliveryConfig {
    /// The shared delivery defaults (`wove_deliver`: the same as `wove-submit`'s when it
    /// reports), and the worker's own started budget.
    fn default() -> Self {
        let policy = wove_deliver::Policy::default();
        Self {
            attempt_timeout: policy.attempt_timeout,
            budget: wove_deliver::DEFAULT_BUDGET,
            started_budget: Duration::from_secs(30),
            backoff_base: policy.backoff.base,
            backoff_cap: policy.backoff.cap,
            heartbeat_interval: None,
        }
    }
}

impl DeliveryConfig {
    /// What the delivery loop needs of it: each attempt's limit and the backoff.
    pub fn policy(&self) -> wove_deliver::Policy {
        wove_deliver::Policy {
            attempt_timeout: self.attempt_timeout,
            backoff: wove_deliver::retry::Backoff { base: self.backoff_base, cap: self.backoff_cap },
        }
    }
}

/// Settings shared by the built-in runners.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSettings {
    /// Interpreter for Wove Python callables. Default `python3`.
    pub python: String,
    /// Time between TERM and KILL when a task times out. Default 10 s.
    pub kill_grace: Duration,
    /// Bytes of the start and of the end of each output stream kept for error reports. Default 8 KiB.
    pub output_keep: usize,
    /// Where per-task scratch files go. Default `/tmp`; [`RunnerSettings::detect`]: `$TMPDIR`
    /// when set.
    pub work_dir: PathBuf,
    /// Environment variables a task never inherits (payload, secrets).
    pub scrub_env: Vec<String>,
    /// Act as the container's init: become a child subreaper (unless already
    /// PID 1) and kill every leftover descendant when the task ends. Turn off
    /// when embedding the worker in a process that has children of its own.
    pub adopt_orphans: bool,
    /// The memory cgroup tasks run in (the worker's own, the container's),
    /// read to tell an OOM kill from another SIGKILL and to report the limit.
    /// Default `None`: no OOM detection; [`RunnerSettings::detect`] finds it
    /// from `/proc/self/cgroup` and the mounts, v1 or v2.
    pub memory_cgroup: Option<MemoryCgroup>,
    /// Directories searched, in order, for runner executables
    /// (`wove-runner-<name>`). Default none; [`RunnerSettings::detect`]: the worker's `PATH`.
    pub runner_path: Vec<PathBuf>,
    /// Timeout of a runner executable whose task sets no `timeout_seconds`. Default none.
    pub runner_timeout: Option<Duration>,
    /// Run every task process as this user (`--task-user`), when the worker
    /// runs as root: a task can then read neither the worker's memory nor a
    /// secret file only root may read. Default `None`: the worker's own user.
    pub task_user: Option<TaskUser>,
    /// Directories whose precompiled `.cwasm` modules may be loaded
    /// (`--precompiled-dir`). Loading one runs its machine code, so a module
    /// elsewhere, or one the worker's user could write, is refused. Default
    /// none: every `.cwasm` is refused.
    pub precompiled_dirs: Vec<PathBuf>,
    /// Bounds on what a task may ask for.
    pub limits: TaskLimits,
}

/// A user and group to run tasks as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskUser {
    /// The user id.
    pub uid: u32,
    /// The group id (the only group the task has).
    pub gid: u32,
}

impl std::str::FromStr for TaskUser {
    type Err = String;

    /// `UID` or `UID:GID`, numbers (an image may have no user database); the
    /// group defaults to the user's number.
    fn from_str(text: &str) -> Result<Self, String> {
        let number =
            |part: &str| part.trim().parse::<u32>().map_err(|_| format!("`{text}` is not UID or UID:GID (numbers)"));
        match text.split_once(':') {
            Some((uid, gid)) => Ok(Self { uid: number(uid)?, gid: number(gid)? }),
            None => number(text).map(|uid| Self { uid, gid: uid }),
        }
    }
}

/// Bounds on what a task may ask for. A breach is refused before anything
/// runs (a bad payload, exit 65, with a `task_error` naming the bound and its
/// flag), except the result's, which fails the task that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLimits {
    /// Most arguments of a task's program. Default 4096 (`--max-task-args`).
    pub args: usize,
    /// Most environment variables a task sets. Default 4096 (`--max-task-env`).
    pub env: usize,
    /// Longest argument, or `NAME=value`, in bytes. Default 128 KiB, the
    /// most Linux passes in one string (`--max-task-string-bytes`).
    pub string_bytes: usize,
    /// Largest result, as sent (JSON, or base64 of the pickle). Default 256
    /// MiB (`--max-result-bytes`). A larger one fails the task with
    /// `ResultTooLarge` instead of an event the receiver may refuse.
    pub result_bytes: usize,
    /// Largest WebAssembly module, from a file, the payload or a download.
    /// Default 256 MiB (`--max-wasm-module-bytes`); a task's own
    /// `max_bytes` for a download may only be lower.
    pub wasm_module_bytes: u64,
}

impl Default for TaskLimits {
    fn default() -> Self {
        Self {
            args: 4096,
            env: 4096,
            string_bytes: 128 * 1024,
            result_bytes: 256 * 1024 * 1024,
            wasm_module_bytes: 256 * 1024 * 1024,
        }
    }
}

impl TaskLimits {
    /// Check a program's arguments and environment; errors name the field
    /// (under `task.`) and the flag that raises the bound.
    pub fn check_command<'a>(
        &self,
        args: &[String],
        env: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), wove_proto::PayloadError> {
        use wove_proto::PayloadError;
        if args.len() > self.args {
            return Err(PayloadError::field(
                "task.args",
                format!("{} arguments, more than the {} allowed (--max-task-args)", args.len(), self.args),
            ));
        }
        if let Some((i, arg)) = args.iter().enumerate().find(|(_, a)| a.len() > self.string_bytes) {
            return Err(PayloadError::field(
                format!("task.args[{i}]"),
                format!("{} bytes, more than the {} allowed (--max-task-string-bytes)", arg.len(), self.string_bytes),
            ));
        }
        if env.len() > self.env {
            return Err(PayloadError::field(
                "task.env",
                format!("{} variables, more than the {} allowed (--max-task-env)", env.len(), self.env),
            ));
        }
        for (name, value) in env {
            // NAME=value, as the kernel counts it.
            let size = name.len() + 1 + value.len();
            if size > self.string_bytes {
                return Err(PayloadError::field(
                    format!("task.env.{name}"),
                    format!("{size} bytes, more than the {} allowed (--max-task-string-bytes)", self.string_bytes),
                ));
            }
        }
        Ok(())
    }
}

impl RunnerSettings {
    /// Keep the payload and signing secrets out of a task's inherited environment.
    pub fn remove_secrets(&self, command: &mut std::process::Command) {
        for name in &self.scrub_env {
            command.env_remove(name);
        }
    }
}

impl Default for RunnerSettings {
    /// Every default, and nothing read from the machine.
    fn default() -> Self {
        Self {
            python: "python3".into(),
            kill_grace: Duration::from_secs(10),
            output_keep: 8 * 1024,
            work_dir: PathBuf::from("/tmp"),
            scrub_env: wove_proto::env::SECRETS.iter().map(|s| s.to_string()).collect(),
            adopt_orphans: true,
            memory_cgroup: None,
            runner_path: Vec::new(),
            runner_timeout: None,
            task_user: None,
            precompiled_dirs: Vec::new(),
            limits: TaskLimits::default(),
        }
    }
}

impl RunnerSettings {
    /// The defaults, with what this machine and environment decide: the memory cgroup this
    /// process is in (`/proc/self/cgroup`, `/proc/self/mountinfo`), `PATH` as the runner path,
    /// `$TMPDIR` as the scratch directory. The one place the configuration reads anything.
    pub fn detect() -> Self {
        Self {
            work_dir: Self::detect_work_dir(),
            memory_cgroup: Self::detect_memory_cgroup(),
            runner_path: Self::detect_runner_path(),
            ..Self::default()
        }
    }

    /// `$TMPDIR`, or `/tmp`.
    pub fn detect_work_dir() -> PathBuf {
        std::env::temp_dir()
    }

    /// The memory cgroup this process is in, when there is one it can read.
    pub fn detect_memory_cgroup() -> Option<crate::cgroup::MemoryCgroup> {
        crate::cgroup::MemoryCgroup::of_this_process()
    }

    /// `PATH`, as the runner path.
    pub fn detect_runner_path() -> Vec<PathBuf> {
        split_path(&std::env::var("PATH").unwrap_or_default())
    }
}

/// A list of directories as `PATH` writes them (`:`-separated); empty entries are dropped
/// rather than read as the current directory.
pub fn split_path(list: &str) -> Vec<PathBuf> {
    std::env::split_paths(list).filter(|p| !p.as_os_str().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_list_drops_its_empty_entries() {
        assert_eq!(split_path("/a::/b:"), vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert!(split_path("").is_empty());
    }

    #[test]
    fn detection_only_fills_what_the_machine_decides() {
        let detected = RunnerSettings::detect();
        let defaults = RunnerSettings::default();
        let machine_free = RunnerSettings {
            work_dir: defaults.work_dir.clone(),
            memory_cgroup: None,
            runner_path: Vec::new(),
            ..detected.clone()
        };
        assert_eq!(machine_free, defaults);
        assert_eq!(detected.runner_path, split_path(&std::env::var("PATH").unwrap_or_default()));
        assert_eq!(detected.work_dir, std::env::temp_dir());
    }
}
