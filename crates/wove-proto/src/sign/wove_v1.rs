//! Wove's own scheme (`wove/security.py`, mode `signed`).
//!
//! `X-Wove-Signature: v1=<hex HMAC-SHA256>` over six lines joined by `\n`:
//! `wove-v1`, the transport (`http`), the target (path plus `?query`), the
//! timestamp, the nonce and the hex SHA-256 of the body.

use sha2::{Digest, Sha256};

use super::{constant_time_eq, Secret, SignError};

/// Header carrying the key id.
pub const KEY: &str = "X-Wove-Key";
/// Header carrying integer Unix seconds.
pub const TIMESTAMP: &str = "X-Wove-Timestamp";
/// Header carrying a random, URL-safe, single-use string.
pub const NONCE: &str = "X-Wove-Nonce";
/// Header carrying `v1=<hex>`.
pub const SIGNATURE: &str = "X-Wove-Signature";

/// The target Wove signs: the URL's path, plus `?query` when there is one.
pub fn target_of(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let without_fragment = after_scheme.split('#').next().unwrap_or("");
    match without_fragment.find('/') {
        Some(i) => {
            let t = &without_fragment[i..];
            // `http://h/p?` has an empty query, which Wove's urlsplit drops.
            t.strip_suffix('?').unwrap_or(t).to_string()
        }
        None => "/".to_string(),
    }
}

/// The `X-Wove-Signature` value for one request.
pub fn signature(secret: &Secret, target: &str, timestamp: u64, nonce: &str, body: &[u8]) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    let canonical = format!("wove-v1\nhttp\n{target}\n{timestamp}\n{nonce}\n{body_hash}");
    format!("v1={}", hex::encode(secret.mac(&[canonical.as_bytes()])))
}

/// All four headers for one request, in sending order.
pub fn headers(
    secret: &Secret,
    key_id: &str,
    target: &str,
    timestamp: u64,
    nonce: &str,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        (KEY, key_id.to_string()),
        (TIMESTAMP, timestamp.to_string()),
        (NONCE, nonce.to_string()),
        (SIGNATURE, signature(secret, target, timestamp, nonce, body)),
    ]
}

/// Check a signature as Wove does (minus its nonce memory, which is the receiver's).
/// `get` looks a header up case-insensitively.
pub fn verify(
    secret: &Secret,
    key_id: &str,
    target: &str,
    body: &[u8],
    now: u64,
    max_skew: u64,
    get: impl Fn(&str) -> Option<String>,
) -> Result<(), SignError> {
    let key = get(KEY).ok_or(SignError::Header(KEY))?;
    let ts_text = get(TIMESTAMP).ok_or(SignError::Header(TIMESTAMP))?;
    let nonce = get(NONCE).ok_or(SignError::Header(NONCE))?;
    let sig = get(SIGNATURE).ok_or(SignError::Header(SIGNATURE))?;
    if key != key_id {
        return Err(SignError::Mismatch);
    }
    let ts: u64 = ts_text.parse().map_err(|_| SignError::Header(TIMESTAMP))?;
    if ts.abs_diff(now) > max_skew {
        return Err(SignError::Stale);
    }
    let expected = signature(secret, target, ts, &nonce, body);
    if constant_time_eq(expected.as_bytes(), sig.as_bytes()) {
        Ok(())
    } else {
        Err(SignError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        // Computed independently with Python's hmac/hashlib over the same canonical text.
        let secret = Secret::from_bytes(b"s3cret".to_vec());
        let sig = signature(&secret, "/wove/events/tok", 1_700_000_000, "n0nce", b"{\"type\":\"heartbeat\"}");
        assert_eq!(sig, "v1=cc9f49aefcbccbed7c9bf9591753bfa04b41ec8ad54edf1279ff821675791609");
    }

    #[test]
    fn target_keeps_path_and_query_only() {
        assert_eq!(target_of("http://web:9010/wove/events/abc"), "/wove/events/abc");
        assert_eq!(target_of("https://h/p?a=1&b=2#frag"), "/p?a=1&b=2");
        assert_eq!(target_of("http://h:1"), "/");
        assert_eq!(target_of("http://h/p?"), "/p");
    }

    #[test]
    fn verify_accepts_own_and_rejects_tampering() {
        let secret = Secret::from_bytes(b"k".to_vec());
        let body = br#"{"a":1}"#;
        let hs = headers(&secret, "default", "/x", 100, "nn", body);
        let get = |name: &str| hs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        assert_eq!(verify(&secret, "default", "/x", body, 120, 300, get), Ok(()));
        assert_eq!(verify(&secret, "default", "/x", br#"{"a":2}"#, 120, 300, get), Err(SignError::Mismatch));
        assert_eq!(verify(&secret, "default", "/y", body, 120, 300, get), Err(SignError::Mismatch));
        assert_eq!(verify(&secret, "other", "/x", body, 120, 300, get), Err(SignError::Mismatch));
        assert_eq!(verify(&secret, "default", "/x", body, 1000, 300, get), Err(SignError::Stale));
        let wrong = Secret::from_bytes(b"j".to_vec());
        assert_eq!(verify(&wrong, "default", "/x", body, 120, 300, get), Err(SignError::Mismatch));
    }

    #[test]
    fn the_clock_tolerance_is_inclusive_on_both_sides() {
        let secret = Secret::from_bytes(b"k".to_vec());
        let hs = headers(&secret, "default", "/x", 1000, "nn", b"{}");
        let get = |name: &str| hs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        for now in [700, 1300] {
            assert_eq!(verify(&secret, "default", "/x", b"{}", now, 300, get), Ok(()), "{now}: at the edge");
        }
        for now in [699, 1301] {
            assert_eq!(verify(&secret, "default", "/x", b"{}", now, 300, get), Err(SignError::Stale), "{now}: past it");
        }
    }
}
