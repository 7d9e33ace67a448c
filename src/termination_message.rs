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
    /// Compact JSON of at most [`MAX_BYTES`], whatever the fields hold.
    ///
    /// Every field is bounded in what it may take *as written* (escapes
    /// counted), so this never loops and never grows: ids and the error kind
    /// get a fixed share each, the message whatever room is left. Should
    /// the record still not fit, the minimal one (`status`, `exit_code`,
    /// `delivered`) is written instead.
    pub fn to_json(&self) -> String {
        self.to_json_within(MAX_BYTES)
    }

    /// [`Self::to_json`] within `max` bytes. The fixed shares always fit
    /// in [`MAX_BYTES`]; a smaller `max` is how a test reaches the minimal
    /// record.
    fn to_json_within(&self, max: usize) -> String {
        let mut summary = Summary {
            status: self.status,
            exit_code: self.exit_code,
            run_id: self.run_id.as_deref().map(|s| fit(s, ID_BYTES)),
            task_id: self.task_id.as_deref().map(|s| fit(s, ID_BYTES)),
            index: self.index,
            event: self.event,
            event_id: self.event_id.as_deref().map(|s| fit(s, EVENT_ID_BYTES)),
            delivered: self.delivered,
            error_kind: self.error_kind.as_deref().map(|s| fit(s, KIND_BYTES)),
            message: None,
        };
        let without_message = serde_json::to_string(&summary).unwrap_or_default();
        if let Some(message) = &self.message {
            // `,"message":""` costs 13 bytes beside the text itself.
            let room = max.saturating_sub(without_message.len() + 13);
            summary.message = Some(fit(message, room));
        }
        match serde_json::to_string(&summary) {
            Ok(json) if json.len() <= max => json,
            _ => minimal(self),
        }
    }
}

/// Room for `run_id` and `task_id`, each, as written.
const ID_BYTES: usize = 512;
/// Room for `event_id` (the worker's own are 36 bytes).
const EVENT_ID_BYTES: usize = 128;
/// Room for `error_kind`.
const KIND_BYTES: usize = 256;
/// What ends a shortened field.
const CUT: &str = " [truncated]";

/// `text` whole if its JSON string form fits in `room` bytes (quotes
/// included); otherwise its longest prefix that fits with [`CUT`] after it.
/// One pass over the characters: nothing here can loop.
fn fit(text: &str, room: usize) -> String {
    let quoted = |body: usize| body + 2;
    let total: usize = text.chars().map(escaped_len).sum();
    if quoted(total) <= room {
        return text.to_string();
    }
    if room < quoted(CUT.len()) {
        return String::new();
    }
    let budget = room - quoted(CUT.len());
    let mut used = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        used += escaped_len(c);
        if used > budget {
            break;
        }
        end = i + c.len_utf8();
    }
    format!("{}{CUT}", &text[..end])
}

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        '\0'..='\u{1f}' => 6,
        _ => c.len_utf8(),
    }
}

/// The record that always fits: how it ended, and nothing a payload wrote.
fn minimal(summary: &Summary) -> String {
    format!(
        "{{\"status\":\"{}\",\"exit_code\":{},\"delivered\":{}}}",
        summary.status.as_str(),
        summary.exit_code,
        summary.delivered
    )
}

/// What became of a termination message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The file holds the record.
    Yes,
    /// No file to write: not on Kubernetes, or the pod asked for none. Not worth a log line.
    NoFile,
    /// The file is there but could not be written; logged.
    Failed,
}

