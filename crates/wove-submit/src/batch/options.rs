//! What a caller may choose about the AWS Batch job, each with its default
//! written once, in [`BatchOptions::default`]. The options also deserialize
//! from JSON (`wove-submit batch … --options FILE`), keys in snake_case.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::payload::Compression;
pub use crate::store::PayloadStore;

/// Everything a caller may choose about the job. Only the queue and the job
/// definition have no default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchOptions {
    /// The job queue (name or ARN). Required.
    pub job_queue: String,
    /// The job definition (`name`, `name:revision` or ARN); it should run
    /// `wove-worker` (crates/wove-submit/README.md, "AWS Batch"). Required.
    pub job_definition: String,
    /// Start of the job's name, before the ids and the hash. Default `wove`.
    pub name_prefix: String,
    /// Environment variables of the container, before the payload's. Default none.
    /// Names under `AWS_BATCH_` are Batch's own and refused.
    pub environment: Vec<(String, String)>,
    /// The container's command. Default: the job definition's.
    pub command: Option<Vec<String>>,
    /// vCPUs (`"1"`, or `"0.25"` on Fargate). Default: the job definition's.
    pub vcpus: Option<String>,
    /// Memory in MiB. Default: the job definition's.
    pub memory_mib: Option<u64>,
    /// GPUs. Default: the job definition's.
    pub gpus: Option<u32>,
    /// Tags of the job, beside the submitter's own (`wove:run-id`, …). Default none.
    pub tags: BTreeMap<String, String>,
    /// Copy the job's tags to its ECS task. Default false, as Batch's.
    pub propagate_tags: bool,
    /// Parameters substituted into the job definition's command. Default none.
    pub parameters: BTreeMap<String, String>,
    /// Jobs this one waits for. Default none.
    pub depends_on: Vec<Dependency>,
    /// Scheduling priority on a fair-share queue, 0 to 9999. Default: the job definition's.
    pub scheduling_priority: Option<i32>,
    /// Fair-share identifier. Default none.
    pub share_identifier: Option<String>,
    /// Attempts in all, 1 to 10: retried on the worker's retryable exit codes and
    /// on platform failures (host terminated, spot reclaimed). Default 1, as Wove's.
    pub attempts: i32,
    /// Seconds one attempt may run, at least 60. Batch sends SIGTERM, then
    /// SIGKILL 30 s later, and does not retry a timed-out job. Default none.
    pub attempt_duration_seconds: Option<i64>,
    /// Run an array job of this many children (2 to 10000), each with
    /// `AWS_BATCH_JOB_ARRAY_INDEX`. Default none, except for a many-task
    /// payload: one child per task.
    pub array_size: Option<i32>,
    /// The payload is already in the container at this path (a volume the job
    /// definition mounts): the job gets `WOVE_BACKEND_PAYLOAD_FILE` instead of
    /// the payload, which then never enters the request. Default none.
    pub payload_file: Option<String>,
    /// Where a payload goes that does not fit Batch's limits (or every
    /// payload, with `always`): an S3 object the job reads by reference,
    /// deleted when the job is over. Default none: such a payload is refused.
    pub payload_store: Option<PayloadStore>,
    /// Whether the payload travels gzip-compressed. Default
    /// [`Compression::Auto`]: only when it would not fit Batch's limits otherwise.
    pub compression: Compression,
    /// Check the ECS limit on container overrides (8192 characters, or the job
    /// fails after it was accepted). Turn off only for EKS-backed queues. Default true.
    pub ecs_overrides_limit: bool,
    /// Any other SubmitJob field, as the API spells it (`"nodeOverrides"`, …),
    /// merged into the request as is. Default none.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            job_queue: String::new(),
            job_definition: String::new(),
            name_prefix: "wove".into(),
            environment: Vec::new(),
            command: None,
            vcpus: None,
            memory_mib: None,
            gpus: None,
            tags: BTreeMap::new(),
            propagate_tags: false,
            parameters: BTreeMap::new(),
            depends_on: Vec::new(),
            scheduling_priority: None,
            share_identifier: None,
            attempts: 1,
            attempt_duration_seconds: None,
            array_size: None,
            payload_file: None,
            payload_store: None,
            compression: Compression::Auto,
            ecs_overrides_limit: true,
            extra: serde_json::Map::new(),
        }
    }
}

impl BatchOptions {
    /// Defaults with this queue and job definition.
    pub fn new(job_queue: impl Into<String>, job_definition: impl Into<String>) -> Self {
        Self { job_queue: job_queue.into(), job_definition: job_definition.into(), ..Self::default() }
    }
}

/// A job this one depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    /// Its job id.
    pub job_id: String,
    /// For array jobs: `N_TO_N` or `SEQUENTIAL`. Default none.
    #[serde(default)]
    pub kind: Option<String>,
}

impl std::str::FromStr for Dependency {
    type Err = String;

    /// `JOB_ID` or `JOB_ID:TYPE`, as the command line writes one.
    fn from_str(text: &str) -> Result<Self, String> {
        let (job_id, kind) = match text.split_once(':') {
            Some((id, kind)) => (id, Some(kind)),
            None => (text, None),
        };
        if job_id.is_empty() || kind == Some("") {
            return Err(format!("`{text}` is not JOB_ID or JOB_ID:TYPE"));
        }
        Ok(Self { job_id: job_id.into(), kind: kind.map(str::to_string) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dependency_is_written_job_id_or_job_id_colon_type() {
        assert_eq!("j-1".parse(), Ok(Dependency { job_id: "j-1".into(), kind: None }));
        assert_eq!("j-1:N_TO_N".parse(), Ok(Dependency { job_id: "j-1".into(), kind: Some("N_TO_N".into()) }));
        for bad in ["", ":N_TO_N", "j-1:"] {
            assert!(bad.parse::<Dependency>().unwrap_err().contains("JOB_ID or JOB_ID:TYPE"), "{bad:?}");
        }
    }
}
