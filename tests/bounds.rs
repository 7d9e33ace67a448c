//! Bounds on every input, through the built binary: each breach says which
//! bound and which flag raises it, exits with the documented code, and tells
//! the weave with a `task_error` whenever the payload said where to report.

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

use crate::support::{b64, code, payload, run, sh, stderr, worker, Receiver, Reply, TOKEN};

/// Run and expect `exit`, with `said` in stderr.
fn breach(cmd: &mut std::process::Command, exit: i32, said: &str) -> std::process::Output {
    let out = run(cmd, Duration::from_secs(30));
    let err = stderr(&out);
    assert_eq!(code(&out), exit, "{err}");
    assert!(err.contains(said), "expected {said:?} in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    crate::support::assert_causes_said_once(&err);
    out
}

/// The one `task_error` a breach sent, and its kind and message.
fn reported(rx: &Receiver) -> (String, String) {
    let errors = rx.of_type("task_error");
    assert_eq!(errors.len(), 1, "one task_error");
    let error = &errors[0].json()["error"];
    (error["kind"].as_str().unwrap().to_string(), error["message"].as_str().unwrap().to_string())
}

#[test]
fn payload_size_in_every_form() {
    let p = payload(
        "http://127.0.0.1:9/wove/events/t",
        json!({"runner": "subprocess", "program": "true",
        "input": "x".repeat(5000)}),
    );
    let said = "payload is larger than 4000 bytes of JSON";
    breach(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)).env("WOVE_WORKER_MAX_PAYLOAD_BYTES", "4000"), 65, said);
    // Compressed, it is small; inflated, it is not.
    let packed = wove_proto::Payload::from_text(&p.to_string()).unwrap().to_base64_gzip();
    assert!(packed.len() < 1000);
    breach(worker().env("WOVE_BACKEND_PAYLOAD", &packed).args(["--max-payload-bytes", "4000"]), 65, said);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.json");
    std::fs::write(&file, p.to_string()).unwrap();
    breach(worker().arg("--payload-file").arg(&file).args(["--max-payload-bytes", "4000"]), 65, said);
    // Within the bound it runs.
    let out = run(worker().arg("--payload-file").arg(&file).arg("--print-events"), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_compression_bomb_stops_at_the_bound() {
    // 200 MB of spaces inside JSON packs into about 200 KB of gzip.
    let mut json = br#"{"version": 1, "pad": ""#.to_vec();
    json.extend(std::iter::repeat_n(b' ', 200 << 20));
    json.extend(br#""}"#);
    let bomb = wove_proto::gzip::deflate(&json);
    assert!(bomb.len() < 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.gz");
    std::fs::write(&file, &bomb).unwrap();
    breach(worker().arg("--payload-file").arg(&file), 65, "payload is larger than 67108864 bytes of JSON");
}

#[test]
fn json_nesting_stops_at_serde_json_s_recursion_limit() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let text = format!(
        r#"{{"version": 1, "callback_url": "http://127.0.0.1:9/wove/events/t", "run_id": "r", "task_id": "t",
            "task": {{"runner": "subprocess", "program": "cat", "input": {deep}}}}}"#
    );
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    breach(worker().env("WOVE_BACKEND_PAYLOAD", encoded), 65, "recursion limit exceeded");
}

#[test]
fn task_arguments_and_environment() {
    let cases = [
        (
            json!({"runner": "subprocess", "program": "true", "args": ["a", "b", "c", "d"]}),
            "--max-task-args",
            "3",
            "task.args",
            "4 arguments, more than the 3 allowed (--max-task-args)",
        ),
        (
            json!({"runner": "subprocess", "program": "true", "args": ["a", "x".repeat(200)]}),
            "--max-task-string-bytes",
            "100",
            "task.args[1]",
            "200 bytes, more than the 100 allowed",
        ),
        (
            json!({"runner": "subprocess", "program": "true", "env": {"A": "1", "B": "2"}}),
            "--max-task-env",
            "1",
            "task.env",
            "2 variables, more than the 1 allowed (--max-task-env)",
        ),
        (
            json!({"runner": "subprocess", "program": "true", "env": {"BIG": "y".repeat(200)}}),
            "--max-task-string-bytes",
            "100",
            "task.env.BIG",
            "204 bytes, more than the 100 allowed",
        ),
    ];
    for (task, flag, value, field, said) in cases {
        let rx = Receiver::start(vec![Reply::Status(204)]);
        breach(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task))).args([flag, value]), 65, said);
        let (kind, message) = reported(&rx);
        assert_eq!(kind, "InvalidPayload");
        assert!(message.contains(field) && message.contains(said), "{message}");
        assert!(rx.of_type("task_started").is_empty(), "nothing ran");
    }
    // The runner executable's WOVE_TASK_<FIELD> variables count too.
    let dir = tempfile::tempdir().unwrap();
    let runner = dir.path().join("wove-runner-env");
    std::fs::write(&runner, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&runner, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = json!({"runner": "env", "a": 1, "b": 2, "c": 3});
    breach(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)))
            .arg("--runner-path")
            .arg(dir.path())
            .args(["--max-task-env", "2"]),
        65,
        "more than the 2 allowed (--max-task-env)",
    );
}

