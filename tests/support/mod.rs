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

/// A worker started in the background, its output read as it runs (a chatty
/// task cannot fill a pipe and stall it).
pub struct Running {
    pid: nix::unistd::Pid,
    /// The name the kernel gives the process once its program is exec'd (its first 15 bytes).
    comm: String,
    reader: std::thread::JoinHandle<Output>,
    started: Instant,
}

/// Start `cmd` with stdout and stderr captured.
pub fn start(cmd: &mut Command) -> Running {
    start_with_stdout(cmd, Stdio::piped())
}

/// Start `cmd` with stdout thrown away (a task printing gigabytes) and stderr captured.
pub fn start_discarding_stdout(cmd: &mut Command) -> Running {
    start_with_stdout(cmd, Stdio::null())
}

fn start_with_stdout(cmd: &mut Command, stdout: Stdio) -> Running {
    let program = std::path::Path::new(cmd.get_program()).file_name().unwrap_or_default();
    let comm: String = program.to_string_lossy().chars().take(15).collect();
    let child = cmd.stdout(stdout).stderr(Stdio::piped()).spawn().expect("start worker");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    Running {
        pid,
        comm,
        reader: std::thread::spawn(move || child.wait_with_output().unwrap()),
        started: Instant::now(),
    }
}

impl Running {
    /// The worker's pid.
    pub fn pid(&self) -> nix::unistd::Pid {
        self.pid
    }

    /// Send it a signal, as a platform would.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid, sig).expect("signal the worker");
    }

    /// Whether it is still running.
    pub fn is_running(&self) -> bool {
        !self.reader.is_finished()
    }

    /// How long since it started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// [`Self::finish`], also sampling the worker's peak resident memory
    /// (VmHWM, in KiB) while it runs.
    pub fn finish_measuring_memory(self, limit: Duration) -> (Output, u64) {
        let status = format!("/proc/{}/status", self.pid);
        let mut peak_kib = None;
        while !self.reader.is_finished() && self.started.elapsed() <= limit {
            let text = std::fs::read_to_string(&status).unwrap_or_default();
            // `spawn` can return (posix_spawn's vfork) before the kernel has given the child
            // its own memory: a sample then is this test process's, a gigabyte when the tests
            // beside it hold large payloads. The name changes after the memory does.
            let execd = text.lines().find_map(|l| l.strip_prefix("Name:")).is_some_and(|n| n.trim() == self.comm);
            if let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:")).filter(|_| execd) {
                let kib = line.split_whitespace().nth(1).and_then(|k| k.parse().ok()).unwrap_or(0);
                peak_kib = peak_kib.max(Some(kib));
            }
            // Often at first, so that a worker that ends within milliseconds is still sampled.
            let early = self.started.elapsed() < Duration::from_millis(200);
            std::thread::sleep(Duration::from_millis(if early { 1 } else { 20 }));
        }
        let out = self.finish(limit);
        // No sample, no bound shown: fail rather than pass on nothing.
        let peak_kib = peak_kib.unwrap_or_else(|| panic!("the worker ended before its memory was sampled: {out:?}"));
        (out, peak_kib)
    }

    /// Wait for it to exit, at most `limit`; past that it is killed and the
    /// test fails. Every stderr is checked for causes said twice.
    pub fn finish(self, limit: Duration) -> Output {
        while !self.reader.is_finished() {
            if self.started.elapsed() > limit {
                let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
                let out = self.reader.join().unwrap();
                panic!("worker ran longer than {limit:?}; stderr:\n{}", String::from_utf8_lossy(&out.stderr));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = self.reader.join().unwrap();
        assert_causes_said_once(&String::from_utf8_lossy(&out.stderr));
        out
    }
}

/// Send SIGTERM to a running worker and check it cancels as promised: exit
/// 143 within `within`, one `task_cancelled` at `rx`. `what` names the case.
pub fn assert_sigterm_cancels(running: Running, rx: &Receiver, within: Duration, what: &str) {
    let sent = Instant::now();
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let out = running.finish(Duration::from_secs(30));
    assert_eq!(code(&out), 143, "{what}: {}", stderr(&out));
    assert!(sent.elapsed() < within, "{what}: {:?} after SIGTERM", sent.elapsed());
    assert_eq!(rx.of_type("task_cancelled").len(), 1, "{what}");
}

/// Run to completion, at most `limit`; kills and fails the test past it.
pub fn run(cmd: &mut Command, limit: Duration) -> Output {
    start(cmd).finish(limit)
}

/// Fail when a log line repeats one of its own causes (`a: b: a: b`): every
/// error is printed once, with each cause once. Checked on every run.
pub fn assert_causes_said_once(log: &str) {
    for line in log.lines() {
        let parts: Vec<&str> = line.split(": ").map(str::trim).filter(|p| p.len() >= 12).collect();
        for (i, part) in parts.iter().enumerate() {
            assert!(!parts[i + 1..].contains(part), "a cause is said twice in: {line}");
        }
    }
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

/// Say why a test that needs a capability does not run here, or fail it when
/// `require` (a `WOVE_TEST_REQUIRE_*` variable) is set: where the machine has
/// the capability (CI, as root), a skip must never pass for a success.
pub fn skip_unless_required(require: &str, why: &str) {
    assert!(std::env::var_os(require).is_none(), "{require} is set, but this test cannot run here: {why}");
    eprintln!("SKIPPED: {why} (set {require} to make this a failure)");
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
    b64_text(&v.to_string())
}

/// Base64 of payload text written by hand (numbers no `json!` can hold).
pub fn b64_text(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Live processes whose command line contains `marker` (the process table,
/// not only our children: a leak anywhere shows).
pub fn processes_matching(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(marker) && pid != std::process::id() as i32 {
            found.push(pid);
        }
    }
    found
}

/// Live processes whose whole command line is `command` (words joined by spaces).
pub fn processes_running(command: &str) -> Vec<i32> {
    processes_matching(command)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim_end() == command)
                .unwrap_or(false)
        })
        .collect()
}

/// Wait (bounded) for a condition, polling.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// `private_ca`, with the CA written to `dir/ca.pem`: the file a test gives the worker as
/// `--ca-bundle`, or plants where a certificate store would be.
pub fn private_ca_file(dir: &std::path::Path) -> (std::path::PathBuf, std::sync::Arc<rustls::ServerConfig>) {
    let (ca_pem, tls) = private_ca();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    (ca_file, tls)
}

/// A private CA and a server configuration whose certificate it issued for
/// `localhost` and `wove-callback.test` (the name the image test puts in /etc/hosts).
pub fn private_ca() -> (String, std::sync::Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "wove-callback.test".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let key = rustls::pki_types::PrivatePkcs8KeyDer::from(leaf_key.serialize_der());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key.into())
        .unwrap();
    (ca_cert.pem(), std::sync::Arc::new(config))
}

/// A loopback port nothing listens on (bound, then released).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
