//! The Job (and, for a large or sensitive payload, its Secret), built from a
//! payload and [`JobOptions`], offline.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use wove_proto::env as vars;

use super::check::{self, Violation};
use super::failure_policy::pod_failure_policy;
use super::options::{Compression, Indexed, JobOptions, PayloadPlacement, MAX_ENV_STRING, MAX_SECRET_DATA};
use crate::naming;
use crate::payload::EncodedPayload;
use crate::store::StoredObject;

/// The worker's container in the pod.
pub const CONTAINER: &str = "wove";
/// Standard label: what runs.
pub const LABEL_APP_NAME: &str = "app.kubernetes.io/name";
/// Standard label: who made the object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label with the run id, made valid ([`naming::label_value`]).
pub const LABEL_RUN: &str = "wove.dev/run";
/// Label with the task id, made valid.
pub const LABEL_TASK: &str = "wove.dev/task";
/// Annotation with the raw run id.
pub const ANNOTATION_RUN_ID: &str = "wove.dev/run-id";
/// Annotation with the raw task id.
pub const ANNOTATION_TASK_ID: &str = "wove.dev/task-id";
/// Annotation with the payload's SHA-256: a resubmit compares it.
pub const ANNOTATION_PAYLOAD_SHA256: &str = "wove.dev/payload-sha256";
/// Annotation with the number of tasks of a many-task payload.
pub const ANNOTATION_TASKS: &str = "wove.dev/tasks";
/// Annotation naming the payload's object (`s3://bucket/key`) when it travels
/// by reference: `wait`, `cancel` and `cleanup` delete it once the Job is over.
pub const ANNOTATION_PAYLOAD_OBJECT: &str = "wove.dev/payload-object";
/// The key of a presigned payload URL in the payload Secret: a bearer
/// credential, so never in the Job's own spec.
pub const PAYLOAD_URL_KEY: &str = "url";
/// The label the Job controller puts on the Job's pods.
pub const LABEL_JOB_NAME: &str = "batch.kubernetes.io/job-name";
/// Where a Secret-borne payload is mounted.
pub const PAYLOAD_MOUNT: &str = "/var/run/secrets/wove/payload";
/// The payload's key in its Secret, and its file name under [`PAYLOAD_MOUNT`].
pub const PAYLOAD_KEY: &str = "payload";
/// Where a file-borne signing secret is mounted.
pub const SIGNING_MOUNT: &str = "/var/run/secrets/wove/signing";
/// Volumes the submitter adds; a caller's volumes may not use these names.
pub const OWN_VOLUMES: [&str; 3] = ["wove-payload", "wove-signing", "wove-tmp"];

const APP_NAME: &str = "wove-worker";
const MANAGER: &str = "wove-submit";

/// A Job ready to submit, and the Secret that carries its payload when it
/// does not ride in the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The batch/v1 Job.
    pub job: Job,
    /// The payload's Secret. It is owned by the Job once submitted, so
    /// deleting the Job deletes it.
    pub payload_secret: Option<Secret>,
    /// The payload's object when it travels by reference
    /// ([`JobOptions::payload_store`]): upload it before submitting.
    pub payload_object: Option<StoredObject>,
}

/// Why no Job was built.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// An option is out of range or contradicts another.
    #[error("option `{option}`: {problem}")]
    Option {
        /// The option, as in [`JobOptions`].
        option: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The payload does not fit where it was asked to travel.
    #[error("the payload is {size} bytes, over the {limit}-byte limit of {place}; {way_out}")]
    PayloadTooLarge {
        /// Its size where it would travel.
        size: usize,
        /// The limit there.
        limit: usize,
        /// Where: the environment or a Secret.
        place: &'static str,
        /// What the caller can do instead.
        way_out: &'static str,
    },
    /// The Job, as built or as changed by a hook, breaks rules the API
    /// server or the worker would trip over.
    #[error("the Job breaks {} rule(s): {}", .0.len(), check::join(.0))]
    Invalid(Vec<Violation>),
}

impl RenderError {
    fn option(option: &'static str, problem: impl Into<String>) -> Self {
        Self::Option { option, problem: problem.into() }
    }
}

/// Build the Job for `payload`.
pub fn render(payload: &EncodedPayload, options: &JobOptions) -> Result<Manifest, RenderError> {
    render_with(payload, options, |_| {})
}

