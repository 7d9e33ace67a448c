//! How an AWS Batch job stands, read from its description, without I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::render::{TAG_RUN_ID, TAG_TASK_ID};
use crate::indexes::{IndexCounts, IndexReport};
use crate::Phase;

/// What DescribeJobs says about a job (the parts read here), as the API spells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobDescription {
    /// Its id (array children: `<parent>:<index>`).
    pub job_id: String,
    /// Its name.
    pub job_name: String,
    /// Where Batch says it stands.
    pub status: BatchStatus,
    /// Why it is in that status, when Batch says.
    pub status_reason: Option<String>,
    /// Each attempt, oldest first.
    pub attempts: Vec<Attempt>,
    /// The current (or last) container.
    pub container: Option<Container>,
    /// For array jobs.
    pub array_properties: Option<ArraySummary>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
    /// When it was submitted, in Unix milliseconds.
    pub created_at: Option<i64>,
}

/// One attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Attempt {
    /// Its container.
    pub container: Option<Container>,
    /// Why the attempt ended, when Batch says.
    pub status_reason: Option<String>,
}

/// A container of an attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    /// Its exit code.
    pub exit_code: Option<i32>,
    /// Why it ended, when Batch says (`OutOfMemoryError: …`, `CannotPullContainerError: …`).
    pub reason: Option<String>,
    /// Its CloudWatch log stream.
    pub log_stream_name: Option<String>,
    /// Its environment (the job definition's, with the overrides).
    pub environment: Vec<KeyValue>,
}

/// One variable of a container's environment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyValue {
    /// Its name.
    pub name: Option<String>,
    /// Its value.
    pub value: Option<String>,
}

/// An array job's children, by status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ArraySummary {
    /// How many children.
    pub size: Option<i32>,
    /// The index, for a child.
    pub index: Option<i32>,
    /// Children by status.
    pub status_summary: BTreeMap<String, i32>,
}

/// A job's state, for people (`status`) and programs (`--output json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchReport {
    /// The job's id.
    pub job_id: String,
    /// Its name.
    pub job_name: String,
    /// The raw run id, from its tags.
    pub run_id: Option<String>,
    /// The raw task id, from its tags.
    pub task_id: Option<String>,
    /// Where it stands.
    pub phase: Phase,
    /// Batch's own status.
    pub status: BatchStatus,
    /// Batch's status reason.
    pub reason: Option<String>,
    /// The worker's exit code in the last attempt.
    pub exit_code: Option<i32>,
    /// What that code means in the worker's contract.
    pub exit_meaning: Option<String>,
    /// Each attempt.
    pub attempts: Vec<AttemptReport>,
    /// For array jobs: children by status.
    pub array: Option<ArraySummary>,
    /// For array jobs: how many children stand where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_counts: Option<IndexCounts>,
    /// For array jobs: each child (each task of a many-task payload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexReport>,
    /// The payload's object (`s3://bucket/key`) when it travels by reference, from its tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_object: Option<String>,
}

/// One attempt, explained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptReport {
    /// The worker's exit code.
    pub exit_code: Option<i32>,
    /// What it means in the contract.
    pub exit_meaning: Option<String>,
    /// The container's reason.
    pub reason: Option<String>,
    /// Batch's reason for the attempt's end.
    pub status_reason: Option<String>,
    /// Where its log is.
    pub log_stream_name: Option<String>,
}

