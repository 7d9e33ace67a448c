//! Flags, help and configuration errors.

use std::time::Duration;

use crate::support::{code, run, stderr, worker};

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