/// Build the Job, let `hook` change it (as Wove's `job_factory` lets a user
/// do), then check the result: a hook cannot produce a Job that the API
/// server refuses or whose container cannot start.
pub fn render_with(
    payload: &EncodedPayload,
    options: &JobOptions,
    hook: impl FnOnce(&mut Job),
) -> Result<Manifest, RenderError> {
    validate_options(options)?;
    let p = payload.payload();
    let indexed = indexed_for(payload, options)?;
    let name = naming::object_name(&options.name_prefix, &p.run_id, &p.task_id)
        .map_err(|e| RenderError::option("name_prefix", e.to_string()))?;

    let labels = own_labels(&p.run_id, &p.task_id, &options.labels);
    let mut annotations = options.annotations.clone();
    annotations.insert(ANNOTATION_RUN_ID.into(), p.run_id.clone());
    annotations.insert(ANNOTATION_TASK_ID.into(), p.task_id.clone());
    annotations.insert(ANNOTATION_PAYLOAD_SHA256.into(), payload.sha256().to_string());
    if p.is_many() {
        annotations.insert(ANNOTATION_TASKS.into(), p.task_count().to_string());
    }

    let mut env = vec![EnvVar {
        name: vars::SHUTDOWN_BUDGET.into(),
        value: Some(options.shutdown_budget_seconds.to_string()),
        ..Default::default()
    }];
    let mut volumes = options.volumes.clone();
    let mut mounts = options.volume_mounts.clone();

    let secret_meta = |secret_name: String| ObjectMeta {
        name: Some(secret_name),
        namespace: Some(options.namespace.clone()),
        labels: Some(labels.clone()),
        annotations: Some(annotations.clone()),
        ..Default::default()
    };
    let mut payload_object = None;
    let payload_secret = match placement(payload, options, &name)? {
        Placement::Env(base64) => {
            env.push(EnvVar { name: vars::PAYLOAD.into(), value: Some(base64), ..Default::default() });
            None
        }
        Placement::Store(object) => {
            let [(url_var, url), (sha_var, sha), (size_var, size)] = object.env();
            let secret = match object.presign_seconds {
                None => {
                    env.push(EnvVar { name: url_var.into(), value: Some(url), ..Default::default() });
                    None
                }
                Some(_) => {
                    // The presigned URL, filled in at submit, is a credential: it rides in the Secret.
                    let secret_name = format!("{name}-payload");
                    env.push(EnvVar {
                        name: url_var.into(),
                        value_from: Some(EnvVarSource {
                            secret_key_ref: Some(SecretKeySelector {
                                name: secret_name.clone(),
                                key: PAYLOAD_URL_KEY.into(),
                                optional: Some(false),
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    Some(Secret {
                        metadata: secret_meta(secret_name),
                        data: Some(BTreeMap::from([(PAYLOAD_URL_KEY.to_string(), ByteString(url.into_bytes()))])),
                        immutable: Some(true),
                        type_: Some("Opaque".into()),
                        ..Default::default()
                    })
                }
            };
            env.push(EnvVar { name: sha_var.into(), value: Some(sha), ..Default::default() });
            env.push(EnvVar { name: size_var.into(), value: Some(size), ..Default::default() });
            payload_object = Some(object);
            secret
        }
        Placement::Secret(bytes) => {
            let secret_name = format!("{name}-payload");
            volumes.push(Volume {
                name: OWN_VOLUMES[0].into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret_name.clone()),
                    default_mode: Some(secret_file_mode(options)),
                    ..Default::default()
                }),
                ..Default::default()
            });
            mounts.push(read_only_mount(OWN_VOLUMES[0], PAYLOAD_MOUNT));
            env.push(EnvVar {
                name: vars::PAYLOAD_FILE.into(),
                value: Some(format!("{PAYLOAD_MOUNT}/{PAYLOAD_KEY}")),
                ..Default::default()
            });
            Some(Secret {
                metadata: secret_meta(secret_name),
                data: Some(BTreeMap::from([(PAYLOAD_KEY.to_string(), ByteString(bytes))])),
                immutable: Some(true),
                type_: Some("Opaque".into()),
                ..Default::default()
            })
        }
    };

    if let Some(object) = &payload_object {
        annotations.insert(ANNOTATION_PAYLOAD_OBJECT.into(), object.url());
    }

    if let Some(signing) = &options.signing_secret {
        if signing.as_file {
            volumes.push(Volume {
                name: OWN_VOLUMES[1].into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(signing.name.clone()),
                    default_mode: Some(secret_file_mode(options)),
                    items: Some(vec![KeyToPath { key: signing.key.clone(), path: signing.key.clone(), mode: None }]),
                    ..Default::default()
                }),
                ..Default::default()
            });
            mounts.push(read_only_mount(OWN_VOLUMES[1], SIGNING_MOUNT));
            env.push(EnvVar {
                name: vars::SIGNING_SECRET_FILE.into(),
                value: Some(format!("{SIGNING_MOUNT}/{}", signing.key)),
                ..Default::default()
            });
        } else {
            env.push(EnvVar {
                name: vars::SIGNING_SECRET.into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: signing.name.clone(),
                        key: signing.key.clone(),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }

    if options.security.read_only_root_filesystem {
        // The worker and the Python runner write their scratch files there.
        volumes.push(Volume {
            name: OWN_VOLUMES[2].into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        mounts.push(VolumeMount { name: OWN_VOLUMES[2].into(), mount_path: "/tmp".into(), ..Default::default() });
    }
    env.extend(options.env.iter().cloned());

    let container = Container {
        name: CONTAINER.into(),
        image: Some(options.image.clone()),
        image_pull_policy: options.image_pull_policy.clone(),
        command: Some(options.command.clone()),
        args: non_empty(options.args.clone()),
        env: Some(env),
        env_from: non_empty(options.env_from.clone()),
        resources: options.resources.clone(),
        volume_mounts: non_empty(mounts),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            read_only_root_filesystem: Some(options.security.read_only_root_filesystem),
            run_as_non_root: Some(options.security.run_as_non_root),
            ..Default::default()
        }),
        ..Default::default()
    };

    let pod = PodSpec {
        containers: vec![container],
        restart_policy: Some("Never".into()),
        termination_grace_period_seconds: Some(options.grace_period_seconds()),
        service_account_name: options.service_account.clone(),
        // The worker never calls the Kubernetes API: no token unless the caller chose an account.
        automount_service_account_token: Some(options.service_account.is_some()),
        image_pull_secrets: non_empty(
            options.image_pull_secrets.iter().map(|n| LocalObjectReference { name: n.clone() }).collect(),
        ),
        node_selector: (!options.node_selector.is_empty()).then(|| options.node_selector.clone()),
        affinity: options.affinity.clone(),
        tolerations: non_empty(options.tolerations.clone()),
        priority_class_name: options.priority_class.clone(),
        volumes: non_empty(volumes),
        security_context: Some(PodSecurityContext {
            run_as_user: options.security.run_as_user,
            run_as_group: options.security.run_as_group,
            run_as_non_root: Some(options.security.run_as_non_root),
            fs_group: options.security.run_as_group,
            seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }),
            ..Default::default()
        }),
        ..Default::default()
    };

    let per_index = indexed.as_ref().is_some_and(|i| i.backoff_limit_per_index.is_some());
    let mut spec = JobSpec {
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                ..Default::default()
            }),
            spec: Some(pod),
        },
        // With per-index retries, backoffLimit would also count every index's failures together.
        backoff_limit: if per_index { None } else { Some(options.backoff_limit) },
        active_deadline_seconds: options.active_deadline_seconds,
        ttl_seconds_after_finished: options.ttl_seconds_after_finished,
        pod_failure_policy: Some(pod_failure_policy(per_index)),
        // The only value the API allows beside a podFailurePolicy; it also
        // keeps a replacement from starting while the old pod still reports.
        pod_replacement_policy: Some("Failed".into()),
        suspend: options.suspend.then_some(true),
        ..Default::default()
    };
    if let Some(indexed) = &indexed {
        spec.completion_mode = Some("Indexed".into());
        spec.completions = Some(indexed.completions);
        spec.parallelism = indexed.parallelism.or(Some(indexed.completions));
        spec.backoff_limit_per_index = indexed.backoff_limit_per_index;
        spec.max_failed_indexes = indexed.max_failed_indexes;
    }

    let mut job = Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(options.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    hook(&mut job);
    let manifest = Manifest { job, payload_secret, payload_object };
    let violations = check::check(&manifest);
    if violations.is_empty() {
        Ok(manifest)
    } else {
        Err(RenderError::Invalid(violations))
    }
}

