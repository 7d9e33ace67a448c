//! The Job (and, for a large or sensitive payload, its Secret), built from a
//! payload and [`JobOptions`], offline.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, KeyToPath, LocalObjectReference,
    PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use wove_proto::env as vars;

use super::check::{self, Violation};
use super::failure_policy::pod_failure_policy;
use super::manifest::{
    Manifest, ANNOTATION_PAYLOAD_OBJECT, ANNOTATION_PAYLOAD_SHA256, ANNOTATION_RUN_ID, ANNOTATION_TASKS,
    ANNOTATION_TASK_ID, APP_NAME, CONTAINER, LABEL_APP_NAME, LABEL_MANAGED_BY, LABEL_RUN, LABEL_TASK, MANAGER,
    OWN_VOLUMES, PAYLOAD_KEY, PAYLOAD_MOUNT, PAYLOAD_URL_KEY, SIGNING_MOUNT,
};
use super::options::{Compression, Indexed, JobOptions, PayloadPlacement, MAX_ENV_STRING, MAX_SECRET_DATA};
use crate::naming;
use crate::payload::EncodedPayload;
use crate::store::StoredObject;

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
    /// The caller's hook refused to change the Job (its own error, kept as the cause).
    #[error("the Job's hook failed")]
    Hook(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl RenderError {
    fn option(option: &'static str, problem: impl Into<String>) -> Self {
        Self::Option { option, problem: problem.into() }
    }
}

/// Build the Job for `payload`.
pub fn render(payload: &EncodedPayload, options: &JobOptions) -> Result<Manifest, RenderError> {
    render_with(payload, options, |_| Ok::<(), std::convert::Infallible>(()))
}

/// Build the Job, let `hook` change it (as Wove's `job_factory` lets a user
/// do), then check the result: a hook cannot produce a Job that the API
/// server refuses or whose container cannot start. A hook that fails ends
/// the render with [`RenderError::Hook`], its error the cause.
pub fn render_with<E>(
    payload: &EncodedPayload,
    options: &JobOptions,
    hook: impl FnOnce(&mut Job) -> Result<(), E>,
) -> Result<Manifest, RenderError>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    validate_options(options)?;
    let indexed = indexed_for(payload, options)?;
    let mut meta = metadata(payload, options)?;
    let mut parts = Parts {
        env: vec![EnvVar {
            name: vars::SHUTDOWN_BUDGET.into(),
            value: Some(options.shutdown_budget_seconds.to_string()),
            ..Default::default()
        }],
        volumes: options.volumes.clone(),
        mounts: options.volume_mounts.clone(),
    };
    let (payload_secret, payload_object) = carry_payload(payload, options, &meta, &mut parts)?;
    if let Some(object) = &payload_object {
        meta.annotations.insert(ANNOTATION_PAYLOAD_OBJECT.into(), object.url());
    }
    add_signing(options, &mut parts);
    if options.security.read_only_root_filesystem {
        add_scratch(&mut parts);
    }
    parts.env.extend(options.env.iter().cloned());
    let pod = pod_spec(options, container(options, parts.env, parts.mounts), parts.volumes);
    let spec = job_spec(options, &meta, pod, indexed.as_ref());
    let mut job = Job {
        metadata: ObjectMeta {
            name: Some(meta.name),
            namespace: Some(options.namespace.clone()),
            labels: Some(meta.labels),
            annotations: Some(meta.annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    };
    hook(&mut job).map_err(|e| RenderError::Hook(e.into()))?;
    let manifest = Manifest { job, payload_secret, payload_object };
    let violations = check::check(&manifest);
    if violations.is_empty() {
        Ok(manifest)
    } else {
        Err(RenderError::Invalid(violations))
    }
}

/// The Job's name, labels and annotations; its Secret and its pods carry the same.
struct Metadata {
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// What the stages add to the container and the pod as they go: the container's environment
/// and mounts, the pod's volumes. The caller's come first; the submitter's own are added.
struct Parts {
    env: Vec<EnvVar>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
}

/// The name from the ids; the ids, made valid, as labels; the raw ids, the payload's digest and
/// the number of tasks as annotations.
fn metadata(payload: &EncodedPayload, options: &JobOptions) -> Result<Metadata, RenderError> {
    let p = payload.payload();
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
    Ok(Metadata { name, labels, annotations })
}

/// The payload on its way to the worker: in the environment, in a Secret mounted as a file,
/// or by reference (its URL, digest and size in the environment; a presigned URL, a
/// credential, in a Secret). Returns that Secret and the object to upload, if any.
fn carry_payload(
    payload: &EncodedPayload,
    options: &JobOptions,
    meta: &Metadata,
    parts: &mut Parts,
) -> Result<(Option<Secret>, Option<StoredObject>), RenderError> {
    let secret_name = format!("{}-payload", meta.name);
    let secret = |key: &str, bytes: Vec<u8>| Secret {
        metadata: ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(options.namespace.clone()),
            labels: Some(meta.labels.clone()),
            annotations: Some(meta.annotations.clone()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(key.to_string(), ByteString(bytes))])),
        immutable: Some(true),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    let plain = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value), ..Default::default() };
    Ok(match placement(payload, options, &meta.name)? {
        Placement::Env(base64) => {
            parts.env.push(plain(vars::PAYLOAD, base64));
            (None, None)
        }
        Placement::Store(object) => {
            let [(url_var, url), (sha_var, sha), (size_var, size)] = object.env();
            let url_secret = match object.presign_seconds {
                None => {
                    parts.env.push(plain(url_var, url));
                    None
                }
                Some(_) => {
                    // The presigned URL, filled in at submit, is a credential: it rides in the Secret.
                    parts.env.push(from_secret(url_var, &secret_name, PAYLOAD_URL_KEY));
                    Some(secret(PAYLOAD_URL_KEY, url.into_bytes()))
                }
            };
            parts.env.push(plain(sha_var, sha));
            parts.env.push(plain(size_var, size));
            (url_secret, Some(object))
        }
        Placement::Secret(bytes) => {
            parts.volumes.push(Volume {
                name: OWN_VOLUMES[0].into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret_name.clone()),
                    default_mode: Some(secret_file_mode(options)),
                    ..Default::default()
                }),
                ..Default::default()
            });
            parts.mounts.push(read_only_mount(OWN_VOLUMES[0], PAYLOAD_MOUNT));
            parts.env.push(plain(vars::PAYLOAD_FILE, format!("{PAYLOAD_MOUNT}/{PAYLOAD_KEY}")));
            (Some(secret(PAYLOAD_KEY, bytes)), None)
        }
    })
}

