//! `wove-submit`: builds, submits, watches and cancels the Kubernetes Jobs and
//! AWS Batch jobs that carry a Wove payload to `wove-worker`.
//!
//! ```
//! use wove_submit::{kubernetes, EncodedPayload};
//!
//! let payload = EncodedPayload::from_text(r#"{"version": 1,
//!     "callback_url": "http://wove.example:9010/wove/events/TOKEN",
//!     "run_id": "thumbnail:8e0f", "task_id": "thumbnail",
//!     "task": {"runner": "subprocess", "program": "true"}}"#)?;
//! let options = kubernetes::JobOptions::new("registry.example/wove-worker:0.1.0")
//!     .signing_secret(kubernetes::SigningSecret::new("wove-signing"));
//! let manifest = kubernetes::render(&payload, &options)?;
//! assert!(manifest.name().starts_with("wove-thumbnail-8e0f-"));
//! // With the `kubernetes` feature: Client::connect(None, None).await?.submit(&manifest).await?
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`payload`]: a validated payload, carried byte for byte as given.
//! - [`naming`]: names and label values the API servers accept, from Wove's ids.
//! - [`container`]: rules on the container as it will run, for both backends.
//! - [`kubernetes`]: Jobs, rendered offline; the client with feature `kubernetes`.
//! - [`batch`]: AWS Batch SubmitJob requests, rendered offline; the client with feature `aws-batch`.
//! - [`Phase`]: where a job stands, the same set for both backends.
//! - [`indexes`]: how each task of a many-task job stands.
//! - [`store`]: payloads by reference in S3, for jobs they do not fit;
//!   uploading and deleting with feature `payload-store`.
//! - [`report`]: the `task_error` for a failure outside the worker, and
//!   (feature `report`) posting it as the worker would.
//!
//! The worker's exit codes come from `wove_proto::exit`: the retry rules the
//! submitter writes and the outcomes it reports read that one definition.
#![deny(missing_docs)]

pub mod batch;
pub mod container;
pub mod indexes;
pub mod kubernetes;
pub mod naming;
pub mod payload;
mod phase;
pub mod report;
pub mod store;

pub use payload::{Compression, EncodedPayload};

/// Default limit on one API call, to the Kubernetes API server or to AWS Batch and S3.
pub const DEFAULT_API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
pub use phase::Phase;

pub use wove_proto::error_chain;
