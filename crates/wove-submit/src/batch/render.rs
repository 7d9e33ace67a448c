//! The SubmitJob request, built offline from a payload and [`BatchOptions`]:
//! the JSON `aws batch submit-job --cli-input-json` takes, and what the client
//! sends. Every limit AWS Batch enforces, or fails a job on later, is checked
//! here first.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wove_proto::env as vars;

use super::options::{BatchOptions, Compression};
use super::retry::{is_exit_code_pattern, retry_strategy, RetryStrategy, MAX_RULES};
use crate::naming;
use crate::payload::EncodedPayload;
use crate::store::StoredObject;

/// Longest job name.
pub const MAX_JOB_NAME: usize = 128;
/// Largest SubmitJob request, in bytes.
pub const MAX_REQUEST_BYTES: usize = 30 * 1024;
/// Largest container overrides (as JSON) an ECS-backed job starts with.
pub const MAX_ECS_OVERRIDES: usize = 8192;
/// Tag with the raw run id.
pub const TAG_RUN_ID: &str = "wove:run-id";
/// Tag with the raw task id.
pub const TAG_TASK_ID: &str = "wove:task-id";
/// Tag with the payload's SHA-256: a resubmit compares it.
pub const TAG_PAYLOAD_SHA256: &str = "wove:payload-sha256";
/// Tag naming the payload's object (`s3://bucket/key`) when it travels by
/// reference: `wait`, `cancel` and `cleanup` delete it once the job is over.
pub const TAG_PAYLOAD_OBJECT: &str = "wove:payload-object";
/// Tag with the number of tasks of a many-task payload.
pub const TAG_TASKS: &str = "wove:tasks";
/// Most children of an array job.
pub const MAX_ARRAY_SIZE: i32 = 10_000;

/// A SubmitJob request, as the API spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitJobRequest {
    /// `<prefix>-<readable ids>-<hash>`.
    pub job_name: String,
    /// Queue.
    pub job_queue: String,
    /// Job definition.
    pub job_definition: String,
    /// Environment, command and resources.
    pub container_overrides: ContainerOverrides,
    /// Attempts and the rules that read exit codes.
    pub retry_strategy: RetryStrategy,
    /// Per-attempt timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<JobTimeout>,
    /// Array size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub array_properties: Option<ArrayProperties>,
    /// Tags, the raw ids among them.
    pub tags: BTreeMap<String, String>,
    /// Whether the tags go to the ECS task too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub propagate_tags: bool,
    /// Command parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// Dependencies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<JobDependency>,
    /// Fair-share priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling_priority_override: Option<i32>,
    /// Fair-share identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_identifier: Option<String>,
    /// Any other field, passed through as given.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// `containerOverrides`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerOverrides {
    /// The caller's variables, then the payload's.
    pub environment: Vec<KeyValuePair>,
    /// The command, when it overrides the job definition's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// vCPU, memory and GPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_requirements: Vec<ResourceRequirement>,
}

/// One environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValuePair {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// One resource requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRequirement {
    /// `VCPU`, `MEMORY` or `GPU`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The amount, as text.
    pub value: String,
}

/// `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTimeout {
    /// Seconds per attempt.
    pub attempt_duration_seconds: i64,
}

/// `arrayProperties`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayProperties {
    /// Children.
    pub size: i32,
}

/// One entry of `dependsOn`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDependency {
    /// The job waited for.
    pub job_id: String,
    /// `N_TO_N` or `SEQUENTIAL`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Why no request was built.
