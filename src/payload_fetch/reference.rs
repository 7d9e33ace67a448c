//! A payload reference: where the payload is, and what it must hash to.
//!
//! Parsed and checked when the configuration is built, so a malformed
//! reference is a configuration error (exit 78) before anything is fetched.
//! The reference is secret in part: a presigned URL's query string is a
//! bearer credential, so it is only ever shown without it ([`PayloadRef::shown`]).

use std::time::{Duration, SystemTime};

use url::Url;

/// Where the payload is, its SHA-256, and its size when the submitter knows it.
#[derive(Clone, PartialEq, Eq)]
pub struct PayloadRef {
    url: Url,
    sha256: [u8; 32],
    size: Option<u64>,
    allow_http: bool,
}

impl std::fmt::Debug for PayloadRef {
    // The query string of a presigned URL is a credential: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadRef")
            .field("url", &self.shown())
            .field("sha256", &hex::encode(self.sha256))
            .field("size", &self.size)
            .finish()
    }
}

/// Where the bytes are fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location<'a> {
    /// An object, read with the job's own AWS identity.
    S3 {
        /// The bucket.
        bucket: &'a str,
        /// The key, without a leading `/`.
        key: &'a str,
    },
    /// A plain GET, e.g. a presigned URL.
    Http(&'a Url),
}

/// Why a reference is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// The URL does not parse.
    #[error("{var}: not a URL ({reason})", var = wove_proto::env::PAYLOAD_URL)]
    Url {
        /// What the parser said.
        reason: String,
    },
    /// Not a scheme the worker fetches.
    #[error("{var}: the scheme `{scheme}` is not supported: use s3://bucket/key or https://", var = wove_proto::env::PAYLOAD_URL)]
    Scheme {
        /// The scheme given.
        scheme: String,
    },
    /// `http://` without the opt-in.
    #[error("{var}: plain http would send the URL (a presigned URL is a credential) and the payload unencrypted; use https, or set AWS_ALLOW_HTTP=true for a test endpoint", var = wove_proto::env::PAYLOAD_URL)]
    PlainHttp,
    /// `s3://` without a bucket or a key.
    #[error("{var}: an s3 URL needs a bucket and a key: s3://bucket/key", var = wove_proto::env::PAYLOAD_URL)]
    S3Shape,
    /// `s3://` in a build without the S3 client.
    #[error("{var}: this build of wove-worker has no S3 client (feature `s3`); use an https (presigned) URL", var = wove_proto::env::PAYLOAD_URL)]
    NoS3,
    /// The digest is missing: nothing fetched is ever trusted unchecked.
    #[error("{url_var} needs {sha_var}: the lowercase hex SHA-256 of the object, checked before anything runs",
        url_var = wove_proto::env::PAYLOAD_URL, sha_var = wove_proto::env::PAYLOAD_SHA256)]
    MissingDigest,
    /// The digest is not 64 hex digits.
    #[error("{var}: not a SHA-256 (64 hex digits)", var = wove_proto::env::PAYLOAD_SHA256)]
    Digest,
    /// The size is not a number.
    #[error("{var}: not a size in bytes", var = wove_proto::env::PAYLOAD_SIZE)]
    Size,
    /// A digest or size with no URL.
    #[error("{var} is set but {url_var} is not", url_var = wove_proto::env::PAYLOAD_URL)]
    Orphan {
        /// The variable set alone.
        var: &'static str,
    },
}

impl PayloadRef {
    /// Check a reference. `allow_http` is `AWS_ALLOW_HTTP`: plain http only
    /// for a test endpoint on purpose. `s3` says whether this build can read s3 URLs.
    pub fn parse(
        url: &str,
        sha256: Option<&str>,
        size: Option<&str>,
        allow_http: bool,
        s3: bool,
    ) -> Result<Self, RefError> {
        let url = Url::parse(url.trim()).map_err(|e| RefError::Url { reason: e.to_string() })?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err(RefError::PlainHttp),
            "s3" if !s3 => return Err(RefError::NoS3),
            "s3" => {
                let key = url.path().trim_start_matches('/');
                if url.host_str().is_none_or(str::is_empty) || key.is_empty() {
                    return Err(RefError::S3Shape);
                }
            }
            other => return Err(RefError::Scheme { scheme: other.to_string() }),
        }
        let sha256 = sha256.map(str::trim).filter(|s| !s.is_empty()).ok_or(RefError::MissingDigest)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(sha256, &mut digest).map_err(|_| RefError::Digest)?;
        let size = match size.map(str::trim).filter(|s| !s.is_empty()) {
            Some(text) => Some(text.parse::<u64>().map_err(|_| RefError::Size)?),
            None => None,
        };
        Ok(Self { url, sha256: digest, size, allow_http })
    }

    /// Where to fetch from.
    pub fn location(&self) -> Location<'_> {
        match self.url.scheme() {
            "s3" => Location::S3 {
                bucket: self.url.host_str().unwrap_or_default(),
                key: self.url.path().trim_start_matches('/'),
            },
            _ => Location::Http(&self.url),
        }
    }

    /// Whether plain http is allowed (`AWS_ALLOW_HTTP`), redirects included.
    pub fn allow_http(&self) -> bool {
        self.allow_http
    }

    /// The expected SHA-256.
    pub fn sha256(&self) -> &[u8; 32] {
        &self.sha256
    }

    /// The expected size, if given.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The URL as it may be logged: scheme, host and path; never user info or the query.
    pub fn shown(&self) -> String {
        let mut shown = self.url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        let had_query = shown.query().is_some();
        shown.set_query(None);
        shown.set_fragment(None);
        let mut text = shown.to_string();
        if had_query {
            text.push_str("?…");
        }
        text
    }

    /// What must never appear in a log line or a message: the query string
    /// and each of its values (a signature, a session token), as written and decoded, and a password.
    pub fn secrets(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(query) = self.url.query() {
            out.push(query.to_string());
            for (_, value) in self.url.query_pairs() {
                out.push(value.to_string());
                out.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
            }
            for raw in query.split('&').filter_map(|pair| pair.split_once('=').map(|(_, v)| v)) {
                out.push(raw.to_string());
            }
        }
        out.extend(self.url.password().map(str::to_string));
        out
    }

    /// When a presigned URL stops working, as it says itself: SigV4's
    /// `X-Amz-Date` plus `X-Amz-Expires`, or an `Expires` Unix time (SigV2, GCS).
    pub fn expires_at(&self) -> Option<SystemTime> {
        let param = |name: &str| {
            self.url.query_pairs().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.into_owned())
        };
        if let (Some(date), Some(secs)) = (param("X-Amz-Date"), param("X-Amz-Expires")) {
            let secs: u64 = secs.parse().ok()?;
            return Some(parse_amz_date(&date)? + Duration::from_secs(secs));
        }
        let unix: u64 = param("Expires")?.parse().ok()?;
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(unix))
    }
}

