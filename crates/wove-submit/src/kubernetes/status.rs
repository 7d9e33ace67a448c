//! How a Job stands, read from the Job and its pods, without I/O.
//!
//! The Job's conditions say whether it ended; its pods say why one is stuck
//! (unschedulable, an image that cannot be pulled, a Secret that is missing)
//! and, once the worker ran, its exit code, which the contract in
//! `wove_proto::exit` explains.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use serde::Serialize;

use super::manifest::{
    annotation, ANNOTATION_PAYLOAD_OBJECT, ANNOTATION_RUN_ID, ANNOTATION_TASK_ID, CONTAINER, LABEL_JOB_NAME,
};
use crate::indexes::{parse_ranges, IndexCounts, IndexReport};

use crate::Phase;

/// A pod's phase, as Kubernetes spells it (`status.phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PodPhase {
    /// Accepted; its containers are not all started (scheduling, pulling the image).
    Pending,
    /// Bound to a node, a container running.
    Running,
    /// Every container ended with 0, for good.
    Succeeded,
    /// Every container ended, one of them otherwise.
    Failed,
    /// The node cannot be asked (or a phase this version does not know).
    Unknown,
}

impl PodPhase {
    /// The phase a pod's status gives; a pod without one has just been made, and is pending.
    pub fn of(text: Option<&str>) -> Self {
        let Some(text) = text else { return Self::Pending };
        [Self::Pending, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|phase| phase.as_str() == text)
            .unwrap_or(Self::Unknown)
    }

    /// Whether its containers have started (running or ended).
    pub fn has_started(self) -> bool {
        matches!(self, Self::Running | Self::Succeeded | Self::Failed)
    }

    /// Kubernetes' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Unknown => "Unknown",
        }
    }
}

impl std::fmt::Display for PodPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Container waiting reasons that will not resolve by themselves.
pub const STUCK_REASONS: [&str; 7] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
];

/// A Job's state, for people (`status`) and programs (`--output json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    /// The Job's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The raw run id, from the Job's annotations.
    pub run_id: Option<String>,
    /// The raw task id, from the Job's annotations.
    pub task_id: Option<String>,
    /// Where it stands.
    pub phase: Phase,
    /// Why, in Kubernetes' words: `BackoffLimitExceeded`, `PodFailurePolicy`,
    /// `DeadlineExceeded`, `Unschedulable`, `ImagePullBackOff`, `Suspended`, …
    pub reason: Option<String>,
    /// The matching human message.
    pub message: Option<String>,
    /// Pods running now.
    pub active: i32,
    /// Pods that succeeded.
    pub succeeded: i32,
    /// Pods that failed.
    pub failed: i32,
    /// The worker's exit code in the pod that decided the outcome.
    pub exit_code: Option<i32>,
    /// What that code means in the worker's contract.
    pub exit_meaning: Option<String>,
    /// Indexed Jobs: the indexes that succeeded (`"0-2,4"`).
    pub completed_indexes: Option<String>,
    /// Indexed Jobs with per-index retries: the indexes that failed.
    pub failed_indexes: Option<String>,
    /// Indexed Jobs: how many indexes stand where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_counts: Option<IndexCounts>,
    /// Indexed Jobs: each index (each task of a many-task payload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexReport>,
    /// The Job's pods, oldest first.
    pub pods: Vec<PodReport>,
    /// The payload's object (`s3://bucket/key`) when it travels by reference, from its annotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_object: Option<String>,
}

/// One pod of the Job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodReport {
    /// The pod's name.
    pub name: String,
    /// Kubernetes' pod phase.
    pub phase: PodPhase,
    /// `JOB_COMPLETION_INDEX` of the pod, for Indexed Jobs.
    pub index: Option<String>,
    /// Why it waits or ended, when Kubernetes says.
    pub reason: Option<String>,
    /// The matching message.
    pub message: Option<String>,
    /// The worker container's exit code, once it ended.
    pub exit_code: Option<i32>,
    /// What that code means.
    pub exit_meaning: Option<String>,
    /// The worker's termination message (its JSON outcome summary), when it wrote one.
    pub termination_message: Option<serde_json::Value>,
}

