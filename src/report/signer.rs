//! Signing headers for each delivery attempt (fresh timestamp and nonce each time).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::RngCore as _;
use wove_proto::sign::{standard_webhooks, wove_v1, Scheme, Secret};

use crate::config::SigningConfig;

/// Adds signature headers, or nothing when no secret is configured.
#[derive(Debug, Clone)]
pub struct Signer {
    scheme: Scheme,
    key_id: String,
    secrets: Vec<Secret>,
}

impl Signer {
    /// From the validated configuration.
    pub fn new(config: &SigningConfig) -> Self {
        Self { scheme: config.scheme, key_id: config.key_id.clone(), secrets: config.secrets.clone() }
    }

    /// Whether any signature will be added.
    pub fn is_signing(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// Headers for one attempt at sending `body` (event `event_id`) to `target`
    /// (the URL's path and query), timestamped now: both schemes want a fresh
    /// timestamp on every attempt.
    pub fn headers(&self, event_id: &str, target: &str, body: &[u8]) -> Vec<(&'static str, String)> {
        let Some(current) = self.secrets.first() else { return Vec::new() };
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match self.scheme {
            // Wove's scheme carries one signature: the current key's, named by the key id.
            Scheme::WoveV1 => wove_v1::headers(current, &self.key_id, target, now, &nonce(), body),
            Scheme::StandardWebhooks => standard_webhooks::headers(&self.secrets, event_id, now, body),
        }
    }
}

/// 18 random bytes, URL-safe base64: the shape of Python's `secrets.token_urlsafe(18)`.
fn nonce() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
