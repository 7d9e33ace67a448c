//! Rules a Job must meet that the OpenAPI schema does not express: name and
//! label syntax, the cross-field rules of `podFailurePolicy`, the grace period
//! against the worker's shutdown budget, and the sizes at which a container
//! cannot start or an object cannot be stored.
//!
//! [`super::render_with`] runs these on every Job it returns, after the
//! caller's hook, so no Job that breaks them leaves the crate.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::{Job, JobSpec, PodFailurePolicy};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use wove_proto::env as vars;

use super::manifest::{annotation, Manifest, ANNOTATION_PAYLOAD_SHA256, CONTAINER, PAYLOAD_KEY};
use super::options::{GRACE_MARGIN_SECS, MAX_ENV_STRING, MAX_SECRET_DATA};
use crate::container::Carried;
use crate::naming;

/// Largest serialized Job accepted: etcd stores objects up to 1.5 MiB, and
/// the pods the controller makes repeat the template.
pub const MAX_JOB_BYTES: usize = 1024 * 1024;
/// Largest environment plus arguments of the container: the kernel refuses
/// more than a quarter of the stack limit (2 MiB with the usual 8 MiB).
pub const MAX_ENV_AND_ARGS: usize = 1024 * 1024;
/// Largest total of one object's annotations (the API server's limit).
pub const MAX_ANNOTATIONS: usize = 256 * 1024;
/// Most pods of an Indexed Job at once, and most failed indexes it may allow.
pub const MAX_INDEXED_PARALLELISM: i32 = 100_000;
/// Completions past which per-index retries come with tighter limits.
pub const COMPLETIONS_SOFT_LIMIT: i32 = 100_000;
/// Those tighter limits: pods at once, and failed indexes allowed.
pub const HIGH_COMPLETIONS_LIMIT: i32 = 10_000;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Where, as a dotted path into the object (`spec.template.spec.containers[0].env`).
    pub path: String,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.problem)
    }
}

