//! The fault matrix: every fault we can stage on loopback, through the built
//! binary, each ending in its documented events and exit code with no process
//! left behind.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{
    b64, code, payload, private_ca, private_ca_file, processes_matching, processes_running, run, sh, start, stderr,
    wait_for, worker, Receiver, Reply, Running, TOKEN,
};

/// A task slow enough that task_started is always answered first.
fn slow_ok(callback: &str) -> String {
    b64(&payload(callback, sh("sleep 0.3; echo '{\"ok\":true}' > \"$WOVE_RESULT_FILE\"")))
}

/// Wait for `running` to exit and say how: code, stderr, and the time since `from`.
fn wait_exit(running: Running, limit: Duration, from: Instant) -> (i32, String, Duration) {
    let out = running.finish(limit);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned(), from.elapsed())
}

/// Slack for measuring a promised time from outside the process: signal
/// delivery, process exit and this thread's polling on a loaded 2-core machine.
/// It is added to a measurement, never to the worker's own budgets.
const MEASURING_SLACK: Duration = Duration::from_millis(500);

fn finals(rx: &Receiver) -> Vec<serde_json::Value> {
    rx.events()
        .into_iter()
        .filter(|e| ["task_result", "task_error", "task_cancelled"].contains(&e["type"].as_str().unwrap()))
        .collect()
}

#[test]
fn server_errors_k_times_then_accepted() {
    let rx = Receiver::start(vec![
        Reply::Status(204),
        Reply::Status(500),
        Reply::Status(502),
        Reply::Status(503),
        Reply::Status(204),
    ]);
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", slow_ok(&rx.url(TOKEN))), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(rx.of_type("task_result").len(), 4);
}

#[test]
fn connection_reset_mid_response_is_retried() {
    let rx = Receiver::start(vec![Reply::Status(204), Reply::ResetMidResponse, Reply::Status(204)]);
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", slow_ok(&rx.url(TOKEN))), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(rx.of_type("task_result").len(), 2);
}

#[test]
fn a_receiver_slower_than_the_attempt_timeout_is_retried() {
    let rx = Receiver::start(vec![Reply::Status(204), Reply::Slow(Duration::from_secs(5), 204), Reply::Status(204)]);
    let started = Instant::now();
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", slow_ok(&rx.url(TOKEN))).env("WOVE_WORKER_ATTEMPT_TIMEOUT", "0.5"),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(rx.of_type("task_result").len(), 2);
    assert!(started.elapsed() < Duration::from_secs(4), "the slow attempt was not cut at 0.5 s");
}

#[test]
fn permanent_statuses_are_not_retried() {
    for status in [400, 404, 410] {
        let rx = Receiver::start(vec![Reply::Status(status)]);
        let p = b64(&payload(&rx.url(TOKEN), sh("true")));
        let out = run(worker().env("WOVE_BACKEND_PAYLOAD", p), Duration::from_secs(20));
        assert_eq!(code(&out), 76, "HTTP {status}: {}", stderr(&out));
        assert_eq!(rx.of_type("task_result").len(), 1, "HTTP {status} retried");
    }
}

#[test]
fn tls_with_a_private_ca_given_to_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, tls) = private_ca_file(dir.path());
    let rx = Receiver::start_tls(vec![Reply::Status(204)], tls);
    let p = b64(&payload(&rx.tls_url(TOKEN), sh("echo 7 > \"$WOVE_RESULT_FILE\"")));
    let out =
        run(worker().env("WOVE_BACKEND_PAYLOAD", p).env("WOVE_WORKER_CA_BUNDLE", &ca_file), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(rx.of_type("task_result")[0].json()["result"], 7);
}

#[test]
fn tls_without_the_ca_fails_clearly_and_does_not_retry() {
    let (_, tls) = private_ca();
    let rx = Receiver::start_tls(vec![Reply::Status(204)], tls);
    let p = b64(&payload(&rx.tls_url(TOKEN), sh("sleep 0.2")));
    let started = Instant::now();
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", p), Duration::from_secs(30));
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted") && stderr(&out).contains("--ca-bundle"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(5));
    // task_started and the final event: one handshake each, no retry storm.
    assert!(rx.accepted() <= 2, "{} connections", rx.accepted());
    assert!(rx.requests().is_empty());
}

