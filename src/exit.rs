//! The exit-code contract, in one place.
//!
//! The codes are stable: Kubernetes `podFailurePolicy` rules and AWS Batch
//! `evaluateOnExit` rules written by the submitter match on them. A code is
//! *permanent* when running the same Job again cannot help (the task already
//! reported its failure, or the payload or configuration is wrong) and
//! *retryable* when it might (the report never arrived).

use std::process::ExitCode;

/// How a worker run ended, as the platform sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The task succeeded and its result was delivered.
    Success,
    /// The task failed and its error was delivered. Permanent.
    TaskFailed,
    /// The payload could not be decoded or describes no runnable task. Permanent.
    BadPayload,
    /// The worker itself failed unexpectedly. Retryable.
    Internal,
    /// The final event could not be delivered within the budget. Retryable.
    Undeliverable,
    /// The receiver refused the final event for good (4xx other than 408/425/429). Permanent.
    Rejected,
    /// The worker's own configuration (flags, environment, secrets, trusted CAs) is wrong. Permanent.
    BadConfig,
    /// Stopped by this signal; the code is 128 + its number.
    Signal(i32),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::TaskFailed => 3,
            Self::BadPayload => 65,
            Self::Internal => 70,
            Self::Undeliverable => 75,
            Self::Rejected => 76,
            Self::BadConfig => 78,
            Self::Signal(n) => 128u8.saturating_add(u8::try_from(n).unwrap_or(127)),
        }
    }

    /// Whether running the job again could change the outcome.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Internal | Self::Undeliverable | Self::Signal(_))
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// The table printed by `--help` and mirrored in the README.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
    0    success: the task's result was delivered
    3    task failed: its error was delivered (permanent)
   65    bad payload: undecodable, or no runnable task (permanent)
   70    internal worker error (retryable)
   75    final event undeliverable within the delivery budget (retryable)
   76    final event rejected by the receiver, e.g. 404 (permanent)
   78    bad configuration: flags, environment, secrets, untrusted TLS (permanent)
  128+n  terminated by signal n, e.g. 143 for SIGTERM (task_cancelled sent)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_code() {
        for exit in [
            Exit::Success,
            Exit::TaskFailed,
            Exit::BadPayload,
            Exit::Internal,
            Exit::Undeliverable,
            Exit::Rejected,
            Exit::BadConfig,
        ] {
            let code = format!(" {} ", exit.code());
            assert!(EXIT_CODES_HELP.contains(&code), "{exit:?} missing from help");
        }
        assert_eq!(Exit::Signal(15).code(), 143);
        assert!(Exit::Undeliverable.retryable() && !Exit::Rejected.retryable() && !Exit::TaskFailed.retryable());
    }
}
