//! Why a payload could not be fetched, each with what to do about it, and
//! the exit code the contract gives it.
//!
//! The worker learns where to report only from the payload, so none of these
//! is ever reported as an event: the exit code and the termination message
//! are all the platform (and `wove-submit wait --report`) will see.

use std::time::{Duration, SystemTime};

use wove_proto::{Exit, Status};

/// Why the payload's URL gave no payload.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// 403 (or 401): the identity may not read it, or a presigned URL is no longer valid.
    #[error("access denied to {url}{code}: {fix}", code = code_suffix(code))]
    Denied {
        /// The reference, shown without its query.
        url: String,
        /// S3's error code (`AccessDenied`, `InvalidAccessKeyId`, …), if it gave one.
        code: Option<String>,
        /// What to change.
        fix: String,
    },
    /// 404: no object there.
    #[error("no object at {url}{code}: deleted before the job started? A bucket lifecycle rule shorter than the time the job waits in its queue deletes it; so does `wove-submit … cleanup` run too early", code = code_suffix(code))]
    NotFound {
        /// The reference, shown without its query.
        url: String,
        /// S3's error code (`NoSuchKey`, `NoSuchBucket`), if it gave one.
        code: Option<String>,
    },
    /// The bucket is in another region than the one the request was signed for.
    #[error("the bucket of {url} is in {region}, not the region the worker signed for{configured}: {fix}",
        region = bucket_region.as_deref().unwrap_or("another region"),
        configured = configured.as_deref().map(|r| format!(" ({r})")).unwrap_or_default(),
        fix = match bucket_region { Some(r) => format!("set AWS_REGION={r} on the job"), None => "set AWS_REGION to the bucket's region on the job".into() })]
    WrongRegion {
        /// The reference.
        url: String,
        /// Where the bucket is, when S3 said.
        bucket_region: Option<String>,
        /// What the worker used.
        configured: Option<String>,
    },
    /// A refusal no retry changes (400, 405, a redirect to plain http, …).
    #[error("{url} refused the request: {detail}")]
    Refused {
        /// The reference.
        url: String,
        /// What was said.
        detail: String,
    },
    /// More than the bound.
    #[error("the payload object is {} bytes, over the {limit}-byte bound (--max-payload-bytes, with room for base64); nothing of it was decoded",
        length.map_or_else(|| format!("more than {limit}"), |n| n.to_string()))]
    TooLarge {
        /// The bound.
        limit: u64,
        /// What the server announced, if it did.
        length: Option<u64>,
    },
    /// Not the size the submitter recorded: altered or replaced.
    #[error("the payload object is {actual} bytes, not the {expected} that {var} names: it was altered or replaced; nothing was run", var = wove_proto::env::PAYLOAD_SIZE)]
    SizeMismatch {
        /// What the reference said.
        expected: u64,
        /// What arrived, or was announced.
        actual: u64,
    },
    /// Not the bytes the submitter hashed: altered or replaced.
    #[error("the payload object's SHA-256 is {actual}, not the {expected} that {var} names: it was altered or replaced; nothing was run", var = wove_proto::env::PAYLOAD_SHA256)]
    DigestMismatch {
        /// What the reference said.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// Transient failures (5xx, throttling, resets, no credentials yet) until the budget ran out.
    #[error("{url} kept failing for {}s ({attempts} attempts, --read-timeout): {last}", .after.as_secs_f64().round())]
    Unreachable {
        /// The reference.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The budget spent.
        after: Duration,
        /// The last failure.
        last: String,
    },
    /// One attempt failed in a way another attempt may not (internal to the retry loop).
    #[error("{detail}")]
    Transient {
        /// What happened.
        detail: String,
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default()
}

impl FetchError {
    /// The exit code: the object is unusable (66), the bytes are wrong (65),
    /// or storage kept failing (75, retryable).
    pub fn exit(&self) -> Exit {
        match self {
            Self::Denied { .. } | Self::NotFound { .. } | Self::WrongRegion { .. } | Self::Refused { .. } => {
                Exit::PayloadUnavailable
            }
            Self::TooLarge { .. } | Self::SizeMismatch { .. } | Self::DigestMismatch { .. } => Exit::BadPayload,
            Self::Unreachable { .. } | Self::Transient { .. } => Exit::Undeliverable,
        }
    }

    /// The exit code with the termination message's status.
    pub fn verdict(&self) -> crate::exit::Verdict {
        let status = match self.exit() {
            Exit::BadPayload => Status::BadPayload,
            _ => Status::PayloadUnavailable,
        };
        crate::exit::Verdict::new(self.exit(), status)
    }
}

/// What to do about a 403, from S3's error code and, for a presigned URL, its own expiry.
pub fn denied_fix(code: Option<&str>, presigned: bool, expires_at: Option<SystemTime>, now: SystemTime) -> String {
    if let Some(at) = expires_at.filter(|&at| at <= now) {
        let ago = now.duration_since(at).unwrap_or_default().as_secs();
        return format!(
            "the presigned URL expired {ago}s ago (at {}): the job waited longer than the URL was signed for; presign for longer (--presign), or let the job read the object with its own role (an s3:// reference)",
            httpdate::fmt_http_date(at)
        );
    }
    match code {
        Some("InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "TokenRefreshRequired") => format!(
            "the credentials were refused ({}): check the job's AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or its role (Batch jobRoleArn, IRSA, EKS Pod Identity)",
            code.unwrap_or_default()
        ),
        Some("ExpiredToken") => "the session credentials expired: the job's credential source must refresh them (a job role does)".into(),
        _ if presigned => "the presigned URL was refused: it never outlives the credentials that signed it (an instance role's last at most 6 h, an STS session's at most 36 h), or its signature does not match; have the submitter presign with longer-lived credentials, or use an s3:// reference".into(),
        _ => "the job's role needs s3:GetObject on the object (and kms:Decrypt for SSE-KMS); without s3:ListBucket, S3 also answers 403 for an object that does not exist".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_contract_code() {
        let url = || "s3://b/k".to_string();
        assert_eq!(FetchError::NotFound { url: url(), code: None }.exit().code(), 66);
        assert_eq!(FetchError::Denied { url: url(), code: None, fix: String::new() }.exit().code(), 66);
        assert_eq!(FetchError::WrongRegion { url: url(), bucket_region: None, configured: None }.exit().code(), 66);
        assert_eq!(FetchError::DigestMismatch { expected: "a".into(), actual: "b".into() }.exit().code(), 65);
        assert_eq!(FetchError::TooLarge { limit: 1, length: None }.exit().code(), 65);
        let unreachable =
            FetchError::Unreachable { url: url(), attempts: 3, after: Duration::from_secs(60), last: "503".into() };
        assert_eq!(unreachable.exit().code(), 75);
        assert!(unreachable.exit().retryable());
        assert_eq!(unreachable.verdict().status, Status::PayloadUnavailable);
        assert_eq!(FetchError::TooLarge { limit: 1, length: None }.verdict(), crate::exit::Verdict::BAD_PAYLOAD);
    }

    #[test]
    fn a_403_says_which_fix_applies() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let expired = denied_fix(Some("AccessDenied"), true, Some(now - Duration::from_secs(30)), now);
        assert!(expired.contains("expired 30s ago"), "{expired}");
        let live = denied_fix(Some("AccessDenied"), true, Some(now + Duration::from_secs(30)), now);
        assert!(live.contains("never outlives the credentials"), "{live}");
        assert!(denied_fix(Some("InvalidAccessKeyId"), false, None, now).contains("AWS_ACCESS_KEY_ID"));
        assert!(denied_fix(Some("AccessDenied"), false, None, now).contains("s3:GetObject"));
        let region = FetchError::WrongRegion {
            url: "s3://b/k".into(),
            bucket_region: Some("eu-west-1".into()),
            configured: Some("us-east-1".into()),
        };
        assert!(region.to_string().contains("set AWS_REGION=eu-west-1"), "{region}");
    }
}
