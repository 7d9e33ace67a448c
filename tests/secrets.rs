//! No secret in any output: the callback token and the signing secrets must
//! not appear in stdout, stderr (human and JSON logs, at debug level), the
//! termination message, or any event body, on every path that writes
//! anything: success, retries, refusal, an exhausted budget, bad payloads,
//! bad configuration, print mode, a failing task, a failing download.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{b64, code, payload, run, sh, stderr, worker, Receiver, Reply, TOKEN};

/// A Wove v1 signing secret, and a Standard Webhooks one (`whsec_` + base64 of "leak-test-key-bytes!").
const SECRET: &str = "wove-signing-secret-for-leak-test";
const WEBHOOK_SECRET: &str = "whsec_bGVhay10ZXN0LWtleS1ieXRlcyE=";

/// One run of the worker, everything it wrote gathered.
struct Seen {
    out: Output,
    termination: String,
    bodies: Vec<String>,
}

impl Seen {
    /// Run `cmd` (logging at debug level, in `format`), with a termination log and `rx` as the receiver.
    fn run(cmd: &mut Command, rx: Option<&Receiver>, format: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("termination-log");
        std::fs::write(&log, "").unwrap();
        let out = run(
            cmd.env("WOVE_WORKER_TERMINATION_LOG", &log)
                .env("WOVE_WORKER_LOG", "debug")
                .env("WOVE_WORKER_LOG_FORMAT", format)
                .env("WOVE_WORKER_DELIVERY_BUDGET", "2")
                .env("WOVE_WORKER_ATTEMPT_TIMEOUT", "1"),
            Duration::from_secs(60),
        );
        let bodies = rx
            .map(|rx| rx.requests().into_iter().map(|r| String::from_utf8_lossy(&r.body).into_owned()).collect())
            .unwrap_or_default();
        Self { out, termination: std::fs::read_to_string(&log).unwrap(), bodies }
    }

    /// Nothing secret anywhere; and something was written, so the check means something.
    fn assert_clean(&self, case: &str, secrets: &[&str]) {
        let stdout = String::from_utf8_lossy(&self.out.stdout);
        let stderr = String::from_utf8_lossy(&self.out.stderr);
        assert!(!stderr.is_empty() && !self.termination.is_empty(), "{case}: nothing was written");
        for secret in secrets {
            for (place, text) in [("stdout", &*stdout), ("stderr", &*stderr), ("termination log", &self.termination)] {
                assert!(!text.contains(secret), "{case}: {secret:?} in {place}:\n{text}");
            }
            for body in &self.bodies {
                assert!(!body.contains(secret), "{case}: {secret:?} in an event body: {body}");
            }
        }
    }
}

fn signed() -> Command {
    let mut cmd = worker();
    cmd.env("WOVE_WORKER_SIGNING_SECRET", SECRET);
    cmd
}

fn with_payload(mut cmd: Command, payload: &serde_json::Value) -> Command {
    cmd.env("WOVE_BACKEND_PAYLOAD", b64(payload));
    cmd
}

#[test]
fn delivery_paths_keep_every_secret_out() {
    let secrets = [TOKEN, SECRET];
    let ok = sh("echo '{\"ok\": true}' > \"$WOVE_RESULT_FILE\"");
    for format in ["human", "json"] {
        // Success, after retries.
        let rx = Receiver::start(vec![Reply::Status(503), Reply::Status(500), Reply::Status(204)]);
        let seen = Seen::run(&mut with_payload(signed(), &payload(&rx.url(TOKEN), ok.clone())), Some(&rx), format);
        assert_eq!(code(&seen.out), 0, "{}", String::from_utf8_lossy(&seen.out.stderr));
        assert!(seen.bodies.len() >= 3);
        seen.assert_clean(&format!("success after retries ({format})"), &secrets);

        // Refused for good: 404, the wrong token.
        let rx = Receiver::start(vec![Reply::Status(404)]);
        let seen = Seen::run(&mut with_payload(signed(), &payload(&rx.url(TOKEN), ok.clone())), Some(&rx), format);
        assert_eq!(code(&seen.out), 76);
        seen.assert_clean(&format!("refused ({format})"), &secrets);

        // The budget runs out.
        let rx = Receiver::start(vec![Reply::Status(503)]);
        let seen = Seen::run(&mut with_payload(signed(), &payload(&rx.url(TOKEN), ok.clone())), Some(&rx), format);
        assert_eq!(code(&seen.out), 75);
        seen.assert_clean(&format!("budget exhausted ({format})"), &secrets);

        // Nobody listening at all.
        let dead = format!("http://127.0.0.1:{}/wove/events/{TOKEN}", crate::support::unused_port());
        let seen = Seen::run(&mut with_payload(signed(), &payload(&dead, ok.clone())), None, format);
        assert_eq!(code(&seen.out), 75);
        seen.assert_clean(&format!("connection refused ({format})"), &secrets);

        // A task that fails, its stderr in the traceback.
        let rx = Receiver::start(vec![Reply::Status(204)]);
        let failing = sh("echo 'the task failed here' >&2; exit 4");
        let seen = Seen::run(&mut with_payload(signed(), &payload(&rx.url(TOKEN), failing)), Some(&rx), format);
        assert_eq!(code(&seen.out), 3);
        assert!(seen.bodies.iter().any(|b| b.contains("the task failed here")));
        seen.assert_clean(&format!("failing task ({format})"), &secrets);
    }
}

