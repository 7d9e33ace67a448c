//! Talking to the API server: submit, status, wait, logs and cancel.
//!
//! Configuration is kube's own (`KUBECONFIG` or `~/.kube/config`, then the
//! in-cluster service account; exec plugins included). Every API call runs
//! under its own timeout, because kube's client has no read timeout of its
//! own. Waiting watches the Job, one bounded watch after another, each
//! begun by a fresh read: a watch that dies silently costs at most one
//! window ([`WATCH_WINDOW`]), and waiting on a Job costs about two requests
//! a minute instead of one per poll.

use std::path::Path;
use std::time::Duration;

use futures_util::AsyncBufReadExt as _;
use futures_util::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::io::AsyncWriteExt as _;

use super::manifest::{annotation, Manifest, ANNOTATION_PAYLOAD_SHA256, CONTAINER, LABEL_JOB_NAME};
use super::status::{report, JobReport, PodPhase};
use crate::Phase;

pub use crate::DEFAULT_API_TIMEOUT;
/// Default pause between two looks at a Job whose logs are followed, and
/// before looking again after a watch failed.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Longest one watch of a waited-on Job lasts before a fresh read.
pub const WATCH_WINDOW: Duration = Duration::from_secs(60);
/// How long log following goes on after the Job ended, for the last lines.
pub const LOG_DRAIN: Duration = Duration::from_secs(2);

/// Marks a Job that the submitter suspended only until its payload Secret
/// exists, so a retried submit knows to resume it (and a Job the caller
/// suspended stays suspended).
const ANNOTATION_SUSPENDED_FOR_PAYLOAD: &str = "wove.dev/suspended-for-payload";