/// Read a Job's state from the Job and its pods (any order).
pub fn report(job: &Job, pods: &[Pod]) -> JobReport {
    let status = job.status.clone().unwrap_or_default();
    let condition =
        |kind: &str| status.conditions.iter().flatten().find(|c| c.type_ == kind && c.status == "True").cloned();
    let mut pods: Vec<&Pod> = pods.iter().filter(|p| belongs_to(p, job)).collect();
    pods.sort_by(|a, b| a.metadata.creation_timestamp.cmp(&b.metadata.creation_timestamp));
    let pod_reports: Vec<PodReport> = pods.iter().map(|p| pod_report(p)).collect();

    let mut out = JobReport {
        name: job.metadata.name.clone().unwrap_or_default(),
        namespace: job.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
        run_id: annotation(&job.metadata, ANNOTATION_RUN_ID).map(str::to_string),
        task_id: annotation(&job.metadata, ANNOTATION_TASK_ID).map(str::to_string),
        phase: Phase::Pending,
        reason: None,
        message: None,
        active: status.active.unwrap_or(0),
        succeeded: status.succeeded.unwrap_or(0),
        failed: status.failed.unwrap_or(0),
        exit_code: None,
        exit_meaning: None,
        completed_indexes: status.completed_indexes.clone().filter(|s| !s.is_empty()),
        failed_indexes: status.failed_indexes.clone().filter(|s| !s.is_empty()),
        index_counts: None,
        indexes: Vec::new(),
        pods: Vec::new(),
        payload_object: annotation(&job.metadata, ANNOTATION_PAYLOAD_OBJECT).map(str::to_string),
    };

    // FailureTarget and SuccessCriteriaMet come first on newer servers; the
    // outcome is decided then, even while the last pods terminate.
    let ended = condition("Failed")
        .or_else(|| condition("FailureTarget"))
        .map(|c| (Phase::Failed, c))
        .or_else(|| condition("Complete").or_else(|| condition("SuccessCriteriaMet")).map(|c| (Phase::Succeeded, c)));
    if let Some((phase, c)) = ended {
        out.phase = phase;
        out.reason = c.reason.filter(|r| !r.is_empty());
        out.message = c.message.filter(|m| !m.is_empty());
        let wanted = if phase == Phase::Failed { PodPhase::Failed } else { PodPhase::Succeeded };
        if let Some(pod) = pod_reports.iter().rev().find(|p| p.phase == wanted && p.exit_code.is_some()) {
            out.exit_code = pod.exit_code;
            out.exit_meaning = pod.exit_meaning.clone();
        }
    } else if job.spec.as_ref().and_then(|s| s.suspend) == Some(true) || condition("Suspended").is_some() {
        out.reason = Some("Suspended".into());
        out.message = Some("the Job is suspended: nothing runs until it is resumed".into());
    } else if let Some(stuck) = pod_reports.iter().rev().find(|p| {
        p.exit_code.is_none() && p.reason.as_deref().is_some_and(|r| r == "Unschedulable" || STUCK_REASONS.contains(&r))
    }) {
        out.reason = stuck.reason.clone();
        out.message = stuck.message.clone();
    } else if pod_reports.iter().any(|p| p.phase == PodPhase::Running) {
        out.phase = Phase::Running;
    } else if let Some(waiting) = pod_reports.iter().rev().find(|p| p.phase == PodPhase::Pending) {
        out.reason = waiting.reason.clone().or_else(|| Some("PodPending".into()));
        out.message = waiting.message.clone();
    } else {
        out.reason = Some("NoPod".into());
        out.message = Some("the Job has no pod yet".into());
    }
    let spec = job.spec.as_ref();
    if let Some(completions) =
        spec.filter(|s| s.completion_mode.as_deref() == Some("Indexed")).and_then(|s| s.completions)
    {
        out.indexes = index_reports(usize::try_from(completions).unwrap_or(0), &out, &pod_reports);
        out.index_counts = Some(IndexCounts::of(&out.indexes));
    }
    out.pods = pod_reports;
    out
}

