//! The closed set of failures outside the worker: a job that the platform
//! ended, or never started, before its worker could report. `wove-submit`
//! reports them (as `task_error` with `source: "platform"`) while it
//! watches a job, so a weave learns at once why its task will never
//! report. Wove users match on these names; crates/wove-submit/README.md lists them.

/// The `kind` of a failure outside the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlatformKind {
    /// The image cannot be pulled (Kubernetes `ErrImagePull`/`ImagePullBackOff`,
    /// Batch `CannotPullContainerError`).
    ImagePullFailed,
    /// The container cannot be set up: a Secret, ConfigMap or key it names is
    /// missing (Kubernetes `CreateContainerConfigError`, Batch `ResourceInitializationError`).
    ContainerConfigError,
    /// No node (or compute environment) can place the job within `--pending-timeout`.
    Unschedulable,
    /// The whole container was killed by the out-of-memory killer, worker included.
    OutOfMemory,
    /// The pod was evicted or preempted and not run again.
    Evicted,
    /// The node (or instance) running the job went away.
    NodeLost,
    /// The job ran past its deadline (`activeDeadlineSeconds`, Batch's attempt timeout).
    DeadlineExceeded,
    /// The job used up its retries (`backoffLimit`, Batch's attempts) without the worker reporting.
    BackoffLimitExceeded,
    /// The container ended before its worker reported, for a reason the platform names no further.
    ContainerFailed,
}

impl PlatformKind {
    /// Every kind, in the order crates/wove-submit/README.md lists them.
    pub const ALL: [PlatformKind; 9] = [
        Self::ImagePullFailed,
        Self::ContainerConfigError,
        Self::Unschedulable,
        Self::OutOfMemory,
        Self::Evicted,
        Self::NodeLost,
        Self::DeadlineExceeded,
        Self::BackoffLimitExceeded,
        Self::ContainerFailed,
    ];

    /// The `source` of every such error.
    pub const SOURCE: &'static str = "platform";

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ImagePullFailed => "ImagePullFailed",
            Self::ContainerConfigError => "ContainerConfigError",
            Self::Unschedulable => "Unschedulable",
            Self::OutOfMemory => "OutOfMemory",
            Self::Evicted => "Evicted",
            Self::NodeLost => "NodeLost",
            Self::DeadlineExceeded => "DeadlineExceeded",
            Self::BackoffLimitExceeded => "BackoffLimitExceeded",
            Self::ContainerFailed => "ContainerFailed",
        }
    }

    /// Whether the job can never run its task now: it must be ended, so
    /// that a late start cannot report a second time.
    pub fn ends_the_job(self) -> bool {
        matches!(self, Self::ImagePullFailed | Self::ContainerConfigError | Self::Unschedulable)
    }

    /// Whether running the task again could succeed (the event's `retryable`).
    pub fn retryable(self) -> bool {
        matches!(self, Self::Evicted | Self::NodeLost)
    }
}

impl std::fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_never_one_of_the_workers_but_out_of_memory() {
        let names: std::collections::BTreeSet<_> = PlatformKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), PlatformKind::ALL.len());
        for kind in PlatformKind::ALL {
            let shared = crate::ErrorKind::from_name(kind.as_str());
            // The same condition, seen from outside: the container rather than the task.
            assert_eq!(shared.is_some(), kind == PlatformKind::OutOfMemory, "{kind}");
        }
        let ending: Vec<_> = PlatformKind::ALL.into_iter().filter(|k| k.ends_the_job()).collect();
        assert_eq!(
            ending,
            [PlatformKind::ImagePullFailed, PlatformKind::ContainerConfigError, PlatformKind::Unschedulable]
        );
        assert!(PlatformKind::NodeLost.retryable() && !PlatformKind::OutOfMemory.retryable());
    }
}