impl Manifest {
    /// The Job's name.
    pub fn name(&self) -> &str {
        self.job.metadata.name.as_deref().unwrap_or_default()
    }

    /// The Job's namespace.
    pub fn namespace(&self) -> &str {
        self.job.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The payload digest the Job carries in its annotations.
    pub fn payload_sha256(&self) -> Option<&str> {
        annotation(&self.job.metadata, ANNOTATION_PAYLOAD_SHA256)
    }

    /// Put the presigned URL of the payload's object in the payload Secret,
    /// where the worker's `WOVE_BACKEND_PAYLOAD_URL` comes from.
    pub fn set_payload_url(&mut self, url: &str) {
        if let Some(data) = self.payload_secret.as_mut().and_then(|s| s.data.as_mut()) {
            if data.contains_key(PAYLOAD_URL_KEY) {
                data.insert(PAYLOAD_URL_KEY.into(), ByteString(url.as_bytes().to_vec()));
            }
        }
    }

    /// The payload Secret, owned by `job` (the created Job, which has a uid):
    /// the garbage collector deletes it with the Job.
    pub fn owned_secret(&self, job: &Job) -> Option<Secret> {
        let mut secret = self.payload_secret.clone()?;
        secret.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "batch/v1".into(),
            kind: "Job".into(),
            name: job.metadata.name.clone().unwrap_or_default(),
            uid: job.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            // true would need update rights on the Job's finalizers.
            block_owner_deletion: None,
        }]);
        Some(secret)
    }

    /// The objects as one JSON document, for `kubectl apply -f -`: the Job
    /// alone, or a `v1` List with the Secret first.
    pub fn to_json(&self) -> serde_json::Value {
        let job = typed(&self.job, "batch/v1", "Job");
        match &self.payload_secret {
            None => job,
            Some(secret) => serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": [typed(secret, "v1", "Secret"), job],
            }),
        }
    }
}

