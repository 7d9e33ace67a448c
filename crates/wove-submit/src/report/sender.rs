//! Posting a report: `wove-deliver`'s loop, the worker's retry rules, and
//! the worker's signing flags, so a receiver verifies it as it verifies
//! the worker's own events.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Serialize;
use wove_deliver::{DeliveryError, HttpSink, Policy, Requests, SinkError};
use wove_proto::request::Signing;
use wove_proto::{Payload, PayloadError};

use super::event::{event, JobAttempt, Unreported, SENDER};

/// Posts reports, signed and retried.
#[derive(Debug, Clone)]
pub struct Sender {
    signing: Signing,
    policy: Policy,
    budget: Duration,
    ca_bundle: Option<PathBuf>,
}

/// What became of one report.
#[derive(Debug, Clone, Serialize)]
pub struct ReportOutcome {
    /// What was reported.
    #[serde(flatten)]
    pub failure: Unreported,
    /// The event's id.
    pub event_id: String,
    /// Whether the receiver took it.
    pub delivered: bool,
    /// Attempts made.
    pub attempts: u32,
    /// Why it was not delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Sender {
    /// Reports signed as `signing`, each posted as `policy` says within `budget`.
    pub fn new(signing: Signing, policy: Policy, budget: Duration, ca_bundle: Option<PathBuf>) -> Self {
        Self { signing, policy, budget, ca_bundle }
    }

    /// Whether reports carry signatures.
    pub fn is_signing(&self) -> bool {
        self.signing.is_signing()
    }

    /// Build and post the report of `failure`. Never fails: what went wrong is in the outcome.
    pub async fn send(&self, payload: &Payload, failure: &Unreported, job: &JobAttempt) -> ReportOutcome {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let outcome = |event_id: String, attempts: u32, error: Option<String>| ReportOutcome {
            failure: failure.clone(),
            event_id,
            delivered: error.is_none(),
            attempts,
            error,
        };
        let event = match event(payload, failure, job, now_ms) {
            Ok(event) => event,
            Err(e) => return outcome(String::new(), 0, Some(describe_payload(&e))),
        };
        let sink = match HttpSink::new(&payload.callback_url, &self.policy, self.ca_bundle.as_deref(), SENDER) {
            Ok(sink) => sink,
            Err(e) => return outcome(event.event_id, 0, Some(describe_sink(&e))),
        };
        let requests = Requests::new(&payload.callback_url, self.signing.clone(), SENDER);
        let deadline = tokio::time::Instant::now() + self.budget;
        let body = Bytes::from(event.to_body());
        match sink.deliver(event.kind.as_str(), &event.event_id, body, &requests, &deadline).await {
            Ok(delivered) => outcome(event.event_id, delivered.attempts, None),
            Err(e) => {
                let attempts = match &e {
                    DeliveryError::Rejected { attempts, .. } | DeliveryError::Exhausted { attempts, .. } => *attempts,
                    _ => 1,
                };
                outcome(event.event_id, attempts, Some(e.to_string()))
            }
        }
    }
}

fn describe_payload(e: &PayloadError) -> String {
    format!("the payload names no such task: {}", wove_proto::error_chain(e))
}

fn describe_sink(e: &SinkError) -> String {
    match e {
        SinkError::Url => "the payload's callback_url is not a valid URL".to_string(),
        other => wove_proto::error_chain(other),
    }
}
