//! Reading the payload from wherever the platform put it, within its size
//! limit, and making its callback token known to the scrubber before any
//! message about it can be printed.

use std::io::Read as _;
use std::path::PathBuf;

use wove_proto::{Payload, PayloadError};

use crate::config::PayloadSource;

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
/// a file whose bytes alone are more than that, before reading it all).
pub fn read(source: &PayloadSource, max_bytes: usize) -> Result<Payload, PayloadReadError> {
    let decode = |origin: String, bytes: &[u8], base64_only: bool| {
        if let Some(url) = Payload::sniff_callback_url(bytes) {
            crate::redact::register_callback_url(&url);
        }
        let text = std::str::from_utf8(bytes);
        let decoded = match (base64_only, text) {
            (true, Ok(text)) => Payload::from_base64_within(text, max_bytes),
            _ => Payload::from_bytes_within(bytes, max_bytes),
        };
        decoded.map_err(|source| PayloadReadError::Decode { origin, source })
    };
    match source {
        PayloadSource::Missing => Err(PayloadReadError::Missing),
        PayloadSource::Env(text) => decode(wove_proto::env::PAYLOAD.into(), text.as_bytes(), true),
        PayloadSource::Argument(text) => decode("payload argument".into(), text.as_bytes(), true),
        PayloadSource::File(path) => {
            let file_err = |source| PayloadReadError::File { path: path.clone(), source };
            let file = std::fs::File::open(path).map_err(file_err)?;
            // Base64 of the largest payload is a third longer than it.
            let cap = (max_bytes as u64).saturating_mul(4) / 3 + 4;
            let mut bytes = Vec::new();
            file.take(cap + 1).read_to_end(&mut bytes).map_err(file_err)?;
            let origin = format!("payload file {}", path.display());
            if bytes.len() as u64 > cap {
                return Err(PayloadReadError::Decode { origin, source: PayloadError::TooLarge { limit: max_bytes } });
            }
            decode(origin, &bytes, false)
        }
    }
}
