//! Where a job stands, whichever backend runs it: one closed set that a Kubernetes Job's
//! conditions and an AWS Batch job's status both map onto, so that a caller (and the CLI's
//! `--output json`) reads every backend alike.

use serde::Serialize;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not running yet: no pod or container, one waiting (see the reason), or suspended.
    Pending,
    /// The worker is running.
    Running,
    /// The job completed.
    Succeeded,
    /// The job failed.
    Failed,
}

impl Phase {
    /// Whether the job has ended, either way.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}
