//! Talking to AWS Batch: submit, status, wait and cancel.
//!
//! Credentials and region come from the standard AWS chain through
//! `aws-config` (environment, profile, web identity as on EKS with IRSA, ECS
//! and instance roles); `AWS_ENDPOINT_URL_BATCH` or an explicit endpoint
//! points it elsewhere. HTTPS goes through rustls with ring, the one crypto
//! provider of the whole tree. Every call runs under its own timeout.

use std::time::Duration;

use aws_sdk_batch::config::{
    interceptors::BeforeTransmitInterceptorContextMut, ConfigBag, Intercept, RuntimeComponents,
};
use aws_sdk_batch::error::{BoxError, ProvideErrorMetadata};
use aws_sdk_batch::types as sdk;

use super::render::SubmitJobRequest;
use super::status::{
    report, report_with_children, ArraySummary, Attempt, BatchReport, BatchStatus, Container, JobDescription, KeyValue,
};

pub use crate::DEFAULT_API_TIMEOUT;
/// Default pause between two looks at a job that is being waited on.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// How long a job just submitted may take to show in DescribeJobs.
pub const VISIBILITY_WAIT: Duration = Duration::from_secs(10);

/// Why an AWS Batch operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The call did not finish within its timeout.
    #[error("{action}: no answer within {} s", .after.as_secs_f64())]
    Timeout {
        /// What was being done.
        action: String,
        /// The limit.
        after: Duration,
    },
    /// AWS answered with an error.
    #[error("{action}: AWS Batch answered {code}: {message}")]
    Api {
        /// What was being done.
        action: String,
        /// The error code (`ClientException`, …).
        code: String,
        /// Its message.
        message: String,
    },
    /// The request got no answer (connection, TLS, credentials).
    #[error("{action}")]
    Transport {
        /// What was being done.
        action: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The job's name is taken by a job that carries another payload.
    #[error(
        "a job named {name} (id {job_id}) already exists in queue {queue} with a different payload \
         (sha256 {existing}, this one {ours}); each run and task gets one job, so this payload needs \
         another run id or task id"
    )]
    Conflict {
        /// The job's name.
        name: String,
        /// The existing job's id.
        job_id: String,
        /// The queue.
        queue: String,
        /// The digest on the existing job.
        existing: String,
        /// The digest of the payload being submitted.
        ours: String,
    },
    /// The answer lacks what the next step needs.
    #[error("{0}")]
    Unexpected(String),
    /// The payload a job carries does not decode.
    #[error("the payload of job {job_id} does not decode")]
    PayloadUnreadable {
        /// The job.
        job_id: String,
        /// Why.
        #[source]
        source: wove_proto::PayloadError,
    },
    /// No such job.
    #[error("no AWS Batch job with id {job_id}")]
    NotFound {
        /// The id asked for.
        job_id: String,
    },
    /// The job did not end in time.
    #[error("gave up after {} s: the job is {}", .after.as_secs_f64(), .last.status)]
    WaitTimedOut {
        /// How long it waited.
        after: Duration,
        /// How the job stood at the end.
        last: Box<BatchReport>,
    },
}

impl BatchError {
    /// The job's state when waiting gave up.
    pub fn last_report(&self) -> Option<&BatchReport> {
        match self {
            Self::WaitTimedOut { last, .. } => Some(last),
            _ => None,
        }
    }
}

/// What a submit did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SubmittedJob {
    /// The job's id.
    pub job_id: String,
    /// Its name.
    pub job_name: String,
    /// False when a job of this name with this payload already existed.
    pub created: bool,
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// It had started: TerminateJob stopped it (SIGTERM, then SIGKILL 30 s later).
    Terminated,
    /// It had not started: CancelJob removed it from the queue.
    Cancelled,
    /// It had already ended, with this status.
    AlreadyFinished(BatchStatus),
}

/// An AWS Batch client for jobs that carry Wove payloads.
#[derive(Debug, Clone)]
pub struct BatchClient {
    sdk: aws_sdk_batch::Client,
    api_timeout: Duration,
    pub(super) poll_interval: Duration,
}

