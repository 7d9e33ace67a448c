//! The submitter's exit codes, in one place.
//!
//! They stay clear of the worker's own codes (`wove_proto::exit`), which
//! `wait` and `submit --wait` pass through when the worker ran, so a script
//! can tell "the task failed" (3) from "the cluster could not be reached" (69).

use std::process::ExitCode;

/// How a `wove-submit` run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitExit {
    /// Done: rendered, submitted, cancelled; for `wait`, the Job succeeded.
    Success,
    /// The command line is wrong (clap's own code).
    Usage,
    /// Refused before anything was sent: invalid options or payload.
    Refused,
    /// No Job of that name.
    NotFound,
    /// The platform's API could not be reached or refused the request (a name taken by another payload included).
    Api,
    /// The Job failed without a worker exit code (deadline, pod never started, evicted).
    JobFailed,
    /// Waiting gave up before the Job ended.
    TimedOut,
    /// `--report`: a failure outside the worker was found but its report could not be delivered.
    Unreported,
    /// The worker's own exit code, from the pod that decided the Job's outcome.
    Worker(u8),
}

impl SubmitExit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Usage => 2,
            Self::Refused => 64,
            Self::NotFound => 68,
            Self::Api => 69,
            Self::JobFailed => 79,
            Self::TimedOut => 124,
            Self::Unreported => 74,
            Self::Worker(code) => code,
        }
    }

    /// The exit for a worker's exit code; 0 stays success.
    pub fn worker(code: i32) -> Self {
        match u8::try_from(code) {
            Ok(0) => Self::Success,
            Ok(code) => Self::Worker(code),
            Err(_) => Self::JobFailed,
        }
    }

    /// How `wait` exits for a job that finished: success, the worker's own
    /// exit code, or `JobFailed` when the job failed without one. Only the
    /// worker's contract codes pass through: a container that exits 2 or 64
    /// (a wrong `--command`, an image whose entrypoint is not the worker) did
    /// not say what the worker's 2 or 64 would, and ours mean other things.
    pub fn finished(succeeded: bool, exit_code: Option<i32>) -> Self {
        match (succeeded, exit_code) {
            (true, _) => Self::Success,
            (false, Some(code)) if code != 0 && wove_proto::Exit::from_code(code).is_some() => Self::worker(code),
            (false, _) => Self::JobFailed,
        }
    }
}

impl From<SubmitExit> for ExitCode {
    fn from(exit: SubmitExit) -> Self {
        ExitCode::from(exit.code())
    }
}

/// The table in `--help`, beside the worker's codes that `wait` passes through.
pub fn help() -> String {
    format!(
        "\
Exit codes:
    0    success (wait: the Job succeeded)
    2    usage error
   64    refused before anything was sent: invalid options or payload
   68    no Job of that name
   69    the platform's API (Kubernetes, AWS Batch) could not be reached or refused the request
   74    --report: a failure outside the worker was found, and its report could not be delivered
   79    the Job failed without a worker exit code (deadline, pod never ran, or a
         container exit code that is not one of the worker's, named in the report)
  124    timed out waiting
  With `wait` and `submit --wait`, a Job that failed after its worker ran exits
  with the worker's own code:
{}",
        wove_proto::exit::EXIT_CODES_HELP.lines().skip(2).map(|l| format!("  {l}\n")).collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use wove_proto::Exit;

    #[test]
    fn codes_stay_clear_of_the_workers() {
        let ours = [
            SubmitExit::Usage,
            SubmitExit::Refused,
            SubmitExit::NotFound,
            SubmitExit::Api,
            SubmitExit::JobFailed,
            SubmitExit::TimedOut,
            SubmitExit::Unreported,
        ];
        for exit in ours {
            assert!(Exit::from_code(i32::from(exit.code())).is_none(), "{exit:?} collides with the worker's codes");
            assert!(help().contains(&format!(" {} ", exit.code())), "{exit:?} missing from help");
        }
        assert_eq!(SubmitExit::worker(3).code(), 3);
        assert_eq!(SubmitExit::worker(0), SubmitExit::Success);
        assert!(help().contains("   3    task failed"));
    }

    #[test]
    fn only_the_workers_own_codes_pass_through_wait() {
        for code in [1, 2, 64, 127] {
            assert_eq!(SubmitExit::finished(false, Some(code)), SubmitExit::JobFailed, "exit {code}");
        }
        for code in [3, 65, 66, 70, 75, 76, 78, 137, 143] {
            assert_eq!(SubmitExit::finished(false, Some(code)).code(), code as u8, "exit {code}");
        }
        assert_eq!(SubmitExit::finished(false, None), SubmitExit::JobFailed);
        assert_eq!(SubmitExit::finished(false, Some(0)), SubmitExit::JobFailed);
        assert_eq!(SubmitExit::finished(true, Some(2)), SubmitExit::Success);
    }
}