#[test]
fn print_mode_keeps_every_secret_out() {
    let ok = sh("echo '{\"ok\": true}' > \"$WOVE_RESULT_FILE\"");
    let mut cmd = with_payload(signed(), &payload(&format!("http://h:1/wove/events/{TOKEN}"), ok));
    let seen = Seen::run(cmd.arg("--print-events"), None, "json");
    assert_eq!(code(&seen.out), 0);
    let stdout = String::from_utf8_lossy(&seen.out.stdout);
    assert!(stdout.contains("task_result") && stdout.contains("X-Wove-Signature"), "{stdout}");
    seen.assert_clean("print mode", &[TOKEN, SECRET]);

    // Standard Webhooks: the whsec_ text and the key inside it stay out too.
    let ok = sh("true");
    let mut cmd = with_payload(worker(), &payload(&format!("http://h:1/wove/events/{TOKEN}"), ok));
    cmd.env("WOVE_WORKER_SIGNING_SECRET", WEBHOOK_SECRET).env("WOVE_WORKER_SIGNING_SCHEME", "standard-webhooks");
    let seen = Seen::run(cmd.arg("--print-events"), None, "human");
    assert_eq!(code(&seen.out), 0);
    seen.assert_clean("print mode, standard webhooks", &[TOKEN, WEBHOOK_SECRET, &WEBHOOK_SECRET[6..]]);
}

#[test]
fn bad_payloads_keep_the_token_out_even_where_they_quote_it() {
    let url = format!("http://127.0.0.1:9/wove/events/{TOKEN}");
    let cases: Vec<(&str, Command)> = vec![
        // The issue's own case: a callback URL that does not parse, the token in its host.
        ("unparsable callback_url", {
            let mut p = payload(&format!("http://[{TOKEN}/wove/events/{TOKEN}"), sh("true"));
            p["run_id"] = serde_json::json!("r:1");
            with_payload(signed(), &p)
        }),
        // serde quotes a mistyped value: here, the token.
        ("mistyped field quoting the token", {
            let mut p = payload(&url, sh("true"));
            p["version"] = serde_json::json!(url.clone());
            with_payload(signed(), &p)
        }),
        ("bad task field quoting the token", {
            let task = serde_json::json!({"runner": "subprocess", "program": "sh", "args": url.clone()});
            with_payload(signed(), &payload(&url, task))
        }),
        ("undecodable base64", {
            let mut cmd = signed();
            cmd.env("WOVE_BACKEND_PAYLOAD", format!("not base64 {TOKEN}"));
            cmd
        }),
        ("bad index", {
            let mut p = payload(&url, sh("true"));
            p.as_object_mut().unwrap().remove("task_id");
            p["tasks"] = serde_json::json!([{"task_id": "a"}]);
            let mut cmd = with_payload(signed(), &p);
            cmd.env("JOB_COMPLETION_INDEX", "7");
            cmd
        }),
    ];
    for (case, mut cmd) in cases {
        let seen = Seen::run(&mut cmd, None, "json");
        assert_eq!(code(&seen.out), 65, "{case}: {}", String::from_utf8_lossy(&seen.out.stderr));
        seen.assert_clean(case, &[TOKEN, SECRET]);
    }
}

