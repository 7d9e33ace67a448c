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

/// A single-task payload with arbitrary ids, task fields and delivery options.
fn single() -> impl Strategy<Value = Payload> {
    (id(), id(), fields(), prop::option::of(1.0f64..1e6), prop::option::of("\\PC{0,16}")).prop_map(
        |(run_id, task_id, fields, heartbeat, idempotency_key)| Payload {
            version: 1,
            adapter: Some("kubernetes_jobs".into()),
            callback_url: "http://127.0.0.1:9/wove/events/tok".into(),
            run_id,
            task_id,
            task_name: None,
            callable_pickle: None,
            args_pickle: None,
            delivery: Delivery {
                delivery_heartbeat_seconds: heartbeat,
                delivery_idempotency_key: idempotency_key,
                ..Delivery::default()
            },
            task: Some(TaskSpec { runner: "subprocess".into(), fields }),
            tasks: Vec::new(),
        },
    )
}

proptest! {
    #[test]
    fn single_payloads_round_trip_in_every_form(payload in single()) {
        prop_assert_eq!(&Payload::from_base64(&payload.to_base64()).unwrap(), &payload);
        prop_assert_eq!(&Payload::from_base64(&payload.to_base64_gzip()).unwrap(), &payload);
        prop_assert_eq!(&Payload::from_text(&serde_json::to_string(&payload).unwrap()).unwrap(), &payload);
        prop_assert_eq!(payload.clone().select(Some(3)).unwrap(), payload);
    }

    #[test]
    fn wove_v1_signatures_verify_and_nothing_else_does(
        secret in prop::collection::vec(any::<u8>(), 1..64),
        other in prop::collection::vec(any::<u8>(), 1..64),
        path in "/[a-z0-9/]{0,30}",
        query in prop::option::of("[a-z0-9=&]{1,20}"),
        ts in 0u64..4_000_000_000,
        nonce in "[A-Za-z0-9_-]{1,32}",
        body in prop::collection::vec(any::<u8>(), 0..256),
        tamper in any::<u8>(),
    ) {
        use wove_proto::sign::{wove_v1, Secret};
        let secret = Secret::from_bytes(secret);
        let url = match &query {
            Some(q) => format!("http://h{path}?{q}"),
            None => format!("http://h{path}"),
        };
        let target = wove_v1::target_of(&url);
        let headers = wove_v1::headers(&secret, "k1", &target, ts, &nonce, &body);
        let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        prop_assert!(wove_v1::verify(&secret, "k1", &target, &body, ts, 300, get).is_ok());
        let mut changed = body.clone();
        changed.push(tamper);
        prop_assert!(wove_v1::verify(&secret, "k1", &target, &changed, ts, 300, get).is_err());
        prop_assert!(wove_v1::verify(&secret, "k2", &target, &body, ts, 300, get).is_err());
        prop_assert!(wove_v1::verify(&secret, "k1", &target, &body, ts + 301, 300, get).is_err());
        if other != secret.as_bytes() {
            prop_assert!(wove_v1::verify(&Secret::from_bytes(other), "k1", &target, &body, ts, 300, get).is_err());
        }
    }

    #[test]
    fn standard_webhooks_signatures_verify_with_any_rotated_key(
        keys in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..48), 1..4),
        foreign in prop::collection::vec(any::<u8>(), 1..48),
        id in "evt_[a-f0-9]{1,32}",
        ts in 0u64..4_000_000_000,
        body in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        use wove_proto::sign::{standard_webhooks, Secret};
        let secrets: Vec<Secret> = keys.iter().cloned().map(Secret::from_bytes).collect();
        let headers = standard_webhooks::headers(&secrets, &id, ts, &body);
        let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        for one in &secrets {
            prop_assert!(standard_webhooks::verify(std::slice::from_ref(one), &body, ts, 300, get).is_ok());
        }
        if !keys.contains(&foreign) {
            prop_assert!(standard_webhooks::verify(&[Secret::from_bytes(foreign)], &body, ts, 300, get).is_err());
        }
    }

    #[test]
    fn verifying_arbitrary_headers_never_panics(
        values in prop::collection::vec(prop::option::of("\\PC{0,80}"), 7),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        use wove_proto::sign::{standard_webhooks, wove_v1, Secret};
        let names = ["X-Wove-Key", "X-Wove-Timestamp", "X-Wove-Nonce", "X-Wove-Signature",
                     "webhook-id", "webhook-timestamp", "webhook-signature"];
        let get = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name)).and_then(|i| values[i].clone());
        let secret = Secret::from_bytes(b"k".to_vec());
        let _ = wove_v1::verify(&secret, "default", "/t", &body, 1, 300, get);
        let _ = standard_webhooks::verify(&[secret], &body, 1, 300, get);
    }
}
