//! Failures the worker cannot have reported, read from a Job and its pods
//! without I/O: the image cannot be pulled, a Secret is missing, no node
//! fits the pod, or the container died (OOM killer, eviction, a lost node,
//! the deadline) before its worker said `delivered: true` in its
//! termination message.
//!
//! Decided per task: the one task of a Job, or each index of an Indexed
//! Job. A task is reported at most once, and only when its worker's final
//! event cannot have arrived: its container never started, or ended
//! without a termination message that says it was delivered. A task whose
//! container is still running is left to its worker, which answers
//! SIGTERM with `task_cancelled` — so a cancel, a deadline or an eviction
//! of a running worker is reported by the worker itself.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStateWaiting, Pod};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use wove_proto::PlatformKind;

use super::manifest::{CONTAINER, LABEL_JOB_NAME};
use super::status::ran;
use crate::indexes::parse_ranges;
use crate::report::Unreported;

/// Waiting reasons of an image that cannot be pulled.
const PULL_REASONS: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];
/// Waiting reasons of a container whose configuration names what is not there.
const CONFIG_REASONS: [&str; 1] = ["CreateContainerConfigError"];
/// `DisruptionTarget` reasons that mean the node went away.
const NODE_LOST_REASONS: [&str; 2] = ["DeletionByTaintManager", "DeletionByPodGC"];

/// What to do about one task.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not over yet: keep watching.
    Open,
    /// Over, and its worker reported (or the task succeeded): nothing to send.
    Settled,
    /// Over without a report the weave can have received: send this.
    Report(Unreported),
}

/// Every task's decision, and whether the Job must be ended so that a
/// task reported as never able to run cannot start later and report again.
#[derive(Debug, Clone, PartialEq)]
pub struct Decisions {
    /// One per task: `None` for a Job's one task, `Some(i)` per index.
    pub tasks: Vec<(Option<usize>, Decision)>,
    /// A failure that no retry can fix was found while the Job still runs.
    pub end_job: bool,
}

impl Decisions {
    /// Whether nothing is left open.
    pub fn all_decided(&self) -> bool {
        self.tasks.iter().all(|(_, d)| *d != Decision::Open)
    }
}

/// Decide every task of `job` from its pods (every pod seen, deleted ones
/// included), `now`, and how long a pod may wait for a node.
pub fn decide(job: &Job, pods: &[Pod], now: Timestamp, pending_timeout: Duration) -> Decisions {
    let name = job.metadata.name.as_deref().unwrap_or_default();
    let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
    let status = job.status.clone().unwrap_or_default();
    let condition = |kind: &str| status.conditions.iter().flatten().find(|c| c.type_ == kind && c.status == "True");
    let job_failed = condition("Failed").or_else(|| condition("FailureTarget"));
    let job_succeeded = condition("Complete").or_else(|| condition("SuccessCriteriaMet")).is_some();
    let spec = job.spec.as_ref();
    let indexed = spec.filter(|s| s.completion_mode.as_deref() == Some("Indexed")).and_then(|s| s.completions);
    let completed = status.completed_indexes.as_deref().map(parse_ranges).unwrap_or_default();
    let failed = status.failed_indexes.as_deref().map(parse_ranges).unwrap_or_default();
    let context = Context {
        namespace,
        job: name,
        failure: job_failed.map(|c| (c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default())),
        backoff_limit: spec.and_then(|s| s.backoff_limit),
        deadline: spec.and_then(|s| s.active_deadline_seconds),
    };

    let tasks: Vec<Option<usize>> = match indexed {
        Some(n) => (0..usize::try_from(n).unwrap_or(0)).map(Some).collect(),
        None => vec![None],
    };
    let mine: Vec<&Pod> = pods.iter().filter(|p| belongs_to(p, name)).collect();
    let mut decisions: Vec<(Option<usize>, Decision)> = tasks
        .iter()
        .map(|&index| {
            let attempts: Vec<&Pod> =
                mine.iter().copied().filter(|p| index.is_none() || pod_index(p) == index).collect();
            let succeeded = match index {
                Some(i) => completed.contains(&i),
                None => job_succeeded,
            };
            let finally_failed = match index {
                Some(i) => failed.contains(&i) || job_failed.is_some(),
                None => job_failed.is_some(),
            };
            let decision = if succeeded {
                Decision::Settled
            } else {
                decide_task(&context, index, &attempts, finally_failed, now, pending_timeout)
            };
            (index, decision)
        })
        .collect();

    // A task that can never run ends the Job, unless the Job has ended already.
    let ending = decisions.iter().find_map(|(_, d)| match d {
        Decision::Report(u) if u.kind.ends_the_job() => Some(u.clone()),
        _ => None,
    });
    let job_over = job_failed.is_some() || job_succeeded;
    let end_job = ending.is_some() && !job_over;
    if let (Some(cause), true) = (&ending, end_job) {
        // The Job goes: every task whose worker never started goes with it, for the same cause.
        for (index, decision) in &mut decisions {
            let started = mine.iter().any(|p| (index.is_none() || pod_index(p) == *index) && container_started(p));
            if *decision == Decision::Open && !started {
                let mut report = cause.clone();
                report.index = *index;
                report.message = format!("{} (the Job is ended for this; this task had not started)", cause.message);
                *decision = Decision::Report(report);
            }
        }
    }
    Decisions { tasks: decisions, end_job }
}