/// An environment variable read from a Secret's key, which must exist.
fn from_secret(var: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: var.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret.into(), key: key.into(), optional: Some(false) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The signing secret, from the caller's Kubernetes Secret: an environment variable, or a file
/// (which a rotation updates in place).
fn add_signing(options: &JobOptions, parts: &mut Parts) {
    let Some(signing) = &options.signing_secret else { return };
    if signing.as_file {
        parts.volumes.push(Volume {
            name: OWN_VOLUMES[1].into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(signing.name.clone()),
                default_mode: Some(secret_file_mode(options)),
                items: Some(vec![KeyToPath { key: signing.key.clone(), path: signing.key.clone(), mode: None }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        parts.mounts.push(read_only_mount(OWN_VOLUMES[1], SIGNING_MOUNT));
        parts.env.push(EnvVar {
            name: vars::SIGNING_SECRET_FILE.into(),
            value: Some(format!("{SIGNING_MOUNT}/{}", signing.key)),
            ..Default::default()
        });
    } else {
        parts.env.push(from_secret(vars::SIGNING_SECRET, &signing.name, &signing.key));
    }
}

/// A writable `/tmp` under a read-only root: the worker and the Python runner write their
/// scratch files there.
fn add_scratch(parts: &mut Parts) {
    parts.volumes.push(Volume {
        name: OWN_VOLUMES[2].into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    parts.mounts.push(VolumeMount { name: OWN_VOLUMES[2].into(), mount_path: "/tmp".into(), ..Default::default() });
}

/// The worker's container: the image and command, what the stages gathered, and a security
/// context that drops every capability.
fn container(options: &JobOptions, env: Vec<EnvVar>, mounts: Vec<VolumeMount>) -> Container {
    Container {
        name: CONTAINER.into(),
        image: Some(options.image.clone()),
        image_pull_policy: options.image_pull_policy.map(|p| p.as_str().to_string()),
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
    }
}

/// The pod: never restarted in place (the Job decides retries), the grace the worker's
/// shutdown budget needs, no API token unless the caller chose an account.
fn pod_spec(options: &JobOptions, container: Container, volumes: Vec<Volume>) -> PodSpec {
    PodSpec {
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
    }
}

/// The Job's spec: the pod template, the retry rules read from the exit codes, and for a
/// many-task payload an Indexed Job of one index per task.
fn job_spec(options: &JobOptions, meta: &Metadata, pod: PodSpec, indexed: Option<&Indexed>) -> JobSpec {
    let per_index = indexed.is_some_and(|i| i.backoff_limit_per_index.is_some());
    let mut spec = JobSpec {
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(meta.labels.clone()),
                annotations: Some(meta.annotations.clone()),
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
    if let Some(indexed) = indexed {
        spec.completion_mode = Some("Indexed".into());
        spec.completions = Some(indexed.completions);
        spec.parallelism = indexed.parallelism.or(Some(indexed.completions));
        spec.backoff_limit_per_index = indexed.backoff_limit_per_index;
        spec.max_failed_indexes = indexed.max_failed_indexes;
    }
    spec
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

/// The options a Job cannot be rendered from, the first found: each group
/// of checks below is one part of the Job.
fn validate_options(o: &JobOptions) -> Result<(), RenderError> {
    validate_container(o)?;
    validate_metadata(o)?;
    validate_lifetime(o)?;
    validate_payload(o)?;
    match &o.indexed {
        Some(indexed) => validate_indexed(indexed),
        None => Ok(()),
    }
}

fn invalid(option: &'static str, problem: impl Into<String>) -> RenderError {
    RenderError::option(option, problem)
}

/// The container: an image and a program, and no name the submitter sets itself.
fn validate_container(o: &JobOptions) -> Result<(), RenderError> {
    if o.image.trim().is_empty() {
        return Err(invalid("image", "is required"));
    }
    if o.command.is_empty() || o.command[0].is_empty() {
        return Err(invalid("command", "must name a program"));
    }
    if let Some(var) = o.env.iter().find(|v| OWN_ENV.contains(&v.name.as_str())) {
        return Err(invalid(
            "env",
            format!("{} is set by the submitter (see the payload and signing options)", var.name),
        ));
    }
    if let Some(v) = o.volumes.iter().find(|v| OWN_VOLUMES.contains(&v.name.as_str())) {
        return Err(invalid("volumes", format!("the volume name {:?} is the submitter's own", v.name)));
    }
    Ok(())
}

/// Where the Job goes and what it is labelled with: valid names, none of the submitter's own.
fn validate_metadata(o: &JobOptions) -> Result<(), RenderError> {
    if !naming::is_dns1123_label(&o.namespace) {
        return Err(invalid("namespace", format!("{:?} is not a DNS-1123 label", o.namespace)));
    }
    for (key, value) in &o.labels {
        if OWN_LABELS.contains(&key.as_str()) {
            return Err(invalid("labels", format!("{key} is set by the submitter")));
        }
        if !naming::is_qualified_key(key) || !naming::is_label_value(value) {
            return Err(invalid("labels", format!("{key}={value:?} is not a valid label")));
        }
    }
    for key in o.annotations.keys() {
        if OWN_ANNOTATIONS.contains(&key.as_str()) {
            return Err(invalid("annotations", format!("{key} is set by the submitter")));
        }
        if !naming::is_qualified_key(key) {
            return Err(invalid("annotations", format!("{key:?} is not a valid annotation key")));
        }
    }
    Ok(())
}

/// Retries, deadlines and the time the worker is given to stop.
fn validate_lifetime(o: &JobOptions) -> Result<(), RenderError> {
    if o.backoff_limit < 0 {
        return Err(invalid("backoff_limit", "must not be negative"));
    }
    if o.active_deadline_seconds.is_some_and(|s| s <= 0) {
        return Err(invalid("active_deadline_seconds", "must be positive"));
    }
    if o.ttl_seconds_after_finished.is_some_and(|s| s < 0) {
        return Err(invalid("ttl_seconds_after_finished", "must not be negative"));
    }
    if o.shutdown_budget_seconds == 0 || o.shutdown_budget_seconds > 86_400 {
        return Err(invalid("shutdown_budget_seconds", "must be 1 to 86400 seconds"));
    }
    if let Some(grace) = o.termination_grace_period_seconds {
        let minimum = o.minimum_grace_period_seconds();
        if grace < minimum {
            return Err(invalid(
                "termination_grace_period_seconds",
                format!(
                    "{grace} s would kill the worker before its {} s shutdown budget ends; use at least {minimum}",
                    o.shutdown_budget_seconds
                ),
            ));
        }
    }
    Ok(())
}

/// How the payload and the signing secret reach the container.
fn validate_payload(o: &JobOptions) -> Result<(), RenderError> {
    if let Some(store) = &o.payload_store {
        store.location().map_err(|e| invalid("payload_store", e.to_string()))?;
    }
    let env_room = MAX_ENV_STRING - vars::PAYLOAD.len() - 2;
    if o.inline_payload_max_bytes > env_room {
        return Err(invalid(
            "inline_payload_max_bytes",
            format!("must be at most {env_room} (one environment string)"),
        ));
    }
    if let Some(signing) = &o.signing_secret {
        if !naming::is_dns1123_subdomain(&signing.name) || signing.key.is_empty() {
            return Err(invalid(
                "signing_secret",
                format!("{:?}/{:?} is not a Secret name and key", signing.name, signing.key),
            ));
        }
    }
    Ok(())
}

/// An Indexed Job's completions, parallelism and per-index retries.
fn validate_indexed(indexed: &Indexed) -> Result<(), RenderError> {
    // 0 stands for "one per task" of a many-task payload, checked in indexed_for.
    if indexed.completions < 0 {
        return Err(invalid("indexed.completions", "must be at least 1"));
    }
    if indexed.parallelism.is_some_and(|p| p < 1) {
        return Err(invalid("indexed.parallelism", "must be at least 1"));
    }
    if indexed.backoff_limit_per_index.is_some_and(|b| b < 0) {
        return Err(invalid("indexed.backoff_limit_per_index", "must not be negative"));
    }
    if let Some(max) = indexed.max_failed_indexes {
        if indexed.backoff_limit_per_index.is_none() {
            return Err(invalid("indexed.max_failed_indexes", "needs backoff_limit_per_index"));
        }
        if max < 0 || (indexed.completions > 0 && max > indexed.completions) {
            return Err(invalid("indexed.max_failed_indexes", "must be 0 to completions"));
        }
    }
    Ok(())
}
