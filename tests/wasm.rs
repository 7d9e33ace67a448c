//! The `wasm` runner through the built binary: `.wat` fixtures compiled at
//! test time, events checked at a loopback receiver.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::support::{b64, code, payload, private_ca_file, run, stderr, worker, Receiver, Reply, TOKEN};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(format!("{name}.wat"));
    wat::parse_file(&path).unwrap_or_else(|e| panic!("{name}.wat: {e}"))
}

fn module_file(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, fixture(name)).unwrap();
    path
}

/// An https file server (private CA) answering with `body`, and the CA file the worker is given.
fn https_files(dir: &Path, body: Vec<u8>) -> (Receiver, PathBuf) {
    let (ca_file, tls) = private_ca_file(dir);
    (Receiver::start_tls(vec![Reply::Body(body)], tls), ca_file)
}

/// Run a task whose module the worker downloads; returns the exit code and the receiver.
fn run_downloading(task: serde_json::Value, ca_file: &Path) -> (i32, Receiver, String) {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task))).env("WOVE_WORKER_CA_BUNDLE", ca_file),
        Duration::from_secs(60),
    );
    (code(&out), rx, stderr(&out))
}

fn wasm_task(module: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut task = serde_json::json!({"runner": "wasm", "module": module});
    for (k, v) in extra.as_object().unwrap() {
        task[k] = v.clone();
    }
    task
}

/// Run one wasm task; returns the exit code, the final event and stderr.
fn run_wasm(task: serde_json::Value) -> (i32, serde_json::Value, String) {
    run_wasm_trusting(task, None)
}

/// [`run_wasm`], loading precompiled modules from `precompiled_dir`.
fn run_wasm_trusting(task: serde_json::Value, precompiled_dir: Option<&Path>) -> (i32, serde_json::Value, String) {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let mut cmd = worker();
    cmd.env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)));
    if let Some(dir) = precompiled_dir {
        cmd.env("WOVE_WORKER_PRECOMPILED_DIR", dir);
    }
    let out = run(&mut cmd, Duration::from_secs(60));
    let finals: Vec<_> = rx
        .events()
        .into_iter()
        .filter(|e| ["task_result", "task_error", "task_cancelled"].contains(&e["type"].as_str().unwrap()))
        .collect();
    assert_eq!(finals.len(), 1, "one final event; stderr: {}", stderr(&out));
    (code(&out), finals[0].clone(), stderr(&out))
}

#[test]
fn echo_returns_its_json_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = module_file(dir.path(), "echo");
    let input = serde_json::json!({"numbers": [1, 2, 3], "text": "ünïcode"});
    let (code, event, err) =
        run_wasm(wasm_task(serde_json::json!({"path": path}), serde_json::json!({"input": input})));
    assert_eq!(code, 0, "{err}");
    assert_eq!(event["type"], "task_result");
    assert_eq!(event["result"], input);
}

#[test]
fn args_and_env_come_from_the_task_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = module_file(dir.path(), "args");
    let task = wasm_task(
        serde_json::json!({"path": path}),
        serde_json::json!({"args": ["a", "b"], "env": {"ONE": "1", "TWO": "2", "THREE": "3"}}),
    );
    // The worker's own environment (PATH, WOVE_*) must not leak in: exactly 3 variables.
    let (code, event, err) = run_wasm(task);
    assert_eq!(code, 0, "{err}");
    assert_eq!(event["result"], serde_json::json!([3, 3]), "[argc incl. program name, envc]");
}

#[test]
fn a_nonzero_proc_exit_is_a_task_error_with_the_code() {
    let dir = tempfile::tempdir().unwrap();
    let (code, event, err) =
        run_wasm(wasm_task(serde_json::json!({"path": module_file(dir.path(), "exit7")}), serde_json::json!({})));
    assert_eq!(code, 3);
    assert_eq!(event["error"]["kind"], "NonZeroExit");
    assert_eq!(event["error"]["exit_code"], 7);
    assert!(err.contains("guest says: giving up"), "the guest's stderr reaches the container's");
}

#[test]
fn a_trap_is_a_task_error_with_the_trap_message() {
    let dir = tempfile::tempdir().unwrap();
    let (code, event, _) =
        run_wasm(wasm_task(serde_json::json!({"path": module_file(dir.path(), "trap")}), serde_json::json!({})));
    assert_eq!(code, 3);
    assert_eq!(event["error"]["kind"], "Trap");
    assert!(event["error"]["message"].as_str().unwrap().contains("unreachable"), "{event}");
}

