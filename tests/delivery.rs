//! Delivery against a scripted receiver: retries, Retry-After, permanent
//! refusals, budgets, and what goes on the wire.

use std::net::TcpListener;
use std::time::Duration;

use crate::support::{b64, code, payload, run, sh, stderr, worker, Receiver, Reply, TOKEN};

fn ok_task(callback: &str) -> String {
    b64(&payload(callback, sh("echo '{\"ok\":true}' > \"$WOVE_RESULT_FILE\"")))
}

/// Replies for task_started then the final event's attempts. task_started
/// goes first only because the task is slower than one local POST; the tests
/// below look at each event type separately so the order of the two never matters.
fn slow_task(callback: &str) -> String {
    b64(&payload(callback, sh("sleep 0.3; echo '{\"ok\":true}' > \"$WOVE_RESULT_FILE\"")))
}

#[test]
fn retries_a_503_and_keeps_event_id_and_body() {
    let rx = Receiver::start(vec![Reply::Status(204), Reply::Status(503), Reply::Status(204)]);
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", slow_task(&rx.url(TOKEN))), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let results = rx.of_type("task_result");
    assert_eq!(results.len(), 2, "one 503, then delivered");
    assert_eq!(results[0].body, results[1].body, "retries resend the same body");
    assert_eq!(results[0].header("Idempotency-Key"), results[1].header("Idempotency-Key"));
    assert_eq!(results[0].json()["event_id"], results[1].json()["event_id"]);
    assert_eq!(results[1].json()["result"], serde_json::json!({"ok": true}));
}

#[test]
fn honours_retry_after_seconds_and_http_date() {
    for http_date in [false, true] {
        // The date is made just before the worker starts; one-second resolution leaves 2+ s of wait.
        let retry_after = if http_date {
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(3))
        } else {
            "1".to_string()
        };
        let rx = Receiver::start(vec![
            Reply::Status(204),
            Reply::WithHeaders(429, vec![("Retry-After".into(), retry_after.clone())]),
            Reply::Status(204),
        ]);
        let out = run(worker().env("WOVE_BACKEND_PAYLOAD", slow_task(&rx.url(TOKEN))), Duration::from_secs(30));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let results = rx.of_type("task_result");
        assert_eq!(results.len(), 2);
        let gap = results[1].at - results[0].at;
        // Backoff alone is capped at 0.2 s in these tests: a longer gap is Retry-After's.
        assert!(gap >= Duration::from_millis(900), "Retry-After {retry_after:?} not honoured: {gap:?}");
    }
}

#[test]
fn retry_after_is_capped_by_the_budget() {
    let rx = Receiver::start(vec![Reply::WithHeaders(503, vec![("Retry-After".into(), "3600".into())])]);
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN))).env("WOVE_WORKER_DELIVERY_BUDGET", "2"),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
}

#[test]
fn waits_out_a_refused_connection() {
    use std::io::BufRead as _;
    // Reserve a port and close it: connections to it are refused until the receiver comes up.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/wove/events/{TOKEN}");
    let mut child = worker()
        .env("WOVE_BACKEND_PAYLOAD", ok_task(&url))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // The worker says it was refused (not merely that it failed) before the receiver exists.
    let refused = std::iter::from_fn(|| seen.recv_timeout(Duration::from_secs(20)).ok())
        .find(|l| l.contains("delivery attempt failed") && l.contains("event=\"task_result\""));
    let refused = refused.expect("no failed attempt was logged");
    assert!(refused.to_lowercase().contains("connection refused"), "{refused}");
    let rx = Receiver::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), vec![Reply::Status(204)]);
    let mut status = None;
    for _ in 0..300 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("worker did not finish after the receiver came up")
    });
    assert_eq!(status.code(), Some(0));
    assert_eq!(rx.of_type("task_result").len(), 1);
}

#[test]
fn a_404_stops_at_once_with_the_rejected_code() {
    let rx = Receiver::start(vec![Reply::Status(404)]);
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN))), Duration::from_secs(20));
    assert_eq!(code(&out), 76, "{}", stderr(&out));
    assert_eq!(rx.of_type("task_result").len(), 1, "a 404 is never retried");
    assert!(stderr(&out).contains("FINAL EVENT NOT DELIVERED"));
}

#[test]
fn a_redirect_is_not_followed() {
    let rx = Receiver::start(vec![Reply::WithHeaders(
        307,
        vec![("Location".into(), "http://127.0.0.1:9/elsewhere".into())],
    )]);
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN))), Duration::from_secs(20));
    assert_eq!(code(&out), 76, "{}", stderr(&out));
    assert!(rx.requests().iter().all(|r| r.path.ends_with(TOKEN)));
}

