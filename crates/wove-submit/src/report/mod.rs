//! Telling the weave about a failure outside the worker.
//!
//! While `wait --report` watches a job, the platform may end it (or never
//! start it) for a reason the worker cannot report: the image, a missing
//! Secret, no room, the OOM killer, a lost node, the deadline. Each
//! backend's `unreported` module decides that from the platform's state;
//! this module turns the decision into the `task_error` the worker would
//! have sent ([`event`]), and posts it with the worker's own delivery
//! rules and signing flags (`sender`, feature `report`).

pub mod event;
#[cfg(feature = "report")]
pub mod sender;
#[cfg(feature = "report")]
pub mod stop;

pub use event::{event, JobAttempt, Unreported};
#[cfg(feature = "report")]
pub use sender::{ReportOutcome, Sender};
#[cfg(feature = "report")]
pub use stop::{stop_signal, StopHandle, StopSignal};
