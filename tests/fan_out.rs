//! Many tasks in one payload, through the built binary: each index runs its
//! own entry and reports under that entry's ids, as the platforms run them
//! (`JOB_COMPLETION_INDEX`, `AWS_BATCH_JOB_ARRAY_INDEX`) and as a person does
//! locally (`--index`).

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

use crate::support::{b64, code, run, stderr, worker, Receiver, Reply, TOKEN};

const RUN_ID: &str = "square:0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Squares of 0..n, one task each; the entry at `fail` exits 3 instead.
fn squares(callback: &str, n: usize, fail: Option<usize>) -> serde_json::Value {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let mut entry = json!({"task_id": format!("square-{i}"), "task": {"input": {"n": i}}});
            if Some(i) == fail {
                entry["task"]["args"] = json!(["-c", "echo 'entry gave up' >&2; exit 3"]);
            }
            entry
        })
        .collect();
    json!({
        "version": 1, "adapter": "kubernetes_jobs", "callback_url": callback, "run_id": RUN_ID,
        "delivery": {},
        "task": {"runner": "subprocess", "program": "sh", "args": ["-c",
            "read input; n=$(echo \"$input\" | tr -dc 0-9); printf '{\"n\": %s, \"square\": %s}' $n $((n*n)) > \"$WOVE_RESULT_FILE\""]},
        "tasks": tasks
    })
}

fn events_of(rx: &Receiver, task_id: &str) -> Vec<serde_json::Value> {
    rx.events().into_iter().filter(|e| e["task_id"] == task_id).collect()
}

/// The one final event of a task (task_started may land before or after it).
fn final_of(rx: &Receiver, task_id: &str) -> serde_json::Value {
    let finals: Vec<_> = events_of(rx, task_id)
        .into_iter()
        .filter(|e| e["type"] != "task_started" && e["type"] != "heartbeat")
        .collect();
    assert_eq!(finals.len(), 1, "{task_id}: {finals:?}");
    finals.into_iter().next().unwrap()
}

#[test]
fn each_index_delivers_its_own_result_under_its_own_ids() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let payload = b64(&squares(&rx.url(TOKEN), 4, None));
    // The way each platform hands out indexes, and the local flag.
    let runs: [(&str, &str, usize); 3] =
        [("JOB_COMPLETION_INDEX", "0", 0), ("AWS_BATCH_JOB_ARRAY_INDEX", "2", 2), ("WOVE_WORKER_INDEX", "3", 3)];
    for (var, value, index) in runs {
        let out = run(worker().env("WOVE_BACKEND_PAYLOAD", &payload).env(var, value), Duration::from_secs(30));
        assert_eq!(code(&out), 0, "{var}={value}: {}", stderr(&out));
        let mut kinds: Vec<_> = events_of(&rx, &format!("square-{index}"))
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_string())
            .collect();
        kinds.sort();
        assert_eq!(kinds, ["task_result", "task_started"], "{var}");
        let result = final_of(&rx, &format!("square-{index}"));
        assert_eq!(result["result"], json!({"n": index, "square": index * index}));
        assert_eq!(result["run_id"], format!("{RUN_ID}/{index}"), "a run id of its own");
        assert_eq!(result["meta"]["task_index"], index);
    }
    // Index 1 never ran: nothing arrived for it.
    assert!(events_of(&rx, "square-1").is_empty());
    assert_eq!(rx.events().len(), 6);
}

#[test]
fn a_failing_entry_fails_only_its_own_task() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let payload = b64(&squares(&rx.url(TOKEN), 3, Some(1)));
    let mut codes = Vec::new();
    for index in 0..3 {
        let out = run(
            worker().env("WOVE_BACKEND_PAYLOAD", &payload).env("JOB_COMPLETION_INDEX", index.to_string()),
            Duration::from_secs(30),
        );
        codes.push(code(&out));
    }
    assert_eq!(codes, [0, 3, 0], "only index 1 fails, with the task-failed code");
    let failed = final_of(&rx, "square-1");
    assert_eq!(failed["type"], "task_error");
    assert!(failed["error"]["traceback"].as_str().unwrap().contains("entry gave up"), "{failed}");
    for index in [0, 2] {
        assert_eq!(final_of(&rx, &format!("square-{index}"))["type"], "task_result");
    }
}