/// How long until the first unscheduled pod of `pods` reaches the pending
/// timeout (zero if one has), so a watcher with nothing else to wake it
/// looks again exactly then.
pub fn next_expiry(pods: &[Pod], now: Timestamp, pending_timeout: Duration) -> Option<Duration> {
    pods.iter()
        .filter(|p| !container_started(p) && unschedulable(p).is_some())
        .filter_map(|p| p.metadata.creation_timestamp.as_ref())
        .map(|created| Duration::from_secs_f64((pending_timeout.as_secs_f64() - pending_for(created, now)).max(0.0)))
        .min()
}

/// Seconds a pod created at `created` has waited by `now`. Kubernetes keeps
/// whole seconds: counted from the end of the creation's second, so a pod
/// is never taken to have waited longer than it did.
fn pending_for(created: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time, now: Timestamp) -> f64 {
    (now.duration_since(created.0).as_secs_f64() - 1.0).max(0.0)
}

struct Context<'a> {
    namespace: &'a str,
    job: &'a str,
    /// The Job's failure condition: reason and message.
    failure: Option<(String, String)>,
    backoff_limit: Option<i32>,
    deadline: Option<i64>,
}

/// One task as its decision is made: what every stage of `decide_task` reads.
struct Task<'a> {
    cx: &'a Context<'a>,
    index: Option<usize>,
    /// The Job controller has given up on it: no attempt follows.
    finally_failed: bool,
}

