//! Task descriptions: which runner runs the task, and that runner's fields.
//!
//! On the wire a task is one object, `{"runner": "<name>", ...fields}`. The
//! fields belong to the runner, so a runner added by a user needs no change
//! here; the built-in runners' field types live here so a submitter can build
//! them with the compiler's help.

use std::collections::BTreeMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::payload::PayloadError;

/// Longest duration a payload may ask for, in seconds (about 31 years): larger
/// values cannot be represented as a deadline and are refused rather than clamped.
pub const MAX_SECONDS: f64 = 1e9;

/// Check a duration field: a positive number of seconds no larger than [`MAX_SECONDS`].
pub fn check_seconds(field: &str, value: Option<f64>) -> Result<(), PayloadError> {
    match value {
        Some(v) if !(v.is_finite() && v > 0.0 && v <= MAX_SECONDS) => {
            Err(PayloadError::field(field, format!("must be a positive number of seconds, at most {MAX_SECONDS:e}")))
        }
        _ => Ok(()),
    }
}

/// The runner for a payload that carries `callable_pickle` and no `task`.
pub const PYTHON_RUNNER: &str = "python";
/// The runner for [`SubprocessTask`].
pub const SUBPROCESS_RUNNER: &str = "subprocess";
/// The runner for [`WasmTask`].
pub const WASM_RUNNER: &str = "wasm";

/// A task description as it travels: the runner's name and its own fields.
///
/// Read and written as one JSON object by hand rather than with
/// `#[serde(flatten)]`: flattening buffers the fields through serde's
/// generic content, which has no room for an integer past 64 bits, and the
/// fields are carried to the runner exactly as written.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// Registered name of the runner (`subprocess`, `python`, `wasm`, or a user's).
    pub runner: String,
    /// Everything else in the object, for the runner to decode.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl Serialize for TaskSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let fields = self.fields.iter().filter(|(k, _)| k.as_str() != "runner");
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("runner", &self.runner)?;
        for (key, value) in fields {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TaskSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        match fields.remove("runner") {
            Some(serde_json::Value::String(runner)) => Ok(Self { runner, fields }),
            Some(other) => Err(D::Error::custom(format!("`runner` must be a string, not {other}"))),
            None => Err(D::Error::missing_field("runner")),
        }
    }
}

impl TaskSpec {
    /// Build a task description from a runner's typed fields.
    pub fn new<T: Serialize>(runner: impl Into<String>, fields: &T) -> Result<Self, serde_json::Error> {
        let value = serde_json::to_value(fields)?;
        let fields = match value {
            serde_json::Value::Object(map) => map,
            _ => return Err(serde::ser::Error::custom("task fields must serialize to a JSON object")),
        };
        Ok(Self { runner: runner.into(), fields })
    }

    /// Decode the fields into a runner's own type. Errors name the field as
    /// `task.<path>`, like every other payload error.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        // Through text, not from the value: a field the runner only carries
        // (an `input`) keeps each number as written; from a value, `-0`
        // would come back as `0`.
        let text = serde_json::to_string(&self.fields).map_err(|e| PayloadError::field("task", e.to_string()))?;
        let mut deserializer = serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { "task".to_string() } else { format!("task.{path}") };
            PayloadError::field(field, e.into_inner().to_string())
        })
    }
}

/// A program run as a child process (`"runner": "subprocess"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubprocessTask {
    /// The program: a path, or a name looked up in `PATH`.
    pub program: String,
    /// Arguments after the program name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Variables set for the program, on top of the worker's environment
    /// (minus the payload and signing secrets, which a task never sees).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Start from an empty environment instead of the worker's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_env: bool,
    /// Working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// JSON written to the program's stdin, which is then closed. Without it
    /// stdin is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// Seconds before the program is stopped (TERM, grace, KILL) and the task fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

impl SubprocessTask {
    /// Check what serde cannot: values that parse but make no sense.
    pub fn validate(&self) -> Result<(), PayloadError> {
        if self.program.is_empty() {
            return Err(PayloadError::field("task.program", "must not be empty"));
        }
        check_seconds("task.timeout_seconds", self.timeout_seconds)?;
        for key in self.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(PayloadError::field(format!("task.env.{key}"), "is not a valid variable name"));
            }
        }
        Ok(())
    }
}

/// Options of the Python runner (`"runner": "python"`); a plain Wove payload
/// uses the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonTask {
    /// Interpreter for this task, overriding the worker's configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// Seconds before the interpreter is stopped and the task fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

impl PythonTask {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), PayloadError> {
        if self.interpreter.as_deref() == Some("") {
            return Err(PayloadError::field("task.interpreter", "must not be empty"));
        }
        check_seconds("task.timeout_seconds", self.timeout_seconds)
    }
}

/// A WebAssembly program (`"runner": "wasm"`): a WASI preview 1 command
/// module or a WASI preview 2 component, told apart automatically.
///
/// The guest gets `input` (JSON) on stdin, `args` and `env`, and nothing
/// else: no filesystem unless `dirs` grants it, never the network. What it
/// writes to stdout is the result (JSON when it parses, else a string); its
/// stderr goes to the container's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmTask {
    /// Where the module comes from.
    pub module: ModuleSource,
    /// Arguments; the guest sees the program name `task` before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables, the only ones the guest sees.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// JSON written to the guest's stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// Host directories the guest may open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirGrant>,
    /// Resource limits; each has a default.
    #[serde(default)]
    pub limits: WasmLimits,
}

