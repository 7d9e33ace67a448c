//! The backend payload: Wove's version 1 keys plus our optional `task`, and
//! the many-task form ([`crate::fan_out`]).

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::fan_out::TaskEntry;
use crate::task::TaskSpec;

/// The only payload version Wove 2.0.3 writes, and the only one we accept.
pub const PAYLOAD_VERSION: u64 = 1;

/// Largest payload, in bytes of JSON, read from anywhere (a file, or a
/// compressed payload once inflated). Kubernetes objects top out near
/// 1.5 MiB, so this is generous while keeping a wrong path (a device, a huge
/// log) or a compression bomb harmless.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024 * 1024;

/// A decoded backend payload.
///
/// Keys we do not know are ignored, as Wove's own receiver does, so newer
/// submitters can add keys without breaking older workers.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// Always [`PAYLOAD_VERSION`].
    pub version: u64,
    /// Which Wove adapter submitted the job (`kubernetes_jobs`, `aws_batch`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Where events go. Its last path segment is a secret token.
    pub callback_url: String,
    /// Wove's id for this run of the task, e.g. `compute:<32 hex>`.
    pub run_id: String,
    /// The task's name in the weave. Absent in a many-task payload, whose
    /// entries name their own.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub task_id: String,
    /// Wove writes this key, usually `null`.
    #[serde(default)]
    pub task_name: Option<String>,
    /// Base64 cloudpickle of the Python callable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callable_pickle: Option<String>,
    /// Base64 cloudpickle of the keyword-argument dict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_pickle: Option<String>,
    /// The delivery options that were set in the weave.
    #[serde(default)]
    pub delivery: Delivery,
    /// A task that is not a pickled Python callable (our extension). In a
    /// many-task payload, what the entries' tasks share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskSpec>,
    /// Many tasks, one per index (our extension; [`crate::fan_out`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskEntry>,
}

impl std::fmt::Debug for Payload {
    // The callback URL carries a secret token and the pickles can be megabytes:
    // neither belongs in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("version", &self.version)
            .field("adapter", &self.adapter)
            .field("callback_url", &"[redacted]")
            .field("run_id", &self.run_id)
            .field("task_id", &self.task_id)
            .field("callable_pickle", &self.callable_pickle.as_ref().map(String::len))
            .field("args_pickle", &self.args_pickle.as_ref().map(String::len))
            .field("delivery", &self.delivery)
            .field("task", &self.task.as_ref().map(|t| &t.runner))
            .field("tasks", &self.tasks.len())
            .finish()
    }
}

/// Wove's per-task delivery options; only the keys that were set are present.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Seconds Wove waits for the whole task before failing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_timeout: Option<f64>,
    /// A key the user chose to make the task idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_idempotency_key: Option<String>,
    /// `best_effort` or `require_ack`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_cancel_mode: Option<String>,
    /// Wove fails the task when no event arrives for this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_heartbeat_seconds: Option<f64>,
    /// What Wove does with a task whose weave went away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_orphan_policy: Option<String>,
}

/// How payload text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Base64 of JSON or of gzip, as an environment variable or an argument holds it.
    Base64,
    /// Anything a file may hold: gzip, JSON text, or base64 of either.
    Any,
}