/// Each index of an Indexed Job: succeeded or failed as the Job's status
/// says; otherwise running while one of its pods runs, else pending (not
/// started, or waiting for a retry) — or failed, once the whole Job failed.
fn index_reports(completions: usize, job: &JobReport, pods: &[PodReport]) -> Vec<IndexReport> {
    let completed = job.completed_indexes.as_deref().map(parse_ranges).unwrap_or_default();
    let failed = job.failed_indexes.as_deref().map(parse_ranges).unwrap_or_default();
    let mut reports: Vec<IndexReport> = (0..completions).map(IndexReport::pending).collect();
    // Pods are oldest first: the last one seen for an index is its latest attempt.
    for pod in pods {
        let Some(report) = pod.index.as_deref().and_then(|i| i.parse::<usize>().ok()).and_then(|i| reports.get_mut(i))
        else {
            continue;
        };
        report.attempts += 1;
        if pod.phase == PodPhase::Running {
            report.phase = Phase::Running;
        } else if pod.exit_code.is_some() {
            report.phase = Phase::Pending;
            report.exit_code = pod.exit_code;
            report.exit_meaning = pod.exit_meaning.clone();
            report.reason = pod.reason.clone();
        }
        let said = pod.termination_message.as_ref().and_then(|m| m.get("task_id")).and_then(|t| t.as_str());
        if let Some(task_id) = said {
            report.task_id = Some(task_id.to_string());
        }
    }
    for report in &mut reports {
        if completed.contains(&report.index) {
            report.phase = Phase::Succeeded;
        } else if failed.contains(&report.index)
            || (job.phase == Phase::Failed
                && report.exit_code.is_some_and(|c| c != 0)
                && report.phase != Phase::Running)
        {
            report.phase = Phase::Failed;
        }
    }
    reports
}

fn belongs_to(pod: &Pod, job: &Job) -> bool {
    let name = job.metadata.name.as_deref();
    let by_label = pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_JOB_NAME)).map(String::as_str);
    let by_owner =
        pod.metadata.owner_references.iter().flatten().any(|o| o.kind == "Job" && Some(o.name.as_str()) == name);
    by_label == name || by_owner
}

/// Whether a container said to be terminated ran at all: a kubelet marks one it never ran (or
/// lost) as terminated, exit code 137, reason `ContainerStatusUnknown`, when its pod goes.
pub(super) fn ran(terminated: &ContainerStateTerminated) -> bool {
    terminated.reason.as_deref() != Some("ContainerStatusUnknown")
}

