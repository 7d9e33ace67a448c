//! Out-of-memory kills, reported as `OutOfMemory` with the limit the task ran into.
//!
//! The real test puts the worker in a memory cgroup of its own with a small
//! limit (cgroup v1's memory controller, as on this kind of machine and on AWS
//! Batch's Amazon Linux 2 hosts, or cgroup v2) and runs a task that allocates
//! past it: the kernel's OOM killer does the rest. The simulated tests play the
//! kernel's counters in files, for the layouts a test machine cannot make.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{b64, code, payload, processes_matching, run, sh, stderr, worker, Receiver, Reply, TOKEN};

const LIMIT: u64 = 100 * 1024 * 1024;

/// A memory cgroup made for one test, removed when dropped.
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    /// A cgroup limited to `limit` bytes, v1 if the memory controller is there, else v2; `None`
    /// (with the reason) where this machine or user cannot make one.
    fn make(name: &str, limit: u64) -> Result<Self, String> {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        if v1.join("memory.limit_in_bytes").is_file() {
            let dir = v1.join(format!("wove-test-{name}-{}", std::process::id()));
            std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let cgroup = Self { dir };
            // No swap either, where the kernel accounts it: the limit is the limit.
            std::fs::write(cgroup.dir.join("memory.limit_in_bytes"), limit.to_string())
                .map_err(|e| format!("cannot set memory.limit_in_bytes: {e}"))?;
            let _ = std::fs::write(cgroup.dir.join("memory.memsw.limit_in_bytes"), limit.to_string());
            return Ok(cgroup);
        }
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(v2.join("cgroup.subtree_control")).unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err("no cgroup v1 memory controller, and cgroup v2's root does not delegate memory".into());
        }
        let dir = v2.join(format!("wove-test-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cgroup = Self { dir };
        std::fs::write(cgroup.dir.join("memory.max"), limit.to_string()).map_err(|e| format!("memory.max: {e}"))?;
        let _ = std::fs::write(cgroup.dir.join("memory.swap.max"), "0");
        Ok(cgroup)
    }

    /// The worker command, started inside this cgroup (its tasks inherit it):
    /// `sh` moves itself in, then becomes the worker.
    fn worker_inside(&self) -> std::process::Command {
        let plain = worker();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", r#"echo $$ > "$1/cgroup.procs" && shift && exec "$@""#, "sh"])
            .arg(&self.dir)
            .arg(plain.get_program())
            .env_clear()
            .envs(plain.get_envs().filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))))
            .stdin(std::process::Stdio::null());
        cmd
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Empty once the worker and its task are gone; retry briefly while the kernel catches up.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn final_event(rx: &Receiver) -> serde_json::Value {
    rx.events().into_iter().rev().find(|e| e["type"] != "heartbeat" && e["type"] != "task_started").unwrap()
}

/// Allocates (and touches) 300 MiB, three times the limit.
const HOG: &str = "python3 -c 'x = bytearray(300 * 1024 * 1024); print(len(x))'";

#[test]
fn a_task_over_its_memory_limit_is_reported_as_out_of_memory_with_the_limit() {
    let cgroup = match TestCgroup::make("oom", LIMIT) {
        Ok(c) => c,
        Err(why) => return skip(&why),
    };
    // Run directly (`exec`: python3 is the task's process, SIGKILLed) and under a shell (sh
    // sees its child killed and exits 137): memory is the cause both ways.
    for (script, status) in [(format!("exec {HOG}"), ("signal", 9)), (HOG.to_string(), ("exit_code", 137))] {
        let rx = Receiver::start(vec![Reply::Status(204)]);
        let out = run(
            cgroup.worker_inside().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), sh(&script)))),
            Duration::from_secs(60),
        );
        assert_eq!(code(&out), 3, "{}", stderr(&out));
        let error = &final_event(&rx)["error"];
        assert_eq!(error["kind"], "OutOfMemory", "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("out-of-memory killer") && message.contains("the memory limit is 100 MiB"),
            "{message}"
        );
        assert_eq!(error["memory_limit_bytes"], LIMIT);
        assert_eq!(error["retryable"], false, "the contract: a task's own failure is permanent");
        assert_eq!(error[status.0], status.1, "{error}");
        assert!(processes_matching("bytearray(300").is_empty(), "nothing left running");
    }
}

