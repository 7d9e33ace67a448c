//! Environment variables that cross the line between a submitter and the
//! worker: the submitter sets them on the container, the worker reads them.
//! Both sides use these names, so they cannot drift apart.

/// The payload, standard base64, as Wove's adapters set it.
pub const PAYLOAD: &str = "WOVE_BACKEND_PAYLOAD";
/// A file holding the payload (JSON or base64), e.g. mounted from a Secret.
pub const PAYLOAD_FILE: &str = "WOVE_BACKEND_PAYLOAD_FILE";
/// Where to fetch the payload from: `s3://bucket/key` (with the job's own
/// AWS identity) or `https://…` (a presigned URL: a bearer secret).
pub const PAYLOAD_URL: &str = "WOVE_BACKEND_PAYLOAD_URL";
/// The lowercase hex SHA-256 of the object at [`PAYLOAD_URL`]; required with it.
pub const PAYLOAD_SHA256: &str = "WOVE_BACKEND_PAYLOAD_SHA256";
/// The object's size in bytes, when the submitter knows it: a different size
/// is refused before the body is read.
pub const PAYLOAD_SIZE: &str = "WOVE_BACKEND_PAYLOAD_SIZE";
/// Which task of a many-task payload to run, when no platform says
/// (`wove-worker --index`); a submitter sets it for a one-task array.
pub const INDEX: &str = "WOVE_WORKER_INDEX";
/// Signing secrets separated by whitespace, current first.
pub const SIGNING_SECRET: &str = "WOVE_WORKER_SIGNING_SECRET";
/// A file with one signing secret per line, current first.
pub const SIGNING_SECRET_FILE: &str = "WOVE_WORKER_SIGNING_SECRET_FILE";
/// The run a task belongs to, in the environment of every task process.
pub const RUN_ID: &str = "WOVE_RUN_ID";
/// The task's own id, in the environment of every task process.
pub const TASK_ID: &str = "WOVE_TASK_ID";
/// Variables whose values are secret (the payload holds the callback token,
/// a presigned payload URL is a bearer credential):
/// never passed on to a task, and wiped from the worker's own memory once read.
pub const SECRETS: &[&str] = &[PAYLOAD, PAYLOAD_URL, SIGNING_SECRET, SIGNING_SECRET_FILE];
/// Seconds from SIGTERM to the worker's exit; a submitter sizes the
/// platform's grace period from it.
pub const SHUTDOWN_BUDGET: &str = "WOVE_WORKER_SHUTDOWN_BUDGET";

/// The worker's shutdown budget when [`SHUTDOWN_BUDGET`] is unset, in seconds:
/// inside the 30 s that Kubernetes and AWS Batch allow before SIGKILL.
pub const DEFAULT_SHUTDOWN_BUDGET_SECS: u64 = 25;

/// Set by Kubernetes in the pods of an Indexed Job.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";
/// Set by AWS Batch: the job's id.
pub const AWS_BATCH_JOB_ID: &str = "AWS_BATCH_JOB_ID";
/// Set by AWS Batch: the attempt number, from 1.
pub const AWS_BATCH_JOB_ATTEMPT: &str = "AWS_BATCH_JOB_ATTEMPT";
/// Set by AWS Batch in the children of an array job.
pub const AWS_BATCH_JOB_ARRAY_INDEX: &str = "AWS_BATCH_JOB_ARRAY_INDEX";
