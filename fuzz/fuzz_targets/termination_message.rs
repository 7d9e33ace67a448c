//! The termination message from any fields a payload, a runner or a failure
//! may put in it, at any size: it always ends, fits Kubernetes' 4096 bytes,
//! parses, and says how the run ended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wove_worker::internals::{Summary, MAX_BYTES};

#[derive(Debug, arbitrary::Arbitrary)]
struct Fields {
    exit_code: u8,
    failed: bool,
    delivered: bool,
    index: Option<usize>,
    run_id: Option<String>,
    task_id: Option<String>,
    event_id: Option<String>,
    error_kind: Option<String>,
    message: Option<String>,
    /// Repeat each text this many times (up to 64): sizes far past the
    /// input's own and past 4096 bytes, where the old shortening never finished.
    repeat: u16,
}

fuzz_target!(|f: Fields| {
    let times = usize::from(f.repeat % 65).max(1);
    let grow = |text: Option<String>| text.map(|t| t.repeat(times));
    let status = if f.failed { wove_proto::Status::Failed } else { wove_proto::Status::Undelivered };
    let summary = Summary {
        status,
        exit_code: f.exit_code,
        run_id: grow(f.run_id),
        task_id: grow(f.task_id),
        index: f.index,
        event: Some("task_error"),
        event_id: grow(f.event_id),
        delivered: f.delivered,
        error_kind: grow(f.error_kind),
        message: grow(f.message),
    };
    let json = summary.to_json();
    assert!(json.len() <= MAX_BYTES, "{} bytes", json.len());
    let back: serde_json::Value = serde_json::from_str(&json).expect("the record parses");
    assert_eq!(back["status"], status.as_str());
    assert_eq!(back["exit_code"], f.exit_code);
    assert_eq!(back["delivered"], f.delivered);
});
