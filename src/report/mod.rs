//! Events out: building them, signing them, and getting them to the receiver.
//!
//! The delivery itself (each attempt's request, the retry policy, the
//! reply read within bounds) is `wove_deliver`'s, shared with `wove-submit`,
//! which posts through it the events of failures the worker never saw.
//! [`Reporter`] ties it together for one payload. Each event gets its id
//! once, when it is made, and keeps it (and its exact body) across retries.
//! The HTTP path sends the requests [`request::Requests`] makes; the print
//! mode prints the same requests, so what is printed is what would be sent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::Rng as _;
use wove_proto::env as vars;
use wove_proto::{Event, EventKind, EventMeta, Payload};

pub use wove_deliver::client::ClientError;
pub use wove_deliver::{reply, retry, Delivered, DeliveryError, HttpSink, Requests, SinkError};

/// How the worker names itself to the servers it talks to.
pub const USER_AGENT: &str = concat!("wove-worker/", env!("CARGO_PKG_VERSION"));

/// Platform variables copied into every event's `meta.platform`.
const PLATFORM_ENV: [(&str, &str); 4] = [
    (vars::JOB_COMPLETION_INDEX, "job_completion_index"),
    (vars::AWS_BATCH_JOB_ID, "aws_batch_job_id"),
    (vars::AWS_BATCH_JOB_ATTEMPT, "aws_batch_job_attempt"),
    (vars::AWS_BATCH_JOB_ARRAY_INDEX, "aws_batch_job_array_index"),
];

/// Where events go: the callback URL, or stdout for a local look.
#[derive(Debug, Clone)]
pub enum Sink {
    /// POST to the callback URL.
    Http(HttpSink),
    /// Print each event as one JSON line (`{"url", "headers", "body"}`).
    Print {
        /// The callback URL, token hidden.
        redacted_url: String,
    },
}

/// Builds, signs and delivers the events of one payload.
#[derive(Debug, Clone)]
pub struct Reporter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    run_id: String,
    task_id: String,
    meta: EventMeta,
    sequence: AtomicU64,
    sink: Sink,
    requests: Requests,
}

impl Reporter {
    /// A reporter for `payload` (at `index` of a many-task payload),
    /// reading platform identity from `env`.
    pub fn new(
        payload: &Payload,
        index: Option<usize>,
        sink: Sink,
        requests: Requests,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                run_id: payload.run_id.clone(),
                task_id: payload.task_id.clone(),
                meta: EventMeta { task_index: index, ..platform_meta(env) },
                sequence: AtomicU64::new(0),
                sink,
                requests,
            }),
        }
    }

    /// A new event of `kind` with a fresh id and the next sequence number.
    pub fn event(&self, kind: EventKind) -> Event {
        let mut meta = self.inner.meta.clone();
        meta.sequence = self.inner.sequence.fetch_add(1, Ordering::Relaxed);
        meta.created_at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        Event {
            kind,
            run_id: self.inner.run_id.clone(),
            task_id: self.inner.task_id.clone(),
            event_id: event_id(),
            result: None,
            result_pickle: None,
            error: None,
            exception_pickle: None,
            output: None,
            progress: None,
            meta,
        }
    }

    /// Whether events are signed.
    pub fn is_signing(&self) -> bool {
        self.inner.requests.is_signing()
    }

    /// Deliver `event` before `deadline`.
    pub async fn send(&self, event: &Event, deadline: &crate::deadline::Deadline) -> Result<Delivered, DeliveryError> {
        let body = Bytes::from(event.to_body());
        let kind = event.kind.as_str();
        let result = match &self.inner.sink {
            Sink::Http(http) => http.deliver(kind, &event.event_id, body, &self.inner.requests, deadline).await,
            Sink::Print { redacted_url } => {
                print_event(redacted_url, &self.inner.requests.request(event));
                Ok(Delivered { attempts: 1, status: 0 })
            }
        };
        match &result {
            Ok(d) => {
                tracing::info!(event = kind, event_id = %event.event_id, attempts = d.attempts, status = d.status, "event delivered")
            }
            Err(e) => tracing::warn!(event = kind, event_id = %event.event_id, error = %e, "event not delivered"),
        }
        result
    }
}

/// The line `--print-events` prints for `request`: `{"url", "headers", "body"}`,
/// the body embedded byte for byte.
pub fn print_line(url: &str, request: &wove_proto::request::EventRequest) -> String {
    let headers: BTreeMap<&str, &str> = request.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    // The body is compact JSON already: embed it byte for byte, so what is
    // printed is exactly what would have been signed and sent.
    format!(
        "{{\"url\":{},\"headers\":{},\"body\":{}}}\n",
        serde_json::Value::from(url),
        serde_json::to_string(&headers).unwrap_or_default(),
        String::from_utf8_lossy(&request.body)
    )
}

fn print_event(url: &str, request: &wove_proto::request::EventRequest) {
    crate::stdout::print_line(&print_line(url, request));
}

fn event_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("evt_{}", hex::encode(bytes))
}

fn platform_meta(env: &dyn Fn(&str) -> Option<String>) -> EventMeta {
    let mut platform = BTreeMap::new();
    if let Ok(name) = nix::unistd::gethostname() {
        platform.insert("hostname".to_string(), name.to_string_lossy().into_owned());
    }
    for (var, key) in PLATFORM_ENV {
        if let Some(value) = env(var).filter(|v| !v.is_empty()) {
            platform.insert(key.to_string(), value);
        }
    }
    let attempt = env(vars::AWS_BATCH_JOB_ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(1);
    EventMeta { worker: USER_AGENT.to_string(), attempt, sequence: 0, created_at_ms: 0, task_index: None, platform }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_reads_platform_identity() {
        let env = |k: &str| match k {
            "AWS_BATCH_JOB_ATTEMPT" => Some("3".to_string()),
            "JOB_COMPLETION_INDEX" => Some("7".to_string()),
            _ => None,
        };
        let meta = platform_meta(&env);
        assert_eq!(meta.attempt, 3);
        assert_eq!(meta.platform.get("job_completion_index").map(String::as_str), Some("7"));
        assert!(meta.platform.contains_key("hostname"));
        assert!(!meta.platform.contains_key("aws_batch_job_id"));
    }

    #[test]
    fn event_ids_are_unique_and_sequences_count() {
        let payload = Payload::from_text(
            r#"{"version":1,"callback_url":"http://h/t","run_id":"r","task_id":"t","task":{"runner":"x"}}"#,
        )
        .unwrap();
        let sink = Sink::Print { redacted_url: String::new() };
        let r =
            Reporter::new(&payload, None, sink, Requests::new("http://h/t", Default::default(), USER_AGENT), &|_| None);
        let a = r.event(EventKind::TaskStarted);
        let b = r.event(EventKind::Heartbeat);
        assert_ne!(a.event_id, b.event_id);
        assert_eq!((a.meta.sequence, b.meta.sequence), (0, 1));
        assert!(a.event_id.starts_with("evt_") && a.event_id.len() == 36);
    }
}