#[test]
fn an_infinite_loop_hits_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let (code, event, _) = run_wasm(wasm_task(
        serde_json::json!({"path": module_file(dir.path(), "spin")}),
        serde_json::json!({"limits": {"timeout_seconds": 0.5}}),
    ));
    assert_eq!(code, 3);
    assert_eq!(event["error"]["kind"], "Timeout");
    assert!(event["error"].get("abandoned").is_none(), "stopped by epoch interruption, not abandoned");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn runaway_memory_growth_hits_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = module_file(dir.path(), "grow");
    let (code, event, _) = run_wasm(wasm_task(
        serde_json::json!({"path": path}),
        serde_json::json!({"limits": {"memory_bytes": 8 * 1024 * 1024}}),
    ));
    assert_eq!(code, 3);
    assert_eq!(event["error"]["kind"], "MemoryLimit");
}

#[test]
fn flooding_stdout_hits_the_output_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (code, event, _) = run_wasm(wasm_task(
        serde_json::json!({"path": module_file(dir.path(), "flood")}),
        serde_json::json!({"limits": {"output_bytes": 200000}}),
    ));
    assert_eq!(code, 3);
    assert_eq!(event["error"]["kind"], "OutputLimit");
}

#[test]
fn preview2_components_are_told_apart_and_run() {
    let dir = tempfile::tempdir().unwrap();
    let (code, event, err) = run_wasm(wasm_task(
        serde_json::json!({"path": module_file(dir.path(), "run_ok.component")}),
        serde_json::json!({}),
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(event["type"], "task_result");

    let (code, event, err) = run_wasm(wasm_task(
        serde_json::json!({"path": module_file(dir.path(), "exit_err.component")}),
        serde_json::json!({}),
    ));
    assert_eq!(code, 3, "{err}");
    assert_eq!(event["error"]["kind"], "NonZeroExit");
    assert_eq!(event["error"]["exit_code"], 1);
}

#[test]
fn inline_base64_modules_run() {
    let bytes = base64::engine::general_purpose::STANDARD.encode(fixture("echo"));
    let (code, event, err) =
        run_wasm(wasm_task(serde_json::json!({"base64": bytes}), serde_json::json!({"input": [true]})));
    assert_eq!(code, 0, "{err}");
    assert_eq!(event["result"], serde_json::json!([true]));
}

#[test]
fn https_modules_with_a_matching_digest_run() {
    use sha2::Digest as _;
    let bytes = fixture("echo");
    let digest: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let dir = tempfile::tempdir().unwrap();
    let (files, ca_file) = https_files(dir.path(), bytes);
    let task = wasm_task(
        serde_json::json!({"url": {"url": files.tls_url("echo.wasm"), "sha256": digest}}),
        serde_json::json!({"input": {"from": "https"}}),
    );
    let (code, rx, err) = run_downloading(task, &ca_file);
    assert_eq!(code, 0, "{err}");
    assert_eq!(rx.of_type("task_result")[0].json()["result"], serde_json::json!({"from": "https"}));
}

#[test]
fn a_digest_mismatch_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    // A module that would exit 7 and print to stderr, served under the wrong digest.
    let (files, ca_file) = https_files(dir.path(), fixture("exit7"));
    let task = wasm_task(
        serde_json::json!({"url": {"url": files.tls_url("m.wasm"), "sha256": "00".repeat(32)}}),
        serde_json::json!({}),
    );
    let (code, rx, err) = run_downloading(task, &ca_file);
    assert_eq!(code, 3, "{err}");
    assert_eq!(rx.of_type("task_error")[0].json()["error"]["kind"], "DigestMismatch");
    assert!(!err.contains("guest says"), "the module ran");
}

#[test]
fn an_oversized_download_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca_file) = https_files(dir.path(), vec![0u8; 100_000]);
    let task = wasm_task(
        serde_json::json!({"url": {"url": files.tls_url("m.wasm"), "sha256": "00".repeat(32), "max_bytes": 1000}}),
        serde_json::json!({}),
    );
    let (code, rx, err) = run_downloading(task, &ca_file);
    assert_eq!(code, 3, "{err}");
    assert_eq!(rx.of_type("task_error")[0].json()["error"]["kind"], "ModuleTooLarge");
}

