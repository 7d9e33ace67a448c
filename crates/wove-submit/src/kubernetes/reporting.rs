//! `wait --report`: watch a Job and its pods until every task is over, and
//! post a `task_error` for each task that failed where its worker could
//! not report (see [`super::unreported`] for what counts).
//!
//! Each look is a fresh read of the Job and its pods; in between, one
//! watch on the Job and one on its pods say when to look again, and every
//! pod state a watch delivers is kept, so a pod deleted right after it
//! ended (the Job controller removes them) is still judged by how it
//! ended. A task that can never run (its image, a missing Secret, no node
//! within `--pending-timeout`) ends the Job after it is reported: a pod
//! that started later would run the task a second time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, WatchEvent, WatchParams};
use tokio::time::Instant;
use wove_proto::env as vars;
use wove_proto::Payload;

use super::client::{Client, ClientError, WATCH_WINDOW};
use super::manifest::{CONTAINER, LABEL_JOB_NAME};
use super::status::{report, JobReport};
use super::unreported::{decide, next_expiry, Decision};
use crate::report::stop::raised;
use crate::report::{JobAttempt, Sender, StopSignal};

/// Default for [`Reporting::pending_timeout`].
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(300);
/// Default for [`Reporting::drain`].
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(60);

/// How failures outside the worker are reported.
#[derive(Debug, Clone)]
pub struct Reporting {
    /// Posts the reports.
    pub sender: Sender,
    /// How long a pod may wait for a node before its task is reported `Unschedulable`.
    pub pending_timeout: Duration,
    /// How long, once the Job has ended, its still-running pods get to end
    /// and show how (the Job controller stops them); a pod that has not
    /// ended by then is left to its worker, which reports a SIGTERM itself.
    pub drain: Duration,
    /// Stops the wait at its next safe point (see [`crate::report::stop`]).
    pub stop: Option<StopSignal>,
}

impl Reporting {
    /// Reports through `sender`, with the default timeouts.
    pub fn new(sender: Sender) -> Self {
        Self { sender, pending_timeout: DEFAULT_PENDING_TIMEOUT, drain: DEFAULT_DRAIN, stop: None }
    }
}

/// How a reported wait ended.
pub type Reported = crate::report::Reported<JobReport>;

impl Client {
    /// Wait (at most `timeout`) until every task of the Job is over,
    /// reporting each one that failed outside its worker. `payload` is the
    /// one submitted; without it, it is read back from the Job (its
    /// environment, or its payload Secret).
    pub async fn wait_reporting(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        payload: Option<&Payload>,
        reporting: &Reporting,
    ) -> Result<Reported, ClientError> {
        let started = Instant::now();
        let deadline = started + timeout;
        let jobs: Api<Job> = Api::namespaced(self.kube.clone(), namespace);
        let pod_api: Api<Pod> = Api::namespaced(self.kube.clone(), namespace);
        let selector = format!("{LABEL_JOB_NAME}={name}");
        let mut seen: BTreeMap<String, Pod> = BTreeMap::new();
        let mut sent: BTreeSet<Option<usize>> = BTreeSet::new();
        let mut reported = Vec::new();
        let mut payload = payload.cloned();
        let mut ended_since: Option<Instant> = None;
        loop {
            let job = self.get_job(&jobs, namespace, name).await?;
            if reporting.stop.as_ref().is_some_and(StopSignal::is_raised) {
                let pods: Vec<Pod> = seen.values().cloned().collect();
                return Ok(Reported { report: report(&job, &pods), reported, ended_job: false, stopped: true });
            }
            let listed =
                self.call("list the Job's pods", pod_api.list(&ListParams::default().labels(&selector))).await?;
            let pods_version = listed.metadata.resource_version.clone().unwrap_or_default();
            for pod in listed.items {
                remember(&mut seen, pod);
            }
            let pods: Vec<Pod> = seen.values().cloned().collect();
            let now = Timestamp::now();
            let decisions = decide(&job, &pods, now, reporting.pending_timeout);

            let attempt = JobAttempt {
                platform: "kubernetes",
                job: format!("{namespace}/{name}"),
                attempt: job.metadata.uid.clone().unwrap_or_default(),
                attempt_number: 1,
            };
            for (index, decision) in &decisions.tasks {
                let Decision::Report(failure) = decision else { continue };
                if !sent.insert(*index) {
                    continue;
                }
                if payload.is_none() {
                    payload = Some(self.payload_of(&job, namespace).await?);
                }
                if let Some(payload) = &payload {
                    reported.push(reporting.sender.send(payload, failure, &attempt).await);
                }
            }
            let last = report(&job, &pods);
            if decisions.end_job {
                // Reported first: the weave knows why before the pods go.
                self.cancel(namespace, name).await?;
                return Ok(Reported { report: last, reported, ended_job: true, stopped: false });
            }
            let over = last.phase.is_final();
            let settled = decisions.tasks.iter().all(|(i, d)| *d != Decision::Open || sent.contains(i));
            if over && settled {
                return Ok(Reported { report: last, reported, ended_job: false, stopped: false });
            }
            let now_i = Instant::now();
            if over {
                let since = *ended_since.get_or_insert(now_i);
                if now_i >= since + reporting.drain {
                    return Ok(Reported { report: last, reported, ended_job: false, stopped: false });
                }
            }
            if now_i >= deadline {
                return Err(ClientError::WaitTimedOut { after: started.elapsed(), last: Box::new(last) });
            }

            let mut wake = deadline.min(now_i + WATCH_WINDOW);
            if let Some(since) = ended_since {
                wake = wake.min(since + reporting.drain);
            }
            if let Some(left) = next_expiry(&pods, now, reporting.pending_timeout) {
                wake = wake.min(now_i + left);
            }
            let job_version = job.metadata.resource_version.clone().unwrap_or_default();
            let change = self.next_change(&jobs, &pod_api, name, (&job_version, &pods_version), wake, &mut seen);
            tokio::select! {
                _ = change => {}
                _ = raised(reporting.stop.as_ref()) => {}
            }
        }
    }

