//! Many tasks in one payload: one Indexed Job or array job, each index
//! running its own entry.
//!
//! A many-task payload is a version 1 payload with a `tasks` array instead of
//! a top-level `task_id`. What every task shares is written once beside it
//! (`callback_url`, `run_id`, `delivery`, the runner and its common fields in
//! `task`, or a common `callable_pickle`); each entry brings its own
//! `task_id` and its own input:
//!
//! ```json
//! {"version": 1, "callback_url": "https://wove.example/wove/events/TOKEN", "run_id": "square:7f3a",
//!  "task": {"runner": "subprocess", "program": "python3", "args": ["-c", "…"]},
//!  "tasks": [
//!    {"task_id": "square-0", "task": {"stdin": "0"}},
//!    {"task_id": "square-1", "task": {"stdin": "1"}, "run_id": "square:1b9e"}
//!  ]}
//! ```
//!
//! Entry `i` runs at index `i` and becomes an ordinary single-task payload
//! ([`Payload::select`]): its `task` fields replace the shared ones of the
//! same name, its pickles replace the shared ones, and its events carry its
//! own `task_id` and run id, so a receiver sees N ordinary tasks. An entry
//! without a `run_id` gets [`entry_run_id`] of the shared one: distinct per
//! index, as a receiver that keys runs by run id (as Wove's does) needs.

use serde::{Deserialize, Serialize};

use crate::payload::{Payload, PayloadError};
use crate::task::TaskSpec;

/// Most entries one payload may hold: the larger of the two platforms'
/// limits (an Indexed Job's 100,000 completions; an array job has 10,000).
pub const MAX_TASKS: usize = 100_000;

/// One entry of a many-task payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskEntry {
    /// The task's name, carried by each of its events.
    pub task_id: String,
    /// Its own run id. Default: [`entry_run_id`] of the shared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Fields laid over the shared `task` (its `runner` among them, to pick
    /// another runner). Default none.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub task: serde_json::Map<String, serde_json::Value>,
    /// Its own Python callable, instead of the shared one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callable_pickle: Option<String>,
    /// The callable's arguments for this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_pickle: Option<String>,
}

impl TaskEntry {
    /// An entry with this task id and nothing of its own yet.
    pub fn new(task_id: impl Into<String>) -> Self {
        Self {
            task_id: task_id.into(),
            run_id: None,
            task: serde_json::Map::new(),
            callable_pickle: None,
            args_pickle: None,
        }
    }
}

/// The run id of entry `index` that brings none of its own: the shared run
/// id, a slash, the index (`square:7f3a/12`).
pub fn entry_run_id(shared: &str, index: usize) -> String {
    format!("{shared}/{index}")
}

impl Payload {
    /// Whether this payload holds several tasks (a `tasks` array).
    pub fn is_many(&self) -> bool {
        !self.tasks.is_empty()
    }

    /// How many tasks it holds: the entries, or 1.
    pub fn task_count(&self) -> usize {
        self.tasks.len().max(1)
    }

    /// The single-task payload that index `index` runs.
    ///
    /// A single-task payload is its own only task, whatever the index (a
    /// platform sets one on every pod of an Indexed Job). A many-task payload
    /// needs an index within its entries. What the runner needs (a `task`, or
    /// a callable and its arguments) is left to [`Payload::check_task`] and
    /// the runner, so that an entry missing it fails as its own task.
    pub fn select(self, index: Option<usize>) -> Result<Payload, PayloadError> {
        if !self.is_many() {
            return Ok(self);
        }
        let count = self.tasks.len();
        let Some(index) = index else {
            return Err(PayloadError::field(
                "tasks",
                format!(
                    "the payload holds {count} tasks and no index says which to run \
                     (set by Kubernetes in {}, by AWS Batch in {}, or given with --index)",
                    crate::env::JOB_COMPLETION_INDEX,
                    crate::env::AWS_BATCH_JOB_ARRAY_INDEX
                ),
            ));
        };
        if index >= count {
            return Err(PayloadError::field(
                "tasks",
                format!("index {index} is outside the payload's {count} tasks (0 to {})", count - 1),
            ));
        }
        let Payload {
            version,
            adapter,
            callback_url,
            run_id,
            task_name,
            callable_pickle,
            args_pickle,
            delivery,
            task,
            mut tasks,
            ..
        } = self;
        let entry = tasks.swap_remove(index);
        let task = merge_task(task, entry.task);
        Ok(Payload {
            version,
            adapter,
            callback_url,
            run_id: entry.run_id.unwrap_or_else(|| entry_run_id(&run_id, index)),
            task_id: entry.task_id,
            task_name,
            callable_pickle: entry.callable_pickle.or(callable_pickle),
            args_pickle: entry.args_pickle.or(args_pickle),
            delivery,
            task,
            tasks: Vec::new(),
        })
    }

