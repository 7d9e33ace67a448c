//! Task runners: one trait, a registry, and the built-in runners.
//!
//! A runner turns a task description into an [`Outcome`]. It works in two
//! steps: [`Runner::prepare`] decodes and checks the description before
//! anything is started or reported (an error there is a bad payload), and
//! [`Prepared::run`] does the work. The built-in runners are registered
//! through [`Registry::register`] exactly as a user's runner is. A payload
//! naming a runner no registry has runs a runner executable ([`executable`],
//! found by [`lookup`], speaking [`protocol`]).
//!
//! A runner with its own task fields, which reports progress and fails with a
//! structured error (`{"runner": "resize", "images": ["a.png"], "width": 64}`):
//!
//! ```
//! use serde::Deserialize;
//! use wove_worker::config::RunnerSettings;
//! use wove_worker::proto::{ErrorInfo, Payload, PayloadError};
//! use wove_worker::runner::{BoxFuture, Context, Finished, Outcome, Prepared, Registry, Runner, TaskValue};
//!
//! struct Resize;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct ResizeTask {
//!     images: Vec<String>,
//!     width: u32,
//! }
//!
//! impl Runner for Resize {
//!     fn name(&self) -> &str {
//!         "resize"
//!     }
//!
//!     // A task that does not decode is a bad payload: the weave hears why, the exit code is 65.
//!     fn prepare(&self, payload: &Payload, _: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
//!         Ok(Box::new(payload.task_for(self.name())?.decode::<ResizeTask>()?))
//!     }
//! }
//!
//! impl Prepared for ResizeTask {
//!     fn run(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Finished> {
//!         Box::pin(async move {
//!             if self.width == 0 {
//!                 // A structured error: the weave gets this kind and message in task_error.
//!                 let error = ErrorInfo::task("BadWidth", "width must be at least 1").with_detail("width", 0);
//!                 return Outcome::failed(error).into();
//!             }
//!             for (done, _image) in self.images.iter().enumerate() {
//!                 // ... resize it ...
//!                 // A heartbeat carrying progress; the runner never sees HTTP.
//!                 ctx.events.progress(serde_json::json!({"done": done + 1, "of": self.images.len()}));
//!             }
//!             Outcome::Succeeded(TaskValue::Json(serde_json::json!({"resized": self.images.len()}))).into()
//!         })
//!     }
//! }
//!
//! // A worker binary with it: `fn main() -> ExitCode { wove_worker::run_cli(registry) }`.
//! let registry = Registry::builtin().register(Resize);
//! assert!(registry.names().any(|name| name == "resize"));
//! ```

pub mod executable;
pub mod lookup;
mod process;
pub mod protocol;
pub mod python;
pub mod subprocess;
#[cfg(feature = "wasm-runtime")]
pub mod wasm;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wove_proto::{ErrorInfo, ErrorKind, OutputInfo, Payload, PayloadError};

use crate::config::RunnerSettings;
use crate::signals::Signals;
use crate::supervise::Reaper;

/// Why a payload's task will not run, found before anything starts: the weave hears it as a
/// `task_error` of [`PrepareError::kind`], and the exit code is 65.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PrepareError {
    /// The task is malformed, or names its runner in a way that is never looked up.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// No built-in runner and no runner executable has that name.
    #[error("{0}")]
    UnknownRunner(String),
}

impl PrepareError {
    /// The error kind the `task_error` carries.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Payload(_) => ErrorKind::InvalidPayload,
            Self::UnknownRunner(_) => ErrorKind::UnknownRunner,
        }
    }
}

/// A boxed future, as runners return them (keeps the trait object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a task produced.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskValue {
    /// Plain JSON, sent as `result`.
    Json(serde_json::Value),
    /// A cloudpickle, sent base64-encoded as `result_pickle`.
    Pickle(wove_proto::Pickle),
}

/// The error for a result of `size` bytes (as sent) over the `max` allowed.
pub(crate) fn result_too_large(size: usize, max: usize) -> ErrorInfo {
    ErrorInfo::of(ErrorKind::ResultTooLarge, result_too_large_message(size, max))
}

/// The words of [`result_too_large`].
pub(crate) fn result_too_large_message(size: usize, max: usize) -> String {
    format!("the task's result is {size} bytes as sent, more than the {max} allowed (--max-result-bytes)")
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It returned a value.
    Succeeded(TaskValue),
    /// It failed; `exception_pickle` lets Wove re-raise the original exception.
    Failed {
        /// The error dict.
        error: ErrorInfo,
        /// Base64 cloudpickle of the exception, when there is one.
        exception_pickle: Option<String>,
    },
    /// It was cancelled: by a signal to the worker, or (`None`) by the task itself.
    Cancelled(Option<nix::sys::signal::Signal>),
}

impl Outcome {
    /// A failure without an exception pickle.
    pub fn failed(error: ErrorInfo) -> Self {
        Self::Failed { error, exception_pickle: None }
    }
}

/// An outcome plus what the task printed, when it ran as a process.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// How it ended.
    pub outcome: Outcome,
    /// Output sizes, reported with the final event.
    pub output: Option<OutputInfo>,
}

impl From<Outcome> for Finished {
    fn from(outcome: Outcome) -> Self {
        Self { outcome, output: None }
    }
}