/// Why a payload could not be decoded. Each message names the field.
///
/// Clone (a runner's prepare error is kept beside the task), so the causes that are not Clone
/// are shared. Not `PartialEq`: two parse errors are told apart by their variant and field.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PayloadError {
    /// The text is neither a JSON object nor valid base64.
    #[error("payload is not valid base64")]
    Base64(#[source] base64::DecodeError),
    /// The bytes are not UTF-8.
    #[error("payload is not UTF-8 text")]
    Utf8,
    /// The JSON does not parse at all.
    #[error("payload is not valid JSON")]
    Json(#[source] std::sync::Arc<serde_json::Error>),
    /// A key is missing, mistyped or out of range.
    #[error("payload field `{field}`: {problem}")]
    Field {
        /// Dotted path of the offending key (`delivery.delivery_timeout`).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The payload was empty.
    #[error("payload is empty")]
    Empty,
    /// The base64 holds gzip data that does not inflate.
    #[error("payload is gzip-compressed but does not decompress")]
    Gzip(#[source] std::sync::Arc<std::io::Error>),
    /// The payload is larger than its limit ([`MAX_PAYLOAD_BYTES`] at most), as JSON.
    #[error("payload is larger than {limit} bytes of JSON")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

fn check_version(version: Option<&serde_json::Value>) -> Result<(), PayloadError> {
    match version {
        None => Err(PayloadError::field("version", "missing")),
        Some(v) if v.as_u64() == Some(PAYLOAD_VERSION) => Ok(()),
        Some(v) => Err(PayloadError::field(
            "version",
            format!("unsupported version {v} (this worker reads version {PAYLOAD_VERSION})"),
        )),
    }
}

impl PayloadError {
    /// A problem with the field at this dotted path.
    pub fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Field { field: field.into(), problem: problem.into() }
    }
}

impl Payload {
    /// Decode a payload as Wove writes it: standard base64 of UTF-8 JSON, or
    /// (our extension, [`Self::to_base64_gzip`]) of gzip-compressed JSON.
    /// Whitespace (line breaks from `base64 -w76`, a trailing newline) is ignored.
    pub fn from_base64(text: &str) -> Result<Self, PayloadError> {
        Self::from_base64_within(text, MAX_PAYLOAD_BYTES)
    }

    /// [`Self::from_base64`], refusing more than `limit` bytes of JSON.
    pub fn from_base64_within(text: &str, limit: usize) -> Result<Self, PayloadError> {
        Self::decode_within(text.as_bytes(), limit, Form::Base64, &mut |_| {})
    }

    /// Decode whatever a payload file may hold: gzip-compressed JSON, JSON,
    /// or base64 of either.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PayloadError> {
        Self::from_bytes_within(bytes, MAX_PAYLOAD_BYTES)
    }

    /// [`Self::from_bytes`], refusing more than `limit` bytes of JSON.
    pub fn from_bytes_within(bytes: &[u8], limit: usize) -> Result<Self, PayloadError> {
        Self::decode_within(bytes, limit, Form::Any, &mut |_| {})
    }

    /// Decode either form: JSON when the text starts with `{`, base64 otherwise.
    pub fn from_text(text: &str) -> Result<Self, PayloadError> {
        Self::from_bytes(text.as_bytes())
    }

    /// Decode a payload in `form`, at most `limit` bytes of JSON, in one
    /// pass: base64 and gzip are undone once, under the limit, and the JSON is
    /// parsed once. `callback_url` is called with the payload's callback URL
    /// as soon as the JSON parses, before any field is checked: whoever
    /// prints why the rest does not decode must first know what to keep out
    /// of the message.
    pub fn decode_within(
        bytes: &[u8],
        limit: usize,
        form: Form,
        callback_url: &mut dyn FnMut(&str),
    ) -> Result<Self, PayloadError> {
        let json = json_of(bytes, limit, form == Form::Any)?;
        Self::from_json_seeing(&json, callback_url)
    }

    /// Decode JSON bytes, naming the offending field on failure.
    pub fn from_json(bytes: &[u8]) -> Result<Self, PayloadError> {
        Self::from_json_seeing(bytes, &mut |_| {})
    }

    fn from_json_seeing(bytes: &[u8], callback_url: &mut dyn FnMut(&str)) -> Result<Self, PayloadError> {
        /// What is read before the rest: the scrubber's URL and the version
        /// that decides how the rest is read. Everything else is skipped,
        /// not built, so this pass costs no memory of the payload's size.
        #[derive(Deserialize)]
        struct Head {
            #[serde(default)]
            version: Option<serde_json::Value>,
            #[serde(default)]
            callback_url: Option<serde_json::Value>,
        }
        let text = std::str::from_utf8(bytes).map_err(|_| PayloadError::Utf8)?;
        let head: Head = serde_json::from_str(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data if !text.trim_start().starts_with('{') => {
                PayloadError::field("(root)", "expected a JSON object")
            }
            // Syntax errors and field errors read differently.
            serde_json::error::Category::Data => PayloadError::field("(root)", e.to_string()),
            _ => PayloadError::Json(e.into()),
        })?;
        if let Some(url) = head.callback_url.as_ref().and_then(serde_json::Value::as_str) {
            callback_url(url);
        }
        check_version(head.version.as_ref())?;
        // From the text, never through a parsed value: numbers a task is
        // given keep their text (`-0`, 18446744073709551616).
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let payload: Payload = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let field = e.path().to_string();
            PayloadError::field(if field == "." { "(root)".into() } else { field }, e.into_inner().to_string())
        })?;
        payload.validate()?;
        Ok(payload)
    }

    /// Encode as Wove does: compact JSON, standard base64.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_json())
    }

    /// Encode compressed: the base64 of gzip-compressed compact JSON. Only
    /// `wove-worker` reads this form (Wove's own worker does not); a many-task
    /// payload, whose entries repeat one another, shrinks several times over.
    pub fn to_base64_gzip(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(crate::gzip::deflate(&self.to_json()))
    }

    fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), PayloadError> {
        check_version(Some(&serde_json::Value::from(self.version)))?;
        for (name, value) in [("callback_url", &self.callback_url), ("run_id", &self.run_id)] {
            if value.is_empty() {
                return Err(PayloadError::field(name, "must not be empty"));
            }
        }
        if !(self.callback_url.starts_with("http://") || self.callback_url.starts_with("https://")) {
            return Err(PayloadError::field("callback_url", "must be an http:// or https:// URL"));
        }
        crate::task::check_seconds("delivery.delivery_heartbeat_seconds", self.delivery.delivery_heartbeat_seconds)?;
        if self.is_many() {
            // Each entry's task is checked when its index runs, so that an
            // entry that cannot run fails as its own task, not as all of them.
            return self.validate_entries();
        }
        if self.task_id.is_empty() {
            return Err(PayloadError::field("task_id", "missing: the payload needs `task_id` or `tasks`"));
        }
        self.check_task()
    }

    /// Whether a single-task payload says what to run: a `task`, or a
    /// `callable_pickle` with its `args_pickle`.
    pub fn check_task(&self) -> Result<(), PayloadError> {
        runnable("", self.task.is_some(), self.callable_pickle.is_some(), self.args_pickle.is_some())
    }

    /// [`Self::check_task`] for every task the payload holds, each entry of
    /// a many-task payload with what it shares: what a submitter checks
    /// before sending, so that no index fails for want of something to run.
    pub fn check_every_task(&self) -> Result<(), PayloadError> {
        if !self.is_many() {
            return self.check_task();
        }
        for (index, entry) in self.tasks.iter().enumerate() {
            runnable(
                &format!("tasks[{index}]."),
                self.task.is_some() || !entry.task.is_empty(),
                entry.callable_pickle.is_some() || self.callable_pickle.is_some(),
                entry.args_pickle.is_some() || self.args_pickle.is_some(),
            )?;
        }
        Ok(())
    }

    /// The `task` object, which runners other than `python` require.
    pub fn task_for(&self, runner: &str) -> Result<&TaskSpec, PayloadError> {
        self.task
            .as_ref()
            .ok_or_else(|| PayloadError::field("task", format!("the {runner} runner needs a `task` object")))
    }

    /// The runner that should run this payload: `task.runner`, or `python`
    /// for a plain Wove payload.
    pub fn runner_name(&self) -> &str {
        match &self.task {
            Some(task) => &task.runner,
            None => crate::task::PYTHON_RUNNER,
        }
    }
}

