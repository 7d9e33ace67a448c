//! The wire contract between Wove and `wove-worker`, without any I/O.
//!
//! - [`payload`]: what a Job carries (`WOVE_BACKEND_PAYLOAD`), decoded strictly.
//! - [`task`]: the task description that rides beside Wove's v1 keys.
//! - [`fan_out`]: many tasks in one payload, one per index of an Indexed Job or array job.
//! - [`gzip`]: compressed payloads, for what would not fit where a payload travels.
//! - [`event`]: the events a worker posts back to Wove's callback server.
//! - [`sign`]: the two signature schemes a receiver may verify.
//! - [`request`]: the HTTP request that carries an event, every header included.
//! - [`exit`]: the worker's exit codes, which submitters turn into retry rules.
//! - [`outcome`]: the error kinds the worker reports itself, and its termination statuses.
//! - [`platform`]: the kinds of failure outside the worker that a submitter reports.
//! - [`env`]: the variables a submitter sets and the worker reads.
//! - [`error_chain`]: how every error is printed: its message and each cause, once.
//!
//! Both the worker and the submitter depend on this crate, so it must never
//! pull in an async runtime, an HTTP client or a WebAssembly engine.
#![deny(missing_docs)]

pub mod env;
pub mod error_chain;
pub mod event;
pub mod exit;
pub mod fan_out;
pub mod gzip;
pub mod outcome;
pub mod payload;
pub mod pickle;
pub mod platform;
pub mod request;
pub mod sign;
pub mod task;

pub use error_chain::error_chain;
pub use event::{ErrorInfo, Event, EventKind, EventMeta, OutputInfo};
pub use exit::Exit;
pub use fan_out::TaskEntry;
pub use outcome::{ErrorKind, Status};
pub use payload::{Delivery, Form, Payload, PayloadError};
pub use pickle::Pickle;
pub use platform::PlatformKind;
pub use task::TaskSpec;
