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
//! ignored (and logged). A line that is not one of these fails the task
//! (`InvalidReport`), and so does a line longer than the result bound allows
//! (`ResultTooLarge`): a result the worker could not read must never end as
//! a success with a `null` result. Blank lines are ignored.

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
    /// The first line that broke the protocol: it fails the task, so that a
    /// result lost in a line the worker could not read is never taken for
    /// success.
    pub violation: Option<Violation>,
    /// What else was wrong, for the log (a second outcome, later violations).
    pub problems: Vec<String>,
}

/// A line the worker could not take as a runner message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// Longer than the reader's bound, which is the result bound plus room
    /// for the message around it: a result that cannot be sent.
    TooLong {
        /// The bound, in bytes.
        limit: usize,
    },
    /// Not one of the protocol's messages.
    Malformed {
        /// The line's number, from 1.
        line: usize,
        /// Why it is not a message.
        problem: LineError,
        /// Its first bytes, for the error message.
        start: String,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { limit } => write!(f, "a report line longer than {limit} bytes"),
            Self::Malformed { line, problem, start } => write!(f, "report line {line} ({start:?}): {problem}"),
        }
    }
}

/// How much of a malformed line an error quotes.
const QUOTED: usize = 80;

/// Splits the report channel into lines as bytes arrive, bounded, and keeps
/// the outcome; heartbeats and progress are handed back as they come.
#[derive(Debug)]
pub struct ReportReader {
    max_line: usize,
    pending: Vec<u8>,
    overflowed: bool,
    lines: usize,
    reported: Reported,
}

impl Default for ReportReader {
    fn default() -> Self {
        Self::new(MAX_LINE)
    }
}

impl ReportReader {
    /// A reader refusing lines longer than `max_line` bytes (at most [`MAX_LINE`]).
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line: max_line.min(MAX_LINE),
            pending: Vec::new(),
            overflowed: false,
            lines: 0,
            reported: Reported::default(),
        }
    }

    /// The bound for a runner whose results may be up to `result_bytes` as
    /// sent: the result, the message around it, and some whitespace.
    pub fn for_results_of(result_bytes: usize) -> Self {
        Self::new(result_bytes.saturating_add(4096))
    }

    /// Take `bytes` read from the channel; return the heartbeats and progress
    /// messages among the lines they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Message> {
        let mut live = Vec::new();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            if !self.overflowed && self.pending.len() + head.len() > self.max_line {
                self.overflowed = true;
                self.pending = Vec::new();
            }
            if !self.overflowed {
                self.pending.extend_from_slice(head);
            }
            let line = std::mem::take(&mut self.pending);
            let overflowed = std::mem::replace(&mut self.overflowed, false);
            self.lines += 1;
            if overflowed {
                self.violate(Violation::TooLong { limit: self.max_line });
            } else if let Some(m) = self.line(&line) {
                live.push(m);
            }
            rest = &tail[1..];
        }
        if !self.overflowed {
            if self.pending.len() + rest.len() > self.max_line {
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
            self.violate(Violation::TooLong { limit: self.max_line });
        } else if !self.pending.iter().all(u8::is_ascii_whitespace) {
            self.lines += 1;
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
            Err(problem) => {
                let start = String::from_utf8_lossy(&line[..line.len().min(QUOTED)]).into_owned();
                self.violate(Violation::Malformed { line: self.lines, problem, start });
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

    fn violate(&mut self, violation: Violation) {
        if self.reported.violation.is_none() {
            self.reported.violation = Some(violation);
        } else {
            self.note(violation.to_string());
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
        let Some(Violation::Malformed { line: 3, problem: LineError::NotAnObject, start }) = &done.violation else {
            panic!("{:?}", done.violation)
        };
        assert_eq!(start, "noise");
        assert_eq!(done.problems.len(), 1, "{:?}", done.problems);
    }

    #[test]
    fn an_endless_line_is_dropped_without_growing_and_fails_the_report() {
        let mut r = ReportReader::new(4 << 20);
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..8 {
            r.feed(&chunk);
            assert!(r.pending.len() <= 4 << 20);
        }
        r.feed(b"\n{\"result\": 2}\n");
        let done = r.finish();
        assert_eq!(done.outcome, Some(Message::Result(json!(2))));
        assert_eq!(done.violation, Some(Violation::TooLong { limit: 4 << 20 }));
    }

    #[test]
    fn the_bound_counts_a_line_split_across_reads() {
        // 16 bytes in two reads is at the bound; 17 is past it.
        let mut r = ReportReader::new(16);
        r.feed(br#"{"result": "#);
        r.feed(b"1234}\n");
        let done = r.finish();
        assert_eq!((done.outcome, done.violation), (Some(Message::Result(json!(1234))), None));
        let mut r = ReportReader::new(16);
        r.feed(br#"{"result": "#);
        r.feed(b"12345}\n");
        assert_eq!(r.finish().violation, Some(Violation::TooLong { limit: 16 }));
    }

    #[test]
    fn a_runner_reader_has_room_for_its_result_and_the_message_around_it() {
        let result = 100;
        let room = result + 4096;
        let line = format!(r#"{{"result": "{}"}}"#, "r".repeat(room - 14));
        assert_eq!(line.len(), room);
        let mut r = ReportReader::for_results_of(result);
        r.feed(line.as_bytes());
        r.feed(b"\n");
        assert_eq!(r.finish().violation, None);
        let mut r = ReportReader::for_results_of(result);
        r.feed(format!("{line} \n").as_bytes());
        assert_eq!(r.finish().violation, Some(Violation::TooLong { limit: room }));
    }

    #[test]
    fn parse_line_takes_a_line_of_the_maximum_and_refuses_one_byte_more() {
        let mut line = br#"{"result": ""#.to_vec();
        line.resize(MAX_LINE - 2, b'x');
        line.extend_from_slice(br#""}"#);
        assert_eq!(line.len(), MAX_LINE);
        assert!(matches!(parse_line(&line), Ok(Message::Result(_))));
        line.push(b' ');
        assert_eq!(parse_line(&line), Err(LineError::TooLong));
    }

    #[test]
    fn a_last_line_without_a_newline_is_numbered_after_the_others() {
        let mut r = ReportReader::default();
        r.feed(b"{\"heartbeat\": true}\n{\"progress\": 1}\n[not, a, message");
        match r.finish().violation {
            Some(Violation::Malformed { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn problems_past_the_first_are_kept_to_sixteen() {
        let mut r = ReportReader::default();
        for _ in 0..20 {
            r.feed(b"{\"result\": 1}\n");
        }
        let done = r.finish();
        assert_eq!(done.outcome, Some(Message::Result(json!(1))));
        assert_eq!(done.problems.len(), 16, "{:?}", done.problems);
    }

    #[test]
    fn violations_say_which_line_and_why() {
        assert_eq!(Violation::TooLong { limit: 7 }.to_string(), "a report line longer than 7 bytes");
        let malformed = Violation::Malformed { line: 3, problem: LineError::NotAnObject, start: "[1]".into() };
        assert_eq!(malformed.to_string(), format!("report line 3 (\"[1]\"): {}", LineError::NotAnObject));
    }

    #[test]
    fn a_line_exactly_at_the_bound_is_read_and_one_past_it_is_not() {
        let line = br#"{"result": "abc"}"#;
        let mut r = ReportReader::new(line.len());
        r.feed(line);
        r.feed(b"\n");
        assert_eq!(r.finish().violation, None);
        let mut r = ReportReader::new(line.len() - 1);
        r.feed(line);
        assert_eq!(r.finish().violation, Some(Violation::TooLong { limit: line.len() - 1 }));
    }
}