/// The roots are the bundled ones and `--ca-bundle`'s, in every flavour: a CA that only the
/// machine's own store holds (where OpenSSL and rustls-native-certs look) is not trusted.
#[test]
fn the_machines_certificate_store_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, tls) = private_ca_file(dir.path());
    let rx = Receiver::start_tls(vec![Reply::Status(204)], tls);
    let p = b64(&payload(&rx.tls_url(TOKEN), sh("true")));
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", p).env("SSL_CERT_FILE", &ca_file).env("SSL_CERT_DIR", dir.path()),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(stderr(&out).contains("not trusted"), "{}", stderr(&out));
    assert!(rx.requests().is_empty());
}

#[test]
fn a_bad_ca_bundle_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let p = b64(&payload("https://localhost:9/wove/events/t", sh("true")));
    let out =
        run(worker().env("WOVE_BACKEND_PAYLOAD", p).env("WOVE_WORKER_CA_BUNDLE", &ca_file), Duration::from_secs(20));
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(stderr(&out).contains("ca.pem"));
}

/// SIGTERM to a task that ignores it: forwarded, then the group is killed
/// after the cancel grace (half the shutdown budget), task_cancelled is
/// delivered and the worker exits 143, all within the shutdown budget.
#[test]
fn sigterm_during_the_task_fits_the_shutdown_budget() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let p = payload(&rx.url(TOKEN), sh("trap 'echo term-ignored >&2' TERM; sleep 3011 & sleep 3011; sleep 3011"));
    let child = start(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&p))
            .env("WOVE_WORKER_KILL_GRACE", "60")
            .env("WOVE_WORKER_SHUTDOWN_BUDGET", "3"),
    );
    assert!(wait_for(Duration::from_secs(10), || processes_running("sleep 3011").len() >= 2));
    let signalled = Instant::now();
    child.signal(Signal::SIGTERM);
    let (code, err, took) = wait_exit(child, Duration::from_secs(20), signalled);
    assert_eq!(code, 143, "{err}");
    // The promise: grace, kill and the final event fit in the shutdown budget, counted from SIGTERM.
    assert!(took < Duration::from_secs(3) + MEASURING_SLACK, "shutdown took {took:?}, budget 3 s");
    assert!(err.contains("term-ignored"), "SIGTERM was forwarded to the task");
    assert_eq!(finals(&rx)[0]["type"], "task_cancelled");
    assert!(processes_matching("sleep 3011").is_empty(), "task processes left behind");
}

#[test]
fn sigterm_during_delivery_retries_shortens_them() {
    let rx = Receiver::start(vec![Reply::Status(503)]);
    let p = payload(&rx.url(TOKEN), sh("true"));
    let child = start(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&p))
            .env("WOVE_WORKER_DELIVERY_BUDGET", "300")
            .env("WOVE_WORKER_SHUTDOWN_BUDGET", "2"),
    );
    assert!(wait_for(Duration::from_secs(10), || rx.of_type("task_result").len() >= 2));
    let signalled = Instant::now();
    child.signal(Signal::SIGTERM);
    let (code, err, took) = wait_exit(child, Duration::from_secs(20), signalled);
    assert_eq!(code, 75, "{err}");
    // The promise: retries end with the shutdown budget (2 s), not the delivery budget (300 s).
    assert!(took < Duration::from_secs(2) + MEASURING_SLACK, "retries went on for {took:?} after SIGTERM");
    assert!(err.contains("FINAL EVENT NOT DELIVERED"));
}

#[test]
fn sigkill_of_the_child_is_reported() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let child = start(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), sh("exec sleep 3012")))));
    assert!(wait_for(Duration::from_secs(10), || processes_running("sleep 3012").len() == 1));
    for pid in processes_running("sleep 3012") {
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    }
    let (code, err, _) = wait_exit(child, Duration::from_secs(20), Instant::now());
    assert_eq!(code, 3, "{err}");
    let e = &finals(&rx)[0];
    assert_eq!(e["error"]["kind"], "Killed");
    assert_eq!(e["error"]["signal"], 9);
}

