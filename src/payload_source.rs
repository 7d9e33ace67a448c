//! Reading the payload from wherever the platform put it, within its size
//! limit and its time limit, and making its callback token known to the
//! scrubber before any message about it can be printed.
//!
//! A file is read on a thread of its own: a FIFO with no writer, or a
//! network filesystem that stalls, must not hold up the worker's answer to
//! SIGTERM, and nothing can interrupt a blocking `open` or `read` but the
//! process's exit.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use wove_proto::{Form, Payload, PayloadError};

use crate::config::PayloadSource;
use crate::signals::Signals;

/// Why no payload could be had.
#[derive(Debug, thiserror::Error)]
pub enum PayloadReadError {
    /// No source was given.
    #[error("no payload: set WOVE_BACKEND_PAYLOAD, pass it as the first argument, or use --payload-file")]
    Missing,
    /// The file could not be read.
    #[error("cannot read payload file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file gave no complete payload in time.
    #[error("reading payload file {path} timed out after {}s (--read-timeout)", .after.as_secs_f64())]
    Timeout {
        /// The file.
        path: PathBuf,
        /// The limit.
        after: Duration,
    },
    /// A cancelling signal came while the payload was being read.
    #[error("{0} arrived before the payload was read")]
    Cancelled(Signal),
    /// The payload's URL gave no payload, or not the one it names.
    #[error("cannot fetch the payload")]
    Fetch(#[source] crate::payload_fetch::FetchError),
    /// The text does not decode.
    #[error("cannot decode the payload from {origin}")]
    Decode {
        /// Which source the text came from.
        origin: String,
        /// What is wrong with it.
        #[source]
        source: PayloadError,
    },
}

/// Read and decode the payload, refusing more than `max_bytes` of JSON (and
/// a file or object whose bytes alone are more than that, before reading it
/// all), and giving up on a file or a URL after `timeout` or when `signals` cancel.
pub async fn read(
    source: &PayloadSource,
    max_bytes: usize,
    timeout: Duration,
    ca_bundle: Option<&Path>,
    signals: &Signals,
) -> Result<Payload, PayloadReadError> {
    match source {
        PayloadSource::Url(reference) => {
            let limits = crate::payload_fetch::Limits {
                max_bytes: file_cap(max_bytes),
                budget: timeout,
                ca_bundle: ca_bundle.map(Path::to_path_buf),
            };
            let started = std::time::Instant::now();
            let bytes = tokio::select! {
                fetched = crate::payload_fetch::fetch(reference, &limits) => fetched.map_err(PayloadReadError::Fetch)?,
                sig = signals.wait_cancelled() => return Err(PayloadReadError::Cancelled(sig)),
            };
            tracing::info!(url = %reference.shown(), bytes = bytes.len(), ms = started.elapsed().as_millis() as u64, "payload fetched; its SHA-256 matches");
            decode(format!("payload object {}", reference.shown()), &bytes, Form::Any, max_bytes)
        }
        PayloadSource::Missing => Err(PayloadReadError::Missing),
        PayloadSource::Env(text) => decode(wove_proto::env::PAYLOAD.into(), text.as_bytes(), Form::Base64, max_bytes),
        PayloadSource::Argument(text) => decode("payload argument".into(), text.as_bytes(), Form::Base64, max_bytes),
        PayloadSource::File(path) => {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let (owned, cap) = (path.clone(), file_cap(max_bytes));
            // Detached on purpose (the handle is dropped): if the read never
            // returns, the process's exit ends it.
            std::thread::Builder::new()
                .name("payload-read".into())
                .spawn(move || {
                    let _ = tx.send(read_capped(&owned, cap));
                })
                .map_err(|source| PayloadReadError::File { path: path.clone(), source })?;
            let bytes = tokio::select! {
                read = rx => read.unwrap_or_else(|_| Err(std::io::Error::other("the reading thread died")))
                    .map_err(|source| PayloadReadError::File { path: path.clone(), source })?,
                sig = signals.wait_cancelled() => return Err(PayloadReadError::Cancelled(sig)),
                _ = tokio::time::sleep(timeout) => {
                    return Err(PayloadReadError::Timeout { path: path.clone(), after: timeout })
                }
            };
            let origin = format!("payload file {}", path.display());
            if bytes.len() as u64 > cap {
                return Err(PayloadReadError::Decode { origin, source: PayloadError::TooLarge { limit: max_bytes } });
            }
            decode(origin, &bytes, Form::Any, max_bytes)
        }
    }
}

/// The most bytes a file holding `max_bytes` of JSON can need: base64 is a
/// third longer than what it holds.
fn file_cap(max_bytes: usize) -> u64 {
    (max_bytes as u64).saturating_mul(4) / 3 + 4
}

/// At most `cap + 1` bytes of `path` (one more than allowed shows it is too large).
fn read_capped(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(cap + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn decode(origin: String, bytes: &[u8], form: Form, max_bytes: usize) -> Result<Payload, PayloadReadError> {
    Payload::decode_within(bytes, max_bytes, form, &mut crate::redact::register_callback_url)
        .map_err(|source| PayloadReadError::Decode { origin, source })
}
