//! The HTTP request that carries one event, built in one place, without I/O.
//!
//! The worker's HTTP delivery sends it, `--print-events` prints it, and a
//! receiver written in Rust (or a test) can check the wire shape without a
//! socket. The clock and the nonce are arguments, because both signature
//! schemes want them fresh on every attempt while everything else stays put.

use crate::event::Event;
use crate::sign::{standard_webhooks, wove_v1, Scheme, Secret};

/// `Content-Type` of every event.
pub const CONTENT_TYPE: &str = "application/json";
/// The header that repeats the event id, so a receiver can drop duplicates.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How events are signed. With no secrets, they go unsigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signing {
    /// Which headers to add.
    pub scheme: Scheme,
    /// Wove v1's `X-Wove-Key`. Default `default`.
    pub key_id: String,
    /// Current secret first; older ones follow during a rotation.
    pub secrets: Vec<Secret>,
}

impl Default for Signing {
    fn default() -> Self {
        Self { scheme: Scheme::WoveV1, key_id: "default".into(), secrets: Vec::new() }
    }
}

impl Signing {
    /// Whether any signature will be added.
    pub fn is_signing(&self) -> bool {
        !self.secrets.is_empty()
    }
}

/// One attempt's request: where it goes, every header, and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRequest {
    /// The URL's path and query (what Wove's signature covers).
    pub target: String,
    /// Every header the worker sets, in the order it sets them.
    pub headers: Vec<(&'static str, String)>,
    /// The exact body bytes: compact JSON of the event.
    pub body: Vec<u8>,
}

impl EventRequest {
    /// The value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Builds the requests for events posted to one callback URL.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    target: String,
    signing: Signing,
    user_agent: Option<String>,
}

impl RequestBuilder {
    /// Requests to `callback_url`, signed as `signing` says.
    pub fn new(callback_url: &str, signing: Signing) -> Self {
        Self { target: wove_v1::target_of(callback_url), signing, user_agent: None }
    }

    /// Name the sender in a `User-Agent` header (`wove-worker/0.1.0`).
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// The URL's path and query.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether requests carry signatures.
    pub fn is_signing(&self) -> bool {
        self.signing.is_signing()
    }

    /// The request for `event`, as sent at Unix time `now` (seconds) with
    /// `nonce` (Wove v1's single-use string; 18 random bytes, URL-safe base64).
    pub fn request(&self, event: &Event, now: u64, nonce: &str) -> EventRequest {
        let body = event.to_body();
        let headers = self.headers(&event.event_id, &body, now, nonce);
        EventRequest { target: self.target.clone(), headers, body }
    }

    /// The headers of one attempt at sending `body` (the event `event_id`):
    /// the same body goes out on every retry, the headers are made anew.
    pub fn headers(&self, event_id: &str, body: &[u8], now: u64, nonce: &str) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("Content-Type", CONTENT_TYPE.to_string()),
            // Wove's receiver reads exactly Content-Length bytes; never chunked.
            ("Content-Length", body.len().to_string()),
            (IDEMPOTENCY_KEY, event_id.to_string()),
        ];
        if let Some(agent) = &self.user_agent {
            headers.push(("User-Agent", agent.clone()));
        }
        if let Some(current) = self.signing.secrets.first() {
            headers.extend(match self.signing.scheme {
                // Wove's scheme carries one signature: the current key's, named by the key id.
                Scheme::WoveV1 => wove_v1::headers(current, &self.signing.key_id, &self.target, now, nonce, body),
                Scheme::StandardWebhooks => standard_webhooks::headers(&self.signing.secrets, event_id, now, body),
            });
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, EventMeta};

    fn event() -> Event {
        Event {
            kind: EventKind::TaskResult,
            run_id: "r:1".into(),
            task_id: "r".into(),
            event_id: "evt_1".into(),
            result: Some(serde_json::json!({"ok": true})),
            result_pickle: None,
            error: None,
            exception_pickle: None,
            output: None,
            progress: None,
            meta: EventMeta::default(),
        }
    }

    #[test]
    fn every_header_is_there_and_the_body_is_the_event() {
        let signing =
            Signing { scheme: Scheme::WoveV1, key_id: "k1".into(), secrets: vec![Secret::from_bytes(b"s".to_vec())] };
        let builder = RequestBuilder::new("https://h:8/wove/events/TOKEN?x=1", signing.clone());
        let request = builder.request(&event(), 1_700_000_000, "nonce");
        assert_eq!(request.target, "/wove/events/TOKEN?x=1");
        assert_eq!(builder.target(), "/wove/events/TOKEN?x=1");
        assert_eq!(request.body, event().to_body());
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("Content-Length"), Some(&*request.body.len().to_string()));
        assert_eq!(request.header("Idempotency-Key"), Some("evt_1"));
        assert_eq!(request.header("X-Wove-Key"), Some("k1"));
        assert_eq!(request.header("X-Wove-Timestamp"), Some("1700000000"));
        assert_eq!(request.header("X-Wove-Nonce"), Some("nonce"));
        let expected = wove_v1::signature(&signing.secrets[0], &request.target, 1_700_000_000, "nonce", &request.body);
        assert_eq!(request.header("X-Wove-Signature"), Some(&*expected));
    }

    #[test]
    fn the_same_inputs_give_the_same_request_and_a_new_attempt_new_headers() {
        let signing = Signing {
            scheme: Scheme::StandardWebhooks,
            key_id: String::new(),
            secrets: vec![Secret::from_bytes(b"k".to_vec())],
        };
        let builder = RequestBuilder::new("http://h/p", signing);
        assert_eq!(builder.request(&event(), 5, "n"), builder.request(&event(), 5, "n"));
        let later = builder.request(&event(), 6, "n");
        assert_eq!(later.body, builder.request(&event(), 5, "n").body, "the body never changes between attempts");
        assert_ne!(later.header("webhook-signature"), builder.request(&event(), 5, "n").header("webhook-signature"));
        assert_eq!(later.header("webhook-id"), Some("evt_1"));
    }

    #[test]
    fn unsigned_requests_have_only_the_plain_headers() {
        let request = RequestBuilder::new("http://h/p", Signing::default()).request(&event(), 0, "n");
        let names: Vec<_> = request.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["Content-Type", "Content-Length", "Idempotency-Key"]);
    }

    #[test]
    fn signing_is_on_exactly_when_there_is_a_secret() {
        assert!(!Signing::default().is_signing());
        assert!(!RequestBuilder::new("http://h/p", Signing::default()).is_signing());
        let signing =
            Signing { scheme: Scheme::WoveV1, key_id: "k".into(), secrets: vec![Secret::from_bytes(b"s".to_vec())] };
        assert!(signing.is_signing());
        assert!(RequestBuilder::new("http://h/p", signing).is_signing());
    }
}
