//! Shared helpers: running the built worker, building payloads.
// Each test binary uses a different part of this module.
#![allow(dead_code)]

pub mod receiver;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use receiver::{Receiver, Reply};

pub const TOKEN: &str = "tok-SECRET-abc123";

/// The built binary with a clean environment: only PATH and fast retry settings.
pub fn worker() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wove-worker"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WOVE_WORKER_BACKOFF_BASE", "0.05")
        .env("WOVE_WORKER_BACKOFF_CAP", "0.2")
        .env("WOVE_WORKER_KILL_GRACE", "1")
        .stdin(Stdio::null());
    cmd
}

/// Run to completion, at most `limit`; kills and fails the test past it.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start worker");
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("worker ran longer than {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// A payload envelope around `task` for `callback`.
pub fn payload(callback: &str, task: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "version": 1, "adapter": "kubernetes_jobs", "callback_url": callback,
        "run_id": "job:00112233445566778899aabbccddeeff", "task_id": "job", "task_name": null,
        "delivery": {}, "task": task
    })
}

/// A subprocess task running `sh -c script`.
pub fn sh(script: &str) -> serde_json::Value {
    serde_json::json!({"runner": "subprocess", "program": "sh", "args": ["-c", script]})
}

pub fn b64(v: &serde_json::Value) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(v.to_string())
}
