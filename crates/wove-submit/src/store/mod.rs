//! Payloads by reference: where a payload too large to travel inside the
//! job goes (`--payload-store s3://bucket/prefix`), decided offline.
//!
//! The object for a job lives at `<prefix>/<job name>/<sha256>`: the job's
//! name ties it to the job (so `cleanup` can tell whose it is), the digest to
//! its bytes (so a resubmit of another payload under the same name cannot
//! overwrite what a running job reads). The job carries the reference
//! (`WOVE_BACKEND_PAYLOAD_URL`, its `…_SHA256` and `…_SIZE`) and names the
//! object again in a tag (`wove:payload-object`) or an annotation
//! (`wove.dev/payload-object`), which `wait`, `cancel` and `cleanup` read to
//! delete it once the job is over.
//!
//! Uploading, presigning and deleting need the `payload-store` feature ([`s3`]).

#[cfg(feature = "payload-store")]
pub mod s3;

use serde::{Deserialize, Serialize};
use wove_proto::env as vars;

use crate::naming;

/// The longest a presigned URL can live (SigV4's limit: 7 days).
pub const MAX_PRESIGN_SECONDS: u64 = 7 * 24 * 3600;

/// Where payloads go when they do not fit inline, and how the worker reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadStore {
    /// `s3://bucket` or `s3://bucket/prefix`.
    pub url: String,
    /// Every payload goes to the store, even one that would fit inline. Default false.
    #[serde(default)]
    pub always: bool,
    /// Give the worker an https URL presigned for this many seconds instead of
    /// an `s3://` reference it reads with its own role. Default none.
    #[serde(default)]
    pub presign_seconds: Option<u64>,
}

impl PayloadStore {
    /// A store at `url` (`s3://bucket/prefix`), used only when the payload does not fit.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), always: false, presign_seconds: None }
    }

    /// Check the URL and the presign duration.
    pub fn location(&self) -> Result<StoreUrl, StoreError> {
        if let Some(secs) = self.presign_seconds {
            if secs == 0 || secs > MAX_PRESIGN_SECONDS {
                return Err(StoreError::Presign(secs));
            }
        }
        StoreUrl::parse(&self.url)
    }

    /// The object that will carry `bytes` for the job `job_name`.
    pub fn object_for(&self, job_name: &str, bytes: Vec<u8>) -> Result<StoredObject, StoreError> {
        let at = self.location()?;
        let sha256 = naming::sha256_hex(&bytes);
        let key = match at.prefix.as_str() {
            "" => format!("{job_name}/{sha256}"),
            prefix => format!("{prefix}/{job_name}/{sha256}"),
        };
        Ok(StoredObject { bucket: at.bucket, key, sha256, bytes, presign_seconds: self.presign_seconds })
    }
}

/// A parsed `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreUrl {
    /// The bucket.
    pub bucket: String,
    /// The prefix, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl StoreUrl {
    /// Parse `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::Url(url.to_string());
        let rest = url.trim().strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's bucket names: 3 to 63 of lowercase letters, digits, '.', '-'.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !bucket_ok {
            return Err(bad());
        }
        Ok(Self { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() })
    }

    /// Which job an object under this store belongs to, from its key; none for a key of another layout.
    pub fn job_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        let rest = if self.prefix.is_empty() { key } else { key.strip_prefix(&self.prefix)?.strip_prefix('/')? };
        let (job, sha) = rest.split_once('/')?;
        (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()) && !job.is_empty()).then_some(job)
    }
}

/// The object a job's payload travels in.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The bucket.
    pub bucket: String,
    /// `<prefix>/<job name>/<sha256>`.
    pub key: String,
    /// Lowercase hex SHA-256 of [`Self::bytes`].
    pub sha256: String,
    /// What is uploaded: the payload's bytes as the caller gave them (JSON, or gzip).
    pub bytes: Vec<u8>,
    /// Presign for this long at submit, instead of an `s3://` reference.
    pub presign_seconds: Option<u64>,
}

impl std::fmt::Debug for StoredObject {
    // The bytes hold the callback token: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredObject")
            .field("url", &self.url())
            .field("sha256", &self.sha256)
            .field("size", &self.bytes.len())
            .field("presign_seconds", &self.presign_seconds)
            .finish()
    }
}

impl StoredObject {
    /// `s3://bucket/key`.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// The variables that carry the reference, in order: the URL (an `s3://`
    /// one; a presigned URL replaces it at submit), its digest, its size.
    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            (vars::PAYLOAD_URL, self.url()),
            (vars::PAYLOAD_SHA256, self.sha256.clone()),
            (vars::PAYLOAD_SIZE, self.bytes.len().to_string()),
        ]
    }

    /// One line on what `submit` would do, for `render`.
    pub fn plan(&self) -> String {
        let how = match self.presign_seconds {
            Some(secs) => format!("the job gets an https URL presigned for {secs} s"),
            None => "the job reads it with its own AWS identity (s3:GetObject)".into(),
        };
        format!("would upload {} bytes (sha256 {}) to {}; {how}", self.bytes.len(), self.sha256, self.url())
    }
}

/// Parse `s3://bucket/key` back into its parts.
pub fn split_object_url(url: &str) -> Option<(&str, &str)> {
    let (bucket, key) = url.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// Why a store cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Not `s3://bucket[/prefix]`.
    #[error("payload store {0:?}: not s3://bucket[/prefix] with a valid bucket name")]
    Url(String),
    /// The presign duration is out of range.
    #[error("--presign {0} s: must be between 1 s and 7 days, the longest a presigned URL lives")]
    Presign(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_keyed_by_job_and_digest() {
        let store = PayloadStore::new("s3://wove-payloads/runs/");
        let object = store.object_for("wove-t-1a2b", b"{}".to_vec()).unwrap();
        assert_eq!(object.key, format!("runs/wove-t-1a2b/{}", naming::sha256_hex(b"{}")));
        assert_eq!(object.url(), format!("s3://wove-payloads/{}", object.key));
        let at = store.location().unwrap();
        assert_eq!(at.job_of(&object.key), Some("wove-t-1a2b"));
        assert_eq!(at.job_of("runs/other-layout"), None);
        assert_eq!(at.job_of("elsewhere/wove-t-1a2b/00"), None);
        let bare = PayloadStore::new("s3://wove-payloads").object_for("j", vec![1]).unwrap();
        assert!(bare.key.starts_with("j/"));
        assert_eq!(split_object_url(&bare.url()), Some(("wove-payloads", bare.key.as_str())));
        assert!(!format!("{object:?}").contains("{}"), "the bytes are never printed");
    }

    #[test]
    fn bad_stores_are_refused() {
        assert!(matches!(StoreUrl::parse("https://b/p"), Err(StoreError::Url(_))));
        assert!(matches!(StoreUrl::parse("s3://B_ad/p"), Err(StoreError::Url(_))));
        let mut store = PayloadStore::new("s3://bucket");
        store.presign_seconds = Some(MAX_PRESIGN_SECONDS + 1);
        assert_eq!(store.location(), Err(StoreError::Presign(MAX_PRESIGN_SECONDS + 1)));
    }
}