impl JobDescription {
    /// The children of this array job (`<id>:0` …), when it is one.
    pub fn child_ids(&self) -> Vec<String> {
        match &self.array_properties {
            Some(ArraySummary { size: Some(size), index: None, .. }) => {
                (0..*size).map(|i| format!("{}:{i}", self.job_id)).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// An AWS Batch job's status, as the API spells it (`SUBMITTED` ... `FAILED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    /// Accepted, not yet evaluated by the scheduler.
    #[default]
    Submitted,
    /// Waiting on its dependencies.
    Pending,
    /// Queued: waiting for room in a compute environment.
    Runnable,
    /// Placed; its container is being started.
    Starting,
    /// Its container runs.
    Running,
    /// It ended with exit code 0.
    Succeeded,
    /// It ended otherwise (a non-zero exit, a timeout, cancelled, its host lost).
    Failed,
    /// A status this version does not know: read as not yet running.
    #[serde(other)]
    Unknown,
}

impl BatchStatus {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "SUBMITTED",
            Self::Pending => "PENDING",
            Self::Runnable => "RUNNABLE",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// Where a job in this status stands, in the terms both backends share.
    pub fn phase(self) -> Phase {
        match self {
            Self::Succeeded => Phase::Succeeded,
            Self::Failed => Phase::Failed,
            Self::Running => Phase::Running,
            Self::Submitted | Self::Pending | Self::Runnable | Self::Starting | Self::Unknown => Phase::Pending,
        }
    }
}

impl std::fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Read an array job's state from its description and its children's.
pub fn report_with_children(job: &JobDescription, children: &[JobDescription]) -> BatchReport {
    let mut out = report(job);
    if let Some(size) = job.array_properties.as_ref().and_then(|a| a.size) {
        let mut indexes: Vec<IndexReport> = (0..usize::try_from(size).unwrap_or(0)).map(IndexReport::pending).collect();
        for child in children {
            // The child's own index, or the one its id ends with (`<parent>:<index>`).
            let index = child
                .array_properties
                .as_ref()
                .and_then(|a| a.index)
                .and_then(|i| usize::try_from(i).ok())
                .or_else(|| child.job_id.rsplit_once(':').and_then(|(_, i)| i.parse().ok()));
            if let Some(slot) = index.and_then(|i| indexes.get_mut(i)) {
                *slot = index_report(slot.index, child);
            }
        }
        out.index_counts = Some(IndexCounts::of(&indexes));
        out.indexes = indexes;
    }
    out
}

/// One child of an array job.
pub fn index_report(index: usize, child: &JobDescription) -> IndexReport {
    let r = report(child);
    IndexReport {
        index,
        phase: r.phase,
        task_id: None,
        attempts: r.attempts.len(),
        exit_code: r.exit_code,
        exit_meaning: r.exit_meaning,
        reason: r.reason,
    }
}

/// Read a job's state from its description.
pub fn report(job: &JobDescription) -> BatchReport {
    let phase = job.status.phase();
    let attempts: Vec<AttemptReport> = job
        .attempts
        .iter()
        .map(|a| {
            let c = a.container.clone().unwrap_or_default();
            AttemptReport {
                exit_code: c.exit_code,
                exit_meaning: c.exit_code.map(wove_proto::exit::describe),
                reason: c.reason,
                status_reason: a.status_reason.clone(),
                log_stream_name: c.log_stream_name,
            }
        })
        .collect();
    let exit_code = attempts.last().and_then(|a| a.exit_code).or(job.container.as_ref().and_then(|c| c.exit_code));
    BatchReport {
        job_id: job.job_id.clone(),
        job_name: job.job_name.clone(),
        run_id: job.tags.get(TAG_RUN_ID).cloned(),
        task_id: job.tags.get(TAG_TASK_ID).cloned(),
        payload_object: job.tags.get(super::render::TAG_PAYLOAD_OBJECT).cloned(),
        phase,
        status: job.status,
        reason: job.status_reason.clone().filter(|r| !r.is_empty()),
        exit_code,
        exit_meaning: exit_code.map(wove_proto::exit::describe),
        attempts,
        array: job.array_properties.clone().filter(|a| a.size.is_some() || !a.status_summary.is_empty()),
        index_counts: None,
        indexes: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_job_reports_its_last_attempts_exit_code() {
        let job: JobDescription = serde_json::from_value(serde_json::json!({
            "jobId": "j-1", "jobName": "wove-x", "status": "FAILED",
            "statusReason": "Essential container in task exited",
            "attempts": [
                {"container": {"exitCode": 75, "logStreamName": "a/1"}, "statusReason": "Essential container in task exited"},
                {"container": {"exitCode": 3, "logStreamName": "a/2"}}
            ],
            "tags": {"wove:run-id": "x:1"}
        }))
        .unwrap();
        let r = report(&job);
        assert_eq!((r.phase, r.exit_code), (Phase::Failed, Some(3)));
        assert!(r.exit_meaning.as_deref().unwrap().starts_with("task failed"));
        assert!(r.attempts[0].exit_meaning.as_deref().unwrap().contains("retryable"));
        assert_eq!(r.run_id.as_deref(), Some("x:1"));
    }

    #[test]
    fn an_array_job_reports_each_child() {
        let parent: JobDescription = serde_json::from_value(serde_json::json!({
            "jobId": "p", "jobName": "wove-x", "status": "RUNNING",
            "arrayProperties": {"size": 3, "statusSummary": {"SUCCEEDED": 1, "FAILED": 1, "RUNNABLE": 1}}
        }))
        .unwrap();
        assert_eq!(parent.child_ids(), ["p:0", "p:1", "p:2"]);
        let child = |i: i32, status: &str, code: Option<i32>| -> JobDescription {
            serde_json::from_value(serde_json::json!({
                "jobId": format!("p:{i}"), "status": status, "arrayProperties": {"index": i},
                "attempts": code.map(|c| vec![serde_json::json!({"container": {"exitCode": c}})]).unwrap_or_default()
            }))
            .unwrap()
        };
        let mut by_id = child(0, "SUCCEEDED", Some(0));
        by_id.array_properties = None;
        let children = [child(1, "FAILED", Some(3)), by_id];
        assert!(children[0].child_ids().is_empty(), "a child has no children");
        let r = report_with_children(&parent, &children);
        let phases: Vec<_> = r.indexes.iter().map(|i| i.phase).collect();
        assert_eq!(phases, [Phase::Succeeded, Phase::Failed, Phase::Pending]);
        assert_eq!((r.indexes[1].exit_code, r.indexes[1].attempts), (Some(3), 1));
        assert_eq!(r.index_counts.unwrap().pending, 1);
    }

    #[test]
    fn statuses_map_to_phases() {
        for (status, phase) in [
            ("SUBMITTED", Phase::Pending),
            ("RUNNABLE", Phase::Pending),
            ("STARTING", Phase::Pending),
            ("RUNNING", Phase::Running),
            ("SUCCEEDED", Phase::Succeeded),
            ("FAILED", Phase::Failed),
            // One the API may add later: still read, as not running yet.
            ("PAUSED", Phase::Pending),
        ] {
            let job: JobDescription = serde_json::from_value(serde_json::json!({"status": status})).unwrap();
            assert_eq!(report(&job).phase, phase, "{status}");
            if job.status != BatchStatus::Unknown {
                assert_eq!(job.status.as_str(), status, "spelled as the API spells it");
                assert_eq!(serde_json::to_value(job.status).unwrap(), status);
            }
        }
    }
}