fn pod_report(pod: &Pod) -> PodReport {
    let status = pod.status.clone().unwrap_or_default();
    let container = status.container_statuses.iter().flatten().find(|c| c.name == CONTAINER);
    let terminated: Option<&ContainerStateTerminated> = container.and_then(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .or(c.last_state.as_ref().and_then(|s| s.terminated.as_ref()))
    });
    // What a kubelet writes for a container it never ran (or lost) when the pod goes away:
    // "terminated", exit code 137, reason ContainerStatusUnknown. No process exited, so it is
    // no exit code of the worker's; a pod killed before its image pulled must not read as a
    // worker killed by SIGKILL.
    let exited = terminated.filter(|t| ran(t));
    let waiting = container.and_then(|c| c.state.as_ref()).and_then(|s| s.waiting.as_ref());
    let unschedulable = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False" && c.reason.as_deref() == Some("Unschedulable"));

    let (reason, message) = if let Some(t) = exited {
        (t.reason.clone(), None)
    } else if let Some(t) = terminated {
        (t.reason.clone(), t.message.clone())
    } else if let Some(w) = waiting {
        (w.reason.clone(), w.message.clone())
    } else if let Some(c) = unschedulable {
        (c.reason.clone(), c.message.clone())
    } else {
        (status.reason.clone(), status.message.clone())
    };
    let termination_message = exited.and_then(|t| t.message.as_deref()).filter(|m| !m.trim().is_empty()).map(|m| {
        serde_json::from_str::<serde_json::Value>(m).unwrap_or_else(|_| serde_json::Value::String(m.to_string()))
    });
    let index = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("batch.kubernetes.io/job-completion-index"))
        .or_else(|| pod.metadata.labels.as_ref().and_then(|l| l.get("batch.kubernetes.io/job-completion-index")))
        .cloned();
    PodReport {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: PodPhase::of(status.phase.as_deref()),
        index,
        reason,
        message,
        exit_code: exited.map(|t| t.exit_code),
        exit_meaning: exited.map(|t| wove_proto::exit::describe(t.exit_code)),
        termination_message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_phase_reads_as_kubernetes_spells_it() {
        for phase in [PodPhase::Pending, PodPhase::Running, PodPhase::Succeeded, PodPhase::Failed, PodPhase::Unknown] {
            assert_eq!(PodPhase::of(Some(phase.as_str())), phase);
            assert_eq!(serde_json::to_value(phase).unwrap(), phase.as_str());
        }
        assert_eq!(PodPhase::of(None), PodPhase::Pending, "a pod with no status yet has just been made");
        assert_eq!(PodPhase::of(Some("running")), PodPhase::Unknown);
    }

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": {"name": "wove-x-1", "namespace": "ns",
                         "annotations": {"wove.dev/run-id": "x:1", "wove.dev/task-id": "x"}},
            "spec": {"template": {}},
            "status": status,
        }))
        .unwrap()
    }

    fn pod(name: &str, created: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created,
                         "labels": {"batch.kubernetes.io/job-name": "wove-x-1"}},
            "status": status,
        }))
        .unwrap()
    }

    fn terminated(code: i32, message: &str) -> serde_json::Value {
        json!({"phase": if code == 0 {"Succeeded"} else {"Failed"}, "containerStatuses": [{
            "name": "wove", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": "Error", "message": message}}}]})
    }

    #[test]
    fn a_failed_job_reports_the_workers_exit_code_and_its_meaning() {
        let j = job(json!({"failed": 1, "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy", "message": "Container wove for pod ns/p exited with a non-retryable exit code 3"},
            {"type": "Failed", "status": "True", "reason": "PodFailurePolicy", "message": "Container wove for pod ns/p exited with a non-retryable exit code 3"}]}));
        let summary = r#"{"status":"failed","exit_code":3,"error_kind":"NonZeroExit"}"#;
        let r = report(&j, &[pod("p", "2026-01-01T00:00:00Z", terminated(3, summary))]);
        assert_eq!(r.phase, Phase::Failed);
        assert_eq!(r.reason.as_deref(), Some("PodFailurePolicy"));
        assert_eq!(r.exit_code, Some(3));
        assert!(r.exit_meaning.unwrap().contains("task failed"));
        assert_eq!(r.pods[0].termination_message.as_ref().unwrap()["error_kind"], "NonZeroExit");
        assert_eq!(r.run_id.as_deref(), Some("x:1"));
    }

    #[test]
    fn a_container_the_kubelet_never_ran_has_no_exit_code() {
        // A Job past its deadline while its image never pulled: the kubelet marks the container
        // terminated with 137 as the pod goes. The worker did not run, let alone get SIGKILL.
        let j = job(json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True",
            "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]}));
        let gone = json!({"phase": "Failed", "containerStatuses": [{"name": "wove", "image": "i", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": 137,
            "reason": "ContainerStatusUnknown", "message": "The container could not be located when the pod was terminated"}}}]});
        let r = report(&j, &[pod("p", "2026-01-01T00:00:00Z", gone)]);
        assert_eq!((r.phase, r.exit_code), (Phase::Failed, None));
        assert_eq!(r.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(r.pods[0].exit_code, None);
        assert_eq!(r.pods[0].reason.as_deref(), Some("ContainerStatusUnknown"));
        assert!(r.pods[0].message.as_deref().unwrap().contains("could not be located"));
        // A container that did exit 137 still says so.
        let killed = report(&j, &[pod("p", "2026-01-01T00:00:00Z", terminated(137, ""))]);
        assert_eq!(killed.exit_code, Some(137));
    }

    #[test]
    fn the_latest_pod_decides_the_exit_code() {
        let j = job(json!({"succeeded": 1, "failed": 1, "conditions": [{"type": "Complete", "status": "True"}]}));
        let pods =
            [pod("b", "2026-01-01T00:01:00Z", terminated(0, "")), pod("a", "2026-01-01T00:00:00Z", terminated(75, ""))];
        let r = report(&j, &pods);
        assert_eq!((r.phase, r.exit_code), (Phase::Succeeded, Some(0)));
        assert_eq!(r.pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn stuck_pods_say_why() {
        let j = job(json!({"active": 1}));
        let pull = json!({"phase": "Pending", "containerStatuses": [{"name": "wove", "image": "i", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope\""}}}]});
        let r = report(&j, &[pod("p", "2026-01-01T00:00:00Z", pull)]);
        assert_eq!((r.phase, r.reason.as_deref()), (Phase::Pending, Some("ImagePullBackOff")));
        assert!(r.message.unwrap().contains("nope"));

        let unsched = json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient memory."}]});
        let r = report(&j, &[pod("p", "2026-01-01T00:00:00Z", unsched)]);
        assert_eq!(r.reason.as_deref(), Some("Unschedulable"));

        let config = json!({"phase": "Pending", "containerStatuses": [{"name": "wove", "image": "i", "imageID": "",
            "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": "secret \"sig\" not found"}}}]});
        assert_eq!(
            report(&j, &[pod("p", "2026-01-01T00:00:00Z", config)]).reason.as_deref(),
            Some("CreateContainerConfigError")
        );
    }

    #[test]
    fn running_suspended_and_empty() {
        let j = job(json!({"active": 1}));
        let running = json!({"phase": "Running", "containerStatuses": [{"name": "wove", "image": "i", "imageID": "",
            "ready": true, "restartCount": 0, "state": {"running": {}}}]});
        assert_eq!(report(&j, &[pod("p", "2026-01-01T00:00:00Z", running)]).phase, Phase::Running);
        assert_eq!(report(&j, &[]).reason.as_deref(), Some("NoPod"));
        let mut suspended = job(json!({}));
        suspended.spec.as_mut().unwrap().suspend = Some(true);
        assert_eq!(report(&suspended, &[]).reason.as_deref(), Some("Suspended"));
    }

    #[test]
    fn an_indexed_job_reports_each_index() {
        let mut j = job(json!({"active": 1, "failed": 2, "succeeded": 2,
            "completedIndexes": "0,2", "failedIndexes": "3"}));
        let spec = j.spec.as_mut().unwrap();
        spec.completion_mode = Some("Indexed".into());
        spec.completions = Some(5);
        let indexed = |name: &str, created: &str, index: usize, status: serde_json::Value| {
            let mut p = pod(name, created, status);
            p.metadata.annotations =
                Some([("batch.kubernetes.io/job-completion-index".to_string(), index.to_string())].into());
            p
        };
        let running = json!({"phase": "Running", "containerStatuses": [{"name": "wove", "image": "i", "imageID": "",
            "ready": true, "restartCount": 0, "state": {"running": {}}}]});
        let pods = [
            indexed("p0", "2026-01-01T00:00:00Z", 0, terminated(0, r#"{"status":"succeeded","task_id":"sq-0"}"#)),
            indexed("p1a", "2026-01-01T00:00:01Z", 1, terminated(75, "")),
            indexed("p1b", "2026-01-01T00:00:05Z", 1, running),
            indexed("p2", "2026-01-01T00:00:02Z", 2, terminated(0, "")),
            indexed("p3", "2026-01-01T00:00:03Z", 3, terminated(3, r#"{"status":"failed","task_id":"sq-3"}"#)),
        ];
        let r = report(&j, &pods);
        let phases: Vec<_> = r.indexes.iter().map(|i| i.phase).collect();
        assert_eq!(phases, [Phase::Succeeded, Phase::Running, Phase::Succeeded, Phase::Failed, Phase::Pending]);
        assert_eq!(r.indexes[0].task_id.as_deref(), Some("sq-0"));
        assert_eq!((r.indexes[1].attempts, r.indexes[1].exit_code), (2, Some(75)));
        assert_eq!(r.indexes[3].exit_code, Some(3));
        assert!(r.indexes[3].exit_meaning.as_deref().unwrap().starts_with("task failed"));
        assert_eq!(r.indexes[4].attempts, 0);
        let counts = r.index_counts.unwrap();
        assert_eq!((counts.succeeded, counts.running, counts.failed, counts.pending), (2, 1, 1, 1));
        // A single Job has no index report.
        assert!(report(&job(json!({})), &[]).indexes.is_empty());
    }

    #[test]
    fn pods_of_other_jobs_are_ignored() {
        let j = job(json!({"active": 1}));
        let mut other = pod("q", "2026-01-01T00:00:00Z", terminated(3, ""));
        other.metadata.labels = Some([("batch.kubernetes.io/job-name".to_string(), "another".to_string())].into());
        assert!(report(&j, &[other]).pods.is_empty());
    }
}
