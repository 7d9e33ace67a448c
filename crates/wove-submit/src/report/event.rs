//! The `task_error` for a failure outside the worker, without I/O.
//!
//! Its event id is derived from the job and the task, never drawn at
//! random: two watchers of the same job (`submit --wait --report` and a
//! later `wait --report`) send the same id, so a receiver that drops
//! duplicates keeps one.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use wove_proto::{ErrorInfo, Event, EventKind, EventMeta, Payload, PayloadError, PlatformKind};

/// How `wove-submit` names itself in the events it sends.
pub const SENDER: &str = concat!("wove-submit/", env!("CARGO_PKG_VERSION"));

/// One task that failed outside its worker, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreported {
    /// The task's index in a many-task job; `None` for a job's one task.
    pub index: Option<usize>,
    /// What went wrong, from the closed set.
    #[serde(serialize_with = "kind_name")]
    pub kind: PlatformKind,
    /// The platform's own word for it (`ImagePullBackOff`, `OOMKilled`, `CannotPullContainerError`, …).
    pub reason: String,
    /// The platform's message, quoted, and what to fix.
    pub message: String,
    /// Where: namespace, job, pod, node, image, exit code, as known.
    pub details: BTreeMap<String, Value>,
}

fn kind_name<S: serde::Serializer>(kind: &PlatformKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// Which job and which of its attempts a report is about: the part of the
/// event id that is not the task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAttempt {
    /// `kubernetes` or `aws-batch`.
    pub platform: &'static str,
    /// `namespace/name` of a Job, or a Batch job id.
    pub job: String,
    /// What tells this run of the job from an earlier one of the same name:
    /// the Job's uid, or the Batch attempt number.
    pub attempt: String,
    /// The platform's attempt number, from 1, for `meta.attempt`.
    pub attempt_number: u32,
}

/// The deterministic id of the report about task `index` of `job`.
pub fn event_id(job: &JobAttempt, index: Option<usize>) -> String {
    let mut digest = Sha256::new();
    for part in [job.platform, &job.job, &job.attempt, &index.map_or_else(|| "-".to_string(), |i| i.to_string())] {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    format!("evt_{}", &hex::encode(digest.finalize())[..32])
}

/// The `task_error` event for `failure`, addressed to the task's run and
/// task ids (the payload's, or its entry's in a many-task payload).
pub fn event(payload: &Payload, failure: &Unreported, job: &JobAttempt, now_ms: u64) -> Result<Event, PayloadError> {
    let task = payload.clone().select(failure.index)?;
    let mut error = ErrorInfo::task(failure.kind.as_str(), failure.message.clone()).retryable(failure.kind.retryable());
    error.source = PlatformKind::SOURCE.to_string();
    error.details = failure.details.clone();
    error.details.insert("reason".into(), Value::from(failure.reason.clone()));
    let mut platform = BTreeMap::new();
    platform.insert("platform".to_string(), job.platform.to_string());
    platform.insert("job".to_string(), job.job.clone());
    Ok(Event {
        kind: EventKind::TaskError,
        run_id: task.run_id,
        task_id: task.task_id,
        event_id: event_id(job, failure.index),
        result: None,
        result_pickle: None,
        error: Some(error),
        exception_pickle: None,
        output: None,
        progress: None,
        meta: EventMeta {
            worker: SENDER.to_string(),
            attempt: job.attempt_number,
            sequence: 0,
            created_at_ms: now_ms,
            task_index: failure.index,
            platform,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(attempt: &str) -> JobAttempt {
        JobAttempt { platform: "kubernetes", job: "ns/j".into(), attempt: attempt.into(), attempt_number: 1 }
    }

    fn failure(index: Option<usize>) -> Unreported {
        Unreported {
            index,
            kind: PlatformKind::ImagePullFailed,
            reason: "ErrImagePull".into(),
            message: "the node cannot pull image x".into(),
            details: BTreeMap::from([("pod".to_string(), Value::from("p"))]),
        }
    }

    #[test]
    fn the_event_is_a_platform_task_error_for_the_tasks_own_ids() {
        let payload = Payload::from_text(
            r#"{"version":1,"callback_url":"http://h/t","run_id":"r:1","task_id":"t",
                "tasks":[{"task_id":"a","task":{"runner":"x"}},{"task_id":"b","task":{"runner":"x"}}]}"#,
        )
        .unwrap();
        let e = event(&payload, &failure(Some(1)), &job("u1"), 7).unwrap();
        assert_eq!((e.kind, e.task_id.as_str(), e.meta.task_index), (EventKind::TaskError, "b", Some(1)));
        let error = e.error.unwrap();
        assert_eq!(
            (error.kind.as_str(), error.source.as_str(), error.retryable),
            ("ImagePullFailed", "platform", false)
        );
        assert_eq!(error.details["reason"], "ErrImagePull");
        assert_eq!(error.details["pod"], "p");
        assert_eq!(e.meta.worker, SENDER);
        assert!(event(&payload, &failure(Some(5)), &job("u1"), 7).is_err(), "no such task");
    }

    #[test]
    fn ids_are_the_same_for_the_same_task_and_attempt_and_differ_otherwise() {
        let a = event_id(&job("u1"), Some(0));
        assert_eq!(a, event_id(&job("u1"), Some(0)));
        assert!(a.starts_with("evt_") && a.len() == 36);
        assert_ne!(a, event_id(&job("u2"), Some(0)), "another Job of the same name");
        assert_ne!(a, event_id(&job("u1"), Some(1)));
        assert_ne!(a, event_id(&job("u1"), None));
        let mut batch = job("u1");
        batch.platform = "aws-batch";
        assert_ne!(a, event_id(&batch, Some(0)));
    }
}
