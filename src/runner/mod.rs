//! Task runners: one trait, a registry, and the built-in runners.
//!
//! A runner turns a task description into an [`Outcome`]. It works in two
//! steps: [`Runner::prepare`] decodes and checks the description before
//! anything is started or reported (an error there is a bad payload), and
//! [`Prepared::run`] does the work. The built-in runners are registered
//! through [`Registry::register`] exactly as a user's runner is.

pub mod python;
pub mod subprocess;
#[cfg(feature = "wasm-runtime")]
pub mod wasm;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use wove_proto::{ErrorInfo, OutputInfo, Payload, PayloadError};

use crate::config::RunnerSettings;
use crate::signals::Signals;
use crate::supervise::Reaper;

/// A boxed future, as runners return them (keeps the trait object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a task produced.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskValue {
    /// Plain JSON, sent as `result`.
    Json(serde_json::Value),
    /// Base64 cloudpickle, sent as `result_pickle`.
    Pickle(String),
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

/// What a runner gets to run a task with.
#[derive(Debug, Clone)]
pub struct Context {
    /// Shared runner settings (interpreter, grace, scratch dir).
    pub settings: Arc<RunnerSettings>,
    /// Reaps children; every child must be spawned through it.
    pub reaper: Reaper,
    /// The worker's signals, to forward and to cancel on.
    pub signals: Signals,
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

    /// The runner for a payload, or a payload error naming the known ones.
    pub fn resolve(&self, payload: &Payload) -> Result<Arc<dyn Runner>, PayloadError> {
        let name = payload.runner_name();
        self.runners.get(name).cloned().ok_or_else(|| PayloadError::Field {
            field: "task.runner".into(),
            problem: format!(
                "unknown runner `{name}` (this worker knows: {})",
                self.runners.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }

    /// Names of the registered runners.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.runners.keys().map(String::as_str)
    }
}
