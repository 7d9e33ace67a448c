//! The payload a job carries, exactly as it will travel.
//!
//! A payload is decoded (and so validated) with `wove_proto`, but what goes
//! into the job is the caller's own bytes, never a re-encoding: keys this
//! version does not know survive, and the worker sees byte for byte what
//! the caller wrote. The one change a submitter may make is to compress
//! those bytes ([`Compression`]) when they would not fit otherwise.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use wove_proto::{Payload, PayloadError};

use crate::naming;

/// A validated payload and its wire form.
#[derive(Clone)]
pub struct EncodedPayload {
    payload: Payload,
    base64: String,
    sha256: String,
    sensitive: bool,
}

impl std::fmt::Debug for EncodedPayload {
    // The base64 holds the callback token: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedPayload")
            .field("payload", &self.payload)
            .field("base64_len", &self.base64.len())
            .field("sha256", &self.sha256)
            .field("sensitive", &self.sensitive)
            .finish()
    }
}

impl EncodedPayload {
    /// Encode a payload built in code (compact JSON, standard base64, as Wove writes it).
    pub fn new(payload: Payload) -> Self {
        let base64 = payload.to_base64();
        Self::assemble(payload, base64)
    }

    /// Read a payload as the worker would: JSON when the text starts with
    /// `{`, otherwise base64 (whitespace ignored). JSON is carried as the
    /// base64 of exactly the given text. Every task it holds must say what
    /// to run, so that no index of a many-task payload fails for want of it.
    pub fn from_text(text: &str) -> Result<Self, PayloadError> {
        let payload = Payload::from_text(text)?;
        payload.check_every_task()?;
        let trimmed = text.trim();
        let base64 = if trimmed.starts_with('{') {
            base64::engine::general_purpose::STANDARD.encode(trimmed.as_bytes())
        } else {
            trimmed.chars().filter(|c| !c.is_ascii_whitespace()).collect()
        };
        Ok(Self::assemble(payload, base64))
    }

    fn assemble(payload: Payload, base64: String) -> Self {
        let sha256 = naming::sha256_hex(base64.as_bytes());
        Self { payload, base64, sha256, sensitive: false }
    }

    /// Mark the payload sensitive: it then never goes into the job's
    /// environment, where anyone who may read the job can read it, even when
    /// it is small.
    #[must_use]
    pub fn sensitive(mut self, sensitive: bool) -> Self {
        self.sensitive = sensitive;
        self
    }

    /// The decoded payload.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The payload as it travels: standard base64 of its JSON.
    pub fn base64(&self) -> &str {
        &self.base64
    }

    /// Lowercase hex SHA-256 of [`Self::base64`]: two submits carry the same
    /// payload exactly when their digests match.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Whether the caller marked the payload sensitive.
    pub fn is_sensitive(&self) -> bool {
        self.sensitive
    }

    /// The caller's bytes (JSON, or gzip already), as they travel in a file.
    pub fn bytes(&self) -> Vec<u8> {
        // Ours, and validated: the base64 always decodes.
        base64::engine::general_purpose::STANDARD.decode(&self.base64).unwrap_or_default()
    }

    /// The caller's bytes gzip-compressed (unless they already are), as base64.
    pub fn gzip_base64(&self) -> String {
        let bytes = self.bytes();
        if wove_proto::gzip::is_gzip(&bytes) {
            return self.base64.clone();
        }
        base64::engine::general_purpose::STANDARD.encode(wove_proto::gzip::deflate(&bytes))
    }

    /// The base64 to send under `compression`: the plain form while `fits`
    /// it (or always, or never), else the compressed one.
    pub fn travelling_base64(&self, compression: Compression, fits: impl Fn(&str) -> bool) -> String {
        match compression {
            Compression::Never => self.base64.clone(),
            Compression::Always => self.gzip_base64(),
            Compression::Auto if fits(&self.base64) => self.base64.clone(),
            Compression::Auto => self.gzip_base64(),
        }
    }
}

/// Whether the payload travels gzip-compressed. Only `wove-worker` reads a
/// compressed payload; an image that runs Wove's own `python -m
/// wove.backend_worker` needs [`Compression::Never`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Compressed only when the plain form would not fit where it travels.
    #[default]
    Auto,
    /// Always as given.
    Never,
    /// Always compressed.
    Always,
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"version":1,"callback_url":"http://h/wove/events/tok","run_id":"r:1","task_id":"r",
        "task":{"runner":"subprocess","program":"true"},"from_the_future":[1,2]}"#;

    #[test]
    fn json_and_base64_forms_travel_as_given() {
        let from_json = EncodedPayload::from_text(JSON).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(from_json.base64()).unwrap();
        assert_eq!(decoded, JSON.as_bytes(), "unknown keys and spacing survive");
        let from_b64 = EncodedPayload::from_text(&format!("  {}\n", from_json.base64())).unwrap();
        assert_eq!(from_b64.base64(), from_json.base64());
        assert_eq!(from_b64.sha256(), from_json.sha256());
        assert_eq!(from_b64.payload().run_id, "r:1");
    }

    #[test]
    fn bad_payloads_are_refused_with_the_field() {
        let err = EncodedPayload::from_text(r#"{"version":1}"#).unwrap_err();
        assert!(err.to_string().contains("callback_url"), "{err}");
    }

    #[test]
    fn compression_only_when_needed_and_the_worker_reads_it_back() {
        let p = EncodedPayload::from_text(JSON).unwrap();
        let packed = p.gzip_base64();
        assert_ne!(packed, p.base64());
        let back = Payload::from_base64(&packed).unwrap();
        assert_eq!(&back, p.payload());
        assert_eq!(p.travelling_base64(Compression::Auto, |_| true), p.base64());
        assert_eq!(p.travelling_base64(Compression::Auto, |_| false), packed);
        assert_eq!(p.travelling_base64(Compression::Never, |_| false), p.base64());
        assert_eq!(p.travelling_base64(Compression::Always, |_| true), packed);
        // Already compressed: left as it is.
        assert_eq!(EncodedPayload::from_text(&packed).unwrap().gzip_base64(), packed);
    }

    #[test]
    fn every_entry_of_a_many_task_payload_must_have_something_to_run() {
        let text = r#"{"version":1,"callback_url":"http://h/wove/events/tok","run_id":"r",
            "callable_pickle":"gAU=","tasks":[{"task_id":"a","args_pickle":"gAU="},{"task_id":"b"}]}"#;
        let err = EncodedPayload::from_text(text).unwrap_err().to_string();
        assert!(err.contains("tasks[1].args_pickle"), "{err}");
    }

    #[test]
    fn debug_hides_the_token() {
        let p = EncodedPayload::from_text(JSON).unwrap();
        let shown = format!("{p:?}");
        assert!(!shown.contains("tok") && !shown.contains(p.base64()), "{shown}");
    }
}
