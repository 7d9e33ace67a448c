//! Failures the worker cannot have reported, read from a Batch job's
//! description without I/O.
//!
//! Batch keeps no termination message, so whether the worker's final
//! event can have arrived is read from the last attempt's exit code, the
//! worker's contract (`wove_proto::exit`):
//!
//! - **reported by the worker**: 0 (delivered), 3 (its error delivered),
//!   65 (a payload it could decode far enough to report, or nobody to
//!   report to), 76 (the receiver refused it: so would it refuse ours),
//!   130 and 143 (SIGINT/SIGTERM: it sent `task_cancelled`);
//! - **not reported**: no exit code (the container never ran: the image,
//!   its setup, a lost instance), 137 (SIGKILL: the OOM killer, or a grace
//!   period that ran out), 66 (its payload's URL could not be fetched: it
//!   never learnt where to report), 70 and 78 (the worker failed before any
//!   event, or could not reach a trusted receiver), 75 (its final event was
//!   undeliverable, or its payload's URL kept failing), and any code that
//!   is not the worker's (another command ran). A payload object that was
//!   altered exits 65 and goes unreported: 65 cannot tell it from a payload
//!   the worker decoded far enough to report.
//!
//! A job that failed with no attempt and no reason from the classes below
//! was cancelled before it ran (CancelJob): a cancel is never reported.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use wove_proto::PlatformKind;

use super::status::{BatchStatus, JobDescription};
use crate::report::Unreported;

/// Exit codes after which the worker has sent (or tried in vain to send, to
/// a receiver that refuses it) its own final event.
const REPORTED_CODES: [i32; 6] = [0, 3, 65, 76, 130, 143];

/// What to do about one job (one child of an array job).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not over yet.
    Open,
    /// Over, and its worker reported (or it was cancelled).
    Settled,
    /// Over without a report: send this.
    Report(Unreported),
}

/// Decide `job` (its own index when it is a child of an array job), at
/// `now_ms` (Unix milliseconds): a job RUNNABLE longer than `pending_timeout`
/// is `Unschedulable`, and must then be cancelled.
pub fn decide(job: &JobDescription, index: Option<usize>, now_ms: i64, pending_timeout: Duration) -> Decision {
    let report = |kind: PlatformKind, reason: &str, message: String, exit_code: Option<i32>| {
        let mut details = BTreeMap::new();
        details.insert("job_id".to_string(), Value::from(job.job_id.clone()));
        details.insert("job_name".to_string(), Value::from(job.job_name.clone()));
        details.insert("attempts".to_string(), Value::from(job.attempts.len()));
        if let Some(code) = exit_code {
            details.insert("exit_code".to_string(), Value::from(code));
        }
        Decision::Report(Unreported { index, kind, reason: reason.to_string(), message, details })
    };
    match job.status {
        BatchStatus::Succeeded => Decision::Settled,
        BatchStatus::Runnable => {
            let waited_ms = job.created_at.map_or(0, |created| now_ms.saturating_sub(created));
            let waited = Duration::from_millis(u64::try_from(waited_ms).unwrap_or(0));
            if waited < pending_timeout {
                return Decision::Open;
            }
            let message = format!(
                "the job is still RUNNABLE after {} s (--pending-timeout): no compute environment of its queue \
                 can place it. Check the environment's state and maximum vCPUs, its instance types against the \
                 job's vCPU, memory and GPU requirements, and its subnets' capacity",
                waited.as_secs()
            );
            report(PlatformKind::Unschedulable, "RUNNABLE", message, None)
        }
        BatchStatus::Failed => decide_failed(job, report),
        _ => Decision::Open,
    }
}