/// `20261201T210000Z`, SigV4's basic ISO 8601 form, in UTC.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<u64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d)?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(days * 86_400 + h * 3600 + mi * 60 + s))
}

/// Days from 1970-01-01 to a Gregorian date (Howard Hinnant's algorithm, for years from 1970).
fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn parse(url: &str) -> Result<PayloadRef, RefError> {
        PayloadRef::parse(url, Some(SHA), None, false, true)
    }

    #[test]
    fn s3_and_https_references_parse() {
        let r = parse("s3://bucket/prefix/job/abc").unwrap();
        assert_eq!(r.location(), Location::S3 { bucket: "bucket", key: "prefix/job/abc" });
        let r = parse("https://bucket.s3.amazonaws.com/k?X-Amz-Signature=deadbeef").unwrap();
        assert!(matches!(r.location(), Location::Http(_)));
        assert_eq!(r.sha256()[0], 0x9f);
    }

    #[test]
    fn malformed_references_are_refused_with_their_reason() {
        assert_eq!(parse("s3://bucket"), Err(RefError::S3Shape));
        assert_eq!(parse("s3:///key"), Err(RefError::S3Shape));
        assert_eq!(parse("gs://b/k"), Err(RefError::Scheme { scheme: "gs".into() }));
        assert_eq!(parse("http://h/k"), Err(RefError::PlainHttp));
        assert!(PayloadRef::parse("http://127.0.0.1/k", Some(SHA), None, true, true).is_ok());
        assert_eq!(PayloadRef::parse("s3://b/k", Some(SHA), None, false, false), Err(RefError::NoS3));
        assert_eq!(PayloadRef::parse("s3://b/k", None, None, false, true), Err(RefError::MissingDigest));
        assert_eq!(PayloadRef::parse("s3://b/k", Some("abc"), None, false, true), Err(RefError::Digest));
        assert_eq!(PayloadRef::parse("s3://b/k", Some(SHA), Some("12x"), false, true), Err(RefError::Size));
        assert_eq!(PayloadRef::parse("s3://b/k", Some(SHA), Some("12"), false, true).unwrap().size(), Some(12));
        assert!(matches!(parse("not a url"), Err(RefError::Url { .. })));
    }

    #[test]
    fn the_query_is_never_shown_and_is_known_as_secret() {
        let r = parse("https://user:pw@h.example/b/k?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=feedface99").unwrap();
        let shown = r.shown();
        assert_eq!(shown, "https://h.example/b/k?…");
        assert!(!format!("{r:?}").contains("feedface99"));
        let secrets = r.secrets();
        for needle in ["feedface99", "AKIA/2026", "AKIA%2F2026", "pw"] {
            assert!(secrets.iter().any(|s| s == needle), "{needle} not registered: {secrets:?}");
        }
    }

    #[test]
    fn expiry_is_read_from_the_url() {
        let r = parse("https://h/k?X-Amz-Date=20261201T210000Z&X-Amz-Expires=60&X-Amz-Signature=x").unwrap();
        let at = r.expires_at().unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        // 2026-12-01T21:01:00Z
        assert_eq!(at, 1_796_158_860);
        let r = parse("https://h/k?Expires=1700000000&Signature=x").unwrap();
        assert_eq!(r.expires_at(), Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
        assert_eq!(parse("https://h/k").unwrap().expires_at(), None);
        assert_eq!(parse("https://h/k?X-Amz-Date=2026&X-Amz-Expires=60").unwrap().expires_at(), None);
    }
}