/// Why a Kubernetes operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No usable configuration: no kubeconfig, not in a cluster, or a bad file.
    #[error("cannot load the Kubernetes configuration")]
    Config(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The call did not finish within its timeout.
    #[error("{action}: no answer within {} s", .after.as_secs_f64())]
    Timeout {
        /// What was being done.
        action: String,
        /// The limit.
        after: Duration,
    },
    /// The API server answered with an error status.
    #[error("{action}: the API server answered {code} {reason}: {message}")]
    Api {
        /// What was being done.
        action: String,
        /// The HTTP status code.
        code: u16,
        /// Kubernetes' reason (`Forbidden`, `Invalid`, …).
        reason: String,
        /// Kubernetes' message.
        message: String,
    },
    /// The request did not get an answer (connection, TLS, authentication plugin).
    #[error("{action}")]
    Transport {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The name is taken by a Job that carries another payload.
    #[error(
        "a Job named {name} already exists in namespace {namespace} with a different payload \
         (sha256 {existing}, this one {ours}); each run and task gets one Job, so this payload \
         needs another run id or task id"
    )]
    Conflict {
        /// The Job's name.
        name: String,
        /// Its namespace.
        namespace: String,
        /// The digest on the existing Job.
        existing: String,
        /// The digest of the payload being submitted.
        ours: String,
    },
    /// No such Job.
    #[error("no Job named {name} in namespace {namespace}")]
    NotFound {
        /// The Job's name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// The API server's answer lacks what the next step needs.
    #[error("{0}")]
    Unexpected(String),
    /// The payload a Job carries does not decode.
    #[error("the payload in {whence} does not decode")]
    PayloadUnreadable {
        /// Where it was read from: the Job's environment, or its Secret.
        whence: String,
        /// Why.
        #[source]
        source: wove_proto::PayloadError,
    },
    /// Reading a pod's log stream failed.
    #[error("cannot read the log of pod {pod}")]
    LogRead {
        /// The pod.
        pod: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing the log to the output failed.
    #[error("cannot write the log")]
    Output(#[source] std::io::Error),
    /// The Job did not end in time.
    #[error("gave up after {} s: the Job is {}", .after.as_secs_f64(), describe_phase(.last))]
    WaitTimedOut {
        /// How long it waited.
        after: Duration,
        /// How the Job stood at the end.
        last: Box<JobReport>,
    },
}

fn describe_phase(report: &JobReport) -> String {
    let phase = serde_json::to_value(report.phase).ok().and_then(|v| v.as_str().map(str::to_string));
    let mut text = phase.unwrap_or_default();
    if let Some(reason) = &report.reason {
        text.push_str(&format!(" ({reason}"));
        if let Some(message) = &report.message {
            text.push_str(&format!(": {message}"));
        }
        text.push(')');
    }
    text
}

/// What a submit did.
#[derive(Debug, Clone)]
pub struct Submitted {
    /// The Job as the API server holds it.
    pub job: Job,
    /// False when the same Job (same name, same payload) was already there.
    pub created: bool,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cancelled {
    /// The Job was deleted; its pods get SIGTERM and their grace period.
    Deleted,
    /// There was no such Job (already deleted, or never there).
    NotFound,
}

/// A Kubernetes client for Jobs that carry Wove payloads.
#[derive(Clone)]
pub struct Client {
    pub(super) kube: kube::Client,
    pub(super) api_timeout: Duration,
    pub(super) poll_interval: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api_timeout", &self.api_timeout)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Wrap a kube client the caller configured.
    pub fn new(kube: kube::Client) -> Self {
        Self { kube, api_timeout: DEFAULT_API_TIMEOUT, poll_interval: DEFAULT_POLL_INTERVAL }
    }

    /// Configure the kube way: `KUBECONFIG` or `~/.kube/config`, then the
    /// in-cluster service account. `kubeconfig` and `context` override the
    /// file and its current context.
    pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Self, ClientError> {
        let boxed = |e: Box<dyn std::error::Error + Send + Sync>| ClientError::Config(e);
        let mut config = if kubeconfig.is_none() && context.is_none() {
            kube::Config::infer().await.map_err(|e| boxed(e.into()))?
        } else {
            let file = match kubeconfig {
                Some(path) => Kubeconfig::read_from(path),
                None => Kubeconfig::read(),
            }
            .map_err(|e| boxed(e.into()))?;
            let options = KubeConfigOptions { context: context.map(str::to_string), ..Default::default() };
            kube::Config::from_custom_kubeconfig(file, &options).await.map_err(|e| boxed(e.into()))?
        };
        config.connect_timeout = Some(DEFAULT_API_TIMEOUT);
        let kube = kube::Client::try_from(config).map_err(|e| boxed(e.into()))?;
        Ok(Self::new(kube))
    }

    /// Limit on each API call. Default 30 s.
    #[must_use]
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// Pause between two looks at a Job whose logs are followed, and before
    /// looking again after a watch of a waited-on Job failed. Default 2 s.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Submit the Job (and its payload Secret). Idempotent: when the same
    /// name already holds the same payload, the existing Job is returned and
    /// any step a cut-off earlier submit left undone is finished.
    ///
    /// A Secret-borne payload is submitted in the one order that lets the
    /// Secret be owned by the Job: the Job is created suspended (so no pod
    /// starts without its payload), then the Secret with the Job as owner,
    /// then the Job is resumed.
    pub async fn submit(&self, manifest: &Manifest) -> Result<Submitted, ClientError> {
        let (namespace, name) = (manifest.namespace(), manifest.name());
        let jobs: Api<Job> = Api::namespaced(self.kube.clone(), namespace);
        let mut job = manifest.job.clone();
        let hold = manifest.payload_secret.is_some() && job.spec.as_ref().is_none_or(|s| s.suspend != Some(true));
        if hold {
            if let Some(spec) = job.spec.as_mut() {
                spec.suspend = Some(true);
            }
            job.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ANNOTATION_SUSPENDED_FOR_PAYLOAD.into(), "true".into());
        }

        let (mut current, created) = match self.call("create Job", jobs.create(&PostParams::default(), &job)).await {
            Ok(created) => (created, true),
            Err(e) if e.is_conflict() => {
                let existing = self.get_job(&jobs, namespace, name).await?;
                let theirs = annotation(&existing.metadata, ANNOTATION_PAYLOAD_SHA256).unwrap_or("(none)");
                let ours = manifest.payload_sha256().unwrap_or("(none)");
                if theirs != ours {
                    return Err(ClientError::Conflict {
                        name: name.into(),
                        namespace: namespace.into(),
                        existing: theirs.into(),
                        ours: ours.into(),
                    });
                }
                (existing, false)
            }
            Err(e) => return Err(e),
        };

        // The Job found under this name may carry its payload inline (it was
        // submitted with other options); then it needs no Secret.
        let secret = manifest.owned_secret(&current).filter(|s| mounts_secret(&current, s));
        if let Some(secret) = secret {
            if current.metadata.uid.as_deref().unwrap_or_default().is_empty() {
                return Err(ClientError::Unexpected(format!(
                    "the API server returned Job {name} without a uid, so its payload Secret cannot be owned by it"
                )));
            }
            self.put_secret(namespace, &secret).await?;
            let held = annotation(&current.metadata, ANNOTATION_SUSPENDED_FOR_PAYLOAD) == Some("true");
            if held {
                let resume = serde_json::json!({
                    "metadata": {"annotations": {ANNOTATION_SUSPENDED_FOR_PAYLOAD: null}},
                    "spec": {"suspend": false},
                });
                current =
                    self.call("resume Job", jobs.patch(name, &PatchParams::default(), &Patch::Merge(&resume))).await?;
            }
        }
        Ok(Submitted { job: current, created })
    }

    /// Create the payload Secret, or accept the one a cut-off submit left.
    async fn put_secret(&self, namespace: &str, secret: &Secret) -> Result<(), ClientError> {
        let secrets: Api<Secret> = Api::namespaced(self.kube.clone(), namespace);
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        match self.call("create payload Secret", secrets.create(&PostParams::default(), secret)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_conflict() => {
                let existing = self.call("read payload Secret", secrets.get(name)).await?;
                let ours = annotation(&secret.metadata, ANNOTATION_PAYLOAD_SHA256);
                if annotation(&existing.metadata, ANNOTATION_PAYLOAD_SHA256) != ours {
                    return Err(ClientError::Unexpected(format!(
                        "Secret {name} exists in namespace {namespace} with another payload; delete it or use another run id"
                    )));
                }
                if existing.metadata.owner_references != secret.metadata.owner_references {
                    // Left by an earlier Job of the same name: adopt it, or the
                    // garbage collector would delete it under the new Job.
                    let owners = serde_json::json!({"metadata": {"ownerReferences": secret.metadata.owner_references}});
                    self.call(
                        "adopt payload Secret",
                        secrets.patch(name, &PatchParams::default(), &Patch::Merge(&owners)),
                    )
                    .await?;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// How the Job stands now.
    pub async fn status(&self, namespace: &str, name: &str) -> Result<JobReport, ClientError> {
        let jobs: Api<Job> = Api::namespaced(self.kube.clone(), namespace);
        let job = self.get_job(&jobs, namespace, name).await?;
        let pods = self.pods(namespace, name).await?;
        Ok(report(&job, &pods))
    }

    /// Wait until the Job succeeded or failed (either way is an answer), at most `timeout`.
    pub async fn wait(&self, namespace: &str, name: &str, timeout: Duration) -> Result<JobReport, ClientError> {
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let jobs: Api<Job> = Api::namespaced(self.kube.clone(), namespace);
        loop {
            let job = self.get_job(&jobs, namespace, name).await?;
            let seen = report(&job, &[]);
            if seen.phase.is_final() || tokio::time::Instant::now() >= deadline {
                let pods = self.pods(namespace, name).await?;
                let full = report(&job, &pods);
                if full.phase.is_final() {
                    return Ok(full);
                }
                return Err(ClientError::WaitTimedOut { after: started.elapsed(), last: Box::new(full) });
            }
            let version = job.metadata.resource_version.clone().unwrap_or_default();
            self.watch_until_final(&jobs, name, &version, deadline).await;
        }
    }

    /// Watch the Job from `version` until it looks final, the watch ends
    /// (the server closes it after its window, or it fails), or `deadline`.
    /// Whatever ended it, the caller reads the Job afresh: the watch only
    /// says when to look.
    async fn watch_until_final(&self, jobs: &Api<Job>, name: &str, version: &str, deadline: tokio::time::Instant) {
        let window = deadline.saturating_duration_since(tokio::time::Instant::now()).min(WATCH_WINDOW);
        let seconds = u32::try_from(window.as_secs()).unwrap_or(u32::MAX).max(1);
        let params = WatchParams::default().fields(&format!("metadata.name={name}")).timeout(seconds);
        // The server ends the watch after `seconds`; this bounds a connection that stays open
        // but silent past that.
        let until = tokio::time::Instant::now() + window + self.api_timeout;
        let failed = match tokio::time::timeout(self.api_timeout, jobs.watch(&params, version)).await {
            Ok(Ok(stream)) => {
                let mut stream = std::pin::pin!(stream);
                loop {
                    match tokio::time::timeout_at(until.min(deadline), stream.next()).await {
                        Err(_) | Ok(None) => break false,
                        Ok(Some(Ok(WatchEvent::Added(job) | WatchEvent::Modified(job)))) => {
                            if report(&job, &[]).phase.is_final() {
                                break false;
                            }
                        }
                        Ok(Some(Ok(WatchEvent::Bookmark(_)))) => {}
                        Ok(Some(Ok(WatchEvent::Deleted(_)))) => break false,
                        // Expired (410) or any other refusal, mid-stream or not.
                        Ok(Some(Ok(WatchEvent::Error(_)) | Err(_))) => break true,
                    }
                }
            }
            Ok(Err(_)) | Err(_) => true,
        };
        if failed {
            // Not in a tight loop against a server that refuses watches.
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + self.poll_interval)).await;
        }
    }

    /// Copy the logs of the Job's worker containers to `out`, one pod after
    /// another, following each while it runs, until the Job has ended and
    /// every pod that ran was read. What is not log text (which pod's log
    /// begins, a pod whose log was lost) goes to `notice`: the library prints
    /// nothing itself.
    pub async fn logs<W>(
        &self,
        namespace: &str,
        name: &str,
        out: &mut W,
        mut notice: impl FnMut(LogNotice<'_>),
    ) -> Result<(), ClientError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let jobs: Api<Job> = Api::namespaced(self.kube.clone(), namespace);
        let pod_api: Api<Pod> = Api::namespaced(self.kube.clone(), namespace);
        let mut followed: Vec<String> = Vec::new();
        loop {
            let job = self.get_job(&jobs, namespace, name).await?;
            let pods = self.pods(namespace, name).await?;
            let seen = report(&job, &pods);
            let ready = seen.pods.iter().filter(|p| !followed.contains(&p.name) && has_started(&pods, &p.name));
            let ready: Vec<String> = ready.map(|p| p.name.clone()).collect();
            for pod in ready {
                if seen.pods.len() > 1 {
                    notice(LogNotice::Pod(&pod));
                }
                match self.copy_log(&pod_api, &pod, out).await {
                    Err(ClientError::Output(e)) => return Err(ClientError::Output(e)),
                    // One pod's log lost (evicted before it started, its node
                    // gone) must not stop the others from being read.
                    Err(error) => notice(LogNotice::Lost { pod: &pod, error }),
                    Ok(()) => {}
                }
                followed.push(pod);
            }
            let unread = seen.pods.iter().any(|p| !followed.contains(&p.name) && p.phase != PodPhase::Pending);
            if seen.phase.is_final() && !unread {
                return Ok(());
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    async fn copy_log<W>(&self, pods: &Api<Pod>, pod: &str, out: &mut W) -> Result<(), ClientError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let params = LogParams { container: Some(CONTAINER.into()), follow: true, ..Default::default() };
        // Opening the stream is an API call; reading it lasts as long as the pod runs.
        let mut stream = self.call("open pod log", pods.log_stream(pod, &params)).await?;
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = stream
                .read_until(b'\n', &mut line)
                .await
                .map_err(|source| ClientError::LogRead { pod: pod.into(), source })?;
            if read == 0 {
                break;
            }
            out.write_all(&line).await.map_err(ClientError::Output)?;
            out.flush().await.map_err(ClientError::Output)?;
        }
        Ok(())
    }

    /// Delete the Job with background propagation: the garbage collector then
    /// deletes its pods, which get SIGTERM and their grace period, so the
    /// worker sends `task_cancelled`; the payload Secret goes with the Job.
    /// Without a propagation policy a deleted Job would leave its pods running.
    pub async fn cancel(&self, namespace: &str, name: &str) -> Result<Cancelled, ClientError> {
        let jobs: Api<Job> = Api::namespaced(self.kube.clone(), namespace);
        match self.call("delete Job", jobs.delete(name, &DeleteParams::background())).await {
            Ok(_) => Ok(Cancelled::Deleted),
            Err(e) if e.is_not_found() => Ok(Cancelled::NotFound),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn get_job(&self, jobs: &Api<Job>, namespace: &str, name: &str) -> Result<Job, ClientError> {
        match self.call("read Job", jobs.get(name)).await {
            // By the code: servers word the reason of a 404 differently.
            Err(e) if e.is_not_found() => Err(ClientError::NotFound { name: name.into(), namespace: namespace.into() }),
            other => other,
        }
    }

    async fn pods(&self, namespace: &str, job: &str) -> Result<Vec<Pod>, ClientError> {
        let pods: Api<Pod> = Api::namespaced(self.kube.clone(), namespace);
        let params = ListParams::default().labels(&format!("{LABEL_JOB_NAME}={job}"));
        Ok(self.call("list the Job's pods", pods.list(&params)).await?.items)
    }

    pub(super) async fn call<T>(
        &self,
        action: &str,
        request: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ClientError> {
        match tokio::time::timeout(self.api_timeout, request).await {
            Err(_) => Err(ClientError::Timeout { action: action.into(), after: self.api_timeout }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(kube::Error::Api(status))) => Err(ClientError::Api {
                action: action.into(),
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            }),
            Ok(Err(source)) => Err(ClientError::Transport { action: action.into(), source }),
        }
    }
}

impl ClientError {
    fn is_conflict(&self) -> bool {
        matches!(self, Self::Api { code: 409, .. })
    }

    fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { code: 404, .. })
    }

    /// The Job's state when waiting gave up.
    pub fn last_report(&self) -> Option<&JobReport> {
        match self {
            Self::WaitTimedOut { last, .. } => Some(last),
            _ => None,
        }
    }
}

/// Whether the Job's pods mount this Secret.
/// Whether the Job's pod reads the Secret: as a volume (the payload file), or
/// through an environment variable (a presigned payload URL).
fn mounts_secret(job: &Job, secret: &Secret) -> bool {
    let pod = job.spec.as_ref().and_then(|s| s.template.spec.as_ref());
    let named = |name: Option<&String>| name.is_some() && name == secret.metadata.name.as_ref();
    let volumes = pod.and_then(|p| p.volumes.as_ref());
    let env = pod.into_iter().flat_map(|p| &p.containers).flat_map(|c| c.env.iter().flatten());
    volumes.into_iter().flatten().any(|v| named(v.secret.as_ref().and_then(|s| s.secret_name.as_ref())))
        || env
            .into_iter()
            .any(|v| named(v.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()).map(|r| &r.name)))
}

/// Whether the pod's worker container got far enough to have a log.
fn has_started(pods: &[Pod], name: &str) -> bool {
    let Some(pod) = pods.iter().find(|p| p.metadata.name.as_deref() == Some(name)) else { return false };
    let status = pod.status.as_ref();
    let container =
        status.and_then(|s| s.container_statuses.as_ref()).and_then(|c| c.iter().find(|c| c.name == CONTAINER));
    let state = container.and_then(|c| c.state.as_ref());
    state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        || PodPhase::of(status.and_then(|s| s.phase.as_deref())).has_started()
}

impl JobReport {
    /// Whether the Job ended in success.
    pub fn succeeded(&self) -> bool {
        self.phase == Phase::Succeeded
    }
}
/// What [`Client::logs`] says beside the log text.
#[derive(Debug)]
pub enum LogNotice<'a> {
    /// This pod's log begins (said when the Job has run more than one pod).
    Pod(&'a str),
    /// This pod's log could not be read (evicted before it started, its node gone); the
    /// other pods' logs still are.
    Lost {
        /// The pod.
        pod: &'a str,
        /// Why.
        error: ClientError,
    },
}