#[test]
fn exhausted_budget_exits_undeliverable_and_says_so() {
    let rx = Receiver::start(vec![Reply::Status(503)]);
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN))).env("WOVE_WORKER_DELIVERY_BUDGET", "1.5"),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("FINAL EVENT NOT DELIVERED") && err.contains("task_result"), "{err}");
    assert!(rx.of_type("task_result").len() >= 3, "retried within the budget");
}

#[test]
fn connection_hangups_are_retried() {
    let rx = Receiver::start(vec![Reply::Hangup, Reply::Hangup, Reply::Hangup, Reply::Status(204)]);
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN))), Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn a_failing_task_started_does_not_hold_up_the_task() {
    // Everything fails until the started budget is spent; the result still gets through.
    let rx = Receiver::start(vec![Reply::Status(503)]);
    let mut cmd = worker();
    cmd.env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN)))
        .env("WOVE_WORKER_STARTED_BUDGET", "30")
        .env("WOVE_WORKER_DELIVERY_BUDGET", "1");
    let started = std::time::Instant::now();
    let out = run(&mut cmd, Duration::from_secs(20));
    assert_eq!(code(&out), 75);
    assert!(started.elapsed() < Duration::from_secs(10), "task_started's 30 s budget held up the run");
    assert!(!rx.of_type("task_result").is_empty(), "the task ran and its result was attempted");
}

#[test]
fn bodies_are_sized_json_with_the_metadata() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN)))
            .env("AWS_BATCH_JOB_ID", "job-123")
            .env("AWS_BATCH_JOB_ATTEMPT", "2")
            .env("JOB_COMPLETION_INDEX", "4"),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
        assert_eq!(r.header("transfer-encoding"), None);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let e = r.json();
        assert_eq!(e["run_id"], "job:00112233445566778899aabbccddeeff");
        assert_eq!(e["task_id"], "job");
        assert_eq!(e["meta"]["attempt"], 2);
        assert_eq!(e["meta"]["platform"]["aws_batch_job_id"], "job-123");
        assert_eq!(e["meta"]["platform"]["job_completion_index"], "4");
        assert!(e["meta"]["worker"].as_str().unwrap().starts_with("wove-worker/"));
    }
    let kinds: Vec<_> = reqs.iter().map(|r| r.json()["type"].as_str().unwrap().to_string()).collect();
    assert!(kinds.contains(&"task_started".to_string()) && kinds.contains(&"task_result".to_string()));
}

#[test]
fn heartbeats_come_well_inside_the_interval() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let mut p = payload(&rx.url(TOKEN), sh("sleep 2"));
    p["delivery"] = serde_json::json!({"delivery_heartbeat_seconds": 0.9});
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), Duration::from_secs(20));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let beats = rx.of_type("heartbeat");
    assert!(beats.len() >= 4, "expected a heartbeat every 0.3 s over 2 s, got {}", beats.len());
    let ids: std::collections::HashSet<_> = beats.iter().map(|b| b.json()["event_id"].to_string()).collect();
    assert_eq!(ids.len(), beats.len(), "each heartbeat is its own event");
}

#[test]
fn token_and_secret_never_reach_the_log() {
    let rx = Receiver::start(vec![Reply::Status(503), Reply::Status(204)]);
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN)))
            .env("WOVE_WORKER_SIGNING_SECRET", "very-secret-value")
            .env("WOVE_WORKER_LOG", "trace"),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    assert!(err.contains("[redacted]"), "the URL is logged, redacted: {err}");
    assert!(!err.contains(TOKEN), "token leaked: {err}");
    assert!(!err.contains("very-secret-value"), "secret leaked");
}

#[test]
fn wove_v1_signatures_verify_and_unsigned_is_announced() {
    use wove_proto::sign::{wove_v1, Secret};
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN)))
            .env("WOVE_WORKER_SIGNING_SECRET", "k1")
            .env("WOVE_WORKER_SIGNING_KEY_ID", "ring-2"),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 0);
    assert!(!stderr(&out).contains("unsigned"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    for r in rx.requests() {
        let get = |n: &str| r.header(n).map(str::to_string);
        wove_v1::verify(&Secret::from_bytes(b"k1".to_vec()), "ring-2", &r.path, &r.body, now, 300, get).unwrap();
    }

    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", ok_task(&rx.url(TOKEN))), Duration::from_secs(20));
    assert_eq!(code(&out), 0);
    assert_eq!(stderr(&out).matches("unsigned").count(), 1, "said once: {}", stderr(&out));
    assert!(rx.requests().iter().all(|r| r.header("x-wove-signature").is_none()));
}
