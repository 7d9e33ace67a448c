//! Fetching a payload by reference (`WOVE_BACKEND_PAYLOAD_URL`): from S3 with
//! the job's own identity, or from an https URL such as a presigned one.
//!
//! The order is what makes it safe: the size bound is enforced while the
//! body is read (and before, from Content-Length), and the SHA-256 is checked
//! before a byte is decoded, so an altered object never runs and a huge one
//! never fills memory. Transient failures are retried with backoff until the
//! read timeout; what no retry fixes ends at once with the fix in the message.
//!
//! - [`reference`]: the reference, parsed and checked as configuration.
//! - [`body`]: the bounded, hashed body.
//! - [`http`] and [`s3`]: one attempt each.
//! - [`error`]: why it failed, and the exit code that says so.

pub mod body;
pub mod error;
pub mod http;
pub mod reference;
#[cfg(feature = "s3")]
pub mod s3;
mod s3_error;

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use wove_deliver::retry::Backoff;

pub use error::FetchError;
pub use reference::{Location, PayloadRef, RefError};

/// Whether this build reads `s3://` references.
pub const HAS_S3: bool = cfg!(feature = "s3");

/// The first retry waits about this long; each further one twice as long.
const BACKOFF: Backoff = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(10) };
/// Longest silence while an https body arrives.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much may be fetched, for how long, trusting what.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes of the object.
    pub max_bytes: u64,
    /// All attempts and waits together.
    pub budget: Duration,
    /// Extra CAs to trust.
    pub ca_bundle: Option<PathBuf>,
}

/// Fetch the object `reference` names and check it. The caller races this
/// against cancellation.
pub async fn fetch(reference: &PayloadRef, limits: &Limits) -> Result<Vec<u8>, FetchError> {
    let started = Instant::now();
    let source = Source::open(reference, limits)?;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let remaining = limits.budget.saturating_sub(started.elapsed());
        let outcome = match tokio::time::timeout(remaining, source.attempt(reference, limits.max_bytes)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                Err(FetchError::Transient { detail: "the attempt did not finish in time".into(), retry_after: None })
            }
        };
        let (detail, retry_after) = match outcome {
            Ok(bytes) => return Ok(bytes),
            Err(FetchError::Transient { detail, retry_after }) => (detail, retry_after),
            Err(permanent) => return Err(permanent),
        };
        let remaining = limits.budget.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(FetchError::Unreachable {
                url: reference.shown(),
                attempts,
                after: started.elapsed(),
                last: detail,
            });
        }
        let wait = wove_deliver::retry::next_delay(retry_after, &BACKOFF, attempts, remaining);
        tracing::warn!(url = %reference.shown(), attempt = attempts, error = %crate::redact::scrub(&detail), retry_in_ms = wait.as_millis() as u64, "payload fetch failed; retrying");
        tokio::time::sleep(wait).await;
    }
}

/// What an attempt goes through: one client for the whole fetch.
enum Source {
    Http(reqwest::Client, url::Url),
    #[cfg(feature = "s3")]
    S3(s3::Bucket, String),
}

impl Source {
    fn open(reference: &PayloadRef, limits: &Limits) -> Result<Self, FetchError> {
        match reference.location() {
            Location::Http(url) => {
                let refused = |detail: String| FetchError::Refused { url: reference.shown(), detail };
                let allow_http = reference.allow_http();
                // Redirects only to https (or http when allowed): the digest guards the bytes,
                // the scheme guards the URL's credentials.
                let policy = reqwest::redirect::Policy::custom(move |attempt| {
                    let scheme = attempt.url().scheme().to_string();
                    if scheme != "https" && !(allow_http && scheme == "http") {
                        attempt.error(format!("a redirect to {scheme} (not https) was refused"))
                    } else if attempt.previous().len() > 5 {
                        attempt.error("more than 5 redirects")
                    } else {
                        attempt.follow()
                    }
                });
                let client = wove_deliver::client::builder(limits.ca_bundle.as_deref(), crate::report::USER_AGENT)
                    .map_err(|e| refused(e.to_string()))?
                    .redirect(policy)
                    .https_only(!allow_http)
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(IDLE_TIMEOUT)
                    .build()
                    .map_err(|e| refused(wove_proto::error_chain(&e.without_url())))?;
                Ok(Self::Http(client, url.clone()))
            }
            #[cfg(feature = "s3")]
            Location::S3 { bucket, key } => {
                Ok(Self::S3(s3::Bucket::open(bucket, limits.ca_bundle.clone())?, key.to_string()))
            }
            #[cfg(not(feature = "s3"))]
            Location::S3 { .. } => Err(FetchError::Refused {
                url: reference.shown(),
                detail: "this build of wove-worker has no S3 client (feature `s3`)".into(),
            }),
        }
    }

    async fn attempt(&self, reference: &PayloadRef, limit: u64) -> Result<Vec<u8>, FetchError> {
        match self {
            Self::Http(client, url) => http::attempt(client, url, reference, limit).await,
            #[cfg(feature = "s3")]
            Self::S3(bucket, key) => bucket.attempt(key, reference, limit).await,
        }
    }
}