/// Serialize a k8s-openapi object with its `apiVersion` and `kind` first.
pub(crate) fn typed<T: serde::Serialize>(object: &T, api_version: &str, kind: &str) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("apiVersion".into(), api_version.into());
    map.insert("kind".into(), kind.into());
    // k8s-openapi's resources serialize to objects; nothing here can fail.
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(object) {
        for (key, value) in fields {
            map.entry(key).or_insert(value);
        }
    }
    serde_json::Value::Object(map)
}

pub(crate) fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

enum Placement {
    Env(String),
    Secret(Vec<u8>),
    Store(StoredObject),
}

/// Where the payload travels, plain or compressed ([`JobOptions::compression`]),
/// or by reference through the payload store: always when it says so, else
/// when even a Secret cannot hold it.
fn placement(payload: &EncodedPayload, options: &JobOptions, job_name: &str) -> Result<Placement, RenderError> {
    let to_store = |store: &crate::store::PayloadStore| {
        let bytes = match options.compression {
            Compression::Always => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.decode(payload.gzip_base64()).unwrap_or_default()
            }
            Compression::Auto | Compression::Never => payload.bytes(),
        };
        store
            .object_for(job_name, bytes)
            .map(Placement::Store)
            .map_err(|e| RenderError::option("payload_store", e.to_string()))
    };
    if let Some(store) = options.payload_store.as_ref().filter(|s| s.always) {
        return to_store(store);
    }
    // NAME=value plus the terminating NUL.
    let env_size = |base64: &str| vars::PAYLOAD.len() + 1 + base64.len() + 1;
    let in_env = match options.payload_placement {
        PayloadPlacement::Env => true,
        PayloadPlacement::Auto => !payload.is_sensitive(),
        PayloadPlacement::Secret => false,
    };
    if in_env {
        let fits = |b: &str| {
            env_size(b) <= MAX_ENV_STRING
                && (options.payload_placement == PayloadPlacement::Env || b.len() <= options.inline_payload_max_bytes)
        };
        let base64 = match (options.payload_placement, options.compression) {
            // Left to choose, a payload too large for the environment as it is
            // goes to a Secret as it is: compressed only when nothing else fits.
            (PayloadPlacement::Auto, Compression::Auto) => payload.base64().to_string(),
            (_, compression) => payload.travelling_base64(compression, fits),
        };
        if fits(&base64) {
            return Ok(Placement::Env(base64));
        }
        if options.payload_placement == PayloadPlacement::Env {
            return Err(RenderError::PayloadTooLarge {
                size: env_size(&base64),
                limit: MAX_ENV_STRING,
                place: "one environment string (Linux's MAX_ARG_STRLEN)",
                way_out: "let the payload travel in a Secret (payload placement `auto` or `secret`)",
            });
        }
    }
    // The Secret holds the bytes themselves (JSON or gzip); on the wire its
    // data is base64 again, which is exactly the payload's own base64.
    let fits = |b: &str| b.len() / 4 * 3 <= MAX_SECRET_DATA;
    let base64 = payload.travelling_base64(options.compression, fits);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(&base64).map_err(|e| {
        // A validated payload always decodes; say so rather than panic.
        RenderError::option("payload", format!("does not decode as base64: {e}"))
    })?;
    if bytes.len() > MAX_SECRET_DATA {
        if let Some(store) = &options.payload_store {
            return to_store(store);
        }
        return Err(RenderError::PayloadTooLarge {
            size: bytes.len(),
            limit: MAX_SECRET_DATA,
            place: if options.compression == Compression::Never {
                "a Kubernetes Secret"
            } else {
                "a Kubernetes Secret, even gzip-compressed"
            },
            way_out:
                "give a payload store (--payload-store s3://bucket/prefix, or `payload_store`): the payload then \
travels as an S3 object the worker reads by reference, checked by its SHA-256; or split the tasks over several payloads",
        });
    }
    Ok(Placement::Secret(bytes))
}

