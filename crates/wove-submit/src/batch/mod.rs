//! AWS Batch jobs that run `wove-worker`.
//!
//! - [`options`]: what a caller may choose, with documented defaults.
//! - [`render`]: the SubmitJob request built offline from a payload, every
//!   limit checked before anything is sent.
//! - [`retry`]: the `retryStrategy` derived from the exit codes.
//! - [`status`]: a job's state read from its description.
//! - [`unreported`]: the failures a worker cannot have reported, read from a job's description.
//! - `client` (feature `aws-batch`): submit, status, wait, cancel.
//! - `reporting` (features `aws-batch` and `report`): `wait --report`, which
//!   posts those failures to the weave.

#[cfg(feature = "aws-batch")]
pub mod client;
pub mod options;
pub mod render;
#[cfg(all(feature = "aws-batch", feature = "report"))]
pub mod reporting;
pub mod retry;
pub mod status;
pub mod unreported;

#[cfg(feature = "aws-batch")]
pub use client::{BatchClient, BatchError, CancelOutcome, SubmittedJob};
pub use options::{BatchOptions, Dependency};
pub use render::{plan, render, BatchRenderError, Plan, SubmitJobRequest};
pub use status::{BatchReport, JobDescription};
