//! Arguments and parsers both platforms' subcommands share.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use wove_deliver::args::shown_seconds;
use wove_submit::{Compression, EncodedPayload};

use super::output::Output;
use super::{Failure, SubmitExit};

/// `--output`, as every command that reports on a job takes it.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(id = "output", long = "output", short = 'o', env = "WOVE_SUBMIT_OUTPUT", value_name = "OUTPUT", value_enum,
          default_value_t = Output::Text)]
    pub format: Output,
}

/// `--api-timeout`, as both platforms' clients take it; the default is the library's.
#[derive(Debug, Args)]
pub struct ApiTimeoutArgs {
    /// Seconds each API call may take.
    #[arg(id = "api_timeout", long = "api-timeout", env = "WOVE_SUBMIT_API_TIMEOUT", value_name = "SECS", value_parser = seconds,
          default_value = shown_seconds(wove_submit::DEFAULT_API_TIMEOUT))]
    pub seconds: Duration,
}

/// `--wait`, as both platforms' `submit` take it.
#[derive(Debug, Args)]
pub struct WaitFlag {
    /// Wait for the job to end and exit with the worker's exit code.
    #[arg(id = "wait", long = "wait", env = "WOVE_SUBMIT_WAIT")]
    pub on: bool,
}

/// What both platforms' `cleanup` take besides where the jobs went.
#[derive(Debug, Args)]
pub struct CleanupStoreArgs {
    /// The store, s3://bucket[/prefix], as given to `submit`.
    #[arg(long, env = "WOVE_SUBMIT_PAYLOAD_STORE", value_name = "S3_URL")]
    pub payload_store: String,
    /// Seconds an object whose job cannot be found must be old before it is deleted (its
    /// submit may still be under way).
    #[arg(long, env = "WOVE_SUBMIT_CLEANUP_OLDER_THAN", default_value = "3600", value_name = "SECS", value_parser = seconds)]
    pub older_than: Duration,
}

/// Largest payload file read: the worker's own default bound (--max-payload-bytes), which a payload
/// store can carry; larger is refused at once.
pub const MAX_PAYLOAD_READ: u64 = 64 * 1024 * 1024;

#[derive(Debug, Args)]
#[command(next_help_heading = "Payload")]
pub struct PayloadArgs {
    #[command(flatten)]
    pub source: PayloadSourceArgs,
    /// Kubernetes: keep the payload out of the Job's environment even when it is small.
    #[arg(long, env = "WOVE_SUBMIT_SENSITIVE")]
    pub sensitive: bool,
    /// Gzip the payload: auto (only when it would not fit otherwise), never
    /// (an image running Wove's own Python worker), or always [default: auto].
    #[arg(long, env = "WOVE_SUBMIT_COMPRESSION", value_name = "WHEN", value_parser = compression)]
    pub compression: Option<Compression>,
}

/// Where a payload is read from.
#[derive(Debug, Args)]
pub struct PayloadSourceArgs {
    /// The payload: a file of JSON or base64, `-` for stdin.
    #[arg(long, env = "WOVE_BACKEND_PAYLOAD_FILE", value_name = "PATH")]
    pub payload_file: Option<PathBuf>,
    /// The payload as base64, as Wove writes it (--payload-file wins when both are given).
    #[arg(long, env = "WOVE_BACKEND_PAYLOAD", value_name = "BASE64", hide_env_values = true)]
    pub payload: Option<String>,
}

impl PayloadSourceArgs {
    /// Whether a payload was given at all.
    pub fn is_given(&self) -> bool {
        self.payload_file.is_some() || self.payload.is_some()
    }
}

/// Reporting failures outside the worker while waiting.
#[derive(Debug, Args)]
#[command(next_help_heading = "Reporting failures outside the worker")]
pub struct ReportArgs {
    /// While waiting, post a task_error to the payload's callback URL for
    /// each task the platform ends or never starts where its worker cannot
    /// report (image, missing Secret, no room, OOM killer, lost node,
    /// deadline, retries used up), signed and retried as the worker does.
    /// A task that can never run ends its job once reported.
    #[arg(long, env = "WOVE_SUBMIT_REPORT")]
    pub report: bool,
    /// With --report: seconds a job may wait for room (a pod for a node, a
    /// Batch job in RUNNABLE) before its task is reported Unschedulable.
    #[arg(long, env = "WOVE_SUBMIT_PENDING_TIMEOUT", default_value = "300", value_name = "SECS", value_parser = seconds)]
    pub pending_timeout: Duration,
    /// Stop waiting, reporting nothing more, when stdin reaches its end: a
    /// program that runs the watch in the background keeps stdin open, and
    /// the watch ends with it.
    #[arg(long, env = "WOVE_SUBMIT_STOP_ON_STDIN_EOF")]
    pub stop_on_stdin_eof: bool,
    #[command(flatten)]
    pub delivery: wove_deliver::args::DeliveryArgs,
}

impl ReportArgs {
    /// The sender of reports, when --report is on: signing secrets from
    /// `WOVE_WORKER_SIGNING_SECRET` and the secret file, as the worker reads them.
    pub fn sender(&self) -> Result<Option<wove_submit::report::Sender>, Failure> {
        if !self.report {
            return Ok(None);
        }
        let env_secret = std::env::var(wove_proto::env::SIGNING_SECRET).ok();
        let (signing, _) = self.delivery.signing(env_secret.as_deref()).map_err(refused)?;
        let policy = self.delivery.policy().map_err(refused)?;
        let sender = wove_submit::report::Sender::new(
            signing,
            policy,
            self.delivery.delivery_budget,
            self.delivery.ca_bundle.clone(),
        );
        Ok(Some(sender))
    }
}

/// A stop raised when stdin reaches its end, when `stop_on_stdin_eof`; none otherwise.
/// Needs a running runtime: a task reads stdin.
pub fn stop_on_stdin_eof(stop_on_stdin_eof: bool) -> Option<wove_submit::report::StopSignal> {
    if !stop_on_stdin_eof {
        return None;
    }
    let (handle, signal) = wove_submit::report::stop_signal();
    tokio::spawn(async move {
        stdin_closed().await;
        handle.stop();
    });
    Some(signal)
}

/// How a reported wait exits, once its outcome is printed: 74 when a
/// report was due and not delivered, 79 when the job was ended because a
/// task could never run, else as `wait` would (`finished`). A wait stopped
/// from outside (`--stop-on-stdin-eof`) prints nothing and exits 0.
pub fn reported_exit(undelivered: bool, ended_job: bool, finished: SubmitExit) -> Result<SubmitExit, Failure> {
    if undelivered {
        return Err(Failure::new(
            SubmitExit::Unreported,
            "a failure outside the worker was found, and its report could not be delivered (see above)",
        ));
    }
    Ok(if ended_job { SubmitExit::JobFailed } else { finished })
}

/// Resolves when stdin reaches its end (or cannot be read).
async fn stdin_closed() {
    use tokio::io::AsyncReadExt as _;
    let mut stdin = tokio::io::stdin();
    let mut buffer = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buffer).await {
        if n == 0 {
            break;
        }
    }
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
pub fn read_payload(args: &PayloadSourceArgs) -> Result<EncodedPayload, Failure> {
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

pub use wove_deliver::args::seconds;

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