/// Heartbeats and progress from a running task, without knowing how events
/// travel: the worker turns them into `heartbeat` events (carrying the
/// progress value), one at a time, the latest winning when they come faster
/// than they can be delivered.
#[derive(Debug, Clone)]
pub struct TaskEvents {
    tx: Arc<tokio::sync::watch::Sender<(u64, Option<serde_json::Value>)>>,
}

impl TaskEvents {
    /// A handle and the receiver the worker reads it through.
    pub fn channel() -> (Self, tokio::sync::watch::Receiver<(u64, Option<serde_json::Value>)>) {
        let (tx, rx) = tokio::sync::watch::channel((0, None));
        (Self { tx: Arc::new(tx) }, rx)
    }

    /// A handle whose messages go nowhere (for tests, and runners run alone).
    pub fn none() -> Self {
        Self::channel().0
    }

    /// The task is still working.
    pub fn heartbeat(&self) {
        self.tx.send_modify(|(n, progress)| {
            *n += 1;
            *progress = None;
        });
    }

    /// The task is still working, this far (any JSON: a fraction, a count, a stage).
    pub fn progress(&self, value: serde_json::Value) {
        self.tx.send_modify(|(n, progress)| {
            *n += 1;
            *progress = Some(value);
        });
    }
}

/// What a runner gets to run a task with.
#[derive(Debug, Clone)]
pub struct Context {
    /// Shared runner settings (interpreter, grace, scratch dir).
    pub settings: Arc<RunnerSettings>,
    /// Reaps children; every child must be spawned through it.
    pub reaper: Reaper,
    /// The worker's signals, to forward and to cancel on.
    pub signals: Signals,
    /// Time between TERM and KILL when a signal cancels the task
    /// ([`crate::config::Config::cancel_grace`]).
    pub cancel_grace: std::time::Duration,
    /// Extra CAs for runners that download, the same ones delivery trusts.
    pub ca_bundle: Option<std::path::PathBuf>,
    /// Heartbeats and progress, reported as events.
    pub events: TaskEvents,
}

impl Context {
    /// What the supervisor needs to run one of this task's processes.
    pub fn process_limits(&self) -> crate::supervise::Limits {
        let settings = &self.settings;
        crate::supervise::Limits {
            grace: settings.kill_grace,
            cancel_grace: self.cancel_grace,
            keep: settings.output_keep,
            sweep_orphans: settings.adopt_orphans,
            memory_cgroup: settings.memory_cgroup.clone(),
            user: settings.task_user,
        }
    }
}

/// A task that passed [`Runner::prepare`] and is ready to run.
pub trait Prepared: Send {
    /// Run the task to an outcome. Never panics on bad task behaviour: every
    /// failure is an [`Outcome::Failed`].
    fn run(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Finished>;
}

/// A kind of task, named by `task.runner` in the payload.
pub trait Runner: Send + Sync {
    /// The name payloads use to pick this runner.
    fn name(&self) -> &str;

    /// Decode and check the payload's task before anything starts.
    fn prepare(&self, payload: &Payload, settings: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError>;
}

/// The runners a worker knows, by name.
#[derive(Clone, Default)]
pub struct Registry {
    runners: BTreeMap<String, Arc<dyn Runner>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.runners.keys()).finish()
    }
}

impl Registry {
    /// No runners at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in runners: `python`, `subprocess`, and `wasm` when built with it.
    pub fn builtin() -> Self {
        let registry = Self::empty().register(python::PythonRunner).register(subprocess::SubprocessRunner);
        #[cfg(feature = "wasm-runtime")]
        let registry = registry.register(wasm::WasmRunner);
        registry
    }

    /// Add a runner; one with the same name is replaced.
    #[must_use]
    pub fn register(mut self, runner: impl Runner + 'static) -> Self {
        self.runners.insert(runner.name().to_string(), Arc::new(runner));
        self
    }

    /// The runner for a payload: a registered one, or else the runner
    /// executable of that name on `runner_path`.
    pub fn resolve(
        &self,
        payload: &Payload,
        runner_path: &[std::path::PathBuf],
    ) -> Result<Arc<dyn Runner>, PrepareError> {
        let name = payload.runner_name();
        if let Some(runner) = self.runners.get(name) {
            return Ok(runner.clone());
        }
        match lookup::find(name, runner_path) {
            Ok(path) => Ok(Arc::new(executable::ExecutableRunner::new(name, path))),
            Err(e @ lookup::LookupError::BadName(_)) => Err(PayloadError::field("task.runner", e.to_string()).into()),
            Err(e @ lookup::LookupError::NotFound { .. }) => Err(PrepareError::UnknownRunner(format!(
                "{e} (built-in runners: {})",
                self.runners.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// The payload's task, checked by its runner and ready to run. A many-task entry with
    /// nothing to run fails here, as its own task.
    pub fn prepare(&self, payload: &Payload, settings: &RunnerSettings) -> Result<Box<dyn Prepared>, PrepareError> {
        payload.check_task()?;
        let runner = self.resolve(payload, &settings.runner_path)?;
        Ok(runner.prepare(payload, settings)?)
    }

    /// Names of the registered runners.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.runners.keys().map(String::as_str)
    }
}
