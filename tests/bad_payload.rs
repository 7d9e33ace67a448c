//! Every class of malformed payload: one clear line, exit 65, no panic.

use std::time::Duration;

use crate::support::{b64, code, payload, run, sh, stderr, worker, Receiver, Reply, TOKEN};

fn rejected(cmd: &mut std::process::Command, needle: &str) {
    let out = run(cmd, Duration::from_secs(20));
    let err = stderr(&out);
    assert_eq!(code(&out), 65, "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn valid() -> serde_json::Value {
    payload("http://127.0.0.1:9/wove/events/t", sh("true"))
}

#[test]
fn missing_payload() {
    rejected(&mut worker(), "no payload");
}

#[test]
fn bad_base64() {
    rejected(worker().env("WOVE_BACKEND_PAYLOAD", "%%% not base64 %%%"), "not valid base64");
}

#[test]
fn decoding_errors_say_where_and_why_once() {
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", "not base64!"), Duration::from_secs(20));
    assert_eq!(code(&out), 65);
    let err = stderr(&out);
    // Whitespace is dropped before decoding (base64 -w76 output), so `!` is at offset 9.
    let expected = "cannot decode the payload from WOVE_BACKEND_PAYLOAD: payload is not valid base64: \
                    Invalid symbol 33, offset 9.";
    assert!(err.lines().any(|l| l.ends_with(expected)), "{err}");
    assert_eq!(err.matches("Invalid symbol").count(), 1, "{err}");
}

#[test]
fn bad_json() {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode("{\"version\": 1,");
    rejected(worker().env("WOVE_BACKEND_PAYLOAD", text), "not valid JSON");
}

#[test]
fn not_utf8() {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode([0xff, 0xfe, 0x7b]);
    rejected(worker().arg(text), "UTF-8");
}

#[test]
fn unknown_version() {
    let mut p = valid();
    p["version"] = 2.into();
    rejected(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), "`version`");
}

#[test]
fn missing_key() {
    let mut p = valid();
    p.as_object_mut().unwrap().remove("task_id");
    rejected(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), "task_id");
}

#[test]
fn mistyped_key() {
    let mut p = valid();
    p["delivery"] = serde_json::json!({"delivery_heartbeat_seconds": "often"});
    rejected(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), "delivery.delivery_heartbeat_seconds");
}

#[test]
fn mistyped_task_field_is_reported_to_the_weave() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let mut p = payload(&rx.url(TOKEN), sh("true"));
    p["task"]["args"] = "not a list".into();
    rejected(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), "task.args");
    let events = rx.events();
    assert_eq!(events.len(), 1, "only the task_error, no task_started: {events:?}");
    assert!(events[0]["error"]["message"].as_str().unwrap().contains("task.args"));
}

#[test]
fn neither_task_nor_callable() {
    let mut p = valid();
    p.as_object_mut().unwrap().remove("task");
    rejected(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), "`task`");
}

#[test]
fn payload_file_missing() {
    rejected(worker().arg("--payload-file").arg("/nonexistent/payload.json"), "/nonexistent/payload.json");
}

#[test]
fn payload_file_bad_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.json");
    std::fs::write(&path, "{ nope").unwrap();
    rejected(worker().env("WOVE_BACKEND_PAYLOAD_FILE", &path), "not valid JSON");
}

/// The weave is waiting for this task: a payload good enough to say where to
/// report, but naming a runner we lack, gets a task_error before exit 65.
#[test]
fn base64_and_json_payload_files_both_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = payload("http://127.0.0.1:9/wove/events/t", sh("echo '[1,2]' > \"$WOVE_RESULT_FILE\""));
    for (name, text) in [("p.json", p.to_string()), ("p.b64", format!("{}\n", b64(&p)))] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = run(worker().arg("--print-events").arg("--payload-file").arg(&path), Duration::from_secs(20));
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(last["body"]["result"], serde_json::json!([1, 2]), "{name}");
    }
}

/// Regression: a timeout too large for a deadline used to reach
/// `Duration::from_secs_f64` and panic.
#[test]
fn absurd_durations_are_refused_not_panicked_on() {
    let mut p = valid();
    p["task"]["timeout_seconds"] = serde_json::json!(1e300);
    let mut cmd = worker();
    cmd.env("WOVE_BACKEND_PAYLOAD", b64(&p)).env("WOVE_WORKER_DELIVERY_BUDGET", "0.5");
    rejected(&mut cmd, "task.timeout_seconds");

    let mut p = valid();
    p["delivery"] = serde_json::json!({"delivery_heartbeat_seconds": 1e300});
    rejected(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), "delivery.delivery_heartbeat_seconds");
}