    /// Wait until the Job or one of its pods changes, or `wake`. Pod states
    /// the watch delivers are kept in `seen`.
    async fn next_change(
        &self,
        jobs: &Api<Job>,
        pods: &Api<Pod>,
        name: &str,
        (job_version, pods_version): (&str, &str),
        wake: Instant,
        seen: &mut BTreeMap<String, Pod>,
    ) {
        let seconds =
            u32::try_from(wake.saturating_duration_since(Instant::now()).as_secs()).unwrap_or(u32::MAX).max(1);
        let job_params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(seconds);
        let pod_params = WatchParams::default().labels(&format!("{LABEL_JOB_NAME}={name}")).timeout(seconds);
        let opened = tokio::time::timeout(self.api_timeout, async {
            tokio::try_join!(jobs.watch(&job_params, job_version), pods.watch(&pod_params, pods_version))
        })
        .await;
        let (job_stream, pod_stream) = match opened {
            Ok(Ok(streams)) => streams,
            _ => {
                // Not in a tight loop against a server that refuses watches.
                tokio::time::sleep_until(wake.min(Instant::now() + self.poll_interval)).await;
                return;
            }
        };
        let mut job_stream = std::pin::pin!(job_stream);
        let mut pod_stream = std::pin::pin!(pod_stream);
        // Whatever comes first (a change, the end of a watch, an error) means: look afresh.
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = job_stream.next() => {}
            event = pod_stream.next() => {
                if let Some(Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod) | WatchEvent::Deleted(pod))) = event {
                    remember(seen, pod);
                }
            }
        }
    }

    /// The payload a Job carries: in its environment, or in its payload Secret.
    pub async fn payload_of(&self, job: &Job, namespace: &str) -> Result<Payload, ClientError> {
        let container = job
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|p| p.containers.iter().find(|c| c.name == CONTAINER));
        let env = container.and_then(|c| c.env.clone()).unwrap_or_default();
        if let Some(var) = env.iter().find(|v| v.name == vars::PAYLOAD) {
            if let Some(value) = &var.value {
                return Payload::from_text(value).map_err(|source| ClientError::PayloadUnreadable {
                    whence: format!("the environment of Job {}", job.metadata.name.as_deref().unwrap_or_default()),
                    source,
                });
            }
            if let Some(key_ref) = var.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()) {
                return self.payload_in_secret(namespace, &key_ref.name, &key_ref.key).await;
            }
        }
        if let Some(path) = env.iter().find(|v| v.name == vars::PAYLOAD_FILE).and_then(|v| v.value.clone()) {
            let mounts = container.and_then(|c| c.volume_mounts.clone()).unwrap_or_default();
            let volumes = job
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|p| p.volumes.clone())
                .unwrap_or_default();
            for mount in mounts {
                let Some(key) = path.strip_prefix(&format!("{}/", mount.mount_path)) else { continue };
                let secret = volumes
                    .iter()
                    .find(|v| v.name == mount.name)
                    .and_then(|v| v.secret.as_ref())
                    .and_then(|s| s.secret_name.clone());
                if let Some(secret) = secret {
                    return self.payload_in_secret(namespace, &secret, key).await;
                }
            }
        }
        Err(ClientError::Unexpected(format!(
            "cannot read the Job's payload back: its container `{CONTAINER}` carries no {} the submitter put there",
            vars::PAYLOAD
        )))
    }

    async fn payload_in_secret(&self, namespace: &str, name: &str, key: &str) -> Result<Payload, ClientError> {
        let secrets: Api<Secret> = Api::namespaced(self.kube.clone(), namespace);
        let secret = self.call("read the payload Secret", secrets.get(name)).await?;
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| b.0.clone())
            .ok_or_else(|| ClientError::Unexpected(format!("the payload Secret {name} has no key {key}")))?;
        Payload::from_bytes(&bytes)
            .map_err(|source| ClientError::PayloadUnreadable { whence: format!("Secret {name}"), source })
    }
}

/// Keep the most telling state of each pod: a later one, but never a
/// state without the container's end over one that has it.
fn remember(seen: &mut BTreeMap<String, Pod>, pod: Pod) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let ended = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some())))
    };
    match seen.get(&name) {
        Some(known) if ended(known) && !ended(&pod) => {}
        _ => {
            seen.insert(name, pod);
        }
    }
}