#[test]
fn an_orphan_holding_stdout_does_not_hang_the_worker() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    // setsid: the orphan leaves the task's process group and keeps stdout open.
    let p = payload(&rx.url(TOKEN), sh("setsid sleep 3013 & echo '\"done\"' > \"$WOVE_RESULT_FILE\""));
    let started = Instant::now();
    let child = start(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)));
    let (code, err, took) = wait_exit(child, Duration::from_secs(30), started);
    assert_eq!(code, 0, "{err}");
    // The promise: done when the task exits, output read at most 2 s more (DRAIN_AFTER_EXIT);
    // the rest is the 0.3 s task, startup and delivery.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert_eq!(finals(&rx)[0]["result"], "done");
    assert!(processes_matching("sleep 3013").is_empty(), "the orphan outlived the worker");
}

#[test]
fn a_task_that_forks_children_and_exits_leaves_nothing_behind() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let p = payload(&rx.url(TOKEN), sh("sleep 3014 & sleep 3014 & (sleep 3014 &); echo 1 > \"$WOVE_RESULT_FILE\""));
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(processes_matching("sleep 3014").is_empty());
}

/// Grandchildren orphaned while the task runs are adopted (subreaper) and
/// reaped at once: no zombie accumulates under the worker.
#[test]
fn orphans_are_adopted_and_reaped_while_the_task_runs() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    // The subshell has exited, and its child been handed on, before `( … )` returns; the
    // orphan is then killed, and must vanish (reaped), not linger as a zombie. Each wait is
    // bounded and none depends on how fast a busy machine runs the script.
    let script = r#"
dir=$(dirname "$WOVE_RESULT_FILE")
(sleep 3016 & echo $! > "$dir/orphan")
orphan=$(cat "$dir/orphan")
s=$(cat "/proc/$orphan/stat"); set -- ${s##*) }
adopted=0; [ "$2" = "$PPID" ] && adopted=1
kill "$orphan"
i=0; while [ -e "/proc/$orphan" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
zombies=0; [ -e "/proc/$orphan" ] && zombies=1
echo "[$adopted, $zombies]" > "$WOVE_RESULT_FILE"
"#;
    let out =
        run(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), sh(script)))), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(finals(&rx)[0]["result"], serde_json::json!([1, 0]), "[adopted by the worker, zombies left]");
}

#[test]
fn the_termination_message_records_every_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let read = || serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&log).unwrap()).unwrap();

    std::fs::write(&log, "").unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let p = b64(&payload(&rx.url(TOKEN), sh("echo boom >&2; exit 4")));
    let out =
        run(worker().env("WOVE_BACKEND_PAYLOAD", p).env("WOVE_WORKER_TERMINATION_LOG", &log), Duration::from_secs(20));
    assert_eq!(code(&out), 3);
    let t = read();
    assert_eq!(
        (t["status"].as_str(), t["exit_code"].as_u64(), t["delivered"].as_bool()),
        (Some("failed"), Some(3), Some(true))
    );
    assert_eq!(t["event_id"], finals(&rx)[0]["event_id"]);
    assert_eq!(t["error_kind"], "NonZeroExit");

    let rx = Receiver::start(vec![Reply::Status(503)]);
    let p = b64(&payload(&rx.url(TOKEN), sh("true")));
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", p)
            .env("WOVE_WORKER_TERMINATION_LOG", &log)
            .env("WOVE_WORKER_DELIVERY_BUDGET", "1"),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 75);
    let t = read();
    assert_eq!(
        (t["status"].as_str(), t["delivered"].as_bool(), t["event"].as_str()),
        (Some("undelivered"), Some(false), Some("task_result"))
    );
    assert!(t["message"].as_str().unwrap().contains("budget"));

    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", "@@@").env("WOVE_WORKER_TERMINATION_LOG", &log),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 65);
    assert_eq!(read()["status"], "bad_payload");
    assert!(std::fs::read(&log).unwrap().len() <= 4096);
}

