//! Reading the payload from wherever the platform put it.

use std::io::Read as _;
use std::path::PathBuf;

use wove_proto::{Payload, PayloadError};

use crate::config::PayloadSource;

/// Largest payload file we read: the largest payload.
pub const MAX_PAYLOAD_FILE: u64 = wove_proto::payload::MAX_PAYLOAD_BYTES as u64;

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
    /// The file is larger than [`MAX_PAYLOAD_FILE`].
    #[error("payload file {path} is larger than {MAX_PAYLOAD_FILE} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
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

/// Read and decode the payload.
pub fn read(source: &PayloadSource) -> Result<Payload, PayloadReadError> {
    let decode = |origin: String, r: Result<Payload, PayloadError>| {
        r.map_err(|source| PayloadReadError::Decode { origin, source })
    };
    match source {
        PayloadSource::Missing => Err(PayloadReadError::Missing),
        PayloadSource::Env(text) => decode(wove_proto::env::PAYLOAD.into(), Payload::from_base64(text)),
        PayloadSource::Argument(text) => decode("payload argument".into(), Payload::from_base64(text)),
        PayloadSource::File(path) => {
            let file_err = |source| PayloadReadError::File { path: path.clone(), source };
            let file = std::fs::File::open(path).map_err(file_err)?;
            let mut bytes = Vec::new();
            file.take(MAX_PAYLOAD_FILE + 1).read_to_end(&mut bytes).map_err(file_err)?;
            if bytes.len() as u64 > MAX_PAYLOAD_FILE {
                return Err(PayloadReadError::TooLarge { path: path.clone() });
            }
            decode(format!("payload file {}", path.display()), Payload::from_bytes(&bytes))
        }
    }
}
