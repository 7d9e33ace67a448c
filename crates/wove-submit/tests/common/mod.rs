//! What more than one test binary of wove-submit builds its payloads from.

use wove_submit::EncodedPayload;

/// A many-task payload of `n` squares.
pub fn many(n: usize) -> EncodedPayload {
    let tasks: Vec<_> =
        (0..n).map(|i| serde_json::json!({"task_id": format!("square-{i}"), "task": {"input": i}})).collect();
    let text = serde_json::json!({
        "version": 1, "callback_url": "http://127.0.0.1:9010/wove/events/SECRET-TOKEN", "run_id": "square:7f3a",
        "task": {"runner": "subprocess", "program": "sh", "args": ["-c", "cat > \"$WOVE_RESULT_FILE\""]},
        "tasks": tasks,
    })
    .to_string();
    EncodedPayload::from_text(&text).unwrap()
}