impl Task<'_> {
    /// The report of this task, with the Job's and, when known, the pod's whereabouts.
    fn report(&self, kind: PlatformKind, reason: String, message: String, pod: Option<&Pod>) -> Unreported {
        let mut details = BTreeMap::new();
        details.insert("namespace".to_string(), Value::from(self.cx.namespace));
        details.insert("job".to_string(), Value::from(self.cx.job));
        if let Some(pod) = pod {
            details.insert("pod".to_string(), Value::from(pod.metadata.name.clone().unwrap_or_default()));
            if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
                details.insert("node".to_string(), Value::from(node));
            }
        }
        Unreported { index: self.index, kind, reason, message, details }
    }

    /// No pod of this task was ever seen.
    fn without_pods(&self) -> Decision {
        match (self.finally_failed, &self.cx.failure) {
            (true, Some((reason, message))) => {
                let text = format!("the Job failed ({reason}: {message}) before any pod of this task was created");
                Decision::Report(self.report(job_kind(reason), reason.clone(), text, None))
            }
            _ => Decision::Open,
        }
    }

    /// Its latest container ended: settled if its worker said it delivered, else reported once no attempt follows.
    fn ended(&self, pod: &Pod, terminated: &ContainerStateTerminated) -> Decision {
        let summary = summary(terminated);
        if summary.as_ref().and_then(|s| s.get("delivered")).and_then(Value::as_bool) == Some(true) {
            return Decision::Settled;
        }
        if !self.finally_failed {
            // The Job controller runs it again (or is deciding to): the next attempt may report.
            return Decision::Open;
        }
        let (kind, reason, message) = ended_early(self.cx, pod, terminated, summary.as_ref());
        let mut report = self.report(kind, reason, message, Some(pod));
        report.details.insert("exit_code".to_string(), Value::from(terminated.exit_code));
        Decision::Report(report)
    }

    /// Its container waits for what no retry brings: an image that cannot be pulled, a missing Secret.
    fn stuck(&self, pod: &Pod, waiting: &ContainerStateWaiting) -> Option<Decision> {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        let said = waiting.message.clone().unwrap_or_else(|| reason.to_string());
        if PULL_REASONS.contains(&reason) {
            let image = image_of(pod);
            let message = format!(
                "the node cannot pull image {image}: {said}. Check the image's name and tag, that the node can \
                 reach its registry, and for a private registry --image-pull-secret"
            );
            let mut report = self.report(PlatformKind::ImagePullFailed, reason.to_string(), message, Some(pod));
            report.details.insert("image".to_string(), Value::from(image));
            return Some(Decision::Report(report));
        }
        if CONFIG_REASONS.contains(&reason) {
            let message = format!(
                "the container cannot be set up: {said}. Create it (or the key) in namespace {}, or fix the name \
                 given with --signing-secret, --env-from-secret or --env-from-configmap",
                self.cx.namespace
            );
            return Some(Decision::Report(self.report(
                PlatformKind::ContainerConfigError,
                reason.to_string(),
                message,
                Some(pod),
            )));
        }
        None
    }

    /// Its pod has waited for a node for the whole pending timeout.
    fn unplaceable(&self, pod: &Pod, now: Timestamp, pending_timeout: Duration) -> Option<Decision> {
        let unschedulable = unschedulable(pod)?;
        let waited = pod.metadata.creation_timestamp.as_ref().map(|t| pending_for(t, now)).unwrap_or_default();
        if waited < pending_timeout.as_secs_f64() {
            return None;
        }
        let message = format!(
            "no node can run the pod: still unscheduled after {} s (--pending-timeout): {unschedulable}. Ask for \
             less (--cpu, --memory, --gpus), or check --node-selector, --toleration and the cluster's capacity",
            waited.round(),
        );
        Some(Decision::Report(self.report(PlatformKind::Unschedulable, "Unschedulable".into(), message, Some(pod))))
    }

    /// The Job ended while this pod had not started: its worker never ran.
    fn never_ran(&self, pod: &Pod) -> Decision {
        let (reason, message) =
            self.cx.failure.clone().unwrap_or_else(|| ("BackoffLimitExceeded".into(), String::new()));
        let (kind, reason) = match disruption(pod) {
            Some((why, _)) => (disrupted_kind(&why), why),
            None => (job_kind(&reason), reason),
        };
        // A container the kubelet lost track of may have run: say only what is known.
        let when = if lost_track(pod) {
            "with the pod's container in no known state (the kubelet lost track of it: ContainerStatusUnknown)"
        } else {
            "before the pod's container started"
        };
        let text = format!("{} {when}", job_failure_text(self.cx, kind, &message));
        Decision::Report(self.report(kind, reason, text, Some(pod)))
    }
}

/// One task's decision, from the latest of its attempts: each stage decides
/// or passes it on, from the furthest a container can get (ended) back to
/// the earliest (a pod no node takes).
fn decide_task(
    cx: &Context<'_>,
    index: Option<usize>,
    attempts: &[&Pod],
    finally_failed: bool,
    now: Timestamp,
    pending_timeout: Duration,
) -> Decision {
    let task = Task { cx, index, finally_failed };
    let latest = attempts.iter().copied().max_by(|a, b| {
        (a.metadata.creation_timestamp.as_ref(), a.metadata.name.as_ref())
            .cmp(&(b.metadata.creation_timestamp.as_ref(), b.metadata.name.as_ref()))
    });
    let Some(pod) = latest else {
        return task.without_pods();
    };
    if let Some(terminated) = terminated(pod) {
        return task.ended(pod, terminated);
    }
    if let Some(decision) = waiting(pod).and_then(|w| task.stuck(pod, w)) {
        return decision;
    }
    if container_started(pod) {
        // Its worker is running (or being stopped): it reports, even to SIGTERM.
        return Decision::Open;
    }
    if let Some(decision) = task.unplaceable(pod, now, pending_timeout) {
        return decision;
    }
    if finally_failed {
        return task.never_ran(pod);
    }
    Decision::Open
}