#[test]
fn bad_configuration_keeps_the_secret_out() {
    let url = format!("http://127.0.0.1:9/wove/events/{TOKEN}");
    let base = || with_payload(worker(), &payload(&url, sh("true")));
    let cases: Vec<(&str, Command)> = vec![
        ("secret not valid for the scheme", {
            let mut cmd = base();
            cmd.env("WOVE_WORKER_SIGNING_SECRET", SECRET).env("WOVE_WORKER_SIGNING_SCHEME", "standard-webhooks");
            cmd
        }),
        ("contradicting flags", {
            let mut cmd = base();
            cmd.env("WOVE_WORKER_SIGNING_SECRET", SECRET).args(["--backoff-base", "5", "--backoff-cap", "1"]);
            cmd
        }),
        ("a CA bundle that cannot be read", {
            let mut cmd = base();
            cmd.env("WOVE_WORKER_SIGNING_SECRET", SECRET).args(["--ca-bundle", "/nonexistent/ca.pem"]);
            cmd
        }),
    ];
    for (case, mut cmd) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = run(cmd.env("WOVE_WORKER_LOG", "debug"), Duration::from_secs(30));
        assert_eq!(code(&out), 78, "{case}: {}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.is_empty(), "{case}: says nothing");
        for secret in [TOKEN, SECRET] {
            assert!(!stderr.contains(secret) && !String::from_utf8_lossy(&out.stdout).contains(secret), "{case}");
        }
        drop(dir);
    }
}

#[cfg(feature = "wasm")]
#[test]
fn a_failed_download_keeps_every_secret_out() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let url = format!("https://127.0.0.1:{}/m.wasm", crate::support::unused_port());
    let task = serde_json::json!({"runner": "wasm", "module": {"url": {"url": url, "sha256": "00".repeat(32)}}});
    let seen = Seen::run(&mut with_payload(signed(), &payload(&rx.url(TOKEN), task)), Some(&rx), "json");
    assert_eq!(code(&seen.out), 3, "{}", String::from_utf8_lossy(&seen.out.stderr));
    assert!(seen.bodies.iter().any(|b| b.contains("ModuleUnavailable")));
    seen.assert_clean("failed download", &[TOKEN, SECRET]);
}

/// What a task could read of its parent's (the worker's) `/proc` entries.
const SNOOP: &str = r#"for f in environ cmdline; do echo "== $f"; tr '\0' '\n' < /proc/$PPID/$f; done"#;

#[test]
fn a_task_finds_no_secret_in_the_workers_proc_entries() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // The same snoop three ways: a subprocess task, the Python runner's
    // interpreter (any program is one), and a runner executable.
    let snoop = dir.path().join("snoop");
    std::fs::write(&snoop, format!("#!/bin/sh\n{SNOOP}\n")).unwrap();
    std::fs::set_permissions(&snoop, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(&snoop, dir.path().join("wove-runner-snoop")).unwrap();
    let tasks = [
        ("subprocess", serde_json::json!({"runner": "subprocess", "program": snoop})),
        ("python", serde_json::json!({"runner": "python", "interpreter": snoop})),
        ("runner executable", serde_json::json!({"runner": "snoop"})),
    ];
    for (name, task) in tasks {
        let rx = Receiver::start(vec![Reply::Status(204)]);
        let mut p = payload(&rx.url(TOKEN), task);
        p["callable_pickle"] = serde_json::json!("gAU=");
        p["args_pickle"] = serde_json::json!("gAU=");
        let encoded = b64(&p);
        // The payload in the environment, then as the argument.
        for as_argument in [false, true] {
            let mut cmd = worker();
            cmd.env("WOVE_WORKER_SIGNING_SECRET", SECRET).env("WOVE_WORKER_RUNNER_PATH", dir.path());
            if as_argument {
                cmd.arg(&encoded);
            } else {
                cmd.env("WOVE_BACKEND_PAYLOAD", &encoded);
            }
            let out = run(&mut cmd, Duration::from_secs(30));
            let seen = String::from_utf8_lossy(&out.stdout);
            // The task did read both files: the check below means something.
            assert!(seen.contains("== environ\n") && seen.contains("PATH="), "{name}: {seen}\n{}", stderr(&out));
            assert!(seen.contains("wove-worker"), "{name}: cmdline unread: {seen}");
            for secret in [SECRET, TOKEN, encoded.as_str(), &encoded[..40]] {
                assert!(!seen.contains(secret), "{name} (argument: {as_argument}): found {secret:?} in\n{seen}");
            }
        }
    }
}

