//! Signatures over event bodies, so a receiver can tell our events from forgeries.
//!
//! Two schemes are in use: Wove's own (`X-Wove-*`, what
//! `NetworkExecutorSecurity` verifies) and Standard Webhooks (`webhook-*`).
//! Both are HMAC-SHA256; they differ in what is signed and how keys are written.
//! Functions here take the timestamp and nonce as arguments, so they are pure
//! and known-answer testable; the worker supplies the clock and randomness.

pub mod standard_webhooks;
pub mod wove_v1;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Which scheme to sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Wove's `X-Wove-*` headers (`wove-v1`).
    WoveV1,
    /// Standard Webhooks' `webhook-*` headers (`standard-webhooks`).
    StandardWebhooks,
}

impl Scheme {
    /// The name used on the command line and in the environment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WoveV1 => "wove-v1",
            Self::StandardWebhooks => "standard-webhooks",
        }
    }
}

impl std::str::FromStr for Scheme {
    type Err = SignError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "wove-v1" | "wove" => Ok(Self::WoveV1),
            "standard-webhooks" | "standardwebhooks" => Ok(Self::StandardWebhooks),
            other => Err(SignError::UnknownScheme(other.to_string())),
        }
    }
}

/// Why a secret or a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// The scheme name is not one we know.
    #[error("unknown signing scheme `{0}` (expected `wove-v1` or `standard-webhooks`)")]
    UnknownScheme(String),
    /// A Standard Webhooks secret is not base64 (after its `whsec_` prefix).
    #[error("signing secret #{index} is not a valid Standard Webhooks secret (`whsec_` + base64)")]
    BadSecret {
        /// 1-based position in the configured list.
        index: usize,
    },
    /// A secret is empty.
    #[error("signing secret #{index} is empty")]
    EmptySecret {
        /// 1-based position in the configured list.
        index: usize,
    },
    /// A header the scheme needs is absent or malformed.
    #[error("missing or malformed header `{0}`")]
    Header(&'static str),
    /// The timestamp is too far from now.
    #[error("timestamp outside the allowed clock skew")]
    Stale,
    /// No signature matched any key.
    #[error("no signature matches")]
    Mismatch,
}

/// Key material for HMAC, with a `Debug` that never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Raw key bytes.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// Read a secret as the scheme writes it: Wove v1 uses the text's UTF-8
    /// bytes; Standard Webhooks base64-decodes the text after `whsec_`.
    /// `index` is the 1-based position, used only in errors.
    pub fn parse(scheme: Scheme, text: &str, index: usize) -> Result<Self, SignError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SignError::EmptySecret { index });
        }
        match scheme {
            Scheme::WoveV1 => Ok(Self(text.as_bytes().to_vec())),
            Scheme::StandardWebhooks => {
                use base64::Engine as _;
                let b64 = text.strip_prefix("whsec_").unwrap_or(text);
                let key = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| SignError::BadSecret { index })?;
                if key.is_empty() {
                    return Err(SignError::EmptySecret { index });
                }
                Ok(Self(key))
            }
        }
    }

    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The raw key bytes (for a receiver that verifies with its own HMAC code).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Constant-time equality, so a verifier does not leak how much of a signature matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_key_is_what_was_given() {
        assert_eq!(Secret::from_bytes(b"raw key".to_vec()).as_bytes(), b"raw key");
        let parsed = Secret::parse(Scheme::StandardWebhooks, "whsec_cmF3IGtleQ==", 1).unwrap();
        assert_eq!(parsed.as_bytes(), b"raw key");
        let wove = Secret::parse(Scheme::WoveV1, "plain-text-key", 1).unwrap();
        assert_eq!(wove.as_bytes(), b"plain-text-key");
    }

    #[test]
    fn scheme_names_read_back() {
        for scheme in [Scheme::WoveV1, Scheme::StandardWebhooks] {
            assert_eq!(scheme.as_str().parse::<Scheme>().ok(), Some(scheme));
        }
        assert_eq!(Scheme::WoveV1.as_str(), "wove-v1");
        assert_eq!(Scheme::StandardWebhooks.as_str(), "standard-webhooks");
    }
}
