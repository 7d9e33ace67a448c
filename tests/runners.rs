//! Runner executables (`wove-runner-<name>` on the runner path), through the
//! built binary: each test writes a small shell runner and runs a payload naming it.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{
    b64, code, payload, processes_matching, run, start, start_discarding_stdout, stderr, wait_for, worker, Receiver,
    Reply, TOKEN,
};

/// Write `wove-runner-<name>` with this shell body into `dir`.
fn runner(dir: &Path, name: &str, body: &str) {
    let path = dir.join(format!("wove-runner-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn task(name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut task = serde_json::json!({"runner": name});
    task.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    task
}

/// Run a payload naming `task` against a fresh receiver, with `dir` as the runner path.
fn run_task(dir: &Path, task: serde_json::Value, limit: Duration) -> (i32, String, Receiver) {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)))
            .env("WOVE_WORKER_RUNNER_PATH", dir)
            .env("WOVE_WORKER_SIGNING_SECRET", "runner-never-sees-this"),
        limit,
    );
    (code(&out), stderr(&out), rx)
}

fn final_event(rx: &Receiver) -> serde_json::Value {
    rx.events().into_iter().rev().find(|e| e["type"] != "heartbeat" && e["type"] != "task_started").unwrap()
}

#[test]
fn a_result_on_the_report_channel_is_the_tasks_result() {
    let dir = tempfile::tempdir().unwrap();
    // Reads its request from stdin and answers from the task's fields.
    runner(
        dir.path(),
        "greet",
        r#"request=$(cat)
case "$request" in *'"protocol":1'*) ;; *) echo "no protocol in: $request" >&2; exit 9;; esac
echo '{"heartbeat": true}' >&3
printf '{"result": {"hello": "%s", "times": %s, "run": "%s"}}\n' "$WOVE_TASK_WHO" "$WOVE_TASK_TIMES" "$WOVE_RUN_ID" >&3"#,
    );
    let (code, err, rx) =
        run_task(dir.path(), task("greet", serde_json::json!({"who": "world", "times": 3})), Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    let result = final_event(&rx);
    assert_eq!(result["type"], "task_result");
    let run_id = result["run_id"].clone();
    assert_eq!(result["result"], serde_json::json!({"hello": "world", "times": 3, "run": run_id}));
}

#[test]
fn a_structured_error_keeps_the_runners_kind() {
    let dir = tempfile::tempdir().unwrap();
    runner(
        dir.path(),
        "fail",
        r#"echo 'some log on stdout'
echo '{"error": {"kind": "QuotaExceeded", "message": "over quota", "retryable": true, "details": {"quota": 10}}}' >&3
exit 4"#,
    );
    let (code, err, rx) = run_task(dir.path(), task("fail", serde_json::json!({})), Duration::from_secs(20));
    assert_eq!(code, 3, "{err}");
    let error = &final_event(&rx)["error"];
    assert_eq!(error["kind"], "QuotaExceeded");
    assert_eq!(error["message"], "over quota");
    assert_eq!(error["retryable"], true);
    assert_eq!(error["quota"], 10);
    assert_eq!(error["exit_code"], 4);
}

#[test]
fn without_result_or_error_the_exit_code_decides() {
    let dir = tempfile::tempdir().unwrap();
    runner(dir.path(), "quiet", "exit 0");
    runner(dir.path(), "crash", "echo 'it broke' >&2; exit 5");
    runner(dir.path(), "liar", r#"echo '{"result": 1}' >&3; exit 2"#);
    let (code, err, rx) = run_task(dir.path(), task("quiet", serde_json::json!({})), Duration::from_secs(20));
    assert_eq!((code, &final_event(&rx)["result"]), (0, &serde_json::Value::Null), "{err}");
    let (code, _, rx) = run_task(dir.path(), task("crash", serde_json::json!({})), Duration::from_secs(20));
    let error = &final_event(&rx)["error"];
    assert_eq!((code, error["kind"].as_str(), error["exit_code"].as_i64()), (3, Some("NonZeroExit"), Some(5)));
    assert!(error["traceback"].as_str().unwrap().contains("it broke"));
    let (code, _, rx) = run_task(dir.path(), task("liar", serde_json::json!({})), Duration::from_secs(20));
    assert_eq!((code, final_event(&rx)["error"]["kind"].as_str()), (3, Some("NonZeroExit")), "a result needs exit 0");
}

#[test]
fn printing_a_lot_does_not_disturb_the_result_or_grow_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    runner(
        dir.path(),
        "chatty",
        r#"head -c 300000000 /dev/zero; head -c 20000000 /dev/zero >&2
echo '{"result": "still here"}' >&3"#,
    );
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let worker = start_discarding_stdout(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task("chatty", serde_json::json!({})))))
            .env("WOVE_WORKER_RUNNER_PATH", dir.path()),
    );
    let (out, peak_kib) = worker.finish_measuring_memory(Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0));
    // Output streams through a bounded head and tail: 300 MB printed, the worker stays small.
    assert!(peak_kib > 0 && peak_kib < 40 * 1024, "worker peak RSS {peak_kib} KiB");
    let result = final_event(&rx);
    assert_eq!(result["result"], "still here");
    assert_eq!(result["output"]["stdout_bytes"], 300_000_000);
    assert_eq!(result["output"]["stderr_bytes"], 20_000_000);
}

