//! The subprocess runner through the built binary.

use std::time::{Duration, Instant};

use crate::support::{
    b64, code, payload, run, sh, start, start_discarding_stdout, stderr, wait_for, worker, Receiver, Reply, TOKEN,
};

fn run_task(task: serde_json::Value) -> (std::process::Output, Receiver) {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task))), Duration::from_secs(30));
    (out, rx)
}

fn final_event(rx: &Receiver) -> serde_json::Value {
    let finals: Vec<_> = rx
        .events()
        .into_iter()
        .filter(|e| ["task_result", "task_error", "task_cancelled"].contains(&e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(finals.len(), 1, "exactly one final event: {finals:?}");
    finals.into_iter().next().unwrap()
}

#[test]
fn input_on_stdin_and_result_from_the_result_file() {
    let mut task = sh("cat > \"$WOVE_RESULT_FILE\"");
    task["input"] = serde_json::json!({"numbers": [1, 2, 3], "name": "ü"});
    let (out, rx) = run_task(task);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let e = final_event(&rx);
    assert_eq!(e["type"], "task_result");
    assert_eq!(e["result"], serde_json::json!({"numbers": [1, 2, 3], "name": "ü"}));
}

#[test]
fn numbers_reach_the_task_exactly_as_written() {
    // Found by a property test: without exact float parsing, 945916.4500754073 arrived as ...072.
    let mut task = sh("cat > \"$WOVE_RESULT_FILE\"");
    task["input"] = serde_json::json!({"x": 945916.4500754073, "tiny": 5e-324, "big": 1.7976931348623157e308});
    let (out, rx) = run_task(task.clone());
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(final_event(&rx)["result"], task["input"]);
    let body = &rx.of_type("task_result")[0].body;
    assert!(String::from_utf8_lossy(body).contains("945916.4500754073"));
}

#[test]
fn args_env_and_cwd_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let task = serde_json::json!({
        "runner": "subprocess", "program": "sh",
        "args": ["-c", "printf '[\"%s\",\"%s\",\"%s\"]' \"$1\" \"$GREETING\" \"$(pwd)\" > \"$WOVE_RESULT_FILE\"", "sh", "first-arg"],
        "env": {"GREETING": "hi"}, "cwd": dir.path()
    });
    let (out, rx) = run_task(task);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let canonical = dir.path().canonicalize().unwrap();
    assert_eq!(final_event(&rx)["result"], serde_json::json!(["first-arg", "hi", canonical]));
}

#[test]
fn no_result_file_means_null() {
    let (out, rx) = run_task(sh("true"));
    assert_eq!(code(&out), 0);
    assert_eq!(final_event(&rx)["result"], serde_json::Value::Null);
}

#[test]
fn secrets_are_not_inherited_by_the_task() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = sh("printf '[\"%s\",\"%s\"]' \"${WOVE_BACKEND_PAYLOAD:-unset}\" \"${WOVE_WORKER_SIGNING_SECRET:-unset}\" > \"$WOVE_RESULT_FILE\"");
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)))
            .env("WOVE_WORKER_SIGNING_SECRET", "s"),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 0);
    assert_eq!(final_event(&rx)["result"], serde_json::json!(["unset", "unset"]));
}

#[test]
fn nonzero_exit_reports_code_and_stderr_tail() {
    let (out, rx) = run_task(sh("echo 'starting' >&2; echo 'disk on fire' >&2; exit 7"));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let e = final_event(&rx);
    assert_eq!(e["type"], "task_error");
    assert_eq!(e["error"]["kind"], "NonZeroExit");
    assert_eq!(e["error"]["exit_code"], 7);
    assert!(e["error"]["traceback"].as_str().unwrap().contains("disk on fire"));
    assert!(e["error"]["message"].as_str().unwrap().contains("exit code 7"));
    // The task's stderr also reached the container's stderr.
    assert!(stderr(&out).contains("disk on fire"));
}

#[test]
fn killed_by_a_signal_is_reported() {
    let (out, rx) = run_task(sh("kill -9 $$"));
    assert_eq!(code(&out), 3);
    let e = final_event(&rx);
    assert_eq!(e["error"]["kind"], "Killed");
    assert_eq!(e["error"]["signal"], 9);
}

#[test]
fn invalid_result_json_fails_the_task() {
    let (out, rx) = run_task(sh("echo 'not json' > \"$WOVE_RESULT_FILE\""));
    assert_eq!(code(&out), 3);
    assert_eq!(final_event(&rx)["error"]["kind"], "InvalidResult");
}

#[test]
fn missing_program_is_a_delivered_spawn_failure() {
    let (out, rx) = run_task(serde_json::json!({"runner": "subprocess", "program": "/nonexistent/prog"}));
    assert_eq!(code(&out), 3);
    let e = final_event(&rx);
    assert_eq!(e["error"]["kind"], "SpawnFailed");
    assert_eq!(e["error"]["source"], "worker");
}

