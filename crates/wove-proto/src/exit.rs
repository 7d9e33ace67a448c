//! The worker's exit-code contract, in one place.
//!
//! The codes are stable: the submitter turns them into Kubernetes
//! `podFailurePolicy` rules and AWS Batch `evaluateOnExit` rules, and reads
//! them back when it reports how a Job ended. A code is *permanent* when
//! running the same Job again cannot help (the task already reported its
//! failure, or the payload or configuration is wrong) and *retryable* when it
//! might (the report never arrived, or the container was stopped).

/// How a worker run ended, as the platform sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// The task succeeded and its result was delivered.
    Success,
    /// The task failed and its error was delivered. Permanent.
    TaskFailed,
    /// The payload could not be decoded or describes no runnable task. Permanent.
    BadPayload,
    /// The payload's URL names nothing the worker may read: the object is gone,
    /// access is denied, a presigned URL expired, or the bucket is in another
    /// region. Permanent: the worker never learnt where to report.
    PayloadUnavailable,
    /// The worker itself failed unexpectedly. Retryable.
    Internal,
    /// A temporary failure outlasted its budget: the final event could not be
    /// delivered, or the payload's URL kept failing (5xx, throttling, resets). Retryable.
    Undeliverable,
    /// The receiver refused the final event for good (4xx other than 408/425/429). Permanent.
    Rejected,
    /// The worker's own configuration (flags, environment, secrets, trusted CAs) is wrong. Permanent.
    BadConfig,
    /// Stopped by this signal; the code is 128 + its number. Retryable.
    Signal(i32),
}

/// Every code the worker chooses itself, signals aside, in ascending order.
pub const FIXED: [Exit; 8] = [
    Exit::Success,
    Exit::TaskFailed,
    Exit::BadPayload,
    Exit::PayloadUnavailable,
    Exit::Internal,
    Exit::Undeliverable,
    Exit::Rejected,
    Exit::BadConfig,
];

/// Signals that end a worker on the platforms it runs on, so that their codes
/// (128 + n) are worth naming in retry rules: SIGINT and SIGTERM, which the
/// worker answers with `task_cancelled`, and SIGKILL, which the kernel or the
/// kubelet sends (the out-of-memory killer, a grace period that ran out).
pub const STOP_SIGNALS: [i32; 3] = [2, 9, 15];

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::TaskFailed => 3,
            Self::BadPayload => 65,
            Self::PayloadUnavailable => 66,
            Self::Internal => 70,
            Self::Undeliverable => 75,
            Self::Rejected => 76,
            Self::BadConfig => 78,
            Self::Signal(n) => 128u8.saturating_add(u8::try_from(n).unwrap_or(127)),
        }
    }

    /// The contract's reading of a container's exit code, if it is one of ours.
    /// Codes above 128 are read as signals.
    pub fn from_code(code: i32) -> Option<Self> {
        if (129..=255).contains(&code) {
            return Some(Self::Signal(code - 128));
        }
        FIXED.into_iter().find(|exit| i32::from(exit.code()) == code)
    }

    /// Whether running the job again could change the outcome.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Internal | Self::Undeliverable | Self::Signal(_))
    }

    /// The permanent failure codes, ascending: a submitter fails the Job on these.
    pub fn permanent_codes() -> Vec<u8> {
        FIXED.into_iter().filter(|e| *e != Self::Success && !e.retryable()).map(Self::code).collect()
    }

    /// The retryable failure codes worth naming, ascending: the worker's own
    /// plus the [`STOP_SIGNALS`].
    pub fn retryable_codes() -> Vec<u8> {
        let mut codes: Vec<u8> = FIXED.into_iter().filter(|e| e.retryable()).map(Self::code).collect();
        codes.extend(STOP_SIGNALS.iter().map(|&n| Self::Signal(n).code()));
        codes.sort_unstable();
        codes.dedup();
        codes
    }

    /// What the code means, in the words of the help table.
    pub fn meaning(self) -> String {
        let text = match self {
            Self::Success => "success: the task's result was delivered",
            Self::TaskFailed => "task failed: its error was delivered (permanent)",
            Self::BadPayload => "bad payload: undecodable, or no runnable task (permanent)",
            Self::PayloadUnavailable => {
                "payload URL unusable: not found, access denied, expired, wrong region (permanent)"
            }
            Self::Internal => "internal worker error (retryable)",
            Self::Undeliverable => "final event undeliverable, or payload URL failing, within budget (retryable)",
            Self::Rejected => "final event rejected by the receiver, e.g. 404 (permanent)",
            Self::BadConfig => "bad configuration: flags, environment, secrets, untrusted TLS (permanent)",
            Self::Signal(n) => return format!("terminated by signal {n}{} (retryable)", signal_name(n)),
        };
        text.to_string()
    }
}