#[test]
fn an_entry_with_nothing_to_run_is_reported_as_its_own_bad_task() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let payload = json!({
        "version": 1, "callback_url": rx.url(TOKEN), "run_id": RUN_ID,
        "tasks": [{"task_id": "fine", "task": {"runner": "subprocess", "program": "true"}}, {"task_id": "empty"}]
    });
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload)).arg("--index").arg("1"), Duration::from_secs(30));
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    let events = events_of(&rx, "empty");
    assert_eq!(events.len(), 1, "it never started: {events:?}");
    assert_eq!(events[0]["type"], "task_error");
    assert_eq!(events[0]["error"]["kind"], "InvalidPayload");
    assert!(events_of(&rx, "fine").is_empty());
}

#[test]
fn bad_or_missing_indexes_are_bad_payloads_that_name_the_problem() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let payload = b64(&squares(&rx.url(TOKEN), 2, None));
    let cases: [(&str, &str, &str); 4] = [
        ("JOB_COMPLETION_INDEX", "2", "index 2 is outside the payload's 2 tasks (0 to 1)"),
        ("AWS_BATCH_JOB_ARRAY_INDEX", "-1", "AWS_BATCH_JOB_ARRAY_INDEX is \"-1\", not a task index"),
        ("UNRELATED", "1", "holds 2 tasks and no index says which to run"),
        ("WOVE_WORKER_INDEX", "9", "index 9 is outside"),
    ];
    for (var, value, said) in cases {
        std::fs::write(&log, "").unwrap();
        let out = run(
            worker().env("WOVE_BACKEND_PAYLOAD", &payload).env(var, value).env("WOVE_WORKER_TERMINATION_LOG", &log),
            Duration::from_secs(30),
        );
        assert_eq!(code(&out), 65, "{var}={value}");
        let err = stderr(&out);
        assert!(err.contains(said), "{var}={value}: {err}");
        crate::support::assert_causes_said_once(&err);
        let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
        assert_eq!((summary["status"].as_str(), summary["run_id"].as_str()), (Some("bad_payload"), Some(RUN_ID)));
    }
    // No task was this process's: nothing was sent.
    assert_eq!(rx.accepted(), 0);

    // --index for a payload that holds one task is a mistake, said as such.
    let mut single = squares(&rx.url(TOKEN), 1, None);
    single.as_object_mut().unwrap().remove("tasks");
    single["task_id"] = json!("only");
    single["task"]["input"] = json!({"n": 4});
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", b64(&single)).args(["--index", "0"]), Duration::from_secs(30));
    assert_eq!(code(&out), 65);
    assert!(stderr(&out).contains("--index 0 was given, but the payload holds a single task"), "{}", stderr(&out));
    // While the platform's index on a single task is no concern of it.
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", b64(&single)).env("JOB_COMPLETION_INDEX", "4"),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn the_termination_message_names_the_task_and_its_index() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&squares(&rx.url(TOKEN), 3, None)))
            .env("JOB_COMPLETION_INDEX", "2")
            .env("WOVE_WORKER_TERMINATION_LOG", &log),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_slice(&std::fs::read(&log).unwrap()).unwrap();
    assert_eq!(summary["task_id"], "square-2");
    assert_eq!(summary["index"], 2);
    assert_eq!(summary["run_id"], format!("{RUN_ID}/2"));
}

#[test]
fn a_gzip_compressed_payload_runs_like_the_plain_one() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let plain = squares(&rx.url(TOKEN), 200, None);
    let json = plain.to_string();
    let packed = wove_proto::Payload::from_text(&json).unwrap().to_base64_gzip();
    assert!(packed.len() * 5 < b64(&plain).len(), "{} vs {}", packed.len(), b64(&plain).len());
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", &packed).env("AWS_BATCH_JOB_ARRAY_INDEX", "199"),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(final_of(&rx, "square-199")["result"]["square"], 199 * 199);

    // Gzip that does not inflate is a bad payload, said as such.
    let mut broken = base64::engine::general_purpose::STANDARD.decode(&packed).unwrap();
    broken.truncate(broken.len() / 2);
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", base64::engine::general_purpose::STANDARD.encode(broken)),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 65);
    assert!(stderr(&out).contains("gzip-compressed but does not decompress"), "{}", stderr(&out));
}
