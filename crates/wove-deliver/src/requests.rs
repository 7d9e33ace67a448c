//! Each attempt's request, made by `wove_proto::request` with a clock and a
//! nonce: the system's, or fixed ones a test or an embedding program gives.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::Rng as _;
use wove_proto::request::{EventRequest, RequestBuilder, Signing};
use wove_proto::Event;

/// Unix time in seconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;
/// A fresh single-use string per call.
pub type NonceSource = Arc<dyn Fn() -> String + Send + Sync>;

/// Makes the request for each attempt at sending an event.
#[derive(Clone)]
pub struct Requests {
    builder: RequestBuilder,
    clock: Clock,
    nonce: NonceSource,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests").field("builder", &self.builder).finish_non_exhaustive()
    }
}

impl Requests {
    /// Requests to `callback_url` from `user_agent` (`wove-worker/0.1.0`),
    /// signed as configured, timestamped by the system clock, with random nonces.
    pub fn new(callback_url: &str, signing: Signing, user_agent: &str) -> Self {
        Self {
            builder: RequestBuilder::new(callback_url, signing).user_agent(user_agent),
            clock: Arc::new(|| SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
            nonce: Arc::new(random_nonce),
        }
    }

    /// Replace the clock and the nonce source (for tests and for receivers
    /// that want to compare requests byte for byte).
    #[must_use]
    pub fn with_clock_and_nonce(mut self, clock: Clock, nonce: NonceSource) -> Self {
        self.clock = clock;
        self.nonce = nonce;
        self
    }

    /// Whether requests carry signatures.
    pub fn is_signing(&self) -> bool {
        self.builder.is_signing()
    }

    /// The URL's path and query.
    pub fn target(&self) -> &str {
        self.builder.target()
    }

    /// The whole request for `event`, as the next attempt would send it.
    pub fn request(&self, event: &Event) -> EventRequest {
        self.builder.request(event, (self.clock)(), &(self.nonce)())
    }

    /// The headers of the next attempt at sending `body`.
    pub fn headers(&self, event_id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        self.builder.headers(event_id, body, (self.clock)(), &(self.nonce)())
    }
}

/// 18 random bytes, URL-safe base64: the shape of Python's `secrets.token_urlsafe(18)`.
fn random_nonce() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