/// The Job's indexes: the caller's, or for a many-task payload one per task,
/// each retried on its own.
fn indexed_for(payload: &EncodedPayload, options: &JobOptions) -> Result<Option<Indexed>, RenderError> {
    let p = payload.payload();
    if !p.is_many() {
        if options.indexed.as_ref().is_some_and(|i| i.completions < 1) {
            return Err(RenderError::option("indexed.completions", "must be at least 1"));
        }
        return Ok(options.indexed.clone());
    }
    // The payload holds at most wove_proto::fan_out::MAX_TASKS, which fits.
    let tasks = i32::try_from(p.task_count()).unwrap_or(i32::MAX);
    let mut indexed = options.indexed.clone().unwrap_or(Indexed {
        completions: tasks,
        parallelism: None,
        backoff_limit_per_index: None,
        max_failed_indexes: None,
    });
    if indexed.completions == 0 {
        indexed.completions = tasks;
    }
    if indexed.completions != tasks {
        return Err(RenderError::option(
            "indexed.completions",
            format!(
                "{} for a payload of {tasks} tasks: each index runs one task, so leave it unset or make it {tasks}",
                indexed.completions
            ),
        ));
    }
    // One failed task must not fail the others, nor use up their retries.
    indexed.backoff_limit_per_index = indexed.backoff_limit_per_index.or(Some(options.backoff_limit));
    Ok(Some(indexed))
}

fn own_labels(run_id: &str, task_id: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = extra.clone();
    labels.insert(LABEL_APP_NAME.into(), APP_NAME.into());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGER.into());
    labels.insert(LABEL_RUN.into(), naming::label_value(run_id));
    labels.insert(LABEL_TASK.into(), naming::label_value(task_id));
    labels
}

fn read_only_mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount { name: volume.into(), mount_path: path.into(), read_only: Some(true), ..Default::default() }
}

