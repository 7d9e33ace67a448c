//! Events a worker posts to Wove's callback server.
//!
//! Wove fails a task on any `type` it does not know, so [`EventKind`] is
//! closed: only the five kinds Wove 2.0.3 acts on. What we add (`event_id`,
//! `meta`, extra keys in `error`) Wove ignores.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::outcome::ErrorKind;
use crate::pickle::Pickle;

/// The `type` of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The task began; refreshes Wove's heartbeat clock.
    TaskStarted,
    /// The task is still running; refreshes Wove's heartbeat clock.
    Heartbeat,
    /// The task returned; carries `result` or `result_pickle`.
    TaskResult,
    /// The task failed; carries `error` and maybe `exception_pickle`.
    TaskError,
    /// The task was cancelled; Wove raises `CancelledError`.
    TaskCancelled,
}

impl EventKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskStarted => "task_started",
            Self::Heartbeat => "heartbeat",
            Self::TaskResult => "task_result",
            Self::TaskError => "task_error",
            Self::TaskCancelled => "task_cancelled",
        }
    }

    /// Whether this event ends the task (and so must not be lost).
    pub fn is_final(self) -> bool {
        matches!(self, Self::TaskResult | Self::TaskError | Self::TaskCancelled)
    }
}

/// One event, exactly as serialized into the POST body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Wove's run id, from the payload.
    pub run_id: String,
    /// Wove's task id, from the payload.
    pub task_id: String,
    /// Unique per event and the same on every retry of it: the idempotency key.
    pub event_id: String,
    /// The task's JSON result (non-Python runners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The task's result as cloudpickle, base64 on the wire (Python runner). Wove prefers it over `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_pickle: Option<Pickle>,
    /// Why the task failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// The exception as base64 cloudpickle; Wove re-raises it as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception_pickle: Option<String>,
    /// How much the task printed, when it ran as a process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputInfo>,
    /// A heartbeat's progress value, when the task reported one (Wove ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
    /// Who sent it and from where.
    pub meta: EventMeta,
}

/// What a process-based task wrote to its stdout and stderr. The output itself
/// goes to the container's log; only its size travels with the event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputInfo {
    /// Bytes written to stdout.
    pub stdout_bytes: u64,
    /// Bytes written to stderr.
    pub stderr_bytes: u64,
    /// Whether the worker's kept sample (head and tail) dropped bytes in between.
    pub truncated: bool,
}

/// The error dict Wove turns into `EnvironmentExecutionError` when no
/// exception pickle is present. Runners may add keys (`exit_code`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The exception class name, or a worker-defined kind such as `Timeout`.
    pub kind: String,
    /// One human-readable line or paragraph.
    pub message: String,
    /// A Python traceback, or the tail of the task's stderr.
    #[serde(default)]
    pub traceback: String,
    /// Whether trying again might succeed.
    #[serde(default)]
    pub retryable: bool,
    /// `task` when the task itself failed, `worker` when the worker could not run it.
    #[serde(default = "default_source")]
    pub source: String,
    /// Runner-specific details (exit code, signal, output sizes).
    #[serde(flatten)]
    pub details: BTreeMap<String, serde_json::Value>,
}

fn default_source() -> String {
    "task".into()
}

impl ErrorInfo {
    /// An error raised by the task itself.
    pub fn task(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            traceback: String::new(),
            retryable: false,
            source: "task".into(),
            details: BTreeMap::new(),
        }
    }

    /// An error of the worker's: the task could not be run as described.
    pub fn worker(kind: impl Into<String>, message: impl Into<String>) -> Self {
        Self { source: "worker".into(), ..Self::task(kind, message) }
    }

    /// An error of one of the kinds the worker itself reports, with the
    /// `source` that kind has.
    pub fn of(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { source: kind.source().into(), ..Self::task(kind.as_str(), message) }
    }

    /// Add a runner-specific detail.
    #[must_use]
    pub fn with_detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// Set the traceback (or output tail).
    #[must_use]
    pub fn with_traceback(mut self, traceback: impl Into<String>) -> Self {
        self.traceback = traceback.into();
        self
    }

    /// Mark as retryable.
    #[must_use]
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
}

/// Metadata beyond Wove's keys: which worker, which attempt, which machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    /// `wove-worker/<version>`.
    pub worker: String,
    /// The platform's attempt number (AWS Batch's `AWS_BATCH_JOB_ATTEMPT`), 1 when unknown.
    pub attempt: u32,
    /// Position of this event among the ones this worker sent, from 0.
    pub sequence: u64,
    /// Unix time in milliseconds when the event was made (not when it was sent:
    /// the body stays identical across retries).
    pub created_at_ms: u64,
    /// The task's index in a many-task payload ([`crate::fan_out`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_index: Option<usize>,
    /// Platform identity: `hostname`, `job_completion_index`, `aws_batch_job_id`, …
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platform: BTreeMap<String, String>,
}

impl Event {
    /// The compact JSON body that is signed and sent.
    pub fn to_body(&self) -> Vec<u8> {
        // Sized up front: a body that grows by doubling holds a large result
        // up to three times over while it copies itself into a bigger buffer.
        let large =
            self.result_pickle.as_ref().map_or(0, Pickle::encoded_len) + self.result.as_ref().map_or(0, json_len);
        let mut body = Vec::with_capacity(large + 4096);
        // Every field is a string, number, bool, map or JSON value: cannot fail.
        let _ = serde_json::to_writer(&mut body, self);
        body
    }

    /// Bytes the result takes in the body: its base64 pickle, or its JSON.
    pub fn result_len(&self) -> usize {
        match (&self.result_pickle, &self.result) {
            (Some(pickle), _) => pickle.encoded_len(),
            (None, Some(value)) => json_len(value),
            (None, None) => 0,
        }
    }
}

/// Bytes of `value` as compact JSON, counted without building the text.
pub fn json_len(value: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_wove_reads_it() {
        let e = Event {
            kind: EventKind::TaskError,
            run_id: "r:1".into(),
            task_id: "t".into(),
            event_id: "evt_1".into(),
            result: None,
            result_pickle: None,
            error: Some(ErrorInfo::task("ValueError", "bad").with_detail("exit_code", 2)),
            exception_pickle: None,
            output: Some(OutputInfo { stdout_bytes: 3, stderr_bytes: 0, truncated: false }),
            progress: None,
            meta: EventMeta { worker: "wove-worker/0".into(), attempt: 1, ..Default::default() },
        };
        let v: serde_json::Value = serde_json::from_slice(&e.to_body()).unwrap();
        assert_eq!(v["type"], "task_error");
        assert_eq!(v["error"]["kind"], "ValueError");
        assert_eq!(v["error"]["exit_code"], 2);
        assert_eq!(v["error"]["source"], "task");
        assert!(v.get("result").is_none());
        assert_eq!(v["output"]["stdout_bytes"], 3);
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn only_the_three_final_kinds_are_final() {
        use EventKind::*;
        let finals: Vec<_> = [TaskStarted, Heartbeat, TaskResult, TaskError, TaskCancelled]
            .into_iter()
            .filter(|k| k.is_final())
            .collect();
        assert_eq!(finals, vec![TaskResult, TaskError, TaskCancelled]);
        assert_eq!(serde_json::to_value(TaskCancelled).unwrap(), "task_cancelled");
    }
}
