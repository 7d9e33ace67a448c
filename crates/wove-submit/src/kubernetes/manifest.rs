//! What a Job of the submitter's is made of, named once: the [`Manifest`] (the Job, its payload
//! Secret, its payload object), the container's name, the labels and annotations it carries,
//! and where the payload and the signing secret are mounted. Rendering writes these; checking,
//! the client, the status, the failure policy and the reporting read them, and none of them
//! reads the others for it.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;

use crate::store::StoredObject;

/// The worker's container in the pod.
pub const CONTAINER: &str = "wove";
/// Standard label: what runs.
pub const LABEL_APP_NAME: &str = "app.kubernetes.io/name";
/// Standard label: who made the object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Label with the run id, made valid ([`crate::naming::label_value`]).
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

/// The app label's value on everything the submitter makes.
pub(crate) const APP_NAME: &str = "wove-worker";
/// The managed-by label's value.
pub(crate) const MANAGER: &str = "wove-submit";

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
    /// ([`super::JobOptions::payload_store`]): upload it before submitting.
    pub payload_object: Option<StoredObject>,
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
