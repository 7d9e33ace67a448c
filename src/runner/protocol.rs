//! The runner protocol, version 1: what a runner executable writes on its
//! report channel (file descriptor 3), one JSON object per line.
//!
//! ```text
//! {"result": <any JSON>}                       the task's result
//! {"error": {"kind": "...", "message": "...",  the task failed; kind and message required,
//!            "retryable": false, "traceback": "...", "details": {...}}}   the rest optional
//! {"heartbeat": true}                          still working: the worker sends a heartbeat now
//! {"progress": <any JSON>}                     a heartbeat carrying this progress value
//! ```
//!
//! The first `result` or `error` is the outcome; anything final after it is
//! ignored (and logged). A line that is not one of these is logged and
//! skipped: a runner's bug must not cost the task its outcome. The reader
//! is bounded: no line may exceed [`MAX_LINE`].

use serde_json::{Map, Value};

/// The protocol version this worker speaks (`WOVE_RUNNER_PROTOCOL`).
pub const VERSION: u32 = 1;
/// The file descriptor the report channel is on in the runner.
pub const REPORT_FD: i32 = 3;
/// Longest line accepted on the report channel (a result included).
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// One message from the runner.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The task's result.
    Result(Value),
    /// The task failed, as the runner describes it.
    Error(RunnerError),
    /// Still working.
    Heartbeat,
    /// Still working, this far.
    Progress(Value),
}

/// A structured error written by a runner.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerError {
    /// What kind of failure, in the runner's words (`FileNotFound`, …).
    pub kind: String,
    /// One human-readable line or paragraph.
    pub message: String,
    /// Whether running the task again might succeed.
    pub retryable: bool,
    /// A traceback or log tail, if the runner has one.
    pub traceback: Option<String>,
    /// Anything else the runner wants the weave to see.
    pub details: Map<String, Value>,
}

/// Why a line was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not JSON, or not an object.
    #[error("not a JSON object")]
    NotAnObject,
    /// An object, but not one of the protocol's messages.
    #[error("not a runner message: expected exactly one of `result`, `error`, `heartbeat`, `progress`")]
    Unknown,
    /// An `error` without its `kind` or `message`, or with fields of the wrong type.
    #[error(
        "`error` needs string `kind` and `message`; optional bool `retryable`, string `traceback`, object `details`"
    )]
    BadError,
    /// Longer than [`MAX_LINE`].
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
}

/// Read one line of the report channel.
pub fn parse_line(line: &[u8]) -> Result<Message, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong);
    }
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(line) else {
        return Err(LineError::NotAnObject);
    };
    if object.len() != 1 {
        return Err(LineError::Unknown);
    }
    let (key, value) = object.iter_mut().next().map(|(k, v)| (k.clone(), v.take())).ok_or(LineError::Unknown)?;
    match key.as_str() {
        "result" => Ok(Message::Result(value)),
        "heartbeat" => Ok(Message::Heartbeat),
        "progress" => Ok(Message::Progress(value)),
        "error" => parse_error(value).map(Message::Error),
        _ => Err(LineError::Unknown),
    }
}

fn parse_error(value: Value) -> Result<RunnerError, LineError> {
    let Value::Object(mut e) = value else { return Err(LineError::BadError) };
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => Ok(s),
        _ => Err(LineError::BadError),
    };
    let kind = text(e.remove("kind"))?;
    let message = text(e.remove("message"))?;
    if kind.is_empty() {
        return Err(LineError::BadError);
    }
    let retryable = match e.remove("retryable") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(LineError::BadError),
    };
    let traceback = match e.remove("traceback") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(LineError::BadError),
    };
    let details = match e.remove("details") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(d)) => d,
        Some(_) => return Err(LineError::BadError),
    };
    Ok(RunnerError { kind, message, retryable, traceback, details })
}

/// The outcome a runner reported, read from its whole report channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reported {
    /// The first `result` or `error`.
    pub outcome: Option<Message>,
    /// Lines that were skipped, and why (for the log).
    pub problems: Vec<String>,
}

/// Splits the report channel into lines as bytes arrive, bounded, and keeps
/// the outcome; heartbeats and progress are handed back as they come.
#[derive(Debug, Default)]
pub struct ReportReader {
    pending: Vec<u8>,
    overflowed: bool,
    reported: Reported,
}