#[derive(Debug, thiserror::Error)]
pub enum BatchRenderError {
    /// An option is out of range or contradicts another.
    #[error("option `{option}`: {problem}")]
    Option {
        /// The option, as in [`BatchOptions`].
        option: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The request as built breaks rules the worker or AWS Batch would trip over.
    #[error("the request breaks {} rule(s): {}", .0.len(), .0.join("; "))]
    Invalid(Vec<String>),
    /// The request or its overrides would be over one of Batch's limits.
    #[error("the {what} would be {size} bytes ({breakdown}), over AWS Batch's {limit}-byte limit; {way_out}")]
    TooLarge {
        /// Which part.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
        /// What takes the room: the payload, the other variables, the command.
        breakdown: String,
        /// What the caller can do instead, for whichever part is the larger.
        way_out: &'static str,
    },
}

fn option(option: &'static str, problem: impl Into<String>) -> BatchRenderError {
    BatchRenderError::Option { option, problem: problem.into() }
}

const WAY_OUT: &str =
    "give a payload store (--payload-store s3://bucket/prefix, or `payload_store`): the payload then \
travels as an S3 object the job reads by reference, checked by its SHA-256; or make the payload smaller (a many-task \
payload split over several jobs), or put the payload in a file the job definition mounts \
(EFS, FSx, or baked into the image) and pass its path as `payload_file` (the worker reads \
WOVE_BACKEND_PAYLOAD_FILE, JSON or gzip, up to its --max-payload-bytes, 64 MiB by default)";

/// When the request is over a limit without counting the payload.
const WAY_OUT_ENV: &str = "the environment variables and command given to the submitter take that room \
without the payload: set them in the job definition instead (its environment and command are not \
counted against the overrides), or pass fewer";

/// The request, and the object to upload first when the payload travels by reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The SubmitJob request.
    pub request: SubmitJobRequest,
    /// The payload's object ([`BatchOptions::payload_store`]): upload it before
    /// submitting (and, with `presign_seconds`, put the presigned URL in
    /// `WOVE_BACKEND_PAYLOAD_URL`: [`SubmitJobRequest::set_payload_url`]).
    pub upload: Option<StoredObject>,
}

/// Build the request for `payload`. A many-task payload becomes an array job
/// with one child per task; the payload travels compressed when only that
/// fits ([`BatchOptions::compression`]). A payload that travels by reference
/// needs its object uploaded first: use [`plan`], which says so.
pub fn render(payload: &EncodedPayload, options: &BatchOptions) -> Result<SubmitJobRequest, BatchRenderError> {
    plan(payload, options).map(|plan| plan.request)
}

/// Build the request and, when the payload goes to the store, the object it refers to.
pub fn plan(payload: &EncodedPayload, options: &BatchOptions) -> Result<Plan, BatchRenderError> {
    let plan = build(payload, options)?;
    let violations = check(&plan.request);
    if violations.is_empty() {
        Ok(plan)
    } else {
        Err(BatchRenderError::Invalid(violations))
    }
}