/// Root-only checks run where the tests run as root (CI, which sets
/// WOVE_TEST_REQUIRE_ROOT); elsewhere they are skipped with a word.
fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    crate::support::skip_unless_required("WOVE_TEST_REQUIRE_ROOT", &format!("{test} needs root"));
    false
}

#[test]
fn as_another_user_a_task_can_read_neither_the_worker_nor_a_root_only_secret() {
    use std::os::unix::fs::PermissionsExt as _;
    if !root_or_skip("task_user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let secret_file = dir.path().join("signing-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::fs::Permissions::from_mode(0o400)).unwrap();
    let script = format!(
        "id -u; for f in environ mem; do head -c 100000 /proc/$PPID/$f >/dev/null 2>&1 && echo \"READ $f\"; done; \
         cat {0} 2>/dev/null && echo 'READ secret'; echo '{{\"as\": \"nobody\"}}' > \"$WOVE_RESULT_FILE\"",
        secret_file.display()
    );
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), sh(&script))))
            .env("WOVE_WORKER_SIGNING_SECRET_FILE", &secret_file)
            .args(["--task-user", "65534:65534", "--work-dir"])
            .arg(dir.path()),
        Duration::from_secs(30),
    );
    let seen = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code(&out), 0, "{seen}{}", stderr(&out));
    assert_eq!(seen.lines().next(), Some("65534"), "{seen}");
    assert!(!seen.contains("READ") && !seen.contains(SECRET), "{seen}");
    // The task could still write its result where the worker reads it.
    assert_eq!(rx.of_type("task_result")[0].json()["result"], serde_json::json!({"as": "nobody"}));
}

#[test]
fn task_user_without_root_is_a_configuration_error() {
    if nix::unistd::geteuid().is_root() {
        // As root the flag is valid; its refusal is seen from another user.
        let out = run(worker().args(["--task-user", "not-a-number", "--print-events"]), Duration::from_secs(10));
        assert_eq!(code(&out), 78, "{}", stderr(&out));
        assert!(stderr(&out).contains("UID or UID:GID"), "{}", stderr(&out));
        return;
    }
    let out = run(worker().args(["--task-user", "65534"]), Duration::from_secs(10));
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("needs the worker to run as root"));
}

#[test]
fn a_trailing_slash_keeps_the_token_out_of_every_log_line() {
    for tail in ["/", "//", "/."] {
        let rx = Receiver::start(vec![Reply::Status(204)]);
        let url = format!("{}{tail}", rx.url(TOKEN));
        let p = payload(&url, sh("true"));
        let seen = Seen::run(&mut with_payload(signed(), &p), Some(&rx), "human");
        seen.assert_clean(&format!("callback ending in {tail:?}"), &[TOKEN]);
    }
}

#[test]
fn a_run_id_cannot_forge_a_log_line_or_steer_the_terminal() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let mut p = payload(&rx.url(TOKEN), sh("true"));
    p["run_id"] = serde_json::json!("r1\n2026-01-01T00:00:00Z  INFO exiting code=0\u{1b}[2J\r");
    let out = run(&mut with_payload(signed(), &p), Duration::from_secs(30));
    let err = stderr(&out);
    assert_eq!(code(&out), 0, "{err}");
    assert!(!err.lines().any(|l| l.starts_with("2026-01-01")), "a forged line:\n{err}");
    assert!(!err.contains('\u{1b}') && !err.contains('\r'), "raw control characters:\n{err:?}");
    assert!(err.contains("r1\\n2026-01-01"), "the run id, escaped, is still there:\n{err}");
    // One real line break per event: `exiting` is said once, by the worker.
    assert_eq!(err.lines().filter(|l| l.ends_with("exiting code=0")).count(), 1, "{err}");
}