/// The JSON inside any form of payload, at most `limit` bytes of it: gzip,
/// JSON text (when `json_text`), or base64 of JSON or gzip.
fn json_of(bytes: &[u8], limit: usize, json_text: bool) -> Result<std::borrow::Cow<'_, [u8]>, PayloadError> {
    use std::borrow::Cow;
    let too_large = || PayloadError::TooLarge { limit };
    if crate::gzip::is_gzip(bytes) {
        return crate::gzip::inflate(bytes, limit).map(Cow::Owned);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| PayloadError::Utf8)?;
    let start = text.trim_start();
    if start.is_empty() {
        return Err(PayloadError::Empty);
    }
    if json_text && start.starts_with('{') {
        return if bytes.len() > limit { Err(too_large()) } else { Ok(Cow::Borrowed(bytes)) };
    }
    let compact: Vec<u8> = bytes.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    // Base64 of `limit` bytes is a third longer; gzip inside may be far smaller
    // than what it inflates to, which `inflate` bounds.
    if compact.len() / 4 * 3 > limit.saturating_add(3) {
        return Err(too_large());
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(&compact).map_err(PayloadError::Base64)?;
    if crate::gzip::is_gzip(&decoded) {
        return crate::gzip::inflate(&decoded, limit).map(Cow::Owned);
    }
    if decoded.len() > limit {
        return Err(too_large());
    }
    Ok(Cow::Owned(decoded))
}