/// Write `summary` to `path` if that file exists; never fails the worker.
pub fn write(path: Option<&Path>, summary: &Summary) -> Written {
    let Some(path) = path else { return Written::NoFile };
    // A message may quote what it was given; nothing secret leaves in it.
    let mut summary = summary.clone();
    summary.message = summary.message.map(|m| crate::redact::scrub(&m).into_owned());
    let file = std::fs::OpenOptions::new().write(true).truncate(true).create(false).open(path);
    match file {
        Ok(mut f) => match f.write_all(summary.to_json().as_bytes()) {
            Ok(()) => Written::Yes,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the termination message");
                Written::Failed
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Written::NoFile,
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no termination message written");
            Written::Failed
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Any text, weighted towards what costs most as JSON: control
    /// characters (6 bytes each), quotes, and multi-byte characters.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,64}",
            proptest::collection::vec(
                prop_oneof![Just('\u{1}'), Just('"'), Just('é'), Just('𝄞'), any::<char>()],
                0..6_000
            )
            .prop_map(|cs| cs.into_iter().collect()),
        ]
    }

    fn summary() -> impl Strategy<Value = Summary> {
        let status = prop_oneof![Just(wove_proto::Status::Failed), Just(wove_proto::Status::Undelivered)];
        (
            status,
            any::<u8>(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::option::of(any::<usize>()),
            proptest::option::of(text()),
            any::<bool>(),
            proptest::option::of(text()),
            proptest::option::of(text()),
        )
            .prop_map(
                |(status, exit_code, run_id, task_id, index, event_id, delivered, error_kind, message)| Summary {
                    status,
                    exit_code,
                    run_id,
                    task_id,
                    index,
                    event: Some("task_error"),
                    event_id,
                    delivered,
                    error_kind,
                    message,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_summary_fits_and_says_how_it_ended(summary in summary()) {
            let json = summary.to_json();
            prop_assert!(json.len() <= MAX_BYTES, "{} bytes", json.len());
            let back: serde_json::Value = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back["status"], summary.status.as_str());
            prop_assert_eq!(&back["exit_code"], summary.exit_code);
            prop_assert_eq!(&back["delivered"], summary.delivered);
            // What fits whole is kept whole.
            if let (Some(id), Some(kept)) = (&summary.task_id, back["task_id"].as_str()) {
                prop_assert!(kept == id || kept.ends_with(CUT));
            }
        }

        #[test]
        fn fit_never_passes_its_room(text in text(), room in 0usize..5000) {
            let cut = fit(&text, room);
            let written = serde_json::to_string(&cut).unwrap();
            prop_assert!(written.len() <= room.max(2), "{} > {room}", written.len());
            prop_assert!(cut == text || cut.is_empty() || cut.ends_with(CUT));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(run_id: &str, message: &str) -> Summary {
        Summary {
            status: wove_proto::Status::Failed,
            exit_code: 3,
            run_id: Some(run_id.into()),
            task_id: None,
            index: None,
            event: Some("task_error"),
            event_id: None,
            delivered: false,
            error_kind: None,
            message: Some(message.into()),
        }
    }

    #[test]
    fn fit_keeps_what_fits_exactly_and_cuts_one_byte_less() {
        // "abc" is 5 bytes quoted.
        assert_eq!(fit("abc", 5), "abc");
        assert_eq!(fit("abc", 4), "", "too small even for the cut marker");
        let long = "a".repeat(100);
        // 20 bytes: the quotes and " [truncated]" take 14, leaving 6 characters.
        assert_eq!(fit(&long, 20), format!("{}{CUT}", "a".repeat(6)));
        assert_eq!(fit(&long, 21), format!("{}{CUT}", "a".repeat(7)));
        // Exactly the marker's room: the marker alone; a byte less: nothing.
        assert_eq!(fit(&long, CUT.len() + 2), CUT);
        assert_eq!(fit(&long, CUT.len() + 1), "");
        // Escapes count as written: a newline is two bytes.
        assert_eq!(fit(&"\n".repeat(10), 20), format!("{}{CUT}", "\n".repeat(3)));
        for room in 0..40 {
            let cut = fit(&long, room);
            assert!(serde_json::to_string(&cut).unwrap().len() <= room.max(2), "room {room}: {cut:?}");
        }
    }

    #[test]
    fn a_record_that_cannot_fit_becomes_the_minimal_one() {
        let summary = failed(&"r".repeat(400), "boom");
        assert_eq!(summary.to_json_within(4096).len(), serde_json::to_string(&summary).unwrap().len());
        let minimal = summary.to_json_within(100);
        assert_eq!(minimal, r#"{"status":"failed","exit_code":3,"delivered":false}"#);
        let parsed: serde_json::Value = serde_json::from_str(&minimal).unwrap();
        assert_eq!(parsed["exit_code"], 3);
    }

    #[test]
    fn the_message_takes_the_room_left_and_no_more() {
        let summary = failed("r", &"m".repeat(10_000));
        for max in [200, 1000, 4096] {
            let json = summary.to_json_within(max);
            assert!(json.len() <= max && json.len() > max - 16, "{max}: {}", json.len());
            assert!(json.contains(CUT), "{json}");
        }
    }

    #[test]
    fn huge_ids_and_kinds_still_fit_with_the_outcome() {
        let summary = Summary {
            status: wove_proto::Status::Failed,
            exit_code: 3,
            run_id: Some("r".repeat(6000)),
            task_id: Some("t".repeat(5000)),
            index: None,
            event: Some("task_error"),
            event_id: Some("e".repeat(3000)),
            delivered: true,
            error_kind: Some("\u{1}".repeat(10_000)),
            message: Some("m".repeat(10_000)),
        };
        let json = summary.to_json();
        assert!(json.len() <= MAX_BYTES, "{}", json.len());
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["exit_code"], 3);
        assert!(back["task_id"].as_str().unwrap().ends_with(CUT));
        assert!(back["message"].as_str().unwrap().ends_with(CUT));
    }

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
        assert_eq!(write(Some(&path), &summary), Written::NoFile);
        assert!(!path.exists());
        assert_eq!(write(None, &summary), Written::NoFile);
        std::fs::write(&path, "old content that is longer").unwrap();
        assert_eq!(write(Some(&path), &summary), Written::Yes);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), summary.to_json());
        // A directory where the file should be: there, but not writable as one.
        assert_eq!(write(Some(dir.path()), &summary), Written::Failed);
    }
}