fn decide_failed(
    job: &JobDescription,
    report: impl Fn(PlatformKind, &str, String, Option<i32>) -> Decision,
) -> Decision {
    let last = job.attempts.last();
    let container = last.and_then(|a| a.container.as_ref()).or(job.container.as_ref());
    let exit_code = container.and_then(|c| c.exit_code);
    if exit_code.is_some_and(|c| REPORTED_CODES.contains(&c)) {
        return Decision::Settled;
    }
    // Every reason Batch gives, the container's first: it is the most exact.
    let reasons: Vec<&str> = [
        container.and_then(|c| c.reason.as_deref()),
        last.and_then(|a| a.status_reason.as_deref()),
        job.status_reason.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let said = reasons.first().copied().unwrap_or_default().to_string();
    let has = |class: &str| reasons.iter().find(|r| r.starts_with(class) || r.contains(class)).copied();
    let attempts = job.attempts.len();
    let ended = match exit_code {
        Some(code) => format!("the container ended with exit code {code} ({})", wove_proto::exit::describe(code)),
        None => "the container never ran".to_string(),
    };

    if let Some(r) = has("CannotPullContainerError") {
        let message = format!(
            "the image cannot be pulled: {r}. Check the job definition's image name and tag, that the compute \
             environment can reach the registry (a NAT gateway or VPC endpoints for ECR), and the execution \
             role's permission to pull"
        );
        return report(PlatformKind::ImagePullFailed, "CannotPullContainerError", message, exit_code);
    }
    if let Some(r) = has("ResourceInitializationError") {
        let message = format!(
            "the container cannot be set up: {r}. Check the secrets and parameters it reads (the execution \
             role may read them, they exist in this region) and its log configuration"
        );
        return report(PlatformKind::ContainerConfigError, "ResourceInitializationError", message, exit_code);
    }
    if let Some(r) = has("OutOfMemoryError") {
        let message = format!(
            "the container was killed by the out-of-memory killer ({r}) before its worker could report. Give \
             the job more memory (its MEMORY resource requirement), or make the task use less"
        );
        return report(PlatformKind::OutOfMemory, "OutOfMemoryError", message, exit_code);
    }
    if let Some(r) = reasons.iter().find(|r| r.starts_with("Host EC2") && r.contains("terminated")) {
        let message = format!(
            "the instance running the job went away ({r}; Spot capacity reclaimed, or scaled in): {ended} \
             before its worker could report. Allow retries (--attempts) to run it again elsewhere"
        );
        return report(PlatformKind::NodeLost, "HostTerminated", message, exit_code);
    }
    if let Some(r) = has("Job attempt duration exceeded timeout") {
        let message = format!(
            "the job ran past its attempt timeout ({r}): {ended} before its worker could report. Give it longer \
             (--timeout on submit)"
        );
        return report(PlatformKind::DeadlineExceeded, "Timeout", message, exit_code);
    }
    match exit_code {
        // No attempt ran and Batch names no failure class: cancelled while queued.
        None if attempts == 0 => Decision::Settled,
        None => {
            let message = format!("{ended} ({said}): no event can have come from its worker");
            report(PlatformKind::ContainerFailed, &said, message, None)
        }
        Some(code) => {
            let (kind, what) = if attempts > 1 {
                (PlatformKind::BackoffLimitExceeded, format!("after {attempts} attempts, "))
            } else {
                (PlatformKind::ContainerFailed, String::new())
            };
            let message = format!("{what}{ended} ({said}), and its worker did not report");
            report(kind, &said, message, Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: Duration = Duration::from_secs(3600);

    fn job(value: serde_json::Value) -> JobDescription {
        let mut value = value;
        value["jobId"] = json!("j-1");
        value["jobName"] = json!("wove-x");
        serde_json::from_value(value).unwrap()
    }

    fn reported(d: Decision) -> Unreported {
        match d {
            Decision::Report(u) => u,
            other => panic!("not reported: {other:?}"),
        }
    }

    #[test]
    fn the_failure_classes_are_named_with_batchs_own_words() {
        let cases = [
            (
                json!({"container": {"reason": "CannotPullContainerError: pull image manifest has been retried 5 time(s): not found"}}),
                PlatformKind::ImagePullFailed,
                "not found",
            ),
            (
                json!({"container": {"reason": "ResourceInitializationError: unable to pull secrets or registry auth"}}),
                PlatformKind::ContainerConfigError,
                "unable to pull secrets",
            ),
            (
                json!({"container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}}),
                PlatformKind::OutOfMemory,
                "memory usage",
            ),
            (
                json!({"container": {"exitCode": 137}, "statusReason": "Host EC2 (instance i-0abc) terminated."}),
                PlatformKind::NodeLost,
                "i-0abc",
            ),
        ];
        for (attempt, kind, quoted) in cases {
            let u = reported(decide(&job(json!({"status": "FAILED", "attempts": [attempt]})), None, 0, HOUR));
            assert_eq!(u.kind, kind);
            assert!(u.message.contains(quoted), "{}", u.message);
        }
        let timed_out = job(json!({"status": "FAILED", "statusReason": "Job attempt duration exceeded timeout",
            "attempts": [{"container": {"exitCode": 137}}]}));
        assert_eq!(reported(decide(&timed_out, Some(2), 0, HOUR)).kind, PlatformKind::DeadlineExceeded);
    }

    #[test]
    fn the_workers_own_codes_mean_it_reported() {
        for code in REPORTED_CODES {
            let j = job(json!({"status": "FAILED", "statusReason": "Job attempt duration exceeded timeout",
                "attempts": [{"container": {"exitCode": code}}]}));
            assert_eq!(decide(&j, None, 0, HOUR), Decision::Settled, "exit {code}");
        }
        for code in [1, 70, 75, 78, 137] {
            let j = job(json!({"status": "FAILED", "attempts": [{"container": {"exitCode": code,
                "reason": "Essential container in task exited"}}]}));
            let u = reported(decide(&j, None, 0, HOUR));
            assert_eq!(
                (u.kind, u.details["exit_code"].as_i64()),
                (PlatformKind::ContainerFailed, Some(i64::from(code)))
            );
        }
        let retried = job(
            json!({"status": "FAILED", "attempts": [{"container": {"exitCode": 75}}, {"container": {"exitCode": 75}}]}),
        );
        assert_eq!(reported(decide(&retried, None, 0, HOUR)).kind, PlatformKind::BackoffLimitExceeded);
    }

    #[test]
    fn a_cancel_is_not_reported_and_a_long_wait_in_runnable_is() {
        let cancelled = job(json!({"status": "FAILED", "statusReason": "Cancelled by Wove."}));
        assert_eq!(decide(&cancelled, None, 0, HOUR), Decision::Settled);
        let queued = job(json!({"status": "RUNNABLE", "createdAt": 1_000_000}));
        assert_eq!(decide(&queued, None, 1_000_000 + 59_999, Duration::from_secs(60)), Decision::Open);
        let u = reported(decide(&queued, Some(0), 1_000_000 + 60_000, Duration::from_secs(60)));
        assert_eq!((u.kind, u.index), (PlatformKind::Unschedulable, Some(0)));
        assert!(u.kind.ends_the_job());
        for status in ["SUBMITTED", "PENDING", "STARTING", "RUNNING"] {
            assert_eq!(decide(&job(json!({"status": status})), None, i64::MAX, Duration::ZERO), Decision::Open);
        }
        assert_eq!(decide(&job(json!({"status": "SUCCEEDED"})), None, 0, HOUR), Decision::Settled);
    }
}
