//! Getting a module's bytes: a file in the image, inline base64, or an
//! https download checked against its SHA-256 before anything runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Where the bytes are once fetched.
#[derive(Debug)]
pub enum Fetched {
    /// A file in the image (may be a `.cwasm`).
    File(PathBuf),
    /// Bytes from the payload or a download (never trusted as `.cwasm`).
    Bytes(Vec<u8>),
}

/// Why a module could not be had. Each is the task's error `kind`.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The client could not be made (the CA bundle, TLS).
    #[error("cannot download the module")]
    Client(#[from] wove_deliver::client::ClientError),
    /// The download failed: the connection, TLS, a refused redirect, a timeout.
    #[error("cannot download the module")]
    Download(#[source] reqwest::Error),
    /// The server answered with another status than success.
    #[error("cannot download the module: HTTP {0}")]
    Status(u16),
    /// The download is larger than allowed.
    #[error("the module is larger than {0} bytes")]
    TooLarge(u64),
    /// The bytes do not match the payload's digest.
    #[error("the module's SHA-256 is {actual}, not the {expected} the task names; refusing to run it")]
    DigestMismatch {
        /// What the payload said.
        expected: String,
        /// What arrived.
        actual: String,
    },
}

impl SourceError {
    /// The `kind` reported in the task's error.
    pub fn kind(&self) -> wove_proto::ErrorKind {
        use wove_proto::ErrorKind;
        match self {
            Self::Client(_) | Self::Download(_) | Self::Status(_) => ErrorKind::ModuleUnavailable,
            Self::TooLarge(_) => ErrorKind::ModuleTooLarge,
            Self::DigestMismatch { .. } => ErrorKind::DigestMismatch,
        }
    }
}

/// Longest wait for a connection to the module's server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while the module's bytes arrive: a server that accepts and
/// never answers, or stops half-way, fails here rather than at the deadline.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most redirects followed, each to another https URL.
const MAX_REDIRECTS: usize = 5;

/// Download `url`, at most `max_bytes`, within `timeout` as a whole, and
/// check it against `sha256` (hex). Redirects are followed only to https:
/// the digest guards the bytes, and https guards who sees that they were
/// asked for. The caller races this against cancellation.
pub async fn download(
    url: &str,
    sha256: &str,
    max_bytes: u64,
    ca_bundle: Option<&Path>,
    timeout: Duration,
) -> Result<Vec<u8>, SourceError> {
    let https_only = reqwest::redirect::Policy::custom(|attempt| {
        let scheme = attempt.url().scheme().to_string();
        if scheme != "https" {
            attempt.error(format!("a redirect to {scheme} (not https) was refused"))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    });
    let client = wove_deliver::client::builder(ca_bundle, crate::report::USER_AGENT)?
        .redirect(https_only)
        .https_only(true)
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(IDLE_TIMEOUT)
        .timeout(timeout)
        .build()
        .map_err(|e| SourceError::Download(e.without_url()))?;
    // Without the URL: a presigned one is a credential, and the task knows which it gave.
    let fail = |e: reqwest::Error| SourceError::Download(e.without_url());
    let mut response = client.get(url).send().await.map_err(fail)?;
    if !response.status().is_success() {
        return Err(SourceError::Status(response.status().as_u16()));
    }
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(SourceError::TooLarge(max_bytes));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(fail)? {
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Err(SourceError::TooLarge(max_bytes));
        }
        bytes.extend_from_slice(&chunk);
    }
    let actual = hex::encode(Sha256::digest(&bytes));
    if !actual.eq_ignore_ascii_case(sha256) {
        return Err(SourceError::DigestMismatch { expected: sha256.to_ascii_lowercase(), actual });
    }
    Ok(bytes)
}