/// Where a WebAssembly module comes from. Exactly one key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ModuleSource {
    /// A file in the image: `.wasm` (compiled at start) or a `.cwasm` made by
    /// `wove-worker precompile` (loaded without compiling).
    Path(String),
    /// The module's bytes, standard base64 (`.wasm` only).
    Base64(String),
    /// Downloaded over https; refused unless its SHA-256 matches.
    Url {
        /// `https://` URL.
        url: String,
        /// Lowercase or uppercase hex SHA-256 of the module.
        sha256: String,
        /// Refuse downloads larger than this. Default 64 MiB.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_bytes: Option<u64>,
    },
}

/// A host directory made visible to the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the host (in the container).
    pub host: String,
    /// Where the guest sees it. Default: the same path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<String>,
    /// Whether the guest may create, change and delete files there. Default read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub writable: bool,
}

/// Limits on a WebAssembly task. A breach fails the task with a `kind` naming it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmLimits {
    /// Largest linear memory, in bytes. Default 512 MiB. Breach: `MemoryLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Wall-clock limit. Default 3600 s. Breach: `Timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Largest stdout (the result), in bytes. Default 16 MiB. Breach: `OutputLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
}

impl WasmLimits {
    /// Default for `memory_bytes`.
    pub const MEMORY_BYTES: u64 = 512 * 1024 * 1024;
    /// Default for `timeout_seconds`.
    pub const TIMEOUT_SECONDS: f64 = 3600.0;
    /// Default for `output_bytes`.
    pub const OUTPUT_BYTES: u64 = 16 * 1024 * 1024;
    /// Default for a URL source's `max_bytes`.
    pub const DOWNLOAD_BYTES: u64 = 64 * 1024 * 1024;
}

impl WasmTask {
    /// Check what serde cannot.
    pub fn validate(&self) -> Result<(), PayloadError> {
        match &self.module {
            ModuleSource::Path(p) if p.is_empty() => {
                return Err(PayloadError::field("task.module.path", "must not be empty"))
            }
            ModuleSource::Url { url, sha256, .. } => {
                if !url.starts_with("https://") {
                    return Err(PayloadError::field("task.module.url.url", "must be an https:// URL"));
                }
                if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(PayloadError::field("task.module.url.sha256", "must be 64 hex digits"));
                }
            }
            _ => {}
        }
        check_seconds("task.limits.timeout_seconds", self.limits.timeout_seconds)?;
        for (name, value) in [("memory_bytes", self.limits.memory_bytes), ("output_bytes", self.limits.output_bytes)] {
            if value == Some(0) {
                return Err(PayloadError::field(format!("task.limits.{name}"), "must be positive"));
            }
        }
        for (i, dir) in self.dirs.iter().enumerate() {
            if !dir.host.starts_with('/') {
                return Err(PayloadError::field(format!("task.dirs[{i}].host"), "must be an absolute path"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprocess_task_round_trips_through_spec() {
        let task = SubprocessTask { program: "echo".into(), args: vec!["hi".into()], ..Default::default() };
        let spec = TaskSpec::new(SUBPROCESS_RUNNER, &task).unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json, serde_json::json!({"runner": "subprocess", "program": "echo", "args": ["hi"]}));
        assert_eq!(spec.decode::<SubprocessTask>().unwrap(), task);
    }

    #[test]
    fn field_errors_are_prefixed_with_task() {
        let spec: TaskSpec =
            serde_json::from_value(serde_json::json!({"runner": "subprocess", "program": "x", "args": "no"})).unwrap();
        let err = spec.decode::<SubprocessTask>().unwrap_err();
        assert!(matches!(&err, PayloadError::Field { field, .. } if field == "task.args"), "{err}");

        let spec: TaskSpec =
            serde_json::from_value(serde_json::json!({"runner": "subprocess", "program": "x", "colour": 1})).unwrap();
        assert!(spec.decode::<SubprocessTask>().unwrap_err().to_string().contains("colour"));
    }

    #[test]
    fn wasm_task_sources_and_limits() {
        let spec: TaskSpec = serde_json::from_value(serde_json::json!({
            "runner": "wasm", "module": {"url": {"url": "https://h/m.wasm", "sha256": "ab".repeat(32)}},
            "limits": {"memory_bytes": 1048576}
        }))
        .unwrap();
        let task: WasmTask = spec.decode().unwrap();
        assert!(task.validate().is_ok());
        assert_eq!(task.limits.memory_bytes, Some(1 << 20));

        let spec: TaskSpec = serde_json::from_value(
            serde_json::json!({"runner": "wasm", "module": {"url": {"url": "http://h/m", "sha256": "00"}}}),
        )
        .unwrap();
        assert!(spec.decode::<WasmTask>().unwrap().validate().unwrap_err().to_string().contains("https"));

        let spec: TaskSpec =
            serde_json::from_value(serde_json::json!({"runner": "wasm", "module": {"path": "a", "base64": "b"}}))
                .unwrap();
        assert!(spec.decode::<WasmTask>().is_err(), "one source only");
    }

    #[test]
    fn validation_rejects_nonsense() {
        let t = SubprocessTask { program: "x".into(), timeout_seconds: Some(-1.0), ..Default::default() };
        assert!(t.validate().unwrap_err().to_string().contains("timeout_seconds"));
        let t = SubprocessTask::default();
        assert!(t.validate().unwrap_err().to_string().contains("task.program"));
        // Too large to be a deadline: refused, not a panic later.
        let t = SubprocessTask { program: "x".into(), timeout_seconds: Some(1e300), ..Default::default() };
        assert!(t.validate().unwrap_err().to_string().contains("at most"));
        let t = PythonTask { timeout_seconds: Some(f64::MAX), ..Default::default() };
        assert!(t.validate().is_err());
        assert!(PythonTask { timeout_seconds: Some(5.0), ..Default::default() }.validate().is_ok());
    }
}
