//! Keeping the callback token and the signing secrets out of everything the
//! worker writes.
//!
//! Two layers. URLs are only ever logged through [`redact_url`], which keeps
//! the scheme, host and path but never the token (the last path segment), a
//! query or user info, and keeps nothing of a URL that does not parse. Then,
//! whatever a message happens to quote (a serde error echoing a mistyped
//! field, a task's stderr), [`scrub`] replaces every secret the worker knows
//! of: the log writer, the termination message and the error messages of
//! events all pass through it.
//!
//! The registry is the process's, not a worker's, because the log writer is: tracing's
//! subscriber is global and scrubs every line whoever wrote it, so it must know every secret
//! any run in the process holds. A program that embeds the worker and runs several payloads
//! therefore only ever over-redacts (one run's secret is scrubbed from another's output too).
//! Secrets stay registered (a line logged late must still be scrubbed); the registry holds one
//! entry per distinct secret, so it grows with the secrets, not with the runs.

use std::borrow::Cow;
use std::sync::RwLock;

use wove_deliver::redact::token_span;
pub use wove_deliver::redact::{redact_url, REDACTED};

/// Shorter strings are not registered: scrubbing them would mangle ordinary
/// text, and a secret that short protects nothing.
const MIN_SECRET_LEN: usize = 4;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Remember `secret`: from now on [`scrub`] replaces it.
pub fn register(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
        // Longest first, so a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Remember the secret parts of a callback URL: the token (its last path
/// segment), and for a URL that does not parse, the whole text and each of
/// its segments, since which one is the token cannot be known.
pub fn register_callback_url(url: &str) {
    match reqwest::Url::parse(url) {
        Ok(parsed) => {
            if let Some((start, end)) = token_span(parsed.path()) {
                register(&parsed.path()[start..end]);
            }
            register(parsed.password().unwrap_or_default());
            if let Some(query) = parsed.query() {
                register(query);
            }
        }
        Err(_) => {
            register(url);
            for segment in url.split(['/', '?', '&', '#', '@', '[', ']']) {
                register(segment);
            }
        }
    }
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn scrub(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_of_the_minimum_length_is_scrubbed_and_a_shorter_one_is_not() {
        register("Q7z!");
        register("Xq9");
        assert_eq!(scrub("key Q7z! here"), "key [redacted] here");
        assert_eq!(scrub("key Xq9 here"), "key Xq9 here", "three characters would scrub ordinary words");
    }

    #[test]
    fn registered_secrets_are_scrubbed_from_any_text() {
        register_callback_url("http://h/wove/events/tok-abc-123?sig=s3cr3t-query");
        register("whsec_c2VjcmV0LWtleQ==");
        register("ab"); // too short to register
        let text = "error at http://h/wove/events/tok-abc-123?sig=s3cr3t-query with whsec_c2VjcmV0LWtleQ== ab";
        assert_eq!(scrub(text), "error at http://h/wove/events/[redacted]?[redacted] with [redacted] ab");
        assert!(matches!(scrub("nothing secret"), Cow::Borrowed(_)));

        register_callback_url("http://[TOKEN-unparsed/wove/events/TOKEN-unparsed");
        assert!(!scrub("host [TOKEN-unparsed, path TOKEN-unparsed").contains("TOKEN-unparsed"));
    }
}
