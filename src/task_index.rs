//! Which task of a many-task payload this process runs.
//!
//! The index comes from `--index` (a local run), else from what the platform
//! sets: Kubernetes' `JOB_COMPLETION_INDEX` in an Indexed Job, AWS Batch's
//! `AWS_BATCH_JOB_ARRAY_INDEX` in an array job's children. A single-task
//! payload runs whatever the platform's index, but an explicit `--index`
//! for it is a mistake worth saying.

use wove_proto::env as vars;
use wove_proto::{Payload, PayloadError};

/// Where an index came from, as a person would name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--index` or `WOVE_WORKER_INDEX`.
    Flag,
    /// A variable the platform sets.
    Platform(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flag => f.write_str("--index"),
            Self::Platform(var) => f.write_str(var),
        }
    }
}

/// An index as given, parsed when it is needed: a platform's variable only
/// matters to a many-task payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskIndex {
    /// Where it came from.
    pub origin: Origin,
    /// Its text.
    pub raw: String,
}

impl TaskIndex {
    /// The index given on the command line, as written.
    pub fn flag(raw: impl Into<String>) -> Self {
        Self { origin: Origin::Flag, raw: raw.into() }
    }

    /// The index the platform set, if any: Kubernetes' first, then AWS Batch's.
    pub fn from_platform(env: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        [vars::JOB_COMPLETION_INDEX, vars::AWS_BATCH_JOB_ARRAY_INDEX].into_iter().find_map(|var| {
            env(var).filter(|v| !v.trim().is_empty()).map(|raw| Self { origin: Origin::Platform(var), raw })
        })
    }

    fn value(&self) -> Result<usize, IndexError> {
        self.raw.trim().parse().map_err(|_| IndexError::NotANumber { origin: self.origin, raw: self.raw.clone() })
    }
}

/// Why no task could be picked.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index is not a number.
    #[error("{origin} is {raw:?}, not a task index")]
    NotANumber {
        /// Where it came from.
        origin: Origin,
        /// What it said.
        raw: String,
    },
    /// `--index` for a payload that holds one task.
    #[error("--index {0} was given, but the payload holds a single task (no `tasks` array)")]
    NotMany(String),
    /// No index, or one outside the entries.
    #[error("cannot pick this process's task")]
    Payload(#[from] PayloadError),
}

/// The task this process runs, and its index in a many-task payload.
pub fn select(payload: Payload, index: Option<&TaskIndex>) -> Result<(Payload, Option<usize>), IndexError> {
    if !payload.is_many() {
        return match index {
            Some(TaskIndex { origin: Origin::Flag, raw }) => Err(IndexError::NotMany(raw.clone())),
            _ => Ok((payload, None)),
        };
    }
    let value = index.map(TaskIndex::value).transpose()?;
    Ok((payload.select(value)?, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(many: bool) -> Payload {
        let text = if many {
            r#"{"version":1,"callback_url":"http://h/t","run_id":"r","task":{"runner":"x"},
                "tasks":[{"task_id":"a"},{"task_id":"b"}]}"#
        } else {
            r#"{"version":1,"callback_url":"http://h/t","run_id":"r","task_id":"t","task":{"runner":"x"}}"#
        };
        Payload::from_text(text).unwrap()
    }

    fn platform(var: &'static str, raw: &str) -> TaskIndex {
        TaskIndex { origin: Origin::Platform(var), raw: raw.into() }
    }

    #[test]
    fn kubernetes_index_wins_over_batch() {
        let env = |k: &str| match k {
            "JOB_COMPLETION_INDEX" => Some("3".to_string()),
            "AWS_BATCH_JOB_ARRAY_INDEX" => Some("5".to_string()),
            _ => None,
        };
        assert_eq!(TaskIndex::from_platform(&env), Some(platform("JOB_COMPLETION_INDEX", "3")));
        let batch_only = |k: &str| (k == "AWS_BATCH_JOB_ARRAY_INDEX").then(|| "5".to_string());
        assert_eq!(TaskIndex::from_platform(&batch_only), Some(platform("AWS_BATCH_JOB_ARRAY_INDEX", "5")));
        assert_eq!(TaskIndex::from_platform(&|_| Some(" ".into())), None);
    }

    #[test]
    fn many_tasks_pick_their_entry() {
        let (p, i) = select(payload(true), Some(&platform("AWS_BATCH_JOB_ARRAY_INDEX", "1"))).unwrap();
        assert_eq!((p.task_id.as_str(), p.run_id.as_str(), i), ("b", "r/1", Some(1)));
        let (p, _) = select(payload(true), Some(&TaskIndex::flag("0"))).unwrap();
        assert_eq!(p.task_id, "a");
    }

    #[test]
    fn bad_indexes_say_where_they_came_from() {
        let e = select(payload(true), Some(&platform("JOB_COMPLETION_INDEX", "x"))).unwrap_err();
        assert_eq!(e.to_string(), "JOB_COMPLETION_INDEX is \"x\", not a task index");
        let e = select(payload(true), Some(&TaskIndex::flag("2"))).unwrap_err();
        assert!(wove_proto::error_chain(&e).contains("index 2 is outside the payload's 2 tasks"), "{e}");
        let e = select(payload(true), None).unwrap_err();
        assert!(wove_proto::error_chain(&e).contains("holds 2 tasks"), "{e}");
        let e = select(payload(false), Some(&TaskIndex::flag("0"))).unwrap_err();
        assert!(e.to_string().contains("single task"), "{e}");
    }

    #[test]
    fn a_single_task_runs_whatever_the_platform_index() {
        let (p, i) = select(payload(false), Some(&platform("JOB_COMPLETION_INDEX", "7"))).unwrap();
        assert_eq!((p.task_id.as_str(), i), ("t", None));
        // Even an index that is not a number: it does not concern a single task.
        assert!(select(payload(false), Some(&platform("JOB_COMPLETION_INDEX", "x"))).is_ok());
    }
}