    /// Check the entries of a many-task payload as a whole: at most
    /// [`MAX_TASKS`], each with a task id, and no two tasks with one run id.
    pub(crate) fn validate_entries(&self) -> Result<(), PayloadError> {
        if self.tasks.len() > MAX_TASKS {
            return Err(PayloadError::field(
                "tasks",
                format!("{} entries, more than the {MAX_TASKS} one payload may hold", self.tasks.len()),
            ));
        }
        let mut run_ids = std::collections::HashSet::with_capacity(self.tasks.len());
        for (index, entry) in self.tasks.iter().enumerate() {
            if entry.task_id.is_empty() {
                return Err(PayloadError::field(format!("tasks[{index}].task_id"), "must not be empty"));
            }
            let run_id = match &entry.run_id {
                Some(id) if id.is_empty() => {
                    return Err(PayloadError::field(format!("tasks[{index}].run_id"), "must not be empty"))
                }
                Some(id) => std::borrow::Cow::Borrowed(id.as_str()),
                None => std::borrow::Cow::Owned(entry_run_id(&self.run_id, index)),
            };
            check_entry_task(self.task.as_ref(), entry, index)?;
            if !run_ids.insert(run_id) {
                return Err(PayloadError::field(
                    format!("tasks[{index}].run_id"),
                    "the same run id as an earlier task: a receiver could not tell their events apart",
                ));
            }
        }
        Ok(())
    }
}

/// The shared task with an entry's fields laid over it. Whether the entry
/// names a runner where it must was checked when the payload was decoded.
fn merge_task(shared: Option<TaskSpec>, mut own: serde_json::Map<String, serde_json::Value>) -> Option<TaskSpec> {
    let own_runner = match own.remove("runner") {
        Some(serde_json::Value::String(name)) => Some(name),
        _ => None,
    };
    match (shared, own_runner) {
        (None, None) => None,
        (None, Some(runner)) => Some(TaskSpec { runner, fields: own }),
        (Some(mut spec), runner) => {
            if let Some(runner) = runner {
                spec.runner = runner;
            }
            spec.fields.extend(own);
            Some(spec)
        }
    }
}