/// Rules on the request as it will be sent, whatever the options were: the
/// same rules as a Kubernetes Job's container ([`crate::container`]).
pub fn check(request: &SubmitJobRequest) -> Vec<String> {
    let mut found = Vec::new();
    let overrides = &request.container_overrides;
    if let Some(flag) = crate::container::owned_flag(overrides.command.iter().flatten()) {
        found.push(format!(
            "containerOverrides.command: {flag}: the submitter sets this for the worker (the payload, the shutdown \
             budget, the index, signing); use its own options"
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for kv in &overrides.environment {
        if !seen.insert(kv.name.as_str()) {
            found.push(format!("containerOverrides.environment: {} is set twice", kv.name));
        }
        if crate::container::PLATFORM_INDEX_VARS.contains(&kv.name.as_str()) {
            found.push(format!("containerOverrides.environment.{}: AWS Batch gives each child its index", kv.name));
        }
    }
    let var = |name: &str| overrides.environment.iter().find(|kv| kv.name == name);
    let payload = var(vars::PAYLOAD);
    match (payload, var(vars::PAYLOAD_FILE), var(vars::PAYLOAD_URL)) {
        (Some(kv), None, None) => {
            let carried = crate::container::Carried::Base64(&kv.value);
            if let Some(problem) = crate::container::payload_mismatch(carried, request.payload_sha256()) {
                found.push(format!("containerOverrides.environment.{}: {problem}", vars::PAYLOAD));
            }
        }
        (None, Some(_), None) => {}
        (None, None, Some(_)) => {
            let sha = var(vars::PAYLOAD_SHA256).map(|kv| kv.value.as_str()).unwrap_or_default();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                found.push(format!(
                    "containerOverrides.environment: {} needs {} (64 hex digits): the worker refuses a reference it cannot check",
                    vars::PAYLOAD_URL,
                    vars::PAYLOAD_SHA256
                ));
            }
        }
        _ => found.push(format!(
            "containerOverrides.environment: the worker needs exactly one of {}, {} and {}",
            vars::PAYLOAD,
            vars::PAYLOAD_FILE,
            vars::PAYLOAD_URL
        )),
    }
    found
}

fn build(payload: &EncodedPayload, options: &BatchOptions) -> Result<Plan, BatchRenderError> {
    validate(options)?;
    let request = request(payload, options)?;
    carry_payload(request, payload, options)
}

/// The request before the payload goes in: its name, environment, resources, tags and the
/// options passed through as they are.
fn request(payload: &EncodedPayload, options: &BatchOptions) -> Result<SubmitJobRequest, BatchRenderError> {
    let p = payload.payload();
    let job_name = naming::object_name_within(&options.name_prefix, &p.run_id, &p.task_id, MAX_JOB_NAME)
        .map_err(|e| option("name_prefix", e.to_string()))?;
    let array_size = array_size_for(payload, options)?;
    Ok(SubmitJobRequest {
        job_name,
        job_queue: options.job_queue.clone(),
        job_definition: options.job_definition.clone(),
        container_overrides: ContainerOverrides {
            environment: environment(payload, options, array_size),
            command: options.command.clone(),
            resource_requirements: resources(options),
        },
        retry_strategy: retry_strategy(options.attempts),
        timeout: options.attempt_duration_seconds.map(|s| JobTimeout { attempt_duration_seconds: s }),
        array_properties: array_size.map(|size| ArrayProperties { size }),
        tags: tags(payload, options),
        propagate_tags: options.propagate_tags,
        parameters: options.parameters.clone(),
        depends_on: options
            .depends_on
            .iter()
            .map(|d| JobDependency { job_id: d.job_id.clone(), kind: d.kind.clone() })
            .collect(),
        scheduling_priority_override: options.scheduling_priority,
        share_identifier: options.share_identifier.clone(),
        extra: options.extra.clone(),
    })
}

/// The options' environment, and the index of a single task of a fan-out run without an array.
fn environment(payload: &EncodedPayload, options: &BatchOptions, array_size: Option<i32>) -> Vec<KeyValuePair> {
    let mut environment: Vec<KeyValuePair> = options
        .environment
        .iter()
        .map(|(name, value)| KeyValuePair { name: name.clone(), value: value.clone() })
        .collect();
    if payload.payload().is_many() && array_size.is_none() {
        // One task: no array, no AWS_BATCH_JOB_ARRAY_INDEX; the worker is told its index.
        environment.push(KeyValuePair { name: vars::INDEX.into(), value: "0".into() });
    }
    environment
}

/// vCPUs, memory and GPUs, as far as the options name them.
fn resources(options: &BatchOptions) -> Vec<ResourceRequirement> {
    let given = [
        ("VCPU", options.vcpus.clone()),
        ("MEMORY", options.memory_mib.map(|m| m.to_string())),
        ("GPU", options.gpus.map(|g| g.to_string())),
    ];
    given
        .into_iter()
        .filter_map(|(kind, value)| value.map(|value| ResourceRequirement { kind: kind.into(), value }))
        .collect()
}

/// The options' tags, and ours: run, task, task count and payload digest.
fn tags(payload: &EncodedPayload, options: &BatchOptions) -> BTreeMap<String, String> {
    let p = payload.payload();
    let mut tags = options.tags.clone();
    tags.insert(TAG_RUN_ID.into(), tag_value(&p.run_id));
    if !p.task_id.is_empty() {
        tags.insert(TAG_TASK_ID.into(), tag_value(&p.task_id));
    }
    if p.is_many() {
        tags.insert(TAG_TASKS.into(), p.task_count().to_string());
    }
    tags.insert(TAG_PAYLOAD_SHA256.into(), payload.sha256().into());
    tags
}

/// The payload in the request: as a file the job definition mounts, inline (compressed when
/// that is what fits), or by reference to the store when it is always used or nothing else fits.
fn carry_payload(
    mut request: SubmitJobRequest,
    payload: &EncodedPayload,
    options: &BatchOptions,
) -> Result<Plan, BatchRenderError> {
    if let Some(path) = &options.payload_file {
        request
            .container_overrides
            .environment
            .push(KeyValuePair { name: vars::PAYLOAD_FILE.into(), value: path.clone() });
        check_sizes(&request, options.ecs_overrides_limit)?;
        return Ok(Plan { request, upload: None });
    }
    if let Some(store) = options.payload_store.as_ref().filter(|s| s.always) {
        return by_reference(request, payload, store, options);
    }
    let with_payload = |base64: &str| {
        let mut r = request.clone();
        r.container_overrides.environment.push(KeyValuePair { name: vars::PAYLOAD.into(), value: base64.into() });
        r
    };
    let fits = |base64: &str| check_sizes(&with_payload(base64), options.ecs_overrides_limit).is_ok();
    let base64 = payload.travelling_base64(options.compression, fits);
    let inline = with_payload(&base64);
    let sized = check_sizes(&inline, options.ecs_overrides_limit);
    // Too large because of the payload, and there is a store: by reference.
    if let (Err(BatchRenderError::TooLarge { way_out: WAY_OUT, .. }), Some(store)) = (&sized, &options.payload_store) {
        return by_reference(request, payload, store, options);
    }
    match sized {
        Ok(()) => Ok(Plan { request: inline, upload: None }),
        Err(BatchRenderError::TooLarge { what, size, limit, breakdown, way_out })
            if options.compression != Compression::Never =>
        {
            Err(BatchRenderError::TooLarge { what: compressed(what), size, limit, breakdown, way_out })
        }
        Err(other) => Err(other),
    }
}

/// The request with the payload's reference in place of the payload, and the object it names.
fn by_reference(
    mut request: SubmitJobRequest,
    payload: &EncodedPayload,
    store: &crate::store::PayloadStore,
    options: &BatchOptions,
) -> Result<Plan, BatchRenderError> {
    let bytes = match options.compression {
        Compression::Always => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(payload.gzip_base64()).unwrap_or_default()
        }
        Compression::Auto | Compression::Never => payload.bytes(),
    };
    let object = store.object_for(&request.job_name, bytes).map_err(|e| option("payload_store", e.to_string()))?;
    for (name, value) in object.env() {
        request.container_overrides.environment.push(KeyValuePair { name: name.into(), value });
    }
    request.tags.insert(TAG_PAYLOAD_OBJECT.into(), object.url());
    check_sizes(&request, options.ecs_overrides_limit)?;
    Ok(Plan { request, upload: Some(object) })
}

fn compressed(what: &'static str) -> &'static str {
    match what {
        "SubmitJob request" => "SubmitJob request, with the payload gzip-compressed,",
        _ => "container overrides (environment and command, as JSON), with the payload gzip-compressed,",
    }
}

/// The array size: the caller's, or one child per task of a many-task payload.
fn array_size_for(payload: &EncodedPayload, options: &BatchOptions) -> Result<Option<i32>, BatchRenderError> {
    let p = payload.payload();
    if !p.is_many() {
        return Ok(options.array_size);
    }
    let tasks = p.task_count();
    if tasks > MAX_ARRAY_SIZE as usize {
        return Err(option(
            "array_size",
            format!("the payload holds {tasks} tasks, over the {MAX_ARRAY_SIZE} children of an array job: split them over several payloads"),
        ));
    }
    let tasks = tasks as i32;
    match options.array_size {
        Some(size) if size != tasks => Err(option(
            "array_size",
            format!(
                "{size} for a payload of {tasks} tasks: each child runs one task, so leave it unset or make it {tasks}"
            ),
        )),
        _ if tasks == 1 => Ok(None),
        _ => Ok(Some(tasks)),
    }
}

impl SubmitJobRequest {
    /// The request as JSON, for `aws batch submit-job --cli-input-json`.
    pub fn to_json(&self) -> serde_json::Value {
        // Strings, numbers and maps: serializing cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The payload digest among its tags.
    pub fn payload_sha256(&self) -> Option<&str> {
        self.tags.get(TAG_PAYLOAD_SHA256).map(String::as_str)
    }

    /// The payload's object (`s3://bucket/key`) when it travels by reference.
    pub fn payload_object(&self) -> Option<&str> {
        self.tags.get(TAG_PAYLOAD_OBJECT).map(String::as_str)
    }

    /// Put `url` (a presigned https URL for the payload's object) where the
    /// worker reads the reference, and check the request's sizes again.
    pub fn set_payload_url(&mut self, url: &str, ecs_overrides_limit: bool) -> Result<(), BatchRenderError> {
        for kv in &mut self.container_overrides.environment {
            if kv.name == vars::PAYLOAD_URL {
                kv.value = url.to_string();
            }
        }
        check_sizes(self, ecs_overrides_limit)
    }
}

/// Tag values allow letters, numbers, spaces and `_ . : / = + - @`, at most
/// 256 characters: Wove's run ids fit as they are; anything else is replaced.
pub fn tag_value(raw: &str) -> String {
    raw.chars()
        .map(|c| if c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c) { c } else { '_' })
        .take(256)
        .collect()
}

/// What the overrides hold, by part, as JSON bytes: the payload variable, the
/// other variables (and how many), the command.
struct Parts {
    payload: usize,
    other_env: usize,
    other_vars: usize,
    command: usize,
}

impl Parts {
    fn of(overrides: &ContainerOverrides) -> Self {
        let (payload, other): (Vec<&KeyValuePair>, Vec<&KeyValuePair>) =
            overrides.environment.iter().partition(|kv| kv.name == vars::PAYLOAD);
        Self {
            payload: payload.iter().map(json_len).sum(),
            other_env: other.iter().map(json_len).sum(),
            other_vars: other.len(),
            command: overrides.command.as_ref().map_or(0, json_len),
        }
    }

    fn describe(&self) -> String {
        format!(
            "the payload {} bytes, {} other environment variable(s) {} bytes, the command {} bytes",
            self.payload, self.other_vars, self.other_env, self.command
        )
    }

    /// The advice for whichever is over: the payload, or what came with it.
    fn way_out(&self, limit: usize) -> &'static str {
        if self.other_env + self.command >= limit || self.other_env + self.command > self.payload {
            WAY_OUT_ENV
        } else {
            WAY_OUT
        }
    }
}

/// Bytes of `value` as JSON.
fn json_len<T: serde::Serialize>(value: &T) -> usize {
    // Serializing our own types cannot fail.
    serde_json::to_vec(value).map_or(0, |v| v.len())
}

fn check_sizes(request: &SubmitJobRequest, ecs: bool) -> Result<(), BatchRenderError> {
    // Serializing our own types cannot fail.
    let overrides = serde_json::to_string(&request.container_overrides).unwrap_or_default().len();
    let too_large = |what, size, limit| {
        let parts = Parts::of(&request.container_overrides);
        BatchRenderError::TooLarge { what, size, limit, breakdown: parts.describe(), way_out: parts.way_out(limit) }
    };
    if ecs && overrides > MAX_ECS_OVERRIDES {
        return Err(too_large("container overrides (environment and command, as JSON)", overrides, MAX_ECS_OVERRIDES));
    }
    let whole = serde_json::to_vec(request).unwrap_or_default().len();
    if whole > MAX_REQUEST_BYTES {
        return Err(too_large("SubmitJob request", whole, MAX_REQUEST_BYTES));
    }
    if request.retry_strategy.evaluate_on_exit.len() > MAX_RULES {
        return Err(option("attempts", format!("more than {MAX_RULES} retry rules")));
    }
    if let Some(rule) = request
        .retry_strategy
        .evaluate_on_exit
        .iter()
        .find(|r| r.on_exit_code.as_deref().is_some_and(|p| !is_exit_code_pattern(p)))
    {
        return Err(option("attempts", format!("{:?} is not an exit code pattern", rule.on_exit_code)));
    }
    Ok(())
}

/// Whether `name` is a job name Batch accepts: 1 to 128 characters, the
/// first a letter or digit, then letters, digits, `_` and `-`.
pub fn is_job_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_JOB_NAME
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The options a job cannot be submitted with, the first found: each group
/// of checks below is one part of the `SubmitJob` request.
fn validate(o: &BatchOptions) -> Result<(), BatchRenderError> {
    validate_placement(o)?;
    validate_container(o)?;
    validate_payload(o)?;
    validate_limits(o)?;
    validate_tags(o)
}

/// Where the job goes: its queue, its definition, what it waits for, and no field the submitter sets.
fn validate_placement(o: &BatchOptions) -> Result<(), BatchRenderError> {
    if o.job_queue.trim().is_empty() {
        return Err(option("job_queue", "is required"));
    }
    if o.job_definition.trim().is_empty() {
        return Err(option("job_definition", "is required"));
    }
    for dependency in &o.depends_on {
        if dependency.kind.as_deref().is_some_and(|k| k != "N_TO_N" && k != "SEQUENTIAL") {
            return Err(option("depends_on", format!("{:?} is not N_TO_N or SEQUENTIAL", dependency.kind)));
        }
    }
    const OWN: [&str; 12] = [
        "jobName",
        "jobQueue",
        "jobDefinition",
        "containerOverrides",
        "retryStrategy",
        "timeout",
        "arrayProperties",
        "tags",
        "propagateTags",
        "parameters",
        "dependsOn",
        "schedulingPriorityOverride",
    ];
    if let Some(key) = o.extra.keys().find(|k| OWN.contains(&k.as_str()) || k.as_str() == "shareIdentifier") {
        return Err(option("extra", format!("{key} has an option of its own")));
    }
    Ok(())
}

/// The container's overrides: a program when one is given, and variables that are neither Batch's nor ours.
fn validate_container(o: &BatchOptions) -> Result<(), BatchRenderError> {
    for (name, _) in &o.environment {
        if name.starts_with("AWS_BATCH") {
            return Err(option("environment", format!("{name}: names starting AWS_BATCH are AWS Batch's own")));
        }
        if [vars::PAYLOAD, vars::PAYLOAD_FILE, vars::PAYLOAD_URL, vars::PAYLOAD_SHA256, vars::PAYLOAD_SIZE, vars::INDEX]
            .contains(&name.as_str())
        {
            return Err(option("environment", format!("{name} is set by the submitter")));
        }
        if name.is_empty() || name.contains('=') {
            return Err(option("environment", format!("{name:?} is not a variable name")));
        }
    }
    if o.command.as_ref().is_some_and(|c| c.is_empty()) {
        return Err(option("command", "must name a program when given"));
    }
    Ok(())
}

/// How the payload reaches the container: one place, a store that can be reached, a path that is absolute.
fn validate_payload(o: &BatchOptions) -> Result<(), BatchRenderError> {
    if let Some(store) = &o.payload_store {
        store.location().map_err(|e| option("payload_store", e.to_string()))?;
        if o.payload_file.is_some() {
            return Err(option("payload_store", "and `payload_file` both say where the payload is: give one"));
        }
    }
    if let Some(path) = &o.payload_file {
        if !path.starts_with('/') {
            return Err(option("payload_file", "must be an absolute path in the container"));
        }
    }
    Ok(())
}

/// Attempts, their duration, the array's size and the priority, within AWS Batch's bounds.
fn validate_limits(o: &BatchOptions) -> Result<(), BatchRenderError> {
    if !(1..=10).contains(&o.attempts) {
        return Err(option("attempts", "must be 1 to 10"));
    }
    if o.attempt_duration_seconds.is_some_and(|s| s < 60) {
        return Err(option("attempt_duration_seconds", "must be at least 60 (AWS Batch's minimum)"));
    }
    if o.array_size.is_some_and(|n| !(2..=MAX_ARRAY_SIZE).contains(&n)) {
        return Err(option("array_size", "must be 2 to 10000"));
    }
    if o.scheduling_priority.is_some_and(|p| !(0..=9999).contains(&p)) {
        return Err(option("scheduling_priority", "must be 0 to 9999"));
    }
    Ok(())
}

/// The caller's tags: room for the submitter's three, and none in the reserved prefixes.
fn validate_tags(o: &BatchOptions) -> Result<(), BatchRenderError> {
    if o.tags.len() > 47 {
        return Err(option("tags", "at most 47 (50 with the submitter's three)"));
    }
    for (key, value) in &o.tags {
        if key.starts_with("aws:") || key.starts_with("wove:") || key.is_empty() || key.len() > 128 || value.len() > 256
        {
            return Err(option(
                "tags",
                format!("{key:?}: keys 1 to 128 characters, not aws: or wove:, values at most 256"),
            ));
        }
    }
    Ok(())
}
