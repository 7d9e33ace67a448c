//! Receivers that misbehave on purpose: replies that never end, a
//! `Retry-After: 0` that would invite a storm, plain HTTP where TLS was
//! promised. Each through the built binary on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{b64, code, payload, sh, start, stderr, worker, Receiver, Reply, TOKEN};

fn result_task(callback: &str) -> String {
    b64(&payload(callback, sh("echo '{\"ok\":true}' > \"$WOVE_RESULT_FILE\"")))
}

#[test]
fn an_endless_reply_is_not_read() {
    for chunked in [false, true] {
        let sent = Arc::new(AtomicUsize::new(0));
        // 8 GiB on offer, per request: far more than the worker could hold.
        let rx = Receiver::start(vec![Reply::Flood { chunked, max: 8 << 30, sent: sent.clone() }]);
        let running = start(worker().env("WOVE_BACKEND_PAYLOAD", result_task(&rx.url(TOKEN))));
        let (out, peak_kib) = running.finish_measuring_memory(Duration::from_secs(60));
        assert_eq!(code(&out), 0, "chunked={chunked}: a 200 is a delivery whatever follows it\n{}", stderr(&out));
        assert_eq!(rx.of_type("task_result").len(), 1, "delivered once, not retried");
        let sent = sent.load(Ordering::Relaxed);
        // What the worker took is bounded by socket buffers, not by the reply.
        assert!(sent < 64 << 20, "chunked={chunked}: the receiver got {sent} bytes out before the worker hung up");
        assert!(peak_kib < 96 * 1024, "chunked={chunked}: peak RSS {peak_kib} KiB while replies flooded");
    }
}

#[test]
fn retry_after_zero_never_brings_a_retry_before_the_floor() {
    let rx = Receiver::start(vec![Reply::WithHeaders(429, vec![("Retry-After".into(), "0".into())])]);
    let started = Instant::now();
    let out = crate::support::run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", result_task(&rx.url(TOKEN)))
            .env("WOVE_WORKER_BACKOFF_BASE", "0.2")
            .env("WOVE_WORKER_BACKOFF_CAP", "0.4")
            .env("WOVE_WORKER_DELIVERY_BUDGET", "3"),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let attempts = rx.of_type("task_result");
    // Floors 0.1, 0.2, 0.2, ... s: 3 s hold at most 1 + 15 attempts.
    assert!((3..=16).contains(&attempts.len()), "{} attempts in {:?}", attempts.len(), started.elapsed());
    for pair in attempts.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(90), "a retry {gap:?} after the one before");
    }
}

#[test]
fn https_to_a_plain_http_port_is_a_configuration_error() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    // The receiver speaks plain HTTP; the URL says https.
    let url = rx.url(TOKEN).replacen("http://", "https://", 1);
    let started = Instant::now();
    let out = crate::support::run(
        worker().env("WOVE_BACKEND_PAYLOAD", result_task(&url)).env("WOVE_WORKER_DELIVERY_BUDGET", "60"),
        Duration::from_secs(60),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert!(err.contains("does not speak TLS"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "retried for {:?}", started.elapsed());
    // task_started and the final event: one connection each, no retries.
    assert!(rx.accepted() <= 2, "{} connections", rx.accepted());
}