/// Why a container that ended without a delivered report ended, in the platform's words.
fn ended_early(
    cx: &Context<'_>,
    pod: &Pod,
    terminated: &ContainerStateTerminated,
    summary: Option<&Value>,
) -> (PlatformKind, String, String) {
    let code = terminated.exit_code;
    let worker = match summary {
        Some(s) => format!(
            "; the worker's own record: status {}{}{}",
            s.get("status").and_then(Value::as_str).unwrap_or("unknown"),
            s.get("error_kind").and_then(Value::as_str).map(|k| format!(", {k}")).unwrap_or_default(),
            s.get("message").and_then(Value::as_str).map(|m| format!(": {m}")).unwrap_or_default(),
        ),
        None => "; the worker wrote no termination message".to_string(),
    };
    let ended = format!("the container ended with exit code {code} ({})", wove_proto::exit::describe(code));
    if terminated.reason.as_deref() == Some("OOMKilled") {
        let limit = memory_limit(pod).unwrap_or_else(|| "none set: the node ran out".to_string());
        let message = format!(
            "the container was killed by the out-of-memory killer (memory limit {limit}) before its worker could \
             report{worker}. Raise --memory-limit, or make the task use less"
        );
        return (PlatformKind::OutOfMemory, "OOMKilled".into(), message);
    }
    if let Some((why, said)) = disruption(pod) {
        let kind = disrupted_kind(&why);
        let what = if kind == PlatformKind::NodeLost { "its node went away" } else { "the pod was evicted" };
        return (kind, why, format!("{what} ({said}): {ended}{worker}"));
    }
    if pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted") {
        let said = pod.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default();
        return (
            PlatformKind::Evicted,
            "Evicted".into(),
            format!("the kubelet evicted the pod ({said}): {ended}{worker}"),
        );
    }
    let (reason, message) = cx.failure.clone().unwrap_or_default();
    let kind = job_kind(&reason);
    (kind, reason, format!("{}; {ended}{worker}", job_failure_text(cx, kind, &message)))
}

fn job_failure_text(cx: &Context<'_>, kind: PlatformKind, message: &str) -> String {
    match kind {
        PlatformKind::DeadlineExceeded => format!(
            "the Job ran past its activeDeadlineSeconds ({} s): {message}. Give it longer (--active-deadline)",
            cx.deadline.map_or_else(|| "?".to_string(), |d| d.to_string())
        ),
        PlatformKind::BackoffLimitExceeded => format!(
            "the Job used up its retries (backoffLimit {}): {message}",
            cx.backoff_limit.map_or_else(|| "6".to_string(), |b| b.to_string())
        ),
        _ => format!("the Job failed: {message}"),
    }
}

fn job_kind(reason: &str) -> PlatformKind {
    match reason {
        "DeadlineExceeded" => PlatformKind::DeadlineExceeded,
        "BackoffLimitExceeded" | "FailedIndexes" | "MaxFailedIndexesExceeded" => PlatformKind::BackoffLimitExceeded,
        _ => PlatformKind::ContainerFailed,
    }
}

fn disrupted_kind(reason: &str) -> PlatformKind {
    if NODE_LOST_REASONS.contains(&reason) {
        PlatformKind::NodeLost
    } else {
        PlatformKind::Evicted
    }
}

fn belongs_to(pod: &Pod, job: &str) -> bool {
    let label = pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_JOB_NAME)).map(String::as_str);
    let owned = pod.metadata.owner_references.iter().flatten().any(|o| o.kind == "Job" && o.name == job);
    label == Some(job) || owned
}

fn pod_index(pod: &Pod) -> Option<usize> {
    let key = "batch.kubernetes.io/job-completion-index";
    let annotations = pod.metadata.annotations.as_ref().and_then(|a| a.get(key));
    annotations.or_else(|| pod.metadata.labels.as_ref().and_then(|l| l.get(key))).and_then(|i| i.parse().ok())
}

