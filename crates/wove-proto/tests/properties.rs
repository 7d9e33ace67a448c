//! Properties of the many-task payload form, over generated payloads: it
//! survives encoding (plain and compressed), and every index selects exactly
//! its own entry.

use std::collections::HashSet;

use proptest::prelude::*;
use wove_proto::fan_out::{entry_run_id, TaskEntry};
use wove_proto::{Delivery, Payload, PayloadError, TaskSpec};

/// Ids as a weave may write them: any printable text, colons and unicode included.
fn id() -> impl Strategy<Value = String> {
    "\\PC{1,24}"
}

/// A task's fields: a few names (never `runner`, which must be a string) with numbers.
fn fields() -> impl Strategy<Value = serde_json::Map<String, serde_json::Value>> {
    prop::collection::btree_map("[a-z_]{1,8}".prop_filter("runner is a string", |k| k != "runner"), any::<i64>(), 0..3)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k, serde_json::Value::from(v))).collect())
}

fn entry() -> impl Strategy<Value = TaskEntry> {
    (id(), prop::option::of(id()), fields(), prop::option::of("[A-Za-z0-9+/]{4,12}")).prop_map(
        |(task_id, run_id, task, args_pickle)| TaskEntry { task_id, run_id, task, callable_pickle: None, args_pickle },
    )
}

fn many() -> impl Strategy<Value = Payload> {
    (id(), prop::collection::vec(entry(), 1..40), fields())
        .prop_map(|(run_id, tasks, shared)| Payload {
            version: 1,
            adapter: None,
            callback_url: "https://wove.example/wove/events/tok".into(),
            run_id,
            task_id: String::new(),
            task_name: None,
            callable_pickle: None,
            args_pickle: None,
            delivery: Delivery::default(),
            task: Some(TaskSpec { runner: "subprocess".into(), fields: shared }),
            tasks,
        })
        // Two tasks with one run id are refused on decoding: keep the valid payloads.
        .prop_filter("distinct run ids", |p| {
            let ids: HashSet<String> = p
                .tasks
                .iter()
                .enumerate()
                .map(|(i, e)| e.run_id.clone().unwrap_or_else(|| entry_run_id(&p.run_id, i)))
                .collect();
            ids.len() == p.tasks.len()
        })
}

proptest! {
    #[test]
    fn many_task_payloads_round_trip_plain_and_compressed(payload in many()) {
        prop_assert_eq!(&Payload::from_base64(&payload.to_base64()).unwrap(), &payload);
        prop_assert_eq!(&Payload::from_base64(&payload.to_base64_gzip()).unwrap(), &payload);
        prop_assert_eq!(&Payload::from_bytes(&serde_json::to_vec(&payload).unwrap()).unwrap(), &payload);
    }

    #[test]
    fn each_index_selects_its_own_entry_and_no_other(payload in many(), beyond in 0usize..1000) {
        let n = payload.tasks.len();
        let mut run_ids = HashSet::new();
        for i in 0..n {
            let task = payload.clone().select(Some(i)).unwrap();
            let entry = &payload.tasks[i];
            prop_assert_eq!(&task.task_id, &entry.task_id);
            prop_assert!(!task.is_many());
            prop_assert_eq!(&task.args_pickle, &entry.args_pickle);
            // The entry's fields win over the shared ones; the shared ones it does not name stay.
            let fields = &task.task.as_ref().unwrap().fields;
            for (key, value) in &entry.task {
                prop_assert_eq!(fields.get(key), Some(value));
            }
            for (key, value) in &payload.task.as_ref().unwrap().fields {
                if !entry.task.contains_key(key) {
                    prop_assert_eq!(fields.get(key), Some(value));
                }
            }
            prop_assert!(run_ids.insert(task.run_id.clone()), "index {} shares a run id", i);
        }
        let outside = payload.clone().select(Some(n + beyond));
        let refused_as_tasks = matches!(outside, Err(PayloadError::Field { ref field, .. }) if field == "tasks");
        prop_assert!(refused_as_tasks, "{:?}", outside);
        prop_assert!(payload.select(None).is_err());
    }
}