/// Owner and group may read; the group is the pod's fsGroup, the worker's own.
fn secret_file_mode(options: &JobOptions) -> i32 {
    if options.security.run_as_group.is_some() {
        0o440
    } else {
        0o444
    }
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

/// Names the submitter sets on the container itself.
const OWN_ENV: [&str; 8] = [
    vars::PAYLOAD,
    vars::PAYLOAD_FILE,
    vars::PAYLOAD_URL,
    vars::PAYLOAD_SHA256,
    vars::PAYLOAD_SIZE,
    vars::SHUTDOWN_BUDGET,
    vars::SIGNING_SECRET,
    vars::SIGNING_SECRET_FILE,
];
const OWN_LABELS: [&str; 4] = [LABEL_APP_NAME, LABEL_MANAGED_BY, LABEL_RUN, LABEL_TASK];
const OWN_ANNOTATIONS: [&str; 5] =
    [ANNOTATION_RUN_ID, ANNOTATION_TASK_ID, ANNOTATION_PAYLOAD_SHA256, ANNOTATION_TASKS, ANNOTATION_PAYLOAD_OBJECT];

fn validate_options(o: &JobOptions) -> Result<(), RenderError> {
    fn err(option: &'static str, problem: impl Into<String>) -> RenderError {
        RenderError::option(option, problem)
    }
    if o.image.trim().is_empty() {
        return Err(err("image", "is required"));
    }
    if !naming::is_dns1123_label(&o.namespace) {
        return Err(err("namespace", format!("{:?} is not a DNS-1123 label", o.namespace)));
    }
    if o.command.is_empty() || o.command[0].is_empty() {
        return Err(err("command", "must name a program"));
    }
    if let Some(policy) = &o.image_pull_policy {
        if !["Always", "IfNotPresent", "Never"].contains(&policy.as_str()) {
            return Err(err("image_pull_policy", format!("{policy:?} is not Always, IfNotPresent or Never")));
        }
    }
    if let Some(store) = &o.payload_store {
        store.location().map_err(|e| err("payload_store", e.to_string()))?;
    }
    if let Some(var) = o.env.iter().find(|v| OWN_ENV.contains(&v.name.as_str())) {
        return Err(err("env", format!("{} is set by the submitter (see the payload and signing options)", var.name)));
    }
    if let Some(v) = o.volumes.iter().find(|v| OWN_VOLUMES.contains(&v.name.as_str())) {
        return Err(err("volumes", format!("the volume name {:?} is the submitter's own", v.name)));
    }
    for (key, value) in &o.labels {
        if OWN_LABELS.contains(&key.as_str()) {
            return Err(err("labels", format!("{key} is set by the submitter")));
        }
        if !naming::is_qualified_key(key) || !naming::is_label_value(value) {
            return Err(err("labels", format!("{key}={value:?} is not a valid label")));
        }
    }
    for key in o.annotations.keys() {
        if OWN_ANNOTATIONS.contains(&key.as_str()) {
            return Err(err("annotations", format!("{key} is set by the submitter")));
        }
        if !naming::is_qualified_key(key) {
            return Err(err("annotations", format!("{key:?} is not a valid annotation key")));
        }
    }
    if o.backoff_limit < 0 {
        return Err(err("backoff_limit", "must not be negative"));
    }
    if o.active_deadline_seconds.is_some_and(|s| s <= 0) {
        return Err(err("active_deadline_seconds", "must be positive"));
    }
    if o.ttl_seconds_after_finished.is_some_and(|s| s < 0) {
        return Err(err("ttl_seconds_after_finished", "must not be negative"));
    }
    if o.shutdown_budget_seconds == 0 || o.shutdown_budget_seconds > 86_400 {
        return Err(err("shutdown_budget_seconds", "must be 1 to 86400 seconds"));
    }
    if let Some(grace) = o.termination_grace_period_seconds {
        let minimum = o.minimum_grace_period_seconds();
        if grace < minimum {
            return Err(err(
                "termination_grace_period_seconds",
                format!(
                    "{grace} s would kill the worker before its {} s shutdown budget ends; use at least {minimum}",
                    o.shutdown_budget_seconds
                ),
            ));
        }
    }
    let env_room = MAX_ENV_STRING - vars::PAYLOAD.len() - 2;
    if o.inline_payload_max_bytes > env_room {
        return Err(err("inline_payload_max_bytes", format!("must be at most {env_room} (one environment string)")));
    }
    if let Some(signing) = &o.signing_secret {
        if !naming::is_dns1123_subdomain(&signing.name) || signing.key.is_empty() {
            return Err(err(
                "signing_secret",
                format!("{:?}/{:?} is not a Secret name and key", signing.name, signing.key),
            ));
        }
    }
    if let Some(indexed) = &o.indexed {
        // 0 stands for "one per task" of a many-task payload, checked in indexed_for.
        if indexed.completions < 0 {
            return Err(err("indexed.completions", "must be at least 1"));
        }
        if indexed.parallelism.is_some_and(|p| p < 1) {
            return Err(err("indexed.parallelism", "must be at least 1"));
        }
        if indexed.backoff_limit_per_index.is_some_and(|b| b < 0) {
            return Err(err("indexed.backoff_limit_per_index", "must not be negative"));
        }
        if let Some(max) = indexed.max_failed_indexes {
            if indexed.backoff_limit_per_index.is_none() {
                return Err(err("indexed.max_failed_indexes", "needs backoff_limit_per_index"));
            }
            if max < 0 || (indexed.completions > 0 && max > indexed.completions) {
                return Err(err("indexed.max_failed_indexes", "must be 0 to completions"));
            }
        }
    }
    Ok(())
}
