//! The closed sets the worker reports in: the `kind` of the errors it makes
//! itself, and the `status` of its termination message.
//!
//! A task's own exception keeps its own name (`ValueError`); these are the
//! names the worker gives when it, not the task, says what went wrong. Wove
//! users match on them, the submitter and docs/events.md list them, so they are
//! defined once, here.

/// The `kind` of an error the worker reports itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The payload was readable enough to report to, but describes no runnable task.
    InvalidPayload,
    /// No built-in runner and no runner executable has the task's runner name.
    UnknownRunner,
    /// The task's program could not be started.
    SpawnFailed,
    /// The Python interpreter for a Wove callable was not found.
    InterpreterNotFound,
    /// The Python interpreter has no `cloudpickle`.
    MissingCloudpickle,
    /// The worker could not write the task's scratch files.
    WorkDirUnavailable,
    /// The WebAssembly engine could not be set up.
    EngineUnavailable,
    /// A runner panicked; the worker caught it.
    WorkerPanic,
    /// The task's process exited with a non-zero code (`exit_code`).
    NonZeroExit,
    /// The task's process died of a signal (`signal`).
    Killed,
    /// The task's process was killed by the out-of-memory killer.
    OutOfMemory,
    /// The task ran past its timeout and was stopped.
    Timeout,
    /// The task wrote a result that is not JSON.
    InvalidResult,
    /// The task's result is larger than the worker sends, or than the receiver takes.
    ResultTooLarge,
    /// A runner executable wrote a line that is not a runner message.
    InvalidReport,
    /// A WebAssembly guest trapped.
    Trap,
    /// A WebAssembly guest grew its memory past the limit.
    MemoryLimit,
    /// A WebAssembly guest wrote more than the output limit.
    OutputLimit,
    /// A WebAssembly module or component is not valid.
    InvalidModule,
    /// A precompiled `.cwasm` was made by another engine version or configuration.
    IncompatiblePrecompiled,
    /// A `.wasm` needs compiling and this build has no compiler.
    NoCompiler,
    /// A WebAssembly module could not be read or downloaded.
    ModuleUnavailable,
    /// A WebAssembly module is larger than allowed.
    ModuleTooLarge,
    /// A downloaded WebAssembly module's SHA-256 differs from the payload's.
    DigestMismatch,
}