#[test]
fn precompiled_modules_load_and_foreign_ones_fail_clearly() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("trusted");
    std::fs::create_dir(&trusted).unwrap();
    let wasm = module_file(dir.path(), "echo");
    let cwasm = trusted.join("echo.cwasm");
    let out = run(worker().arg("precompile").arg(&wasm).arg(&cwasm), Duration::from_secs(60));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(std::fs::read(&cwasm).unwrap().starts_with(b"\x7fELF"));
    let read_only = |path: &Path| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o444)).unwrap();
    read_only(&cwasm);

    let (code_, event, err) = run_wasm_trusting(
        wasm_task(serde_json::json!({"path": cwasm}), serde_json::json!({"input": "precompiled"})),
        Some(&trusted),
    );
    assert_eq!(code_, 0, "{err}");
    assert_eq!(event["result"], "precompiled");

    // A .cwasm from another configuration (fuel instead of epochs): refused with a clear message.
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    let foreign = wasmtime::Engine::new(&config).unwrap().precompile_module(&fixture("echo")).unwrap();
    let foreign_path = trusted.join("foreign.cwasm");
    std::fs::write(&foreign_path, foreign).unwrap();
    read_only(&foreign_path);
    let (code_, event, err) =
        run_wasm_trusting(wasm_task(serde_json::json!({"path": foreign_path}), serde_json::json!({})), Some(&trusted));
    assert_eq!(code_, 3, "{err}");
    assert_eq!(event["error"]["kind"], "IncompatiblePrecompiled");
    assert!(event["error"]["message"].as_str().unwrap().contains("precompile it again"));
    assert!(!err.contains("panicked"));

    // Precompiled bytes are never accepted from the payload.
    let inline = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&cwasm).unwrap());
    let (code_, event, _) = run_wasm(wasm_task(serde_json::json!({"base64": inline}), serde_json::json!({})));
    assert_eq!(code_, 3);
    assert!(event["error"]["message"].as_str().unwrap().contains("only from `path`"));
}

#[test]
fn precompiled_modules_load_only_from_a_trusted_read_only_place() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("trusted");
    let elsewhere = dir.path().join("scratch");
    for d in [&trusted, &elsewhere] {
        std::fs::create_dir(d).unwrap();
    }
    let wasm = module_file(dir.path(), "echo");
    let make = |path: &Path, mode: u32| {
        let out = run(worker().arg("precompile").arg(&wasm).arg(path), Duration::from_secs(60));
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    let outside = elsewhere.join("echo.cwasm");
    make(&outside, 0o444);
    let writable = trusted.join("writable.cwasm");
    make(&writable, 0o644);
    // A link inside the trusted directory to a file outside it is still outside.
    let link = trusted.join("link.cwasm");
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    for (path, trust, said) in [
        (&outside, None, "no --precompiled-dir"),
        (&outside, Some(&trusted), "not inside a --precompiled-dir"),
        (&link, Some(&trusted), "not inside a --precompiled-dir"),
        (&writable, Some(&trusted), "make it read-only"),
    ] {
        let task = wasm_task(serde_json::json!({"path": path}), serde_json::json!({"input": 1}));
        let (code_, event, err) = run_wasm_trusting(task, trust.map(PathBuf::as_path));
        assert_eq!(code_, 3, "{}: {err}", path.display());
        assert_eq!(event["error"]["kind"], "ModuleUnavailable", "{}", path.display());
        let message = event["error"]["message"].as_str().unwrap();
        assert!(message.contains(said), "{}: {message}", path.display());
        assert!(event.get("result").is_none());
    }
}

#[test]
fn a_stalled_module_download_ends_at_the_task_timeout_or_at_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, tls) = private_ca_file(dir.path());
    for (name, reply) in [
        // One byte every half second: it would take a minute.
        ("trickle", Reply::Trickle(fixture("echo"), Duration::from_millis(500))),
        // Accepts, reads the request, never answers.
        ("silent", Reply::Slow(Duration::from_secs(300), 200)),
    ] {
        let files = Receiver::start_tls(vec![reply], tls.clone());
        let module = serde_json::json!({"url": {"url": files.tls_url("m.wasm"), "sha256": "00".repeat(32)}});
        let task = wasm_task(module, serde_json::json!({"limits": {"timeout_seconds": 2}}));
        let started = Instant::now();
        let (code_, rx, err) = run_downloading(task.clone(), &ca_file);
        assert_eq!(code_, 3, "{name}: {err}");
        assert_eq!(rx.of_type("task_error")[0].json()["error"]["kind"], "Timeout", "{name}");
        assert!(started.elapsed() < Duration::from_secs(15), "{name}: took {:?}", started.elapsed());

        // SIGTERM during the same stall: cancelled at once, not after the download.
        let mut task = task;
        task["limits"]["timeout_seconds"] = serde_json::json!(120);
        let rx = Receiver::start(vec![Reply::Status(204)]);
        let running = crate::support::start(
            worker()
                .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)))
                .env("WOVE_WORKER_CA_BUNDLE", &ca_file),
        );
        assert!(
            crate::support::wait_for(Duration::from_secs(20), || files.requests().len() >= 2),
            "{name}: no download"
        );
        crate::support::assert_sigterm_cancels(running, &rx, Duration::from_secs(10), name);
    }
}

