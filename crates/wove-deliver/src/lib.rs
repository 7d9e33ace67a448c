//! Getting one event to the receiver: the request of each attempt, the
//! retry policy, the reply read within bounds, the TLS failures that no
//! retry can fix. The worker posts its events through it, and `wove-submit`
//! the events it sends when a job failed outside the worker, so both obey
//! the same rules.
//!
//! - [`requests`]: each attempt's request, from `wove_proto::request` (the
//!   one definition of the wire request), with a clock and a nonce.
//! - [`retry`]: which failures are retried and how long to wait.
//! - [`reply`]: what is read of a receiver's reply, bounded whatever it sends.
//! - [`sink`]: the delivery loop, within a [`Budget`].
//! - [`client`]: the one way an HTTP client is built (rustls, our resolver, a CA bundle).
//! - [`secrets`]: signing secrets from the environment and a file.
//! - [`redact`]: a callback URL as it may be logged.
#![deny(missing_docs)]

#[cfg(feature = "clap")]
pub mod args;
pub mod budget;
pub mod client;
mod dns;
pub mod redact;
pub mod reply;
pub mod requests;
pub mod retry;
pub mod secrets;
pub mod sink;

pub use budget::Budget;
pub use requests::Requests;
pub use sink::{Delivered, DeliveryError, HttpSink, Policy, SinkError, DEFAULT_BUDGET};