/// What a container exit code means under the contract; codes the worker never
/// uses are said to be outside it.
pub fn describe(code: i32) -> String {
    match Exit::from_code(code) {
        Some(exit) => exit.meaning(),
        None => format!("exit code {code} is not one wove-worker uses (another command ran?)"),
    }
}

fn signal_name(n: i32) -> &'static str {
    match n {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        3 => " (SIGQUIT)",
        6 => " (SIGABRT)",
        9 => " (SIGKILL: out of memory, or a grace period ran out)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit.code())
    }
}

/// The table printed by `--help` and mirrored in the README's table (tests/docs.rs keeps them in step).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
    0    success: the task's result was delivered
    3    task failed: its error was delivered (permanent)
   65    bad payload: undecodable, or no runnable task (permanent)
   66    payload URL unusable: not found, access denied, expired, wrong region (permanent)
   70    internal worker error (retryable)
   75    final event undeliverable, or payload URL failing, within budget (retryable)
   76    final event rejected by the receiver, e.g. 404 (permanent)
   78    bad configuration: flags, environment, secrets, untrusted TLS (permanent)
  128+n  terminated by signal n, e.g. 143 for SIGTERM (task_cancelled sent)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_code_with_its_meaning() {
        for exit in FIXED {
            let line = EXIT_CODES_HELP
                .lines()
                .find(|l| l.split_whitespace().next() == Some(&exit.code().to_string()))
                .unwrap_or_else(|| panic!("{exit:?} missing from help"));
            assert!(line.ends_with(&exit.meaning()), "{line:?} vs {:?}", exit.meaning());
        }
        assert_eq!(Exit::Signal(15).code(), 143);
    }

    #[test]
    fn codes_read_back() {
        for exit in FIXED {
            assert_eq!(Exit::from_code(i32::from(exit.code())), Some(exit));
        }
        assert_eq!(Exit::from_code(143), Some(Exit::Signal(15)));
        assert_eq!(Exit::from_code(1), None);
        assert_eq!(Exit::from_code(-1), None);
        assert!(describe(137).contains("SIGKILL"));
        assert!(describe(1).contains("not one wove-worker uses"));
    }

    #[test]
    fn permanent_and_retryable_split_the_failures() {
        assert_eq!(Exit::permanent_codes(), vec![3, 65, 66, 76, 78]);
        assert_eq!(Exit::retryable_codes(), vec![70, 75, 130, 137, 143]);
        let permanent = Exit::permanent_codes();
        assert!(Exit::retryable_codes().iter().all(|c| !permanent.contains(c)));
        assert!(!permanent.contains(&0));
    }

    #[test]
    fn signal_codes_name_their_signal() {
        for (code, name) in
            [(129, "SIGHUP"), (130, "SIGINT"), (131, "SIGQUIT"), (134, "SIGABRT"), (137, "SIGKILL"), (143, "SIGTERM")]
        {
            assert!(describe(code).contains(name), "{code}: {}", describe(code));
        }
        // A signal with no name of its own is still named by number, and not as another.
        let other = describe(128 + 10);
        assert!(
            !["SIGHUP", "SIGINT", "SIGQUIT", "SIGABRT", "SIGKILL", "SIGTERM"].iter().any(|n| other.contains(n)),
            "{other}"
        );
    }

    #[test]
    fn the_process_exit_code_is_the_contract_code() {
        use std::process::ExitCode;
        for exit in FIXED.into_iter().chain([Exit::Signal(15)]) {
            assert_eq!(ExitCode::from(exit), ExitCode::from(exit.code()), "{exit:?}");
        }
        assert_ne!(ExitCode::from(Exit::TaskFailed), ExitCode::SUCCESS);
    }
}