#[test]
fn a_result_over_the_bound_fails_the_task_that_made_it() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = sh("printf '\"%s\"' \"$(head -c 5000 /dev/zero | tr '\\0' x)\" > \"$WOVE_RESULT_FILE\"");
    breach(
        worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task))).args(["--max-result-bytes", "1000"]),
        3,
        "ResultTooLarge",
    );
    let (kind, message) = reported(&rx);
    assert_eq!(kind, "ResultTooLarge");
    assert_eq!(message, "the task's result is 5002 bytes as sent, more than the 1000 allowed (--max-result-bytes)");
    assert!(rx.of_type("task_result").is_empty());
}

#[test]
fn a_result_the_receiver_refuses_as_too_large_becomes_the_task_s_error() {
    // task_started is answered first (the task waits for it), the result gets 413, the error 204.
    let rx = Receiver::start(vec![Reply::Status(204), Reply::Status(413), Reply::Status(204)]);
    let task = sh("sleep 0.5; echo '{\"big\": true}' > \"$WOVE_RESULT_FILE\"");
    breach(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task))), 3, "ResultTooLarge");
    assert_eq!(rx.of_type("task_result").len(), 1, "a 413 is not retried");
    let (kind, message) = reported(&rx);
    assert_eq!(kind, "ResultTooLarge");
    assert!(message.contains("HTTP 413"), "{message}");
}

#[cfg(feature = "wasm")]
#[test]
fn webassembly_modules_from_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("big.wasm");
    std::fs::write(&module, vec![0u8; 5000]).unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = json!({"runner": "wasm", "module": {"path": module}});
    breach(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)))
            .args(["--max-wasm-module-bytes", "1000"]),
        3,
        "ModuleTooLarge",
    );
    let (kind, message) = reported(&rx);
    assert_eq!(kind, "ModuleTooLarge");
    assert!(message.contains("5000 bytes, more than the 1000 allowed (--max-wasm-module-bytes)"), "{message}");

    let rx = Receiver::start(vec![Reply::Status(204)]);
    let inline = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 5000]);
    let task = json!({"runner": "wasm", "module": {"base64": inline}});
    breach(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)))
            .args(["--max-wasm-module-bytes", "1000"]),
        65,
        "task.module.base64",
    );
    assert_eq!(reported(&rx).0, "InvalidPayload");
}

#[test]
fn the_termination_message_fits_whatever_the_ids_and_kinds_hold() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let mut p = payload(&rx.url(TOKEN), sh("echo failing >&2; exit 4"));
    p["task_id"] = json!("t".repeat(5000));
    p["run_id"] = json!(format!("{}\u{1}\"", "r".repeat(6000)));
    // Kubernetes always creates the file: the record must be written and fit, at once.
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)).env("WOVE_WORKER_TERMINATION_LOG", &log),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.len() <= 4096, "{} bytes", written.len());
    let record: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!((record["status"].as_str(), record["exit_code"].as_u64()), (Some("failed"), Some(3)));
    assert_eq!(record["delivered"], true);
}

#[test]
fn a_gzip_bomb_costs_no_more_memory_than_the_bound() {
    // Against a 1 MiB bound: 1 GiB of JSON in about a megabyte of gzip from a
    // file; 64 MiB in the environment (which holds 128 KiB in one variable).
    let bomb_of = |size: usize| {
        let mut json = br#"{"version": 1, "pad": ""#.to_vec();
        json.extend(std::iter::repeat_n(b' ', size));
        json.extend(br#""}"#);
        wove_proto::gzip::deflate(&json)
    };
    let bomb = bomb_of(1 << 30);
    let packed = base64::engine::general_purpose::STANDARD.encode(bomb_of(64 << 20));
    assert!(packed.len() < 128 << 10, "{}", packed.len());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.gz");
    std::fs::write(&file, &bomb).unwrap();
    for from_file in [false, true] {
        let mut cmd = worker();
        cmd.args(["--max-payload-bytes", "1048576"]);
        if from_file {
            cmd.arg("--payload-file").arg(&file);
        } else {
            cmd.env("WOVE_BACKEND_PAYLOAD", &packed);
        }
        let (out, peak_kib) = crate::support::start(&mut cmd).finish_measuring_memory(Duration::from_secs(60));
        assert_eq!(code(&out), 65, "{}", stderr(&out));
        assert!(stderr(&out).contains("payload is larger than 1048576 bytes of JSON"), "{}", stderr(&out));
        // The base64 itself is in the environment: a few megabytes, never the gigabyte.
        assert!(peak_kib < 48 * 1024, "file={from_file}: peak {peak_kib} KiB");
    }
}