/// Whether an entry's `task` can be laid over the shared one.
fn check_entry_task(shared: Option<&TaskSpec>, entry: &TaskEntry, index: usize) -> Result<(), PayloadError> {
    match entry.task.get("runner") {
        Some(serde_json::Value::String(_)) => Ok(()),
        Some(_) => Err(PayloadError::field(format!("tasks[{index}].task.runner"), "must be a string")),
        None if shared.is_none() && !entry.task.is_empty() => Err(PayloadError::field(
            format!("tasks[{index}].task"),
            "names no runner, and the payload has no shared `task` to take one from",
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn many() -> serde_json::Value {
        json!({
            "version": 1, "callback_url": "http://127.0.0.1:9/wove/events/tok", "run_id": "sq:1",
            "delivery": {"delivery_heartbeat_seconds": 30},
            "task": {"runner": "subprocess", "program": "sh", "args": ["-c", "cat"]},
            "tasks": [
                {"task_id": "a", "task": {"stdin": "0"}},
                {"task_id": "b", "run_id": "b:own", "task": {"program": "cat", "timeout_seconds": 5}},
                {"task_id": "c", "task": {"runner": "wasm", "module_path": "/m.wasm"}}
            ]
        })
    }

    fn decode(v: &serde_json::Value) -> Result<Payload, PayloadError> {
        Payload::from_json(v.to_string().as_bytes())
    }

    #[test]
    fn each_index_becomes_an_ordinary_task() {
        let p = decode(&many()).unwrap();
        assert!(p.is_many());
        assert_eq!(p.task_count(), 3);

        let a = p.clone().select(Some(0)).unwrap();
        assert_eq!((a.run_id.as_str(), a.task_id.as_str()), ("sq:1/0", "a"));
        let spec = a.task.as_ref().unwrap();
        assert_eq!(spec.runner, "subprocess");
        assert_eq!(spec.fields["program"], "sh");
        assert_eq!(spec.fields["stdin"], "0");
        assert!(!a.is_many());
        assert_eq!(a.delivery.delivery_heartbeat_seconds, Some(30.0));
        assert_eq!(a.callback_url, p.callback_url);

        let b = p.clone().select(Some(1)).unwrap();
        assert_eq!((b.run_id.as_str(), b.task_id.as_str()), ("b:own", "b"));
        let spec = b.task.as_ref().unwrap();
        assert_eq!(spec.fields["program"], "cat", "an entry's field replaces the shared one");
        assert_eq!(spec.fields["args"], json!(["-c", "cat"]), "fields it does not name stay shared");

        let c = p.clone().select(Some(2)).unwrap();
        assert_eq!(c.runner_name(), "wasm");
    }

    #[test]
    fn the_selected_task_round_trips_as_a_single_payload() {
        let one = decode(&many()).unwrap().select(Some(1)).unwrap();
        assert_eq!(Payload::from_base64(&one.to_base64()).unwrap(), one);
        // And the whole many-task payload round trips.
        let p = decode(&many()).unwrap();
        assert_eq!(Payload::from_base64(&p.to_base64()).unwrap(), p);
    }

    #[test]
    fn indexes_outside_the_entries_and_missing_ones_are_refused() {
        let p = decode(&many()).unwrap();
        let e = p.clone().select(Some(3)).unwrap_err().to_string();
        assert_eq!(e, "payload field `tasks`: index 3 is outside the payload's 3 tasks (0 to 2)");
        let e = p.select(None).unwrap_err().to_string();
        assert!(e.contains("holds 3 tasks") && e.contains("JOB_COMPLETION_INDEX"), "{e}");
    }

    #[test]
    fn a_single_task_payload_ignores_the_index() {
        let mut v = many();
        v.as_object_mut().unwrap().remove("tasks");
        v["task_id"] = json!("only");
        let p = decode(&v).unwrap();
        assert_eq!(p.clone().select(Some(42)).unwrap(), p);
    }

    #[test]
    fn python_entries_share_the_callable_and_bring_their_arguments() {
        let p = decode(&json!({
            "version": 1, "callback_url": "http://h/t", "run_id": "r",
            "callable_pickle": "Y2FsbGFibGU=",
            "tasks": [{"task_id": "x", "args_pickle": "YXJncw=="},
                      {"task_id": "y", "callable_pickle": "b3du", "args_pickle": "eQ=="}]
        }))
        .unwrap();
        let x = p.clone().select(Some(0)).unwrap();
        assert_eq!((x.callable_pickle.as_deref(), x.args_pickle.as_deref()), (Some("Y2FsbGFibGU="), Some("YXJncw==")));
        assert_eq!(x.runner_name(), "python");
        let y = p.select(Some(1)).unwrap();
        assert_eq!(y.callable_pickle.as_deref(), Some("b3du"));
    }

    #[test]
    fn entries_are_checked_as_a_whole() {
        let mut v = many();
        v["tasks"][1]["task_id"] = json!("");
        assert!(decode(&v).unwrap_err().to_string().contains("tasks[1].task_id"));

        let mut v = many();
        v["tasks"][2]["run_id"] = json!("b:own");
        let e = decode(&v).unwrap_err().to_string();
        assert!(e.contains("tasks[2].run_id") && e.contains("same run id"), "{e}");

        // An explicit run id may not collide with a derived one either.
        let mut v = many();
        v["tasks"][1]["run_id"] = json!("sq:1/0");
        assert!(decode(&v).unwrap_err().to_string().contains("tasks[1].run_id"));

        let mut v = many();
        v["tasks"][0]["surprise"] = json!(1);
        assert!(decode(&v).unwrap_err().to_string().contains("surprise"));

        let mut v = many();
        v["tasks"] = json!("not a list");
        assert!(decode(&v).unwrap_err().to_string().contains("tasks"));
    }

    #[test]
    fn entries_name_a_runner_where_nothing_is_shared() {
        let v = json!({
            "version": 1, "callback_url": "http://h/t", "run_id": "r",
            "tasks": [{"task_id": "ok", "task": {"runner": "subprocess", "program": "true"}},
                      {"task_id": "bare"}]
        });
        let p = decode(&v).unwrap();
        assert!(p.clone().select(Some(0)).unwrap().check_task().is_ok());
        // Nothing to run at all: the entry is selected, and the check names what is missing,
        // so the worker reports it as that task's error.
        let bare = p.select(Some(1)).unwrap();
        assert!(bare.check_task().unwrap_err().to_string().contains("task"));

        let mut lost = v.clone();
        lost["tasks"][1]["task"] = json!({"program": "true"});
        let e = decode(&lost).unwrap_err().to_string();
        assert!(e.contains("tasks[1].task") && e.contains("no runner"), "{e}");
        lost["tasks"][1]["task"] = json!({"runner": 7});
        assert!(decode(&lost).unwrap_err().to_string().contains("tasks[1].task.runner"));
    }
}