/// Whether a task has something to run; `at` prefixes the field names.
fn runnable(at: &str, task: bool, callable: bool, args: bool) -> Result<(), PayloadError> {
    match (task, callable, args) {
        (true, _, _) | (false, true, true) => Ok(()),
        (false, true, false) => {
            Err(PayloadError::field(format!("{at}args_pickle"), "missing (required with `callable_pickle`)"))
        }
        (false, false, _) => {
            Err(PayloadError::field(format!("{at}task"), "missing: the payload needs `task` or `callable_pickle`"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wove_json() -> serde_json::Value {
        serde_json::json!({
            "version": 1, "adapter": "kubernetes_jobs",
            "callback_url": "http://127.0.0.1:9/wove/events/tok",
            "run_id": "t:abc", "task_id": "t", "task_name": null,
            "callable_pickle": "gAU=", "args_pickle": "gAU=",
            "delivery": {"delivery_cancel_mode": "best_effort"}
        })
    }

    fn decode(v: &serde_json::Value) -> Result<Payload, PayloadError> {
        Payload::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn wove_payload_round_trips_through_base64() {
        let p = decode(&wove_json()).unwrap();
        assert_eq!(p.runner_name(), "python");
        let again = Payload::from_base64(&p.to_base64()).unwrap();
        assert_eq!(p, again);
        assert_eq!(Payload::from_text(&format!("  {}\n", p.to_base64())).unwrap(), p);
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let mut v = wove_json();
        v["future_key"] = serde_json::json!([1, 2]);
        v["delivery"]["delivery_new_thing"] = serde_json::json!(true);
        assert!(decode(&v).is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let mut v = wove_json();
        v["version"] = serde_json::json!(2);
        assert!(matches!(decode(&v), Err(PayloadError::Field { field, .. }) if field == "version"));
        // The version is read first: a version 2 payload missing version 1's keys is "unsupported".
        let e = decode(&serde_json::json!({"version": 2})).unwrap_err();
        assert_eq!(e.to_string(), "payload field `version`: unsupported version 2 (this worker reads version 1)");
        let e = decode(&serde_json::json!({"run_id": "x"})).unwrap_err();
        assert_eq!(e.to_string(), "payload field `version`: missing");
        let e = decode(&serde_json::json!({"version": "1"})).unwrap_err();
        assert!(e.to_string().contains("unsupported version \"1\""), "{e}");

        let mut v = wove_json();
        v.as_object_mut().unwrap().remove("run_id");
        let e = decode(&v).unwrap_err();
        assert!(e.to_string().contains("run_id"), "{e}");

        let mut v = wove_json();
        v["delivery"]["delivery_heartbeat_seconds"] = serde_json::json!("often");
        let e = decode(&v).unwrap_err();
        assert!(
            matches!(&e, PayloadError::Field { field, .. } if field == "delivery.delivery_heartbeat_seconds"),
            "{e}"
        );

        let mut v = wove_json();
        v.as_object_mut().unwrap().remove("args_pickle");
        assert!(decode(&v).unwrap_err().to_string().contains("args_pickle"));

        let mut v = wove_json();
        v["delivery"]["delivery_heartbeat_seconds"] = serde_json::json!(1e300);
        assert!(decode(&v).unwrap_err().to_string().contains("delivery_heartbeat_seconds"));

        let mut v = wove_json();
        v["callback_url"] = serde_json::json!("ftp://x/y");
        assert!(decode(&v).unwrap_err().to_string().contains("callback_url"));
    }

    #[test]
    fn malformed_text_is_classified() {
        assert!(matches!(Payload::from_text("not base64!"), Err(PayloadError::Base64(_))));
        assert!(matches!(Payload::from_text("{\"version\":"), Err(PayloadError::Json(_))));
        assert!(matches!(Payload::from_text("   "), Err(PayloadError::Empty)));
        assert!(matches!(Payload::from_base64("//79"), Err(PayloadError::Utf8)));
        assert!(matches!(Payload::from_text("WzFd"), Err(PayloadError::Field { .. })));
        // "[1]"
    }

    #[test]
    fn a_parse_error_keeps_its_cause_and_says_it_once() {
        let cases = [
            (
                Payload::from_text("{\"version\":"),
                "payload is not valid JSON: EOF while parsing a value at line 1 column 11",
            ),
            (Payload::from_text("not base64!"), "payload is not valid base64: Invalid symbol 33, offset 9."),
        ];
        for (read, said) in cases {
            let e = read.unwrap_err();
            assert!(std::error::Error::source(&e).is_some(), "{e:?}");
            assert_eq!(crate::error_chain(&e), said);
        }
        let broken = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3];
        let e = Payload::from_bytes(&broken).unwrap_err();
        let chain = crate::error_chain(&e);
        assert!(chain.starts_with("payload is gzip-compressed but does not decompress: "), "{chain}");
        assert!(chain.len() > "payload is gzip-compressed but does not decompress: ".len(), "{chain}");
    }

    #[test]
    fn files_may_hold_gzip_json_or_base64() {
        let p = decode(&wove_json()).unwrap();
        let json = serde_json::to_vec(&p).unwrap();
        assert_eq!(Payload::from_bytes(&crate::gzip::deflate(&json)).unwrap(), p);
        assert_eq!(Payload::from_bytes(&json).unwrap(), p);
        assert_eq!(Payload::from_bytes(p.to_base64_gzip().as_bytes()).unwrap(), p);
        assert!(matches!(Payload::from_bytes(b"\xff{"), Err(PayloadError::Utf8)));
    }

    #[test]
    fn every_form_is_held_to_the_limit() {
        let p = decode(&wove_json()).unwrap();
        let json = serde_json::to_vec(&p).unwrap();
        let limit = json.len() - 1;
        let too_large = |read: Result<Payload, PayloadError>| matches!(read, Err(PayloadError::TooLarge { limit: l }) if l == limit);
        assert!(too_large(Payload::from_bytes_within(&json, limit)));
        assert!(too_large(Payload::from_bytes_within(p.to_base64().as_bytes(), limit)));
        assert!(too_large(Payload::from_base64_within(&p.to_base64_gzip(), limit)));
        assert!(too_large(Payload::from_bytes_within(&crate::gzip::deflate(&json), limit)));
        assert_eq!(Payload::from_bytes_within(&json, json.len()).unwrap(), p);
        // Base64 far over the limit is refused before it is decoded.
        assert!(matches!(
            Payload::from_base64_within(&"QUFB".repeat(1000), 10),
            Err(PayloadError::TooLarge { limit: 10 })
        ));
    }

    #[test]
    fn the_callback_url_is_seen_in_a_payload_that_does_not_decode() {
        let mut v = wove_json();
        v["version"] = serde_json::json!("http://h/wove/events/tok");
        let bytes = v.to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        for (text, form) in [(bytes.as_str(), Form::Any), (b64.as_str(), Form::Base64)] {
            let mut seen = None;
            let e = Payload::decode_within(text.as_bytes(), 1 << 20, form, &mut |u| seen = Some(u.to_string()));
            assert!(e.is_err());
            assert_eq!(seen.as_deref(), Some("http://127.0.0.1:9/wove/events/tok"));
        }
        let mut seen = false;
        assert!(Payload::decode_within(b"{not json", 1 << 20, Form::Any, &mut |_| seen = true).is_err());
        assert!(!seen);
    }

    #[test]
    fn every_task_of_a_many_task_payload_is_checked_with_what_it_shares() {
        let mut v = wove_json();
        v.as_object_mut().unwrap().remove("task_id");
        v.as_object_mut().unwrap().remove("args_pickle");
        v["tasks"] = serde_json::json!([{"task_id": "a", "args_pickle": "gAU="}, {"task_id": "b"}]);
        let p = decode(&v).unwrap();
        let e = p.check_every_task().unwrap_err().to_string();
        assert_eq!(e, "payload field `tasks[1].args_pickle`: missing (required with `callable_pickle`)");
        v["args_pickle"] = serde_json::json!("gAU=");
        assert!(decode(&v).unwrap().check_every_task().is_ok());
    }

    #[test]
    fn debug_hides_the_callback_token() {
        let p = decode(&wove_json()).unwrap();
        assert!(!format!("{p:?}").contains("tok"));
    }
}
