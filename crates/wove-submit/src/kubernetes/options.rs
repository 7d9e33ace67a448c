//! What a caller may choose about the Job, each with its default written once,
//! in [`JobOptions::default`].
//!
//! Kubernetes' own structures (resources, affinity, tolerations, volumes,
//! environment sources) are k8s-openapi's types, so they read exactly as in
//! a manifest. The options also deserialize from JSON (`wove-submit
//! kubernetes … --options FILE`): our keys in snake_case, Kubernetes' inside
//! them in camelCase.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, ResourceRequirements, Toleration, Volume, VolumeMount,
};
use serde::{Deserialize, Serialize};

pub use crate::store::PayloadStore;

pub use crate::payload::Compression;

/// Seconds added to the worker's shutdown budget to make the pod's
/// `terminationGracePeriodSeconds`: room for the kubelet and the final event's
/// last attempt, so the worker's `task_cancelled` always goes out before SIGKILL.
pub const GRACE_MARGIN_SECS: i64 = 5;

/// Default for [`JobOptions::inline_payload_max_bytes`]: payloads up to
/// 32 KiB of base64 ride in the environment, the rest in a Secret.
pub const DEFAULT_INLINE_PAYLOAD_MAX: usize = 32 * 1024;

/// Linux refuses to start a process with one `NAME=value` string longer than
/// this (`MAX_ARG_STRLEN`, the trailing NUL included).
pub const MAX_ENV_STRING: usize = 128 * 1024;

/// A Secret's data may hold at most this much.
pub const MAX_SECRET_DATA: usize = 1024 * 1024;

/// The user and group the worker images run as.
pub const DEFAULT_UID: i64 = 65532;

/// When a node pulls the worker image, as Kubernetes spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImagePullPolicy {
    /// Every time the container starts.
    Always,
    /// Only when the node does not have it.
    IfNotPresent,
    /// Never: the node must have it.
    Never,
}

impl ImagePullPolicy {
    /// Kubernetes' spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

impl std::str::FromStr for ImagePullPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        [Self::Always, Self::IfNotPresent, Self::Never]
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not Always, IfNotPresent or Never"))
    }
}