impl BatchClient {
    /// Wrap an SDK client the caller configured.
    pub fn new(sdk: aws_sdk_batch::Client) -> Self {
        Self { sdk, api_timeout: DEFAULT_API_TIMEOUT, poll_interval: DEFAULT_POLL_INTERVAL }
    }

    /// Configure the AWS way: the standard credential and region chain, the
    /// `AWS_ENDPOINT_URL_BATCH` variable; `endpoint_url` and `region` override them.
    pub async fn connect(endpoint_url: Option<&str>, region: Option<&str>) -> Self {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
        if let Some(url) = endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        Self::new(aws_sdk_batch::Client::new(&loader.load().await))
    }

    /// Limit on each API call. Default 30 s.
    #[must_use]
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// Pause between two looks at a job being waited on. Default 5 s.
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Submit the job, unless the queue already holds one of this name with
    /// this payload (SubmitJob has no idempotency token, so a submit retried
    /// after a timeout looks for its own job first).
    pub async fn submit(&self, request: &SubmitJobRequest) -> Result<SubmittedJob, BatchError> {
        if let Some(existing) = self.find_by_name(request).await? {
            return Ok(existing);
        }
        let r = request;
        let overrides = sdk::ContainerOverrides::builder()
            .set_environment(Some(
                r.container_overrides
                    .environment
                    .iter()
                    .map(|v| sdk::KeyValuePair::builder().name(&v.name).value(&v.value).build())
                    .collect(),
            ))
            .set_command(r.container_overrides.command.clone())
            .set_resource_requirements(Some(
                r.container_overrides
                    .resource_requirements
                    .iter()
                    .map(|x| {
                        sdk::ResourceRequirement::builder()
                            .r#type(sdk::ResourceType::from(x.kind.as_str()))
                            .value(&x.value)
                            .build()
                    })
                    .collect(),
            ))
            .build();
        let rules = r
            .retry_strategy
            .evaluate_on_exit
            .iter()
            .map(|rule| {
                sdk::EvaluateOnExit::builder()
                    .action(sdk::RetryAction::from(rule.action.as_str()))
                    .set_on_exit_code(rule.on_exit_code.clone())
                    .set_on_reason(rule.on_reason.clone())
                    .set_on_status_reason(rule.on_status_reason.clone())
                    .build()
            })
            .collect();
        let mut call = self
            .sdk
            .submit_job()
            .job_name(&r.job_name)
            .job_queue(&r.job_queue)
            .job_definition(&r.job_definition)
            .container_overrides(overrides)
            .retry_strategy(
                sdk::RetryStrategy::builder()
                    .attempts(r.retry_strategy.attempts)
                    .set_evaluate_on_exit(Some(rules))
                    .build(),
            )
            .set_timeout(r.timeout.as_ref().map(|t| {
                sdk::JobTimeout::builder().attempt_duration_seconds(t.attempt_duration_seconds as i32).build()
            }))
            .set_array_properties(
                r.array_properties.as_ref().map(|a| sdk::ArrayProperties::builder().size(a.size).build()),
            )
            .set_tags(Some(r.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
            .set_parameters(
                (!r.parameters.is_empty()).then(|| r.parameters.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            )
            .set_scheduling_priority_override(r.scheduling_priority_override)
            .set_share_identifier(r.share_identifier.clone());
        if r.propagate_tags {
            call = call.propagate_tags(true);
        }
        for d in &r.depends_on {
            call = call.depends_on(
                sdk::JobDependency::builder()
                    .job_id(&d.job_id)
                    .set_type(d.kind.as_deref().map(sdk::ArrayJobDependency::from))
                    .build(),
            );
        }
        let out = self.call("SubmitJob", call.customize().interceptor(MergeFields(r.extra.clone())).send()).await?;
        Ok(SubmittedJob {
            job_id: out.job_id().unwrap_or_default().to_string(),
            job_name: out.job_name().unwrap_or_default().to_string(),
            created: true,
        })
    }

    /// Every job of this name in `queue` that Batch still knows of, any status.
    pub async fn jobs_named(&self, queue: &str, name: &str) -> Result<Vec<JobDescription>, BatchError> {
        let filter = sdk::KeyValuesPair::builder().name("JOB_NAME").values(name).build();
        let listed = self.call("ListJobs", self.sdk.list_jobs().job_queue(queue).filters(filter).send()).await?;
        let ids: Vec<String> = listed
            .job_summary_list()
            .iter()
            .filter(|j| j.job_name() == Some(name))
            .filter_map(|j| j.job_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.describe(&ids).await
    }

    /// The newest job of the request's name in its queue, if it carries the same payload.
    async fn find_by_name(&self, request: &SubmitJobRequest) -> Result<Option<SubmittedJob>, BatchError> {
        let filter = sdk::KeyValuesPair::builder().name("JOB_NAME").values(&request.job_name).build();
        let listed =
            self.call("ListJobs", self.sdk.list_jobs().job_queue(&request.job_queue).filters(filter).send()).await?;
        let ids: Vec<String> = listed
            .job_summary_list()
            .iter()
            .filter(|j| j.job_name() == Some(request.job_name.as_str()))
            .filter_map(|j| j.job_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let found = self.describe(&ids).await?;
        let Some(newest) = found.last() else { return Ok(None) };
        let theirs = newest.tags.get(super::render::TAG_PAYLOAD_SHA256).map(String::as_str).unwrap_or("(none)");
        let ours = request.payload_sha256().unwrap_or("(none)");
        if theirs != ours {
            return Err(BatchError::Conflict {
                name: request.job_name.clone(),
                job_id: newest.job_id.clone(),
                queue: request.job_queue.clone(),
                existing: theirs.into(),
                ours: ours.into(),
            });
        }
        Ok(Some(SubmittedJob { job_id: newest.job_id.clone(), job_name: newest.job_name.clone(), created: false }))
    }

    /// How the job stands now, each child of an array job included. A job
    /// just submitted may not show at once: it is asked for again, up to
    /// [`VISIBILITY_WAIT`].
    pub async fn status(&self, job_id: &str) -> Result<BatchReport, BatchError> {
        let job = self.look(job_id).await?;
        let children = job.child_ids();
        if children.is_empty() {
            return Ok(report(&job));
        }
        Ok(report_with_children(&job, &self.describe(&children).await?))
    }

    pub(super) async fn look(&self, job_id: &str) -> Result<JobDescription, BatchError> {
        let until = tokio::time::Instant::now() + VISIBILITY_WAIT;
        loop {
            if let Some(job) = self.describe(&[job_id.to_string()]).await?.into_iter().next() {
                return Ok(job);
            }
            if tokio::time::Instant::now() >= until {
                return Err(BatchError::NotFound { job_id: job_id.into() });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Wait until the job succeeded or failed (either way is an answer), at
    /// most `timeout`. An array job is watched through its own status (its
    /// children's summary); each child is read once, at the end.
    pub async fn wait(&self, job_id: &str, timeout: Duration) -> Result<BatchReport, BatchError> {
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        loop {
            let now = report(&self.look(job_id).await?);
            if now.phase.is_final() {
                return self.status(job_id).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BatchError::WaitTimedOut { after: started.elapsed(), last: Box::new(now) });
            }
            tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + self.poll_interval)).await;
        }
    }

    /// Stop the job: TerminateJob once it has started (CancelJob does nothing
    /// to a running job), CancelJob while it is still queued.
    pub async fn cancel(&self, job_id: &str, reason: &str) -> Result<CancelOutcome, BatchError> {
        let job = report(&self.look(job_id).await?);
        match job.status {
            BatchStatus::Succeeded | BatchStatus::Failed => Ok(CancelOutcome::AlreadyFinished(job.status)),
            BatchStatus::Starting | BatchStatus::Running => {
                self.call("TerminateJob", self.sdk.terminate_job().job_id(job_id).reason(reason).send()).await?;
                Ok(CancelOutcome::Terminated)
            }
            _ => {
                self.call("CancelJob", self.sdk.cancel_job().job_id(job_id).reason(reason).send()).await?;
                Ok(CancelOutcome::Cancelled)
            }
        }
    }

    pub(super) async fn describe(&self, ids: &[String]) -> Result<Vec<JobDescription>, BatchError> {
        let mut jobs = Vec::new();
        // DescribeJobs takes at most 100 ids.
        for chunk in ids.chunks(100) {
            let out = self.call("DescribeJobs", self.sdk.describe_jobs().set_jobs(Some(chunk.to_vec())).send()).await?;
            jobs.extend(out.jobs().iter().map(description));
        }
        jobs.sort_by_key(|j| j.1);
        Ok(jobs.into_iter().map(|j| j.0).collect())
    }

    async fn call<T, E>(
        &self,
        action: &str,
        request: impl std::future::Future<Output = Result<T, aws_sdk_batch::error::SdkError<E>>>,
    ) -> Result<T, BatchError>
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        match tokio::time::timeout(self.api_timeout, request).await {
            Err(_) => Err(BatchError::Timeout { action: action.into(), after: self.api_timeout }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => match e.code() {
                Some(code) => Err(BatchError::Api {
                    action: action.into(),
                    code: code.into(),
                    message: e.message().unwrap_or_default().into(),
                }),
                None => Err(BatchError::Transport { action: action.into(), source: Box::new(e) }),
            },
        }
    }
}

/// The SDK's status as ours: one closed set, matched as values, never as text.
fn status_of(status: &sdk::JobStatus) -> BatchStatus {
    match status {
        sdk::JobStatus::Submitted => BatchStatus::Submitted,
        sdk::JobStatus::Pending => BatchStatus::Pending,
        sdk::JobStatus::Runnable => BatchStatus::Runnable,
        sdk::JobStatus::Starting => BatchStatus::Starting,
        sdk::JobStatus::Running => BatchStatus::Running,
        sdk::JobStatus::Succeeded => BatchStatus::Succeeded,
        sdk::JobStatus::Failed => BatchStatus::Failed,
        _ => BatchStatus::Unknown,
    }
}

/// A job's description and its creation time (for "newest").
fn description(j: &sdk::JobDetail) -> (JobDescription, i64) {
    let container = |exit_code: Option<i32>, reason: Option<&str>, log: Option<&str>| Container {
        exit_code,
        reason: reason.map(str::to_string),
        log_stream_name: log.map(str::to_string),
        environment: Vec::new(),
    };
    let job = JobDescription {
        job_id: j.job_id().unwrap_or_default().into(),
        job_name: j.job_name().unwrap_or_default().into(),
        status: j.status().map(status_of).unwrap_or_default(),
        status_reason: j.status_reason().map(str::to_string),
        attempts: j
            .attempts()
            .iter()
            .map(|a| Attempt {
                container: a.container().map(|c| container(c.exit_code(), c.reason(), c.log_stream_name())),
                status_reason: a.status_reason().map(str::to_string),
            })
            .collect(),
        container: j.container().map(|c| Container {
            environment: c
                .environment()
                .iter()
                .map(|kv| KeyValue { name: kv.name().map(str::to_string), value: kv.value().map(str::to_string) })
                .collect(),
            ..container(c.exit_code(), c.reason(), c.log_stream_name())
        }),
        array_properties: j.array_properties().map(|a| ArraySummary {
            size: a.size(),
            index: a.index(),
            status_summary: a
                .status_summary()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default(),
        }),
        tags: j.tags().map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
        created_at: j.created_at(),
    };
    (job, j.created_at().unwrap_or(0))
}

/// Merges the request's passthrough fields into SubmitJob's JSON body before
/// it is signed: the SDK has no field for what it does not know.
#[derive(Debug)]
struct MergeFields(serde_json::Map<String, serde_json::Value>);

impl Intercept for MergeFields {
    fn name(&self) -> &'static str {
        "MergeFields"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let request = context.request_mut();
        let mut body: serde_json::Value = serde_json::from_slice(request.body().bytes().ok_or("a streaming body")?)?;
        let object = body.as_object_mut().ok_or("the SubmitJob body is not a JSON object")?;
        for (key, value) in &self.0 {
            object.insert(key.clone(), value.clone());
        }
        let bytes = serde_json::to_vec(&body)?;
        request.headers_mut().insert("content-length", bytes.len().to_string());
        *request.body_mut() = aws_smithy_types::body::SdkBody::from(bytes);
        Ok(())
    }
}