impl ErrorKind {
    /// Every kind, in the order docs/events.md lists them.
    pub const ALL: [ErrorKind; 24] = [
        Self::InvalidPayload,
        Self::UnknownRunner,
        Self::SpawnFailed,
        Self::InterpreterNotFound,
        Self::MissingCloudpickle,
        Self::WorkDirUnavailable,
        Self::EngineUnavailable,
        Self::WorkerPanic,
        Self::NonZeroExit,
        Self::Killed,
        Self::OutOfMemory,
        Self::Timeout,
        Self::InvalidResult,
        Self::ResultTooLarge,
        Self::InvalidReport,
        Self::Trap,
        Self::MemoryLimit,
        Self::OutputLimit,
        Self::InvalidModule,
        Self::IncompatiblePrecompiled,
        Self::NoCompiler,
        Self::ModuleUnavailable,
        Self::ModuleTooLarge,
        Self::DigestMismatch,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPayload => "InvalidPayload",
            Self::UnknownRunner => "UnknownRunner",
            Self::SpawnFailed => "SpawnFailed",
            Self::InterpreterNotFound => "InterpreterNotFound",
            Self::MissingCloudpickle => "MissingCloudpickle",
            Self::WorkDirUnavailable => "WorkDirUnavailable",
            Self::EngineUnavailable => "EngineUnavailable",
            Self::WorkerPanic => "WorkerPanic",
            Self::NonZeroExit => "NonZeroExit",
            Self::Killed => "Killed",
            Self::OutOfMemory => "OutOfMemory",
            Self::Timeout => "Timeout",
            Self::InvalidResult => "InvalidResult",
            Self::ResultTooLarge => "ResultTooLarge",
            Self::InvalidReport => "InvalidReport",
            Self::Trap => "Trap",
            Self::MemoryLimit => "MemoryLimit",
            Self::OutputLimit => "OutputLimit",
            Self::InvalidModule => "InvalidModule",
            Self::IncompatiblePrecompiled => "IncompatiblePrecompiled",
            Self::NoCompiler => "NoCompiler",
            Self::ModuleUnavailable => "ModuleUnavailable",
            Self::ModuleTooLarge => "ModuleTooLarge",
            Self::DigestMismatch => "DigestMismatch",
        }
    }

    /// The kind with this wire name, if the worker makes it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// `task` when the task itself failed, `worker` when the worker could not
    /// run it as described (the error's `source`).
    pub fn source(self) -> &'static str {
        match self {
            Self::NonZeroExit
            | Self::Killed
            | Self::OutOfMemory
            | Self::Timeout
            | Self::InvalidResult
            | Self::ResultTooLarge
            | Self::InvalidReport
            | Self::Trap
            | Self::MemoryLimit
            | Self::OutputLimit => "task",
            _ => "worker",
        }
    }

    /// One line on when the worker reports it, as docs/events.md lists it.
    pub fn description(self) -> &'static str {
        match self {
            Self::InvalidPayload => "the payload names no runnable task (a bad task field, a runner name not allowed)",
            Self::UnknownRunner => "no built-in runner and no runner executable on the runner path has that name",
            Self::SpawnFailed => "the task's program (or the WebAssembly guest thread) could not be started",
            Self::InterpreterNotFound => "the Python interpreter for a Wove callable was not found",
            Self::MissingCloudpickle => "the Python interpreter cannot import cloudpickle",
            Self::WorkDirUnavailable => "the worker could not write the task's scratch files",
            Self::EngineUnavailable => "the WebAssembly engine could not be set up",
            Self::WorkerPanic => "a runner panicked; the worker caught it and reported it",
            Self::NonZeroExit => "the task exited with a non-zero code (`exit_code`)",
            Self::Killed => "the task died of a signal (`signal`)",
            Self::OutOfMemory => "the task was killed by the out-of-memory killer",
            Self::Timeout => "the task ran past its `timeout_seconds` and was stopped",
            Self::InvalidResult => "the task's result file is not JSON",
            Self::ResultTooLarge => {
                "the task's result is over `--max-result-bytes`, or the receiver refused it as too large (413)"
            }
            Self::InvalidReport => {
                "a runner executable wrote a line that is not a runner message on its report channel"
            }
            Self::Trap => "a WebAssembly guest trapped",
            Self::MemoryLimit => "a WebAssembly guest grew its memory past `memory_bytes`",
            Self::OutputLimit => "a WebAssembly guest wrote more than `output_bytes` to stdout",
            Self::InvalidModule => "a WebAssembly module or component is not valid",
            Self::IncompatiblePrecompiled => "a `.cwasm` comes from another engine version or configuration",
            Self::NoCompiler => "a `.wasm` needs compiling and this build has no compiler",
            Self::ModuleUnavailable => "a WebAssembly module could not be read or downloaded",
            Self::ModuleTooLarge => {
                "a WebAssembly module is over `--max-wasm-module-bytes`, or a download over its `max_bytes`"
            }
            Self::DigestMismatch => "a downloaded WebAssembly module's SHA-256 differs from the payload's",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `status` of the termination message: how the run ended, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// The task succeeded and its result was delivered.
    Succeeded,
    /// The task failed and its error was delivered.
    Failed,
    /// The task was cancelled (SIGTERM, SIGINT) and `task_cancelled` was delivered.
    Cancelled,
    /// The final event was not delivered: the budget ran out or the receiver refused it.
    Undelivered,
    /// The payload could not be decoded or describes no runnable task.
    BadPayload,
    /// The payload's URL could not be fetched (for good, or not within the read timeout).
    PayloadUnavailable,
    /// The worker's configuration is wrong.
    BadConfig,
    /// The worker itself failed.
    Internal,
}

impl Status {
    /// Every status, in the order docs/operations.md lists them.
    pub const ALL: [Status; 8] = [
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Undelivered,
        Self::BadPayload,
        Self::PayloadUnavailable,
        Self::BadConfig,
        Self::Internal,
    ];

    /// The word in the termination message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Undelivered => "undelivered",
            Self::BadPayload => "bad_payload",
            Self::PayloadUnavailable => "payload_unavailable",
            Self::BadConfig => "bad_config",
            Self::Internal => "internal",
        }
    }

    /// One line on what it means, as docs/operations.md lists it.
    pub fn description(self) -> &'static str {
        match self {
            Self::Succeeded => "the task succeeded and its result was delivered",
            Self::Failed => "the task failed and its error was delivered",
            Self::Cancelled => "SIGTERM or SIGINT cancelled the task and `task_cancelled` was delivered",
            Self::Undelivered => "the final event was not delivered (budget exhausted, or refused)",
            Self::BadPayload => "the payload could not be decoded or names no runnable task",
            Self::PayloadUnavailable => "the payload's URL could not be fetched, so nobody was told",
            Self::BadConfig => "the worker's configuration is wrong",
            Self::Internal => "the worker itself failed",
        }
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_read_back() {
        let mut names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("ValueError"), None);
        assert_eq!(serde_json::to_value(Status::BadPayload).unwrap(), "bad_payload");
    }
}