#[test]
fn timeout_stops_the_whole_group() {
    let mut task = sh("sleep 60 & sleep 60; echo never");
    task["timeout_seconds"] = 0.5.into();
    let started = Instant::now();
    let (out, rx) = run_task(task);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(15), "timeout not enforced");
    let e = final_event(&rx);
    assert_eq!(e["error"]["kind"], "Timeout");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("never"));
}

#[test]
fn sigterm_cancels_the_task_and_exits_143() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("trap-set");
    let script = format!("trap 'echo got-term >&2; exit 0' TERM; touch {}; sleep 30 & wait", ready.display());
    let p = payload(&rx.url(TOKEN), sh(&script));
    let worker = start(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)));
    // The task says when its trap is in place: only then does SIGTERM test the trap.
    assert!(wait_for(Duration::from_secs(10), || ready.exists()), "the task never got ready");
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    // The kill grace is 1 s in tests; the shutdown budget (25 s) bounds the rest.
    let out = worker.finish(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(143), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("got-term"), "SIGTERM reached the task");
    assert_eq!(final_event(&rx)["type"], "task_cancelled");
}

/// A gigabyte through the task's stdout: the worker's own peak RSS
/// stays small because output is streamed, never accumulated.
#[test]
fn large_output_streams_without_memory_growth() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let p = payload(&rx.url(TOKEN), sh("head -c 1073741824 /dev/zero; head -c 1000000 /dev/zero >&2; echo done >&2"));
    let worker = start_discarding_stdout(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)));
    let (out, peak_kib) = worker.finish_measuring_memory(Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(0));
    assert!(peak_kib > 0, "measured nothing");
    assert!(peak_kib < 40 * 1024, "worker peak RSS {peak_kib} KiB while streaming 1 GiB");
    let output = &final_event(&rx)["output"];
    assert_eq!(output["stdout_bytes"], 1u64 << 30, "every byte was seen");
    assert_eq!(output["truncated"], true);
}

#[test]
fn numbers_are_carried_as_written_never_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let stdin_copy = dir.path().join("stdin.json");
    let script = format!("tee {} > \"$WOVE_RESULT_FILE\"", stdin_copy.display());
    // Raw text: these numbers are the point, and no f64 holds them.
    let text = format!(
        r#"{{"version": 1, "callback_url": "CALLBACK", "run_id": "r", "task_id": "t",
            "task": {{"runner": "subprocess", "program": "sh", "args": ["-c", {script:?}],
                      "input": {{"big": 18446744073709551616, "huge": 123456789012345678901234567890,
                                 "zero": -0, "e": 1e2, "kept": 1.50, "neg": -9223372036854775809}}}}}}"#
    );
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let encoded = crate::support::b64_text(&text.replace("CALLBACK", &rx.url(TOKEN)));
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", encoded), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // serde_json writes an exponent with its sign (`1e2` as `1e+2`): the same number to every parser.
    let expected = r#"{"big":18446744073709551616,"e":1e+2,"huge":123456789012345678901234567890,"kept":1.50,"neg":-9223372036854775809,"zero":-0}"#;
    assert_eq!(std::fs::read_to_string(&stdin_copy).unwrap(), expected, "the task's stdin");
    let body = String::from_utf8_lossy(&rx.of_type("task_result")[0].body).into_owned();
    assert!(body.contains(&format!("\"result\":{expected}")), "{body}");
}

#[test]
fn a_result_file_over_the_bound_is_refused_before_it_is_read() {
    // Sparse files: their size is all the worker may look at.
    for (size, flag) in [("300M", Some("1048576")), ("600M", None)] {
        let rx = Receiver::start(vec![Reply::Status(204)]);
        let task = sh(&format!("truncate -s {size} \"$WOVE_RESULT_FILE\""));
        let mut cmd = worker();
        cmd.env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)));
        if let Some(bound) = flag {
            cmd.args(["--max-result-bytes", bound]);
        }
        let (out, peak_kib) = start(&mut cmd).finish_measuring_memory(Duration::from_secs(60));
        assert_eq!(code(&out), 3, "{size}: {}", stderr(&out));
        let e = final_event(&rx);
        assert_eq!(e["error"]["kind"], "ResultTooLarge", "{size}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("--max-result-bytes"), "{e}");
        assert!(peak_kib < 96 * 1024, "{size}: the worker reached {peak_kib} KiB");
    }
}

#[test]
fn a_missing_working_directory_is_named_as_such() {
    let task = serde_json::json!({"runner": "subprocess", "program": "true", "cwd": "/nonexistent/work"});
    let (out, rx) = run_task(task);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let message = final_event(&rx)["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("working directory `/nonexistent/work`"), "{message}");
}

#[test]
fn a_partial_line_from_the_task_never_glues_onto_a_printed_event() {
    let p = payload("http://127.0.0.1:9/wove/events/t", sh("printf 'no newline at the end'"));
    let out = run(worker().arg("--print-events").env("WOVE_BACKEND_PAYLOAD", b64(&p)), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l == "no newline at the end"), "{stdout}");
    let events: Vec<&str> = stdout.lines().filter(|l| l.contains("\"headers\"")).collect();
    assert_eq!(events.len(), 2, "{stdout}");
    for line in events {
        let event: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(event["body"]["type"].is_string());
    }
}
