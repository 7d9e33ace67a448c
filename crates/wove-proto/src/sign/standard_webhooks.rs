//! Standard Webhooks (standardwebhooks.com).
//!
//! `webhook-signature` is a space-separated list of `v1,<base64 HMAC-SHA256>`
//! over `{id}.{timestamp}.{body}`, one entry per key: during a rotation the
//! receiver accepts the request if any entry matches any key it holds.

use base64::Engine as _;

use super::{constant_time_eq, Secret, SignError};

/// Header carrying the message id (our event id, stable across retries).
pub const ID: &str = "webhook-id";
/// Header carrying integer Unix seconds, fresh on each attempt.
pub const TIMESTAMP: &str = "webhook-timestamp";
/// Header carrying the signature list.
pub const SIGNATURE: &str = "webhook-signature";

fn one(secret: &Secret, id: &str, timestamp: u64, body: &[u8]) -> String {
    let ts = timestamp.to_string();
    let mac = secret.mac(&[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac))
}

/// The `webhook-signature` value: one signature per secret, space-separated.
pub fn signature(secrets: &[Secret], id: &str, timestamp: u64, body: &[u8]) -> String {
    secrets.iter().map(|s| one(s, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// All three headers for one request.
pub fn headers(secrets: &[Secret], id: &str, timestamp: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![(ID, id.to_string()), (TIMESTAMP, timestamp.to_string()), (SIGNATURE, signature(secrets, id, timestamp, body))]
}

/// Accept when any listed `v1` signature matches any of `secrets`.
pub fn verify(
    secrets: &[Secret],
    body: &[u8],
    now: u64,
    max_skew: u64,
    get: impl Fn(&str) -> Option<String>,
) -> Result<(), SignError> {
    let id = get(ID).ok_or(SignError::Header(ID))?;
    let ts: u64 =
        get(TIMESTAMP).ok_or(SignError::Header(TIMESTAMP))?.parse().map_err(|_| SignError::Header(TIMESTAMP))?;
    let list = get(SIGNATURE).ok_or(SignError::Header(SIGNATURE))?;
    if ts.abs_diff(now) > max_skew {
        return Err(SignError::Stale);
    }
    for secret in secrets {
        let expected = one(secret, &id, ts, body);
        if list.split(' ').any(|given| constant_time_eq(given.as_bytes(), expected.as_bytes())) {
            return Ok(());
        }
    }
    Err(SignError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Scheme;

    fn secret(text: &str) -> Secret {
        Secret::parse(Scheme::StandardWebhooks, text, 1).unwrap()
    }

    #[test]
    fn known_answer() {
        // The example in the Standard Webhooks specification's test vectors.
        let s = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = signature(&[s], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_every_key_and_verifies_with_any() {
        let new = secret("whsec_bmV3LXNlY3JldC1ieXRlcw==");
        let old = secret("whsec_b2xkLXNlY3JldC1ieXRlcw==");
        let body = b"{}";
        let hs = headers(&[new.clone(), old.clone()], "evt_1", 50, body);
        let get = |n: &str| hs.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        assert_eq!(hs[2].1.split(' ').count(), 2);
        assert_eq!(verify(std::slice::from_ref(&old), body, 50, 300, get), Ok(()));
        assert_eq!(verify(&[new], body, 50, 300, get), Ok(()));
        assert_eq!(verify(std::slice::from_ref(&old), b"{ }", 50, 300, get), Err(SignError::Mismatch));
        assert_eq!(verify(&[old], body, 900, 300, get), Err(SignError::Stale));
        let stranger = secret("whsec_c3RyYW5nZXI=");
        assert_eq!(verify(&[stranger], body, 50, 300, get), Err(SignError::Mismatch));
    }

    #[test]
    fn secrets_must_be_base64() {
        assert_eq!(
            Secret::parse(Scheme::StandardWebhooks, "whsec_not*base64", 2),
            Err(SignError::BadSecret { index: 2 })
        );
        assert_eq!(Secret::parse(Scheme::StandardWebhooks, "  ", 1), Err(SignError::EmptySecret { index: 1 }));
        assert!(Secret::parse(Scheme::WoveV1, "anything goes", 1).is_ok());
        assert_eq!(format!("{:?}", secret("whsec_c3RyYW5nZXI=")), "Secret([redacted])");
    }

    #[test]
    fn the_clock_tolerance_is_inclusive_on_both_sides() {
        let s = secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let hs = headers(std::slice::from_ref(&s), "msg_1", 1000, b"{}");
        let get = |name: &str| hs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        for now in [700, 1300] {
            assert_eq!(verify(std::slice::from_ref(&s), b"{}", now, 300, get), Ok(()), "{now}: at the edge");
        }
        for now in [699, 1301] {
            assert_eq!(verify(std::slice::from_ref(&s), b"{}", now, 300, get), Err(SignError::Stale), "{now}");
        }
    }
}