/// Everything a caller may choose about the Job. Only [`Self::image`] has no default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobOptions {
    /// Namespace of the Job (and of its payload Secret). Default `default`.
    pub namespace: String,
    /// Start of the Job's name, before the ids and the hash. Default `wove`.
    pub name_prefix: String,
    /// The worker image. Required.
    pub image: String,
    /// When the node pulls the image. Default: the cluster's.
    pub image_pull_policy: Option<ImagePullPolicy>,
    /// Names of Secrets holding registry credentials. Default none.
    pub image_pull_secrets: Vec<String>,
    /// The container's command. Default `["wove-worker"]`.
    pub command: Vec<String>,
    /// The container's arguments, e.g. worker flags. Default none.
    pub args: Vec<String>,
    /// Extra environment variables (the worker's `WOVE_WORKER_*` settings,
    /// for instance). Default none. Names the submitter sets itself are refused.
    pub env: Vec<EnvVar>,
    /// Variables from ConfigMaps and Secrets. Default none.
    pub env_from: Vec<EnvFromSource>,
    /// CPU, memory and other resources. Default none (the namespace's defaults).
    pub resources: Option<ResourceRequirements>,
    /// Service account of the pod. Default: the namespace's `default`.
    pub service_account: Option<String>,
    /// Node labels the pod must land on. Default none.
    pub node_selector: BTreeMap<String, String>,
    /// Affinity rules. Default none.
    pub affinity: Option<Affinity>,
    /// Tolerations. Default none.
    pub tolerations: Vec<Toleration>,
    /// Priority class of the pod. Default none.
    pub priority_class: Option<String>,
    /// Extra volumes of the pod. Default none.
    pub volumes: Vec<Volume>,
    /// Where the worker's container mounts them. Default none.
    pub volume_mounts: Vec<VolumeMount>,
    /// Labels added to the Job and its pods, beside the submitter's own. Default none.
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Job and its pods. Default none.
    pub annotations: BTreeMap<String, String>,
    /// Who the container runs as. Default: non-root 65532, no privilege escalation.
    pub security: Security,
    /// Retries of a failed pod (the worker's retryable exit codes, evictions
    /// aside). Default 0, as Wove's own adapter.
    pub backoff_limit: i32,
    /// Seconds the whole Job may run, retries included. Default none.
    pub active_deadline_seconds: Option<i64>,
    /// Seconds a finished Job is kept before Kubernetes deletes it (and, by
    /// ownership, its payload Secret). Default 3600.
    pub ttl_seconds_after_finished: Option<i32>,
    /// The worker's shutdown budget in seconds, from SIGTERM to exit, passed
    /// to it as `WOVE_WORKER_SHUTDOWN_BUDGET`. Default 25.
    pub shutdown_budget_seconds: u64,
    /// The pod's `terminationGracePeriodSeconds`. Default: the shutdown budget
    /// plus [`GRACE_MARGIN_SECS`]; a shorter one is refused.
    pub termination_grace_period_seconds: Option<i64>,
    /// A Kubernetes Secret holding the signing secret. Default none (events
    /// go unsigned unless the image or `env` provides a secret).
    pub signing_secret: Option<SigningSecret>,
    /// Where the payload travels. Default [`PayloadPlacement::Auto`].
    pub payload_placement: PayloadPlacement,
    /// Where a payload goes that even a Secret cannot hold (or every payload,
    /// with `always`): an S3 object the worker reads by reference, deleted
    /// when the Job is over. Default none: such a payload is refused.
    pub payload_store: Option<PayloadStore>,
    /// Largest base64 payload kept in the environment under
    /// [`PayloadPlacement::Auto`]. Default 32 KiB.
    pub inline_payload_max_bytes: usize,
    /// Whether the payload travels gzip-compressed. Default
    /// [`Compression::Auto`]: only when it would not fit otherwise.
    pub compression: Compression,
    /// Run several pods of one Job with `JOB_COMPLETION_INDEX`. Default none,
    /// except for a many-task payload: one index per task, each retried on
    /// its own (`backoffLimitPerIndex` = [`Self::backoff_limit`]), all at once.
    pub indexed: Option<Indexed>,
    /// Create the Job suspended: nothing runs until it is resumed. Default false.
    pub suspend: bool,
}

impl Default for JobOptions {
    fn default() -> Self {
        Self {
            namespace: "default".into(),
            name_prefix: "wove".into(),
            image: String::new(),
            image_pull_policy: None,
            image_pull_secrets: Vec::new(),
            command: vec!["wove-worker".into()],
            args: Vec::new(),
            env: Vec::new(),
            env_from: Vec::new(),
            resources: None,
            service_account: None,
            node_selector: BTreeMap::new(),
            affinity: None,
            tolerations: Vec::new(),
            priority_class: None,
            volumes: Vec::new(),
            volume_mounts: Vec::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            security: Security::default(),
            backoff_limit: 0,
            active_deadline_seconds: None,
            ttl_seconds_after_finished: Some(3600),
            shutdown_budget_seconds: wove_proto::env::DEFAULT_SHUTDOWN_BUDGET_SECS,
            termination_grace_period_seconds: None,
            signing_secret: None,
            payload_placement: PayloadPlacement::Auto,
            payload_store: None,
            inline_payload_max_bytes: DEFAULT_INLINE_PAYLOAD_MAX,
            compression: Compression::Auto,
            indexed: None,
            suspend: false,
        }
    }
}

impl JobOptions {
    /// Defaults with this image.
    pub fn new(image: impl Into<String>) -> Self {
        Self { image: image.into(), ..Self::default() }
    }

    /// Set the namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Take the signing secret from this Kubernetes Secret.
    #[must_use]
    pub fn signing_secret(mut self, secret: SigningSecret) -> Self {
        self.signing_secret = Some(secret);
        self
    }

    /// Choose where the payload travels.
    #[must_use]
    pub fn payload_placement(mut self, placement: PayloadPlacement) -> Self {
        self.payload_placement = placement;
        self
    }

