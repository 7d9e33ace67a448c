//! Kubernetes Jobs that run `wove-worker`.
//!
//! - [`options`]: what a caller may choose, with documented defaults.
//! - [`render`]: the Job (and a payload Secret) built offline from a payload.
//! - [`failure_policy`]: the `podFailurePolicy` derived from the exit codes.
//! - [`check`]: the rules the schema misses, run on every rendered Job.
//! - [`status`]: a Job's state read from the Job and its pods.
//! - `client` (feature `kubernetes`): submit, status, wait, logs, cancel.

pub mod check;
#[cfg(feature = "kubernetes")]
pub mod client;
pub mod failure_policy;
pub mod options;
pub mod render;
pub mod status;

#[cfg(feature = "kubernetes")]
pub use client::{Cancelled, Client, ClientError, Submitted};
pub use options::{Indexed, JobOptions, PayloadPlacement, Security, SigningSecret};
pub use render::{render, render_with, Manifest, RenderError};
pub use status::{JobReport, Phase, PodReport};