#[test]
fn successful_events_report_output_sizes() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let p = b64(&payload(&rx.url(TOKEN), sh("head -c 100000 /dev/zero; printf abc >&2")));
    let out =
        run(worker().env("WOVE_BACKEND_PAYLOAD", p).env("WOVE_WORKER_OUTPUT_KEEP", "1000"), Duration::from_secs(20));
    assert_eq!(code(&out), 0);
    let e = &finals(&rx)[0];
    assert_eq!(e["output"], serde_json::json!({"stdout_bytes": 100000, "stderr_bytes": 3, "truncated": true}));
}

/// Runs the worker as PID 1 of a new PID namespace (as in a container),
/// or returns `None` where namespaces cannot be made here.
fn as_pid_1(envs: &[(&str, String)]) -> Option<(Running, i32)> {
    let probe = std::process::Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "true"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        crate::support::skip_unless_required(
            "WOVE_TEST_REQUIRE_NAMESPACES",
            "cannot create a PID namespace here (needs root and unshare)",
        );
        return None;
    }
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child", env!("CARGO_BIN_EXE_wove-worker")]);
    // The same clean environment the other tests give the worker.
    cmd.env_clear();
    for (k, v) in worker().get_envs().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))) {
        cmd.env(k, v);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let child = start(&mut cmd);
    let outer = child.pid().as_raw();
    // The worker is unshare's only child; its pid as seen from here.
    let mut inner = None;
    wait_for(Duration::from_secs(10), || {
        inner = std::fs::read_to_string(format!("/proc/{outer}/task/{outer}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()));
        inner.is_some()
    });
    Some((child, inner.expect("the worker started inside the namespace")))
}

#[test]
fn as_pid_1_it_reaps_orphans_and_honours_sigterm() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    // Inside the namespace the worker is PID 1: orphans are its by birthright.
    let script = r#"
[ "$PPID" = 1 ] || { echo "worker is not PID 1 but $PPID" >&2; exit 9; }
(sleep 0.2 &)
sleep 0.8
zombies=0
for f in /proc/[0-9]*/stat; do s=$(cat "$f" 2>/dev/null) || continue; set -- ${s##*) }; [ "$1" = Z ] && zombies=$((zombies+1)); done
echo "zombies=$zombies" >&2
trap 'exit 0' TERM
sleep 3021 & wait
"#;
    let Some((child, worker_pid)) = as_pid_1(&[("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), sh(script))))])
    else {
        return;
    };
    assert!(wait_for(Duration::from_secs(10), || !processes_running("sleep 3021").is_empty()), "task did not start");
    kill(Pid::from_raw(worker_pid), Signal::SIGTERM).unwrap();
    let (code, err, _) = wait_exit(child, Duration::from_secs(20), Instant::now());
    assert!(err.contains("zombies=0"), "an orphan was left a zombie under PID 1: {err}");
    assert_eq!(code, 143, "{err}");
    assert_eq!(finals(&rx)[0]["type"], "task_cancelled");
    assert!(processes_matching("sleep 3021").is_empty());
}

#[test]
fn a_task_that_cancels_itself_exits_3_and_says_failed() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    // An interpreter that answers as the helper does for a task's own CancelledError.
    let interpreter = dir.path().join("python-cancelled");
    std::fs::write(&interpreter, "#!/bin/sh\necho '{\"status\": \"cancelled\"}' > \"$3/outcome.json\"\n").unwrap();
    std::fs::set_permissions(&interpreter, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let mut p = payload(&rx.url(TOKEN), serde_json::json!({"runner": "python", "interpreter": interpreter}));
    p["callable_pickle"] = serde_json::json!("gAU=");
    p["args_pickle"] = serde_json::json!("gAU=");
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)).env("WOVE_WORKER_TERMINATION_LOG", &log),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert_eq!(rx.of_type("task_cancelled").len(), 1);
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!((record["status"].as_str(), record["exit_code"].as_u64()), (Some("failed"), Some(3)), "{record}");
}