#[test]
fn a_runner_that_runs_too_long_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    runner(dir.path(), "slow", "exec sleep 3031");
    let started = Instant::now();
    let (code, err, rx) =
        run_task(dir.path(), task("slow", serde_json::json!({"timeout_seconds": 0.5})), Duration::from_secs(20));
    assert_eq!(code, 3, "{err}");
    assert_eq!(final_event(&rx)["error"]["kind"], "Timeout");
    // The promise: timeout, then TERM (sleep dies of it at once).
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(processes_matching("sleep 3031").is_empty());
}

#[test]
fn sigterm_reaches_a_runner_that_ignores_it_then_kill_and_task_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    runner(dir.path(), "stubborn", "trap 'echo ignoring TERM >&2' TERM\nsleep 3032 & sleep 3032; sleep 3032");
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let worker = start(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task("stubborn", serde_json::json!({})))))
            .env("WOVE_WORKER_RUNNER_PATH", dir.path())
            .env("WOVE_WORKER_SHUTDOWN_BUDGET", "4"),
    );
    assert!(wait_for(Duration::from_secs(10), || processes_matching("sleep 3032").len() >= 2), "runner never started");
    let signalled = Instant::now();
    worker.signal(Signal::SIGTERM);
    let out = worker.finish(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
    // The promise: everything after SIGTERM fits the shutdown budget (4 s, the grace is 1 s in tests).
    assert!(signalled.elapsed() < Duration::from_secs(4) + Duration::from_millis(500));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignoring TERM"), "the runner got the SIGTERM");
    assert_eq!(final_event(&rx)["type"], "task_cancelled");
    assert!(processes_matching("sleep 3032").is_empty(), "nothing of the runner is left");
}

#[test]
fn a_daemon_left_behind_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    runner(
        dir.path(),
        "daemon",
        r#"setsid sleep 3033 > /dev/null 2>&1 < /dev/null &
echo '{"result": "bye"}' >&3"#,
    );
    let (code, err, rx) = run_task(dir.path(), task("daemon", serde_json::json!({})), Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    assert_eq!(final_event(&rx)["result"], "bye");
    assert!(processes_matching("sleep 3033").is_empty(), "the runner's daemon outlived the task");
}

#[test]
fn names_that_could_leave_the_runner_path_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["../wove-runner-x", "/bin/sh", "a/b", "..", "UPPER"] {
        let (code, err, rx) = run_task(dir.path(), task(name, serde_json::json!({})), Duration::from_secs(20));
        assert_eq!(code, 65, "{name}: {err}");
        let error = &final_event(&rx)["error"];
        assert_eq!(error["kind"], "InvalidPayload", "{name}");
        assert!(error["message"].as_str().unwrap().contains("not allowed"), "{error}");
    }
}

#[test]
fn an_unknown_runner_names_every_directory_searched() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let path = std::env::join_paths([first.path(), second.path()]).unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task("ffmpeg-thumb", serde_json::json!({})))))
            .env("WOVE_WORKER_RUNNER_PATH", &path),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    // The weave is told, once, why its task will not run.
    let events = rx.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let error = &events[0]["error"];
    assert_eq!((events[0]["type"].as_str(), error["kind"].as_str()), (Some("task_error"), Some("UnknownRunner")));
    assert_eq!(error["source"], "worker");
    let message = error["message"].as_str().unwrap();
    for expected in [
        "wove-runner-ffmpeg-thumb",
        "python, subprocess",
        &first.path().display().to_string(),
        &second.path().display().to_string(),
    ] {
        assert!(message.contains(expected), "{expected} missing from {message}");
    }
}

#[test]
fn a_runner_never_sees_the_payload_the_token_or_the_secrets() {
    let dir = tempfile::tempdir().unwrap();
    runner(dir.path(), "snoop", "env; cat; echo");
    let (code, err, _rx) = run_task(dir.path(), task("snoop", serde_json::json!({})), Duration::from_secs(20));
    assert_eq!(code, 0, "{err}");
    // The runner's stdout and stderr are the worker's: read what it printed there.
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task("snoop", serde_json::json!({})))))
            .env("WOVE_WORKER_RUNNER_PATH", dir.path())
            .env("WOVE_WORKER_SIGNING_SECRET", "runner-never-sees-this"),
        Duration::from_secs(20),
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("WOVE_RUNNER_PROTOCOL=1") && printed.contains("\"protocol\":1"), "{printed}");
    for secret in [TOKEN, "runner-never-sees-this", "WOVE_BACKEND_PAYLOAD", "callback_url"] {
        assert!(!printed.contains(secret), "the runner saw {secret}");
    }
}