#[test]
fn a_module_download_never_follows_a_redirect_to_http() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Receiver::start(vec![Reply::Body(fixture("echo"))]);
    let (ca_file, tls) = private_ca_file(dir.path());
    let redirect = Reply::WithHeaders(302, vec![("Location".into(), plain.url("m.wasm"))]);
    let files = Receiver::start_tls(vec![redirect], tls);
    let module = serde_json::json!({"url": {"url": files.tls_url("m.wasm"), "sha256": "00".repeat(32)}});
    let (code_, rx, err) = run_downloading(wasm_task(module, serde_json::json!({})), &ca_file);
    assert_eq!(code_, 3, "{err}");
    let error = rx.of_type("task_error")[0].json()["error"].clone();
    assert_eq!(error["kind"], "ModuleUnavailable");
    assert!(error["message"].as_str().unwrap().contains("not https"), "{error}");
    assert!(plain.requests().is_empty(), "the http URL was fetched");
}

#[test]
fn precompile_reports_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"not wasm").unwrap();
    let out = run(worker().arg("precompile").arg(&bogus).arg(dir.path().join("o.cwasm")), Duration::from_secs(30));
    assert_eq!(code(&out), 65, "{}", stderr(&out));
    let out = run(
        worker().arg("precompile").arg("/nonexistent.wasm").arg(dir.path().join("o.cwasm")),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 78);
}

#[test]
fn bad_wasm_tasks_are_bad_payloads() {
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = wasm_task(serde_json::json!({"base64": "%%%"}), serde_json::json!({}));
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task))), Duration::from_secs(20));
    assert_eq!(code(&out), 65);
    assert!(stderr(&out).contains("task.module.base64"));

    let task = wasm_task(
        serde_json::json!({"url": {"url": "http://x/m.wasm", "sha256": "00".repeat(32)}}),
        serde_json::json!({}),
    );
    let out = run(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task))), Duration::from_secs(20));
    assert_eq!(code(&out), 65);
    assert!(stderr(&out).contains("https"));
}

#[test]
fn no_filesystem_unless_granted() {
    // echo reads stdin only; a module that tried to open files would find no preopens.
    // Here: a granted directory that does not exist is a clear setup error, not a crash.
    let dir = tempfile::tempdir().unwrap();
    let (code, event, _) = run_wasm(wasm_task(
        serde_json::json!({"path": module_file(dir.path(), "echo")}),
        serde_json::json!({"dirs": [{"host": "/nonexistent/dir"}]}),
    ));
    assert_eq!(code, 3);
    assert_eq!(event["error"]["kind"], "InvalidModule");
    assert!(event["error"]["message"].as_str().unwrap().contains("/nonexistent/dir"));
}

#[test]
fn sigterm_stops_a_spinning_guest() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = wasm_task(serde_json::json!({"path": module_file(dir.path(), "spin")}), serde_json::json!({}));
    let worker = crate::support::start(worker().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task))));
    // Ready when the guest's own thread exists: SIGTERM then stops a guest that is running.
    let guest_running = || {
        std::fs::read_dir(format!("/proc/{}/task", worker.pid()))
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "wasm-guest"))
    };
    assert!(crate::support::wait_for(Duration::from_secs(20), guest_running), "the guest never started");
    worker.signal(nix::sys::signal::Signal::SIGTERM);
    let out = worker.finish(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(143));
    assert_eq!(rx.of_type("task_cancelled").len(), 1);
}

/// `examples/payloads/wasm-echo.json` carries tests/data/echo.wat, compiled, inline: the
/// example a new user runs is the module these tests check.
#[test]
fn the_wasm_example_payload_carries_the_echo_module() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/payloads/wasm-echo.json")).unwrap();
    let example: serde_json::Value = serde_json::from_str(&text).unwrap();
    let module = wat::parse_file(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/echo.wat")).unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode(module);
    assert_eq!(example["task"]["module"]["base64"], expected.as_str(), "regenerate the example's module: {expected}");
}