pub(crate) fn join(violations: &[Violation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// Every rule the manifest breaks; empty when it is sound.
pub fn check(manifest: &Manifest) -> Vec<Violation> {
    let mut out = Checker::default();
    out.job(&manifest.job);
    if let Some(secret) = &manifest.payload_secret {
        out.meta("secret.metadata", &secret.metadata, Some(Name::Subdomain));
        let size: usize = secret.data.iter().flatten().map(|(k, v)| k.len() + v.0.len()).sum();
        if size > MAX_SECRET_DATA {
            out.add("secret.data", format!("{size} bytes, over the {MAX_SECRET_DATA}-byte limit of a Secret"));
        }
    }
    out.payload_source(manifest);
    out.found
}

/// Which naming rule an object's name follows.
#[derive(Clone, Copy)]
enum Name {
    /// A Job: a DNS-1123 label, since it becomes a pod label value.
    JobLabel,
    /// Most other objects: a DNS-1123 subdomain.
    Subdomain,
}

#[derive(Default)]
struct Checker {
    found: Vec<Violation>,
}

impl Checker {
    fn add(&mut self, path: impl Into<String>, problem: impl Into<String>) {
        self.found.push(Violation { path: path.into(), problem: problem.into() });
    }

    fn job(&mut self, job: &Job) {
        self.meta("metadata", &job.metadata, Some(Name::JobLabel));
        match serde_json::to_vec(job) {
            Ok(bytes) if bytes.len() > MAX_JOB_BYTES => {
                self.add("(job)", format!("{} bytes serialized, over {MAX_JOB_BYTES}", bytes.len()))
            }
            _ => {}
        }
        let Some(spec) = &job.spec else {
            return self.add("spec", "missing");
        };
        if let Some(meta) = &spec.template.metadata {
            self.meta("spec.template.metadata", meta, None);
        }
        self.job_spec(spec);
        match &spec.template.spec {
            Some(pod) => self.pod(pod),
            None => self.add("spec.template.spec", "missing"),
        }
    }

    fn meta(&mut self, path: &str, meta: &ObjectMeta, rule: Option<Name>) {
        match (rule, meta.name.as_deref()) {
            (None, _) => {}
            (Some(_), None | Some("")) => self.add(format!("{path}.name"), "missing"),
            // The Job controller copies a Job's name into a label of its pods.
            (Some(Name::JobLabel), Some(name)) if !naming::is_dns1123_label(name) => self
                .add(format!("{path}.name"), format!("{name:?} is not a DNS-1123 label (a-z, 0-9, '-', at most 63)")),
            (Some(_), Some(name)) if !naming::is_dns1123_subdomain(name) => {
                self.add(format!("{path}.name"), format!("{name:?} is not a DNS-1123 subdomain"))
            }
            (Some(_), Some(_)) => {}
        }
        if let Some(ns) = meta.namespace.as_deref() {
            if !naming::is_dns1123_label(ns) {
                self.add(format!("{path}.namespace"), format!("{ns:?} is not a DNS-1123 label"));
            }
        }
        for (key, value) in meta.labels.iter().flatten() {
            if !naming::is_qualified_key(key) {
                self.add(format!("{path}.labels"), format!("key {key:?} is not a qualified name"));
            }
            if !naming::is_label_value(value) {
                self.add(
                    format!("{path}.labels.{key}"),
                    format!("{value:?} is not a label value (at most 63 of A-Z a-z 0-9 _ . -, alphanumeric ends)"),
                );
            }
        }
        let mut total = 0;
        for (key, value) in meta.annotations.iter().flatten() {
            total += key.len() + value.len();
            if !naming::is_qualified_key(key) {
                self.add(format!("{path}.annotations"), format!("key {key:?} is not a qualified name"));
            }
        }
        if total > MAX_ANNOTATIONS {
            self.add(format!("{path}.annotations"), format!("{total} bytes, over {MAX_ANNOTATIONS}"));
        }
    }

    fn job_spec(&mut self, spec: &JobSpec) {
        let indexed = spec.completion_mode.as_deref() == Some("Indexed");
        // The API server's own ranges: a patch may write any number.
        let at_least = |value: Option<i32>, min: i32| value.is_some_and(|v| v < min);
        for (path, value, min) in [
            ("spec.backoffLimit", spec.backoff_limit, 0),
            ("spec.backoffLimitPerIndex", spec.backoff_limit_per_index, 0),
            ("spec.maxFailedIndexes", spec.max_failed_indexes, 0),
            ("spec.parallelism", spec.parallelism, 0),
            ("spec.completions", spec.completions, 0),
            ("spec.ttlSecondsAfterFinished", spec.ttl_seconds_after_finished, 0),
        ] {
            if at_least(value, min) {
                self.add(path, format!("must be at least {min}"));
            }
        }
        if spec.active_deadline_seconds.is_some_and(|s| s <= 0) {
            self.add("spec.activeDeadlineSeconds", "must be positive");
        }
        if let (Some(max), Some(completions)) = (spec.max_failed_indexes, spec.completions) {
            if max > completions {
                self.add("spec.maxFailedIndexes", format!("at most completions ({completions})"));
            }
        }
        if spec.backoff_limit_per_index.is_some() && !indexed {
            self.add("spec.backoffLimitPerIndex", "needs completionMode: Indexed");
        }
        if spec.max_failed_indexes.is_some() && spec.backoff_limit_per_index.is_none() {
            self.add("spec.maxFailedIndexes", "needs backoffLimitPerIndex");
        }
        if indexed && spec.completions.is_none() {
            self.add("spec.completions", "required with completionMode: Indexed");
        }
        if indexed && spec.parallelism.is_some_and(|p| p > MAX_INDEXED_PARALLELISM) {
            self.add("spec.parallelism", format!("at most {MAX_INDEXED_PARALLELISM} for an Indexed Job"));
        }
        if spec.max_failed_indexes.is_some_and(|m| m > MAX_INDEXED_PARALLELISM) {
            self.add("spec.maxFailedIndexes", format!("at most {MAX_INDEXED_PARALLELISM}"));
        }
        // Past 100,000 completions, per-index retries keep their books only for fewer pods at once.
        if spec.backoff_limit_per_index.is_some() && spec.completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT) {
            if spec.parallelism.is_none_or(|p| p > HIGH_COMPLETIONS_LIMIT) {
                self.add("spec.parallelism", format!("at most {HIGH_COMPLETIONS_LIMIT} above {COMPLETIONS_SOFT_LIMIT} completions with backoffLimitPerIndex"));
            }
            if spec.max_failed_indexes.is_some_and(|m| m > HIGH_COMPLETIONS_LIMIT) {
                self.add(
                    "spec.maxFailedIndexes",
                    format!("at most {HIGH_COMPLETIONS_LIMIT} above {COMPLETIONS_SOFT_LIMIT} completions"),
                );
            }
        }
        if let Some(policy) = &spec.pod_failure_policy {
            self.failure_policy(policy, spec);
            if spec.pod_replacement_policy.as_deref().is_some_and(|p| p != "Failed") {
                self.add("spec.podReplacementPolicy", "must be Failed when podFailurePolicy is set");
            }
        }
    }

    fn failure_policy(&mut self, policy: &PodFailurePolicy, spec: &JobSpec) {
        const PATH: &str = "spec.podFailurePolicy.rules";
        if policy.rules.len() > 20 {
            self.add(PATH, "at most 20 rules");
        }
        let containers: BTreeSet<&str> = spec
            .template
            .spec
            .iter()
            .flat_map(|p| p.containers.iter().chain(p.init_containers.iter().flatten()))
            .map(|c| c.name.as_str())
            .collect();
        for (i, rule) in policy.rules.iter().enumerate() {
            let path = format!("{PATH}[{i}]");
            match rule.action.as_str() {
                "FailJob" | "Ignore" | "Count" => {}
                "FailIndex" if spec.backoff_limit_per_index.is_some() => {}
                "FailIndex" => self.add(format!("{path}.action"), "FailIndex needs backoffLimitPerIndex"),
                other => self.add(format!("{path}.action"), format!("unknown action {other:?}")),
            }
            match (&rule.on_exit_codes, &rule.on_pod_conditions) {
                (Some(_), Some(_)) | (None, None) => {
                    self.add(&path, "needs exactly one of onExitCodes and onPodConditions")
                }
                (Some(codes), None) => {
                    let vpath = format!("{path}.onExitCodes.values");
                    if !matches!(codes.operator.as_str(), "In" | "NotIn") {
                        self.add(format!("{path}.onExitCodes.operator"), "must be In or NotIn");
                    }
                    if codes.values.is_empty() || codes.values.len() > 255 {
                        self.add(&vpath, "needs 1 to 255 values");
                    }
                    if codes.values.windows(2).any(|w| w[0] >= w[1]) {
                        self.add(&vpath, "must be sorted and unique");
                    }
                    if codes.operator == "In" && codes.values.contains(&0) {
                        self.add(&vpath, "0 is not allowed with operator In");
                    }
                    if let Some(name) = &codes.container_name {
                        if !containers.contains(name.as_str()) {
                            self.add(format!("{path}.onExitCodes.containerName"), format!("no container {name:?}"));
                        }
                    }
                }
                (None, Some(patterns)) => {
                    if patterns.is_empty() || patterns.len() > 20 {
                        self.add(format!("{path}.onPodConditions"), "needs 1 to 20 patterns");
                    }
                    for p in patterns {
                        if !matches!(p.status.as_str(), "True" | "False" | "Unknown") {
                            self.add(format!("{path}.onPodConditions"), format!("status {:?}", p.status));
                        }
                    }
                }
            }
        }
        if let Some(pod) = &spec.template.spec {
            if pod.restart_policy.as_deref() != Some("Never") {
                self.add("spec.template.spec.restartPolicy", "must be Never with a podFailurePolicy");
            }
        }
    }

    fn pod(&mut self, pod: &PodSpec) {
        const PATH: &str = "spec.template.spec";
        if !matches!(pod.restart_policy.as_deref(), Some("Never" | "OnFailure")) {
            self.add(format!("{PATH}.restartPolicy"), "a Job's pods need Never or OnFailure");
        }
        let volumes: Vec<&str> = pod.volumes.iter().flatten().map(|v| v.name.as_str()).collect();
        let mut seen = BTreeSet::new();
        for name in &volumes {
            if !naming::is_dns1123_label(name) {
                self.add(format!("{PATH}.volumes"), format!("{name:?} is not a DNS-1123 label"));
            }
            if !seen.insert(*name) {
                self.add(format!("{PATH}.volumes"), format!("{name:?} appears twice"));
            }
        }
        let Some((index, container)) = pod.containers.iter().enumerate().find(|(_, c)| c.name == CONTAINER) else {
            return self.add(format!("{PATH}.containers"), format!("no container named {CONTAINER:?}"));
        };
        let cpath = format!("{PATH}.containers[{index}]");
        let command_line = container.command.iter().flatten().chain(container.args.iter().flatten());
        if let Some(flag) = crate::container::owned_flag(command_line) {
            self.add(
                format!("{cpath}.args"),
                format!("{flag}: the submitter sets this for the worker (the payload, the shutdown budget, the index, signing); use its own options"),
            );
        }
        for var in container.env.iter().flatten() {
            let name = var.name.as_str();
            if crate::container::PLATFORM_INDEX_VARS.contains(&name) || name == vars::INDEX {
                self.add(
                    format!("{cpath}.env.{name}"),
                    "the platform gives each pod its index: set here, every pod would run the same task",
                );
            }
        }
        for mount in container.volume_mounts.iter().flatten() {
            if !volumes.contains(&mount.name.as_str()) {
                self.add(format!("{cpath}.volumeMounts"), format!("no volume {:?}", mount.name));
            }
        }
        self.environment(&cpath, container);
        let budget = env_value(container, vars::SHUTDOWN_BUDGET)
            .map(|v| v.parse::<i64>().map_err(|_| v))
            .unwrap_or(Ok(i64::try_from(vars::DEFAULT_SHUTDOWN_BUDGET_SECS).unwrap_or(25)));
        match budget {
            Err(text) => {
                self.add(format!("{cpath}.env.{}", vars::SHUTDOWN_BUDGET), format!("{text:?} is not whole seconds"))
            }
            Ok(budget) => {
                // Kubernetes' own default when the field is absent.
                let grace = pod.termination_grace_period_seconds.unwrap_or(30);
                if grace < budget + GRACE_MARGIN_SECS {
                    self.add(
                        format!("{PATH}.terminationGracePeriodSeconds"),
                        format!(
                            "{grace} s is shorter than the worker's {budget} s shutdown budget plus {GRACE_MARGIN_SECS} s: \
                             SIGKILL would cut off its final event"
                        ),
                    );
                }
            }
        }
    }

    fn environment(&mut self, cpath: &str, container: &Container) {
        let mut names = BTreeSet::new();
        let mut total: usize =
            container.command.iter().chain(container.args.iter()).flatten().map(|a| a.len() + 1).sum();
        for var in container.env.iter().flatten() {
            if !names.insert(var.name.as_str()) {
                self.add(format!("{cpath}.env"), format!("{} is set twice", var.name));
            }
            // NAME=value and the NUL, as the kernel counts it. Values from
            // references are unknown here; the payload is never one.
            let size = var.name.len() + 1 + var.value.as_deref().map_or(0, str::len) + 1;
            total += size;
            if size > MAX_ENV_STRING {
                self.add(
                    format!("{cpath}.env.{}", var.name),
                    format!("{size} bytes, over Linux's {MAX_ENV_STRING}-byte limit for one variable: the container could not start"),
                );
            }
        }
        if total > MAX_ENV_AND_ARGS {
            self.add(
                format!("{cpath}.env"),
                format!("{total} bytes of environment and arguments, over {MAX_ENV_AND_ARGS}"),
            );
        }
    }

    /// The payload reaches the worker, inline or as a file from the mounted
    /// Secret, and is the payload the Job's annotation names.
    fn payload_source(&mut self, manifest: &Manifest) {
        let Some(pod) = manifest.job.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else { return };
        let Some(container) = pod.containers.iter().find(|c| c.name == CONTAINER) else { return };
        let inline = env_value(container, vars::PAYLOAD);
        let file = env_value(container, vars::PAYLOAD_FILE);
        let by_url = container.env.iter().flatten().any(|v| v.name == vars::PAYLOAD_URL);
        if by_url {
            // By reference: the worker checks the object against this digest before anything runs.
            let sha = env_value(container, vars::PAYLOAD_SHA256).unwrap_or_default();
            if inline.is_some() || file.is_some() {
                self.add(
                    "spec.template.spec.containers.env",
                    format!(
                        "{} beside {} or {}: give the worker one payload source",
                        vars::PAYLOAD_URL,
                        vars::PAYLOAD,
                        vars::PAYLOAD_FILE
                    ),
                );
            } else if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.add(
                    format!("spec.template.spec.containers.env.{}", vars::PAYLOAD_SHA256),
                    format!(
                        "{} needs its SHA-256 (64 hex digits): the worker refuses a reference it cannot check",
                        vars::PAYLOAD_URL
                    ),
                );
            }
            return;
        }
        let carried: Option<(String, Carried<'_>)> = match (inline, file, &manifest.payload_secret) {
            (Some(text), None, None) => {
                Some((format!("spec.template.spec.containers.env.{}", vars::PAYLOAD), Carried::Base64(text)))
            }
            (None, Some(path), Some(secret)) => {
                let secret_name = secret.metadata.name.as_deref();
                let mounted = container.volume_mounts.iter().flatten().any(|m| {
                    path.starts_with(&format!("{}/", m.mount_path))
                        && pod.volumes.iter().flatten().any(|v| {
                            v.name == m.name && v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == secret_name
                        })
                });
                if !mounted {
                    self.add("spec.template.spec", format!("{path} is not in a mount of the payload Secret"));
                }
                match secret.data.as_ref().and_then(|d| d.get(PAYLOAD_KEY)) {
                    Some(bytes) => Some((format!("secret.data.{PAYLOAD_KEY}"), Carried::Bytes(&bytes.0))),
                    None => {
                        self.add("secret.data", format!("no {PAYLOAD_KEY:?} key: the worker would find no payload"));
                        None
                    }
                }
            }
            _ => {
                self.add(
                    "spec.template.spec.containers",
                    format!(
                        "the worker needs exactly one payload source: {} inline, {} with the payload Secret, or {}",
                        vars::PAYLOAD,
                        vars::PAYLOAD_FILE,
                        vars::PAYLOAD_URL
                    ),
                );
                None
            }
        };
        if let Some((path, carried)) = carried {
            let named = annotation(&manifest.job.metadata, ANNOTATION_PAYLOAD_SHA256);
            if let Some(problem) = crate::container::payload_mismatch(carried, named) {
                self.add(path, problem);
            }
        }
    }
}

fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container.env.iter().flatten().find(|v| v.name == name).and_then(|v| v.value.as_deref())
}
