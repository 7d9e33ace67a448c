//! The exit-code contract. It is defined once, in `wove_proto::exit`, because
//! the submitter turns the same codes into retry rules; this module re-exports
//! it so a program embedding the worker finds it beside everything else.

pub use wove_proto::exit::{describe, Exit, EXIT_CODES_HELP, FIXED, STOP_SIGNALS};

use wove_proto::Status;

/// How a run ended: its exit code and the status its termination message gives, decided
/// together, once, where the run ends. The pair is not one value computed from the other:
/// exit 75 is a payload that could not be fetched yet as well as a final event not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The process's exit code.
    pub exit: Exit,
    /// The termination message's `status`.
    pub status: Status,
}

impl Verdict {
    /// The task succeeded and its result was delivered.
    pub const SUCCEEDED: Self = Self::new(Exit::Success, Status::Succeeded);
    /// The task failed and its error was delivered.
    pub const FAILED: Self = Self::new(Exit::TaskFailed, Status::Failed);
    /// The payload could not be decoded or holds no runnable task.
    pub const BAD_PAYLOAD: Self = Self::new(Exit::BadPayload, Status::BadPayload);
    /// The worker's configuration cannot work.
    pub const BAD_CONFIG: Self = Self::new(Exit::BadConfig, Status::BadConfig);
    /// The worker itself failed.
    pub const INTERNAL: Self = Self::new(Exit::Internal, Status::Internal);

    /// An exit code with its status.
    pub const fn new(exit: Exit, status: Status) -> Self {
        Self { exit, status }
    }

    /// Cancelled by `signal` (SIGTERM, SIGINT): the signal's exit code, retryable.
    pub fn cancelled(signal: nix::sys::signal::Signal) -> Self {
        Self::new(Exit::Signal(signal as i32), Status::Cancelled)
    }
}