fn container_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status.as_ref()?.container_statuses.as_ref()?.iter().find(|c| c.name == CONTAINER)
}

/// How the container ended, if it ran: not the 137 a kubelet writes for one it never ran.
fn terminated(pod: &Pod) -> Option<&ContainerStateTerminated> {
    let status = container_status(pod)?;
    status.state.as_ref().and_then(|s| s.terminated.as_ref()).filter(|t| ran(t))
}

fn waiting(pod: &Pod) -> Option<&ContainerStateWaiting> {
    container_status(pod)?.state.as_ref()?.waiting.as_ref()
}

/// Whether the container is marked terminated only because the kubelet could not find it.
fn lost_track(pod: &Pod) -> bool {
    let state = container_status(pod).and_then(|c| c.state.as_ref());
    state.and_then(|s| s.terminated.as_ref()).is_some_and(|t| !ran(t))
}

fn container_started(pod: &Pod) -> bool {
    let state = container_status(pod).and_then(|c| c.state.as_ref());
    state.is_some_and(|s| s.running.is_some()) || terminated(pod).is_some()
}

fn unschedulable(pod: &Pod) -> Option<String> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    (c.reason.as_deref() == Some("Unschedulable")).then(|| c.message.clone().unwrap_or_default())
}

/// A `DisruptionTarget` condition: its reason and message.
fn disruption(pod: &Pod) -> Option<(String, String)> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == "DisruptionTarget" && c.status == "True")?;
    Some((c.reason.clone().unwrap_or_else(|| "DisruptionTarget".into()), c.message.clone().unwrap_or_default()))
}

fn summary(terminated: &ContainerStateTerminated) -> Option<Value> {
    let text = terminated.message.as_deref()?.trim();
    serde_json::from_str::<Value>(text).ok().filter(Value::is_object)
}

fn image_of(pod: &Pod) -> String {
    let from_status = container_status(pod).map(|c| c.image.clone()).filter(|i| !i.is_empty());
    let from_spec = || pod.spec.as_ref()?.containers.iter().find(|c| c.name == CONTAINER).and_then(|c| c.image.clone());
    from_status.or_else(from_spec).unwrap_or_else(|| "(unnamed)".to_string())
}

