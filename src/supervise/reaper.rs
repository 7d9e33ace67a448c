//! Reaping: collect every exited child, ours or reparented to us.
//!
//! As a container's PID 1 the worker inherits every orphan in the container,
//! and zombies pile up unless someone calls `waitpid`. One loop reaps them
//! all with `waitpid(-1)`; the statuses of the children we started are handed
//! to whoever waits for them. Spawning and recording a pid happen under one
//! lock, so a child that exits at once is never reaped before it is known.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It called `exit` with this code.
    Exited(i32),
    /// It was killed by this signal number.
    Signaled(i32),
}

impl Termination {
    /// A short human description: `exit code 2`, `signal 9 (SIGKILL)`.
    pub fn describe(self) -> String {
        match self {
            Self::Exited(code) => format!("exit code {code}"),
            Self::Signaled(sig) => match nix::sys::signal::Signal::try_from(sig) {
                Ok(s) => format!("signal {sig} ({s})"),
                Err(_) => format!("signal {sig}"),
            },
        }
    }
}

type Waiters = HashMap<i32, oneshot::Sender<Termination>>;

/// The process-wide reaper. Create one per process, inside the runtime.
#[derive(Debug, Clone)]
pub struct Reaper {
    waiters: Arc<Mutex<Waiters>>,
}

/// Safety net for a SIGCHLD coalesced with another: reap on a timer too.
const REAP_TICK: Duration = Duration::from_millis(500);

impl Reaper {
    /// Start reaping. Nothing else in the process may wait for children.
    pub fn start() -> std::io::Result<Self> {
        let waiters: Arc<Mutex<Waiters>> = Arc::default();
        let mut sigchld = signal(SignalKind::child())?;
        let w = waiters.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_TICK);
            loop {
                tokio::select! {
                    _ = sigchld.recv() => {}
                    _ = tick.tick() => {}
                }
                reap_all(&w);
            }
        });
        Ok(Self { waiters })
    }

    /// Spawn `command` and get a receiver for its termination.
    pub fn spawn(&self, command: &mut Command) -> std::io::Result<(Child, oneshot::Receiver<Termination>)> {
        let (tx, rx) = oneshot::channel();
        let mut waiters = lock(&self.waiters);
        let child = command.spawn()?;
        waiters.insert(child.id() as i32, tx);
        drop(waiters);
        // The child may have exited before we registered; reap now rather than at the next tick.
        reap_all(&self.waiters);
        Ok((child, rx))
    }
}

fn lock(w: &Mutex<Waiters>) -> std::sync::MutexGuard<'_, Waiters> {
    // A panic while holding this lock cannot leave the map inconsistent.
    w.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reap_all(waiters: &Mutex<Waiters>) {
    loop {
        let (pid, termination) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Termination::Exited(code)),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, Termination::Signaled(sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) => continue, // stopped/continued: not an end
            Err(Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "waitpid failed");
                return;
            }
        };
        match lock(waiters).remove(&pid.as_raw()) {
            Some(tx) => {
                let _ = tx.send(termination);
            }
            None => tracing::debug!(pid = pid.as_raw(), status = %termination.describe(), "reaped orphan"),
        }
    }
}
