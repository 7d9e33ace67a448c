//! Arguments and parsers both platforms' subcommands share.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wove_submit::{Compression, EncodedPayload};

use super::{Failure, SubmitExit};

/// Largest payload file read: far above what a job can carry, small enough to refuse at once.
const MAX_PAYLOAD_READ: u64 = 16 * 1024 * 1024;

#[derive(Debug, Args)]
#[command(next_help_heading = "Payload")]
pub struct PayloadArgs {
    /// The payload: a file of JSON or base64, `-` for stdin.
    #[arg(long, env = "WOVE_BACKEND_PAYLOAD_FILE", value_name = "PATH")]
    pub payload_file: Option<PathBuf>,
    /// The payload as base64, as Wove writes it (--payload-file wins when both are given).
    #[arg(long, env = "WOVE_BACKEND_PAYLOAD", value_name = "BASE64", hide_env_values = true)]
    pub payload: Option<String>,
    /// Kubernetes: keep the payload out of the Job's environment even when it is small.
    #[arg(long, env = "WOVE_SUBMIT_SENSITIVE")]
    pub sensitive: bool,
    /// Gzip the payload: auto (only when it would not fit otherwise), never
    /// (an image running Wove's own Python worker), or always [default: auto].
    #[arg(long, env = "WOVE_SUBMIT_COMPRESSION", value_name = "WHEN", value_parser = compression)]
    pub compression: Option<Compression>,
}

fn compression(text: &str) -> Result<Compression, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| format!("`{text}` is not auto, never or always"))
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Waiting")]
pub struct WaitingArgs {
    /// Seconds to wait for the Job to end.
    #[arg(long, env = "WOVE_SUBMIT_TIMEOUT", default_value = "3600", value_name = "SECS", value_parser = seconds)]
    pub timeout: Duration,
    /// Seconds between two looks at the job (Batch), or (Kubernetes, which
    /// watches) between two looks while following logs and after a watch failed.
    #[arg(long, env = "WOVE_SUBMIT_POLL", default_value = "2", value_name = "SECS", value_parser = seconds)]
    pub poll: Duration,
}

/// Run a subcommand that talks to a platform.
pub fn block_on(future: impl std::future::Future<Output = Result<SubmitExit, Failure>>) -> Result<SubmitExit, Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(SubmitExit::Api, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(future)
}

/// Refused before anything was sent.
pub fn refused(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Failure {
    Failure::new(SubmitExit::Refused, error)
}

/// Read and validate the payload, carried as given.
pub fn read_payload(args: &PayloadArgs) -> Result<EncodedPayload, Failure> {
    let text = match (&args.payload_file, &args.payload) {
        (Some(path), _) => {
            let mut bytes = Vec::new();
            let read = if path.as_os_str() == "-" {
                std::io::stdin().take(MAX_PAYLOAD_READ + 1).read_to_end(&mut bytes)
            } else {
                std::fs::File::open(path).and_then(|f| f.take(MAX_PAYLOAD_READ + 1).read_to_end(&mut bytes))
            };
            read.map_err(|e| refused(format!("cannot read the payload file {}: {e}", path.display())))?;
            if bytes.len() as u64 > MAX_PAYLOAD_READ {
                return Err(refused(format!("the payload file is larger than {MAX_PAYLOAD_READ} bytes")));
            }
            if wove_proto::gzip::is_gzip(&bytes) {
                // Compressed JSON travels as it is, in base64.
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode(&bytes)
            } else {
                String::from_utf8(bytes).map_err(|_| refused("the payload file is neither UTF-8 text nor gzip"))?
            }
        }
        (None, Some(text)) => text.clone(),
        (None, None) => {
            return Err(refused("no payload: give --payload-file, --payload or WOVE_BACKEND_PAYLOAD"));
        }
    };
    EncodedPayload::from_text(&text).map_err(refused)
}

/// Override `field` when a flag was given.
pub fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

/// A positive number of seconds.
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !value.is_finite() || value <= 0.0 || value > 1e9 {
        return Err(format!("`{text}` must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(value))
}

/// `KEY=VALUE`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not KEY=VALUE")),
    }
}

/// One JSON value of a type.
pub fn json_one<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("not valid JSON for this field: {e}"))
}

/// A JSON value, or a JSON array of them.
pub fn json_list<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    if text.trim_start().starts_with('[') {
        json_one(text)
    } else {
        json_one(text).map(|one| vec![one])
    }
}