#[test]
fn runners_lists_built_ins_and_executables_with_their_files() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    runner(first.path(), "thumb", "true");
    runner(second.path(), "thumb", "true");
    runner(second.path(), "zip", "true");
    let path = std::env::join_paths([first.path(), second.path()]).unwrap();
    let out = run(worker().arg("runners").env("WOVE_WORKER_RUNNER_PATH", &path), Duration::from_secs(20));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.lines().any(|l| l.starts_with("subprocess") && l.ends_with("built-in")), "{listed}");
    let thumb: Vec<&str> = listed.lines().filter(|l| l.starts_with("thumb ")).collect();
    assert_eq!(thumb.len(), 2, "{listed}");
    assert!(thumb[0].contains(&first.path().display().to_string()) && !thumb[0].contains("shadowed"));
    assert!(thumb[1].contains("shadowed"));
    assert!(listed.lines().any(|l| l.starts_with("zip ")), "{listed}");
}

#[test]
fn a_report_line_that_is_not_a_message_fails_the_task() {
    let dir = tempfile::tempdir().unwrap();
    // The result is lost in a line the worker cannot read: never a success with `null`.
    runner(dir.path(), "garbled", "echo '{not json' >&3; exit 0");
    let (code, err, rx) = run_task(dir.path(), task("garbled", serde_json::json!({})), Duration::from_secs(20));
    assert_eq!(code, 3, "{err}");
    let event = final_event(&rx);
    assert_eq!(event["type"], "task_error");
    assert_eq!(event["error"]["kind"], "InvalidReport");
    assert!(event["error"]["message"].as_str().unwrap().contains("{not json"), "{event}");
}

#[test]
fn a_report_line_longer_than_a_result_may_be_is_result_too_large() {
    let dir = tempfile::tempdir().unwrap();
    runner(
        dir.path(),
        "flood",
        r#"{ printf '{"result": "'; head -c 3000000 /dev/zero | tr '\0' x; printf '"}\n'; } >&3"#,
    );
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let running = start(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task("flood", serde_json::json!({})))))
            .env("WOVE_WORKER_RUNNER_PATH", dir.path())
            .args(["--max-result-bytes", "1048576"]),
    );
    let (out, peak_kib) = running.finish_measuring_memory(Duration::from_secs(60));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let event = final_event(&rx);
    assert_eq!(event["error"]["kind"], "ResultTooLarge", "{event}");
    assert!(event.get("result").is_none());
    assert!(peak_kib < 64 * 1024, "peak {peak_kib} KiB");
}

#[test]
fn a_runners_fields_and_result_keep_their_numbers_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("seen");
    runner(
        dir.path(),
        "exact",
        &format!(
            "cat > {0}.stdin; echo \"$WOVE_TASK_N\" > {0}.env; echo '{{\"result\": [123456789012345678901234567890, -0, 1e2]}}' >&3",
            seen.display()
        ),
    );
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let text = format!(
        r#"{{"version": 1, "callback_url": "{}", "run_id": "r", "task_id": "t",
            "task": {{"runner": "exact", "n": 18446744073709551616, "z": -0, "nested": {{"f": 1.50}}}}}}"#,
        rx.url(TOKEN)
    );
    let encoded = crate::support::b64_text(&text);
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", encoded).env("WOVE_WORKER_RUNNER_PATH", dir.path()),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stdin = std::fs::read_to_string(dir.path().join("seen.stdin")).unwrap();
    assert!(
        stdin.contains(r#""task":{"n":18446744073709551616,"nested":{"f":1.50},"runner":"exact","z":-0}"#),
        "{stdin}"
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("seen.env")).unwrap().trim(), "18446744073709551616");
    let body = String::from_utf8_lossy(&rx.of_type("task_result")[0].body).into_owned();
    assert!(body.contains(r#""result":[123456789012345678901234567890,-0,1e+2]"#), "{body}");
}

#[test]
fn a_ten_thousand_character_error_kind_still_leaves_a_termination_message() {
    let dir = tempfile::tempdir().unwrap();
    let kind = "K".repeat(10_000);
    runner(dir.path(), "longkind", &format!(r#"echo '{{"error": {{"kind": "{kind}", "message": "m"}}}}' >&3; exit 1"#));
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task("longkind", serde_json::json!({})))))
            .env("WOVE_WORKER_RUNNER_PATH", dir.path())
            .env("WOVE_WORKER_TERMINATION_LOG", &log),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.len() <= 4096, "{}", written.len());
    let record: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(record["status"], "failed");
}
