//! Kubernetes Jobs that run `wove-worker`.
//!
//! - [`options`]: what a caller may choose, with documented defaults.
//! - [`manifest`]: what a Job of ours is made of: the [`Manifest`], its names, labels and mounts.
//! - [`render`]: the Job (and a payload Secret) built offline from a payload.
//! - [`failure_policy`]: the `podFailurePolicy` derived from the exit codes.
//! - [`check`]: the rules the schema misses, run on every rendered Job.
//! - [`status`]: a Job's state read from the Job and its pods.
//! - [`unreported`]: the failures a worker cannot have reported, read from a Job and its pods.
//! - `client` (feature `kubernetes`): submit, status, wait, logs, cancel.
//! - `reporting` (features `kubernetes` and `report`): `wait --report`, which
//!   posts those failures to the weave.

pub mod check;
#[cfg(feature = "kubernetes")]
pub mod client;
pub mod failure_policy;
pub mod manifest;
pub mod options;
pub mod render;
#[cfg(all(feature = "kubernetes", feature = "report"))]
pub mod reporting;
pub mod status;
pub mod unreported;

#[cfg(feature = "kubernetes")]
pub use client::{Cancelled, Client, ClientError, LogNotice, Submitted};
pub use manifest::Manifest;
pub use options::{ImagePullPolicy, Indexed, JobOptions, PayloadPlacement, Security, SigningSecret};
pub use render::{render, render_with, RenderError};
#[cfg(all(feature = "kubernetes", feature = "report"))]
pub use reporting::{Reported, Reporting};
pub use status::{JobReport, PodPhase, PodReport};
