//! Flags, help and configuration errors.

use std::time::Duration;

use crate::support::{b64, code, payload, run, sh, stderr, worker};

#[test]
fn help_documents_sources_env_vars_and_exit_codes() {
    let out = run(worker().arg("--help"), Duration::from_secs(10));
    assert_eq!(code(&out), 0);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "WOVE_BACKEND_PAYLOAD",
        "WOVE_BACKEND_PAYLOAD_FILE",
        "WOVE_WORKER_SIGNING_SECRET",
        "WOVE_WORKER_DELIVERY_BUDGET",
        "Exit codes",
        " 65 ",
        " 75 ",
        " 78 ",
        "128+n",
    ] {
        assert!(help.contains(needle), "--help lacks {needle:?}");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let out = run(worker().arg("--version"), Duration::from_secs(10));
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_flag_is_a_configuration_error() {
    let out = run(worker().arg("--no-such-flag"), Duration::from_secs(10));
    assert_eq!(code(&out), 78);
}

#[test]
fn invalid_duration_in_env_is_a_configuration_error() {
    let out = run(worker().env("WOVE_WORKER_DELIVERY_BUDGET", "-5"), Duration::from_secs(10));
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("positive"), "{}", stderr(&out));
}

#[test]
fn required_signing_without_secret_is_a_configuration_error() {
    let out = run(worker().arg("--require-signing"), Duration::from_secs(10));
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("WOVE_WORKER_SIGNING_SECRET"), "{}", stderr(&out));
}

#[test]
fn malformed_standard_webhooks_secret_is_a_configuration_error_that_hides_it() {
    let out = run(
        worker()
            .env("WOVE_WORKER_SIGNING_SCHEME", "standard-webhooks")
            .env("WOVE_WORKER_SIGNING_SECRET", "whsec_%%%leak"),
        Duration::from_secs(10),
    );
    assert_eq!(code(&out), 78);
    let err = stderr(&out);
    assert!(err.contains("secret #1"), "{err}");
    assert!(!err.contains("leak"), "the secret leaked into the log: {err}");
}

#[test]
fn unreadable_secret_file_is_a_configuration_error() {
    let out = run(worker().env("WOVE_WORKER_SIGNING_SECRET_FILE", "/nonexistent/secret"), Duration::from_secs(10));
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("/nonexistent/secret"));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = run(worker().env("WOVE_WORKER_LOG_FORMAT", "json").arg("bm90IGEgcGF5bG9hZA=="), Duration::from_secs(10));
    assert_eq!(code(&out), 65);
    let err = stderr(&out);
    let lines: Vec<serde_json::Value> =
        err.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(!lines.is_empty());
    assert!(lines.iter().any(|l| l["level"] == "ERROR" && l["message"].as_str().unwrap_or("").contains("payload")));
}

#[test]
fn log_filters_pick_levels_and_a_bad_one_falls_back_to_info_and_says_so() {
    let payload = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/payloads/subprocess-echo.json");
    let logs = |filter: &str| {
        let out = run(
            worker().args(["--print-events", "--payload-file", payload]).env("WOVE_WORKER_LOG", filter),
            Duration::from_secs(20),
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        stderr(&out)
    };
    let quiet = logs("error");
    assert!(!quiet.contains("WARN") && !quiet.contains("INFO"), "`error` lets more through: {quiet}");
    assert!(logs("warn").contains("WARN"));
    assert!(!logs("warn").contains("INFO"));
    assert!(logs("info,hyper=warn").contains("INFO"));
    let bad = logs("wove_worker=[");
    assert!(bad.contains("invalid log filter, using `info`"), "{bad}");
    assert!(bad.contains("INFO"), "the fallback is `info`: {bad}");
}

#[test]
fn a_byte_order_mark_in_the_secret_file_is_not_part_of_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::write(&file, "\u{feff}bom-secret-value\r\n").unwrap();
    let p = payload("http://127.0.0.1:9/wove/events/tok", sh("true"));
    let out = run(
        worker()
            .arg("--print-events")
            .env("WOVE_BACKEND_PAYLOAD", b64(&p))
            .env("WOVE_WORKER_SIGNING_SECRET_FILE", &file),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.contains("task_result")).unwrap();
    let printed: serde_json::Value = serde_json::from_str(line).unwrap();
    // The body exactly as printed (and signed): re-serializing would reorder its keys.
    let start = line.find("\"body\":").unwrap() + "\"body\":".len();
    let body = line.as_bytes()[start..line.len() - 1].to_vec();
    let headers = printed["headers"].as_object().unwrap().clone();
    let get = |name: &str| {
        headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_str()).map(str::to_string)
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let secret = wove_proto::sign::Secret::from_bytes("bom-secret-value");
    let verified = wove_proto::sign::wove_v1::verify(&secret, "default", "/wove/events/tok", &body, now, 300, get);
    assert!(verified.is_ok(), "signed with the mark in the key: {verified:?}");
}

#[test]
fn an_index_that_is_not_a_number_is_a_bad_payload_from_every_source() {
    let p = serde_json::json!({
        "version": 1, "callback_url": "http://127.0.0.1:9/wove/events/t", "run_id": "r",
        "tasks": [{"task_id": "a", "task": {"runner": "subprocess", "program": "true"}}]
    });
    for (how, value) in [("--index", "-1"), ("WOVE_WORKER_INDEX", "abc"), ("JOB_COMPLETION_INDEX", "x")] {
        let mut cmd = worker();
        cmd.env("WOVE_BACKEND_PAYLOAD", b64(&p));
        if how.starts_with("--") {
            cmd.args([how, value]);
        } else {
            cmd.env(how, value);
        }
        let out = run(&mut cmd, Duration::from_secs(30));
        assert_eq!(code(&out), 65, "{how}={value}: {}", stderr(&out));
        assert!(stderr(&out).contains(value), "{how}: {}", stderr(&out));
    }
}