    /// Run `completions` indexed pods.
    #[must_use]
    pub fn indexed(mut self, indexed: Indexed) -> Self {
        self.indexed = Some(indexed);
        self
    }

    /// The grace period the pod gets: the chosen one, or the budget plus the margin.
    pub fn grace_period_seconds(&self) -> i64 {
        self.termination_grace_period_seconds.unwrap_or_else(|| self.minimum_grace_period_seconds())
    }

    /// The shortest grace period that lets the worker finish its shutdown.
    pub fn minimum_grace_period_seconds(&self) -> i64 {
        i64::try_from(self.shutdown_budget_seconds).unwrap_or(i64::MAX).saturating_add(GRACE_MARGIN_SECS)
    }
}

/// Who the worker's container runs as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Security {
    /// User id. Default 65532, the images' user. `None` keeps the image's.
    pub run_as_user: Option<i64>,
    /// Group id, also the pod's `fsGroup` so mounted Secrets are readable. Default 65532.
    pub run_as_group: Option<i64>,
    /// Refuse to start as root. Default true.
    pub run_as_non_root: bool,
    /// Mount the root filesystem read-only; `/tmp` then gets an `emptyDir`. Default false.
    pub read_only_root_filesystem: bool,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            run_as_user: Some(DEFAULT_UID),
            run_as_group: Some(DEFAULT_UID),
            run_as_non_root: true,
            read_only_root_filesystem: false,
        }
    }
}

/// A Kubernetes Secret that holds the worker's signing secret(s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSecret {
    /// The Secret's name.
    pub name: String,
    /// The key inside it. Default `secret`.
    #[serde(default = "SigningSecret::default_key")]
    pub key: String,
    /// Mount it as a file (`WOVE_WORKER_SIGNING_SECRET_FILE`, one secret per
    /// line, which a rotation can update in place) instead of an environment
    /// variable (`WOVE_WORKER_SIGNING_SECRET`). Default false.
    #[serde(default)]
    pub as_file: bool,
}

impl std::str::FromStr for SigningSecret {
    type Err = String;

    /// `NAME` or `NAME:KEY`, as the command line writes one; mounted as an environment variable.
    fn from_str(text: &str) -> Result<Self, String> {
        let (name, key) = text.split_once(':').unwrap_or((text, ""));
        let key = if text.contains(':') { key.to_string() } else { Self::default_key() };
        if name.is_empty() || key.is_empty() {
            return Err(format!("`{text}` is not NAME or NAME:KEY"));
        }
        Ok(Self { name: name.into(), key, as_file: false })
    }
}

impl SigningSecret {
    /// The secret under the default key, as an environment variable.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), key: Self::default_key(), as_file: false }
    }

    /// The key a Secret named without one is read under.
    fn default_key() -> String {
        "secret".into()
    }
}

/// Where the payload travels to the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadPlacement {
    /// In `WOVE_BACKEND_PAYLOAD` while it is small and not marked sensitive,
    /// otherwise in a Secret.
    #[default]
    Auto,
    /// Always in `WOVE_BACKEND_PAYLOAD`; a payload too large for one
    /// environment string is refused.
    Env,
    /// Always in a Secret owned by the Job, mounted read-only and read
    /// through `WOVE_BACKEND_PAYLOAD_FILE`.
    Secret,
}

/// Indexed completions: `completions` pods, each with its own `JOB_COMPLETION_INDEX`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Indexed {
    /// How many indexes (0 to completions - 1) must succeed. For a many-task
    /// payload, its number of tasks (0: take it from the payload).
    #[serde(default)]
    pub completions: i32,
    /// How many pods run at once. Default: all of them.
    #[serde(default)]
    pub parallelism: Option<i32>,
    /// Retries of each index on its own: a failed index does not use up
    /// another's, and a permanent failure fails only its index. Default none
    /// (the Job's `backoff_limit` counts for all of them).
    #[serde(default)]
    pub backoff_limit_per_index: Option<i32>,
    /// With `backoff_limit_per_index`: fail the whole Job once this many
    /// indexes failed. Default none.
    #[serde(default)]
    pub max_failed_indexes: Option<i32>,
}