#[test]
fn a_plain_sigkill_in_the_same_cgroup_stays_killed() {
    let cgroup = match TestCgroup::make("kill", LIMIT) {
        Ok(c) => c,
        Err(why) => return skip(&why),
    };
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let out = run(
        cgroup.worker_inside().env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), sh("kill -9 $$")))),
        Duration::from_secs(30),
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let error = &final_event(&rx)["error"];
    assert_eq!(error["kind"], "Killed", "{error}");
    assert!(error["message"].as_str().unwrap().contains("signal 9"));
}

#[test]
fn a_python_interpreter_killed_for_memory_is_out_of_memory_too() {
    let cgroup = match TestCgroup::make("python", LIMIT) {
        Ok(c) => c,
        Err(why) => return skip(&why),
    };
    // An "interpreter" that allocates past the limit as it starts: it dies before
    // reporting, as a Python task that grows too large does.
    let dir = tempfile::tempdir().unwrap();
    let interpreter = dir.path().join("python-that-grows");
    std::fs::write(&interpreter, format!("#!/bin/sh\nexec {}\n", HOG.trim_start_matches("exec "))).unwrap();
    std::fs::set_permissions(&interpreter, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = serde_json::json!({"runner": "python", "interpreter": interpreter});
    let mut p = payload(&rx.url(TOKEN), task);
    p["callable_pickle"] = "gAU=".into();
    p["args_pickle"] = "gAU=".into();
    let out = run(cgroup.worker_inside().env("WOVE_BACKEND_PAYLOAD", b64(&p)), Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(code(&out), 3, "{err}");
    let error = &final_event(&rx)["error"];
    assert_eq!(error["kind"], "OutOfMemory", "{error}");
    assert!(error["message"]
        .as_str()
        .unwrap()
        .starts_with("the Python process was killed by the out-of-memory killer"));
}

/// The v2 layout, played with files: the task bumps the counter as the kernel would, then dies.
#[test]
fn a_sigkill_while_the_v2_count_rises_is_an_oom_kill() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("memory.events");
    std::fs::write(&events, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n").unwrap();
    std::fs::write(dir.path().join("memory.max"), format!("{LIMIT}\n")).unwrap();
    std::fs::write(dir.path().join("memory.peak"), format!("{}\n", LIMIT - 4096)).unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = sh(&format!("printf 'oom 1\\noom_kill 1\\n' > '{}'; kill -9 $$", events.display()));
    let out = run(
        worker()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)))
            .env("WOVE_WORKER_MEMORY_CGROUP", dir.path()),
        Duration::from_secs(20),
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let error = &final_event(&rx)["error"];
    assert_eq!(error["kind"], "OutOfMemory");
    assert_eq!(
        error["message"],
        "`sh` was killed by the out-of-memory killer (the memory limit is 100 MiB; peak usage 100 MiB)"
    );
    assert_eq!(error["memory_peak_bytes"], LIMIT - 4096);
}

#[test]
fn a_runner_executable_killed_for_memory_is_out_of_memory_too() {
    let cgroup = match TestCgroup::make("runner", LIMIT) {
        Ok(c) => c,
        Err(why) => return skip(&why),
    };
    let dir = tempfile::tempdir().unwrap();
    let runner = dir.path().join("wove-runner-grow");
    std::fs::write(&runner, format!("#!/bin/sh\nexec {HOG}\n")).unwrap();
    std::fs::set_permissions(&runner, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let task = serde_json::json!({"runner": "grow"});
    let out = run(
        cgroup
            .worker_inside()
            .env("WOVE_BACKEND_PAYLOAD", b64(&payload(&rx.url(TOKEN), task)))
            .env("WOVE_WORKER_RUNNER_PATH", dir.path()),
        Duration::from_secs(60),
    );
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let error = &final_event(&rx)["error"];
    assert_eq!(error["kind"], "OutOfMemory", "{error}");
    assert!(error["message"].as_str().unwrap().starts_with("runner `grow` was killed by the out-of-memory killer"));
}

/// Skip where no memory cgroup can be made, saying why, unless the run requires
/// these tests (CI on a machine that can: WOVE_TEST_REQUIRE_MEMORY_CGROUP=1).
fn skip(why: &str) {
    assert!(
        std::env::var_os("WOVE_TEST_REQUIRE_MEMORY_CGROUP").is_none(),
        "a real memory cgroup is required here but none can be made: {why}"
    );
    eprintln!("SKIPPED: no memory cgroup can be made here: {why}");
}
