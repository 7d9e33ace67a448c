//! The termination message: the record that remains when the callback cannot be reached.
//!
//! Kubernetes shows the file at `terminationMessagePath` (default
//! `/dev/termination-log`) in the pod's status, up to 4096 bytes. The worker
//! writes one compact JSON object there on every outcome, but only if the
//! file exists: Kubernetes creates it, and on a laptop there is nothing to write to.

use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

/// Kubernetes keeps at most this many bytes per container.
pub const MAX_BYTES: usize = 4096;

/// What the record says.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// How the run ended (`wove_proto::Status`: `succeeded`, `failed`,
    /// `cancelled`, `undelivered`, `bad_payload`, `bad_config`, `internal`).
    pub status: wove_proto::Status,
    /// The worker's exit code.
    pub exit_code: u8,
    /// Wove's run id, when the payload was readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The task's id, once this process's task was known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Its index in a many-task payload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The final event's type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'static str>,
    /// The final event's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// Whether the receiver accepted the final event.
    pub delivered: bool,
    /// The task's error kind, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// A message: the task's error, or why delivery or decoding failed. Shortened to fit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Summary {
    /// Compact JSON of at most [`MAX_BYTES`], shortening the message if needed.
    pub fn to_json(&self) -> String {
        let mut summary = self.clone();
        loop {
            let json = serde_json::to_string(&summary).unwrap_or_default();
            if json.len() <= MAX_BYTES {
                return json;
            }
            let Some(message) = summary.message.as_mut() else { return json };
            let excess = json.len() - MAX_BYTES;
            let mut keep = message.len().saturating_sub(excess + 16);
            while !message.is_char_boundary(keep) {
                keep -= 1;
            }
            message.truncate(keep);
            message.push_str(" [truncated]");
        }
    }
}

/// Write `summary` to `path` if that file exists; never fails the worker.
pub fn write(path: Option<&Path>, summary: &Summary) {
    let Some(path) = path else { return };
    // A message may quote what it was given; nothing secret leaves in it.
    let mut summary = summary.clone();
    summary.message = summary.message.map(|m| crate::redact::scrub(&m).into_owned());
    let file = std::fs::OpenOptions::new().write(true).truncate(true).create(false).open(path);
    match file {
        Ok(mut f) => {
            if let Err(e) = f.write_all(summary.to_json().as_bytes()) {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the termination message");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::debug!(path = %path.display(), error = %e, "no termination message written"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_to_fit() {
        let summary = Summary {
            status: wove_proto::Status::Failed,
            exit_code: 3,
            run_id: Some("r".into()),
            task_id: Some("t".into()),
            index: Some(2),
            event: Some("task_error"),
            event_id: Some("evt_1".into()),
            delivered: false,
            error_kind: Some("ValueError".into()),
            message: Some("é".repeat(5000)),
        };
        let json = summary.to_json();
        assert!(json.len() <= MAX_BYTES, "{}", json.len());
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(back["message"].as_str().unwrap().ends_with("[truncated]"));
        assert_eq!(back["exit_code"], 3);
    }

    #[test]
    fn a_missing_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        let summary = Summary {
            status: wove_proto::Status::Succeeded,
            exit_code: 0,
            run_id: None,
            task_id: None,
            index: None,
            event: None,
            event_id: None,
            delivered: true,
            error_kind: None,
            message: None,
        };
        write(Some(&path), &summary);
        assert!(!path.exists());
        std::fs::write(&path, "old content that is longer").unwrap();
        write(Some(&path), &summary);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), summary.to_json());
    }
}
