//! `--print-events` prints the very request the HTTP path sends: one
//! definition of the wire request (`wove_proto::request`) feeds both.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use wove_proto::request::Signing;
use wove_proto::sign::{Scheme, Secret};
use wove_proto::{Event, EventKind, EventMeta};
use wove_worker::config::DeliveryConfig;
use wove_worker::internals::{print_line, Deadline, HttpSink, Requests, USER_AGENT};

use crate::support::receiver::{Receiver, Reply};
use crate::support::{b64, code, payload, run, sh, worker};

/// Headers the HTTP client adds on its own, outside the event's request.
const TRANSPORT_HEADERS: [&str; 2] = ["host", "accept"];

fn event() -> Event {
    Event {
        kind: EventKind::TaskResult,
        run_id: "wire:1".into(),
        task_id: "wire".into(),
        event_id: "evt_0123".into(),
        result: Some(serde_json::json!({"ok": [1, 2, 3], "text": "é"})),
        result_pickle: None,
        error: None,
        exception_pickle: None,
        output: None,
        progress: None,
        meta: EventMeta { worker: "wove-worker/test".into(), attempt: 1, ..Default::default() },
    }
}

/// The raw body bytes embedded in a printed line, which ends `"body":<json>}`.
fn printed_body(line: &str) -> &str {
    let start = line.find("\"body\":").unwrap() + "\"body\":".len();
    line.trim_end().strip_suffix('}').unwrap()[start..].trim()
}

#[test]
fn printed_events_are_byte_for_byte_the_requests_posted() {
    for scheme in [Scheme::WoveV1, Scheme::StandardWebhooks] {
        let rx = Receiver::start(vec![Reply::Status(204)]);
        let url = rx.url("TOKEN");
        let signing = Signing { scheme, key_id: "k1".into(), secrets: vec![Secret::from_bytes(b"s3cret".to_vec())] };
        // A fixed clock and nonce: two attempts made "at the same moment" are then identical.
        let requests = Requests::new(&url, signing, USER_AGENT)
            .with_clock_and_nonce(Arc::new(|| 1_800_000_000), Arc::new(|| "fixed-nonce".to_string()));
        let line = print_line("http://127.0.0.1/wove/events/[redacted]", &requests.request(&event()));

        let sink = HttpSink::new(&url, &DeliveryConfig::default().policy(), None, USER_AGENT).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let body = Bytes::from(event().to_body());
        let delivered = rt.block_on(sink.deliver(
            "task_result",
            "evt_0123",
            body,
            &requests,
            &Deadline::after(Duration::from_secs(10)),
        ));
        assert!(delivered.is_ok(), "{delivered:?}");

        let sent = &rx.requests()[0];
        let printed: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(printed_body(&line).as_bytes(), sent.body.as_slice(), "{scheme:?}: the same body bytes");
        let printed_headers = printed["headers"].as_object().unwrap();
        for (name, value) in printed_headers {
            assert_eq!(sent.header(name), value.as_str(), "{scheme:?}: header {name}");
        }
        for (name, _) in &sent.headers {
            let name = name.to_ascii_lowercase();
            let known = printed_headers.keys().any(|p| p.eq_ignore_ascii_case(&name));
            assert!(known || TRANSPORT_HEADERS.contains(&name.as_str()), "{scheme:?}: {name} sent but not printed");
        }
        for required in ["Content-Type", "Content-Length", "Idempotency-Key"] {
            assert!(printed_headers.contains_key(required), "{required} missing from {line}");
        }
    }
}

#[test]
fn the_binary_prints_every_header_it_would_send() {
    let p = payload("http://127.0.0.1:9/wove/events/TOKEN", sh("true"));
    let out = run(
        worker().arg("--print-events").env("WOVE_BACKEND_PAYLOAD", b64(&p)).env("WOVE_WORKER_SIGNING_SECRET", "s"),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 0);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let headers = last["headers"].as_object().unwrap();
    assert_eq!(headers["Content-Type"], "application/json");
    assert_eq!(headers["Idempotency-Key"], last["body"]["event_id"]);
    assert_eq!(headers["Content-Length"], printed_body(stdout.lines().last().unwrap()).len().to_string());
    assert!(headers.contains_key("X-Wove-Signature"));
    assert!(!stdout.contains("TOKEN"), "the printed URL hides the token");
}
