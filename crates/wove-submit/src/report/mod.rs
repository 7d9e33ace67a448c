//! Telling the weave about a failure outside the worker.
//!
//! While `wait --report` watches a job, the platform may end it (or never
//! start it) for a reason the worker cannot report: the image, a missing
//! Secret, no room, the OOM killer, a lost node, the deadline. Each
//! backend's `unreported` module decides that from the platform's state;
//! this module turns the decision into the `task_error` the worker would
//! have sent ([`event`]), and posts it with the worker's own delivery
//! rules and signing flags (`sender`, feature `report`).

pub mod event;
#[cfg(feature = "report")]
pub mod sender;
#[cfg(feature = "report")]
pub mod stop;

pub use event::{event, JobAttempt, Unreported};
#[cfg(feature = "report")]
pub use sender::{ReportOutcome, Sender};
#[cfg(feature = "report")]
pub use stop::{stop_signal, StopHandle, StopSignal};

/// How a reported wait ended, for either platform: `R` is its report of
/// the job (a Kubernetes `JobReport`, a Batch `BatchReport`).
#[cfg(feature = "report")]
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reported<R> {
    /// The job as last seen.
    #[serde(flatten)]
    pub report: R,
    /// What was reported, one per task.
    pub reported: Vec<ReportOutcome>,
    /// Whether the job was ended (deleted, cancelled) because a task could never run.
    pub ended_job: bool,
    /// Whether the wait was stopped from outside before the job was over.
    pub stopped: bool,
}

#[cfg(feature = "report")]
impl<R> Reported<R> {
    /// Whether a report that was due did not reach the receiver.
    pub fn undelivered(&self) -> bool {
        self.reported.iter().any(|r| !r.delivered)
    }
}