fn memory_limit(pod: &Pod) -> Option<String> {
    let container = pod.spec.as_ref()?.containers.iter().find(|c| c.name == CONTAINER)?;
    container.resources.as_ref()?.limits.as_ref()?.get("memory").map(|q| q.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: &str = "2026-01-01T00:00:00Z";

    fn now(secs: i64) -> Timestamp {
        T0.parse::<Timestamp>().unwrap() + k8s_openapi::jiff::SignedDuration::from_secs(secs)
    }

    fn job(spec: Value, status: Value) -> Job {
        let mut spec = spec;
        spec["template"] = json!({});
        serde_json::from_value(json!({"metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
            "spec": spec, "status": status}))
        .unwrap()
    }

    fn pod(name: &str, index: Option<usize>, status: Value) -> Pod {
        let mut annotations = serde_json::Map::new();
        if let Some(i) = index {
            annotations.insert("batch.kubernetes.io/job-completion-index".into(), json!(i.to_string()));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": T0, "labels": {"batch.kubernetes.io/job-name": "j"},
                         "annotations": annotations},
            "spec": {"containers": [{"name": "wove", "image": "reg/worker:1",
                                     "resources": {"limits": {"memory": "64Mi"}}}], "nodeName": "n1"},
            "status": status,
        }))
        .unwrap()
    }

    fn state(state: Value) -> Value {
        json!({"phase": "Pending", "containerStatuses": [{"name": "wove", "image": "reg/worker:1", "imageID": "",
            "ready": false, "restartCount": 0, "state": state}]})
    }

    fn ended(code: i32, reason: &str, message: Option<&str>) -> Value {
        let mut s = state(json!({"terminated": {"exitCode": code, "reason": reason, "message": message}}));
        s["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
        s
    }

    fn failed(reason: &str) -> Value {
        json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": reason, "message": "said"}]})
    }

    fn only(d: &Decisions) -> &Decision {
        assert_eq!(d.tasks.len(), 1);
        &d.tasks[0].1
    }

    fn reported(d: &Decisions) -> &Unreported {
        match only(d) {
            Decision::Report(u) => u,
            other => panic!("not reported: {other:?}"),
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn an_image_that_cannot_be_pulled_is_reported_at_once_and_ends_the_job() {
        let j = job(json!({}), json!({"active": 1}));
        for reason in PULL_REASONS {
            let p = pod("p", None, state(json!({"waiting": {"reason": reason, "message": "manifest unknown"}})));
            let d = decide(&j, &[p], now(1), DAY);
            let u = reported(&d);
            assert_eq!((u.kind, u.reason.as_str()), (PlatformKind::ImagePullFailed, reason));
            assert!(u.message.contains("reg/worker:1") && u.message.contains("manifest unknown"), "{}", u.message);
            assert_eq!(u.details["image"], "reg/worker:1");
            assert!(d.end_job);
        }
    }

    #[test]
    fn a_missing_secret_is_a_config_error() {
        let j = job(json!({}), json!({}));
        let p = pod(
            "p",
            None,
            state(json!({"waiting": {"reason": "CreateContainerConfigError",
            "message": "secret \"sig\" not found"}})),
        );
        let d = decide(&j, &[p], now(1), DAY);
        let u = reported(&d);
        assert_eq!(u.kind, PlatformKind::ContainerConfigError);
        assert!(u.message.contains("secret \"sig\" not found") && u.message.contains("namespace ns"));
        assert!(d.end_job);
    }

    #[test]
    fn an_unschedulable_pod_waits_out_the_pending_timeout_first() {
        let j = job(json!({}), json!({}));
        let p = pod(
            "p",
            None,
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient memory."}]}),
        );
        // Created within the second T0 names: at T0 + 60 s it may have waited only 59 s.
        assert_eq!(*only(&decide(&j, std::slice::from_ref(&p), now(60), Duration::from_secs(60))), Decision::Open);
        assert_eq!(
            next_expiry(std::slice::from_ref(&p), now(45), Duration::from_secs(60)),
            Some(Duration::from_secs(16))
        );
        assert_eq!(next_expiry(std::slice::from_ref(&p), now(90), Duration::from_secs(60)), Some(Duration::ZERO));
        let d = decide(&j, &[p], now(61), Duration::from_secs(60));
        let u = reported(&d);
        assert_eq!(u.kind, PlatformKind::Unschedulable);
        assert!(u.message.contains("Insufficient memory") && u.message.contains("60 s"), "{}", u.message);
    }

    #[test]
    fn a_delivered_termination_message_settles_the_task_whatever_the_job_says() {
        let delivered = r#"{"status":"failed","exit_code":3,"delivered":true}"#;
        for status in [failed("PodFailurePolicy"), failed("DeadlineExceeded"), json!({"active": 1})] {
            let p = pod("p", None, ended(3, "Error", Some(delivered)));
            assert_eq!(*only(&decide(&job(json!({}), status), &[p], now(1), DAY)), Decision::Settled);
        }
        let done = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
        assert_eq!(*only(&decide(&job(json!({}), done), &[], now(1), DAY)), Decision::Settled);
    }

    #[test]
    fn a_container_killed_before_reporting_is_reported_once_the_job_gives_up() {
        let p = pod("p", None, ended(137, "OOMKilled", None));
        // Retries left: the next attempt may report.
        assert_eq!(
            *only(&decide(&job(json!({}), json!({"failed": 1})), std::slice::from_ref(&p), now(1), DAY)),
            Decision::Open
        );
        let d = decide(&job(json!({"backoffLimit": 0}), failed("BackoffLimitExceeded")), &[p], now(1), DAY);
        let u = reported(&d);
        assert_eq!((u.kind, u.reason.as_str()), (PlatformKind::OutOfMemory, "OOMKilled"));
        assert!(u.message.contains("64Mi") && u.message.contains("no termination message"), "{}", u.message);
        assert_eq!(u.details["exit_code"], 137);
        assert!(!d.end_job, "the Job has ended already");

        let undelivered = r#"{"status":"undelivered","exit_code":75,"delivered":false,"message":"budget exhausted"}"#;
        let p = pod("p", None, ended(75, "Error", Some(undelivered)));
        let u = reported(&decide(&job(json!({"backoffLimit": 2}), failed("BackoffLimitExceeded")), &[p], now(1), DAY))
            .clone();
        assert_eq!(u.kind, PlatformKind::BackoffLimitExceeded);
        assert!(u.message.contains("backoffLimit 2") && u.message.contains("budget exhausted"), "{}", u.message);
    }

    #[test]
    fn evictions_and_lost_nodes_are_told_apart() {
        for (why, kind) in
            [("DeletionByTaintManager", PlatformKind::NodeLost), ("EvictionByEvictionAPI", PlatformKind::Evicted)]
        {
            let mut status = ended(137, "Error", None);
            status["conditions"] =
                json!([{"type": "DisruptionTarget", "status": "True", "reason": why, "message": "m"}]);
            let p = pod("p", None, status);
            let u = reported(&decide(&job(json!({}), failed("BackoffLimitExceeded")), &[p], now(1), DAY)).clone();
            assert_eq!((u.kind, u.reason.as_str()), (kind, why));
        }
    }

    #[test]
    fn a_deadline_is_reported_when_the_worker_never_started_and_left_to_a_running_one() {
        let j = job(json!({"activeDeadlineSeconds": 30}), failed("DeadlineExceeded"));
        let pending = pod("p", None, json!({"phase": "Pending"}));
        let u = reported(&decide(&j, &[pending], now(40), DAY)).clone();
        assert_eq!(u.kind, PlatformKind::DeadlineExceeded);
        assert!(
            u.message.contains("30 s") && u.message.contains("before the pod's container started"),
            "{}",
            u.message
        );
        let running = pod("p", None, state(json!({"running": {}})));
        assert_eq!(*only(&decide(&j, &[running], now(40), DAY)), Decision::Open, "its worker answers SIGTERM itself");
        let u = reported(&decide(&j, &[], now(40), DAY)).clone();
        assert!(u.message.contains("before any pod"), "{}", u.message);
        // The same pod once the kubelet has marked the container it never ran as it went.
        let mut gone = ended(137, "ContainerStatusUnknown", Some("The container could not be located"));
        gone["phase"] = json!("Failed");
        let u = reported(&decide(&j, &[pod("p", None, gone)], now(40), DAY)).clone();
        assert_eq!(u.kind, PlatformKind::DeadlineExceeded);
        assert!(u.message.contains("the kubelet lost track of it"), "{}", u.message);
        assert!(!u.message.contains("started"), "it may have run: {}", u.message);
        assert!(!u.details.contains_key("exit_code"), "{:?}", u.details);
    }

    #[test]
    fn each_index_is_decided_and_a_stuck_one_takes_the_unstarted_ones_with_it() {
        let j = job(json!({"completionMode": "Indexed", "completions": 4}), json!({"completedIndexes": "0"}));
        let pull = state(json!({"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}));
        let pods = [
            pod("p0", Some(0), ended(0, "Completed", Some(r#"{"delivered":true}"#))),
            pod("p1", Some(1), pull),
            pod("p2", Some(2), state(json!({"running": {}}))),
        ];
        let d = decide(&j, &pods, now(1), DAY);
        assert!(d.end_job);
        let kinds: Vec<_> = d
            .tasks
            .iter()
            .map(|(i, d)| (*i, if let Decision::Report(u) = d { Some(u.kind) } else { None }, d == &Decision::Open))
            .collect();
        assert_eq!(
            kinds,
            [
                (Some(0), None, false),
                (Some(1), Some(PlatformKind::ImagePullFailed), false),
                (Some(2), None, true),
                (Some(3), Some(PlatformKind::ImagePullFailed), false),
            ]
        );
        if let Decision::Report(u) = &d.tasks[3].1 {
            assert_eq!(u.index, Some(3));
            assert!(u.message.contains("had not started"));
        }
        assert!(!d.all_decided(), "index 2 still runs");
    }
}