impl ReportReader {
    /// Take `bytes` read from the channel; return the heartbeats and progress
    /// messages among the lines they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Message> {
        let mut live = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            if !self.overflowed {
                self.pending.extend_from_slice(head);
            }
            let line = std::mem::take(&mut self.pending);
            let overflowed = std::mem::replace(&mut self.overflowed, false);
            if overflowed {
                self.note(LineError::TooLong.to_string());
            } else if let Some(m) = self.line(&line) {
                live.push(m);
            }
            rest = &tail[1..];
        }
        if !self.overflowed {
            if self.pending.len() + rest.len() > MAX_LINE {
                self.pending = Vec::new();
                self.overflowed = true;
            } else {
                self.pending.extend_from_slice(rest);
            }
        }
        live
    }

    /// The channel closed: a last line without a newline still counts.
    pub fn finish(mut self) -> Reported {
        if self.overflowed {
            self.note(LineError::TooLong.to_string());
        } else if !self.pending.iter().all(u8::is_ascii_whitespace) {
            let line = std::mem::take(&mut self.pending);
            self.line(&line);
        }
        self.reported
    }

    fn line(&mut self, line: &[u8]) -> Option<Message> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        match parse_line(line) {
            Err(e) => {
                self.note(e.to_string());
                None
            }
            Ok(m @ (Message::Heartbeat | Message::Progress(_))) => Some(m),
            Ok(final_message) if self.reported.outcome.is_none() => {
                self.reported.outcome = Some(final_message);
                None
            }
            Ok(_) => {
                self.note("a second result or error; the first one stands".into());
                None
            }
        }
    }

    fn note(&mut self, problem: String) {
        // Bounded like everything else a runner controls.
        if self.reported.problems.len() < 16 {
            self.reported.problems.push(problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_message_reads() {
        assert_eq!(parse_line(br#"{"result": {"n": 1}}"#), Ok(Message::Result(json!({"n": 1}))));
        assert_eq!(parse_line(br#"{"result": null}"#), Ok(Message::Result(Value::Null)));
        assert_eq!(parse_line(br#"{"heartbeat": true}"#), Ok(Message::Heartbeat));
        assert_eq!(parse_line(br#"{"progress": 0.5}"#), Ok(Message::Progress(json!(0.5))));
        let Ok(Message::Error(e)) = parse_line(
            br#"{"error": {"kind": "FileNotFound", "message": "no /x", "retryable": true, "details": {"path": "/x"}}}"#,
        ) else {
            panic!()
        };
        assert_eq!((e.kind.as_str(), e.message.as_str(), e.retryable), ("FileNotFound", "no /x", true));
        assert_eq!(e.details["path"], "/x");
    }

    #[test]
    fn malformed_lines_are_refused_with_a_reason() {
        for (line, expected) in [
            (&b"plain text"[..], LineError::NotAnObject),
            (b"[1]", LineError::NotAnObject),
            (br#"{"result": 1, "error": {}}"#, LineError::Unknown),
            (br#"{"resutl": 1}"#, LineError::Unknown),
            (br#"{"error": {"message": "no kind"}}"#, LineError::BadError),
            (br#"{"error": {"kind": "", "message": "m"}}"#, LineError::BadError),
            (br#"{"error": {"kind": "K", "message": "m", "retryable": "yes"}}"#, LineError::BadError),
        ] {
            assert_eq!(parse_line(line), Err(expected), "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn lines_split_anywhere_and_the_first_outcome_stands() {
        let mut r = ReportReader::default();
        let text = b"{\"heartbeat\": true}\n{\"progr";
        assert_eq!(r.feed(text), vec![Message::Heartbeat]);
        assert_eq!(
            r.feed(b"ess\": 3}\nnoise\n{\"result\": 1}\n{\"error\": {\"kind\": \"K\", \"message\": \"m\"}}"),
            vec![Message::Progress(json!(3))]
        );
        let done = r.finish();
        assert_eq!(done.outcome, Some(Message::Result(json!(1))));
        assert_eq!(done.problems.len(), 2, "{:?}", done.problems);
    }

    #[test]
    fn an_endless_line_is_dropped_without_growing() {
        let mut r = ReportReader::default();
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..(MAX_LINE / chunk.len() + 2) {
            r.feed(&chunk);
            assert!(r.pending.len() <= MAX_LINE);
        }
        r.feed(b"\n{\"result\": 2}\n");
        let done = r.finish();
        assert_eq!(done.outcome, Some(Message::Result(json!(2))));
        assert!(done.problems[0].contains("longer than"));
    }
}
