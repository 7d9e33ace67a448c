//! Parents that leave the worker in a state it must not keep: SIGTERM
//! blocked or ignored across `exec`, a signal sent the instant it starts, a
//! payload file that never yields a byte. Each through the built binary.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};

use crate::support::{
    assert_sigterm_cancels, b64, code, payload, sh, start, stderr, wait_for, worker, Receiver, Reply, TOKEN,
};

/// How the parent leaves SIGTERM when it execs the worker.
#[derive(Debug, Clone, Copy)]
enum Parent {
    Blocks,
    Ignores,
}

fn as_child_of(cmd: &mut Command, parent: Parent) -> &mut Command {
    // SAFETY: runs in the forked child before exec; sigprocmask and signal are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            match parent {
                Parent::Blocks => {
                    let mut set = SigSet::empty();
                    set.add(Signal::SIGTERM);
                    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
                }
                Parent::Ignores => {
                    nix::sys::signal::signal(Signal::SIGTERM, SigHandler::SigIgn)?;
                }
            }
            Ok(())
        })
    }
}

/// The hex mask on a `/proc/PID/status` line such as `SigBlk:`.
fn mask(status: &str, line: &str) -> u64 {
    let text = status.lines().find(|l| l.starts_with(line)).unwrap_or_else(|| panic!("no {line} in {status}"));
    u64::from_str_radix(text.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

#[test]
fn sigterm_blocked_or_ignored_by_the_parent_still_cancels_and_the_task_starts_clean() {
    for parent in [Parent::Blocks, Parent::Ignores] {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("task-status");
        let rx = Receiver::start(vec![Reply::Status(204)]);
        let script = format!("cat /proc/self/status > {0}.tmp; mv {0}.tmp {0}; exec sleep 30", status.display());
        let p = payload(&rx.url(TOKEN), sh(&script));
        let running = start(as_child_of(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), parent));
        assert!(wait_for(Duration::from_secs(20), || status.exists()), "{parent:?}: the task never started");
        let worker_status = std::fs::read_to_string(format!("/proc/{}/status", running.pid())).unwrap();
        let task_status = std::fs::read_to_string(&status).unwrap();
        let term = 1u64 << (Signal::SIGTERM as i32 - 1);
        for (who, text) in [("worker", &worker_status), ("task", &task_status)] {
            assert_eq!(mask(text, "SigBlk:") & term, 0, "{parent:?}: SIGTERM blocked in the {who}");
        }
        assert_eq!(mask(&task_status, "SigBlk:"), 0, "{parent:?}: the task starts with signals blocked");
        assert_eq!(mask(&task_status, "SigIgn:") & term, 0, "{parent:?}: SIGTERM ignored in the task");
        assert_sigterm_cancels(running, &rx, Duration::from_secs(15), &format!("{parent:?}"));
    }
}

#[test]
fn a_sigterm_that_arrives_before_the_handlers_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("started");
    let rx = Receiver::start(vec![Reply::Status(204)]);
    let p = payload(&rx.url(TOKEN), sh(&format!("touch {}; exec sleep 30", marker.display())));
    // Blocked by the parent and sent at once: it is pending before the worker has any handler.
    let running = start(as_child_of(worker().env("WOVE_BACKEND_PAYLOAD", b64(&p)), Parent::Blocks));
    running.signal(Signal::SIGTERM);
    let out = running.finish(Duration::from_secs(30));
    assert_eq!(code(&out), 143, "{}", stderr(&out));
    assert!(!marker.exists(), "the task was started after SIGTERM");
    assert_eq!(rx.of_type("task_cancelled").len(), 1, "{}", stderr(&out));
}

#[test]
fn a_payload_fifo_with_no_writer_yields_to_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("payload");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    let running = start(worker().arg("--payload-file").arg(&fifo).env("WOVE_WORKER_TERMINATION_LOG", &log));
    assert!(
        wait_for(Duration::from_secs(20), || blocked_opening(running.pid())),
        "the worker never waited on the FIFO"
    );
    let sent = Instant::now();
    running.signal(Signal::SIGTERM);
    let out = running.finish(Duration::from_secs(30));
    assert_eq!(code(&out), 143, "{}", stderr(&out));
    assert!(sent.elapsed() < Duration::from_secs(10), "took {:?}", sent.elapsed());
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    assert_eq!(record["status"], "cancelled");
}

#[test]
fn a_payload_file_that_never_yields_a_byte_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("payload");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let started = Instant::now();
    let out = crate::support::run(
        worker().arg("--payload-file").arg(&fifo).args(["--read-timeout", "1"]),
        Duration::from_secs(30),
    );
    let err = stderr(&out);
    assert_eq!(code(&out), 65, "{err}");
    assert!(err.contains("timed out after 1s"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Whether a thread of `pid` sits in `openat` (a FIFO's open waits for a writer).
fn blocked_opening(pid: nix::unistd::Pid) -> bool {
    #[cfg(target_arch = "x86_64")]
    const OPENAT: &str = "257";
    #[cfg(target_arch = "aarch64")]
    const OPENAT: &str = "56";
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    threads.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| s.split_whitespace().next() == Some(OPENAT))
    })
}
