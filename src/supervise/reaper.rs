//! Reaping: collecting exited children and handing each status to whoever
//! waits for it.
//!
//! Two modes, because the worker lives in two kinds of process:
//! - [`ReapMode::Everything`]: the container's PID 1, or a child subreaper.
//!   Every orphan in the container is ours to reap, and zombies pile up
//!   unless someone calls `waitpid(-1)`; one loop does, and passes on the
//!   statuses of the children we started.
//! - [`ReapMode::OwnChildren`]: a library inside a host program that has
//!   children of its own. Only the pids we spawned are waited for, one by one,
//!   so the host still gets its children's exit statuses.
//!
//! Spawning and recording a pid happen under one lock, so a child that exits
//! at once is never reaped before it is known.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

use super::child_exit::ChildExit;

/// Which children the reaper collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapMode {
    /// Every child, ours or reparented to us (PID 1, subreaper).
    Everything,
    /// Only the children this reaper spawned (embedded in a host program).
    OwnChildren,
}

/// What one non-blocking wait found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// This child ended.
    Ended(i32, ChildExit),
    /// The children asked about are all still running.
    Running,
    /// There is no such child (or no child at all).
    NoChild,
}

/// The `waitpid` call, behind a seam so the dispatching can be tested
/// without processes. `None` asks about any child.
pub trait Wait: Send + Sync + 'static {
    /// Wait without blocking for `pid`, or for any child.
    fn wait(&self, pid: Option<i32>) -> Waited;
}

/// The real `waitpid(2)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemWait;

impl Wait for SystemWait {
    fn wait(&self, pid: Option<i32>) -> Waited {
        loop {
            return match waitpid(Pid::from_raw(pid.unwrap_or(-1)), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => Waited::Ended(pid.as_raw(), ChildExit::Exited(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => Waited::Ended(pid.as_raw(), ChildExit::Signaled(sig as i32)),
                Ok(WaitStatus::StillAlive) => Waited::Running,
                Err(Errno::ECHILD) => Waited::NoChild,
                // Stopped or continued is not an end; EINTR is no answer.
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "waitpid failed");
                    Waited::NoChild
                }
            };
        }
    }
}

type Waiters = HashMap<i32, oneshot::Sender<ChildExit>>;

/// Collects statuses and hands them to waiters; free of I/O but for [`Wait`].
struct Dispatcher {
    mode: ReapMode,
    waiters: Mutex<Waiters>,
    wait: Box<dyn Wait>,
}

impl Dispatcher {
    /// Reap whatever has ended; return how many statuses were collected.
    fn reap(&self) -> usize {
        let mut collected = 0;
        match self.mode {
            ReapMode::Everything => loop {
                let Waited::Ended(pid, exit) = self.wait.wait(None) else { return collected };
                collected += 1;
                self.hand_over(pid, exit);
            },
            ReapMode::OwnChildren => {
                let pids: Vec<i32> = lock(&self.waiters).keys().copied().collect();
                for pid in pids {
                    match self.wait.wait(Some(pid)) {
                        Waited::Ended(pid, exit) => {
                            collected += 1;
                            self.hand_over(pid, exit);
                        }
                        Waited::Running => {}
                        // Someone else took it (a host calling waitpid(-1)): no status will come.
                        Waited::NoChild => {
                            if let Some(tx) = lock(&self.waiters).remove(&pid) {
                                tracing::warn!(pid, "a child of ours was reaped elsewhere; its status is lost");
                                drop(tx);
                            }
                        }
                    }
                }
            }
        }
        collected
    }

    fn hand_over(&self, pid: i32, exit: ChildExit) {
        match lock(&self.waiters).remove(&pid) {
            Some(tx) => {
                let _ = tx.send(exit);
            }
            None => tracing::debug!(pid, status = %exit.describe(), "reaped orphan"),
        }
    }
}

/// The reaper. Create one per process, inside the runtime.
#[derive(Clone)]
pub struct Reaper {
    dispatcher: Arc<Dispatcher>,
}

impl std::fmt::Debug for Reaper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reaper").field("mode", &self.dispatcher.mode).finish_non_exhaustive()
    }
}

/// Safety net for a SIGCHLD coalesced with another: reap on a timer too.
const REAP_TICK: Duration = Duration::from_millis(500);

impl Reaper {
    /// Start reaping in `mode`. In [`ReapMode::Everything`] nothing else in
    /// the process may wait for children.
    pub fn start(mode: ReapMode) -> std::io::Result<Self> {
        let mut sigchld = signal(SignalKind::child())?;
        let reaper = Self::with_wait(mode, Box::new(SystemWait));
        let dispatcher = reaper.dispatcher.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REAP_TICK);
            loop {
                tokio::select! {
                    _ = sigchld.recv() => {}
                    _ = tick.tick() => {}
                }
                dispatcher.reap();
            }
        });
        Ok(reaper)
    }

    /// A reaper over any [`Wait`], not driven by SIGCHLD: call [`Self::reap`].
    pub fn with_wait(mode: ReapMode, wait: Box<dyn Wait>) -> Self {
        Self { dispatcher: Arc::new(Dispatcher { mode, waiters: Mutex::default(), wait }) }
    }

    /// Which children it collects.
    pub fn mode(&self) -> ReapMode {
        self.dispatcher.mode
    }

    /// Spawn `command` and get a receiver for how it ends.
    pub fn spawn(&self, command: &mut Command) -> std::io::Result<(Child, oneshot::Receiver<ChildExit>)> {
        let mut waiters = lock(&self.dispatcher.waiters);
        let child = command.spawn()?;
        let rx = self.register_locked(&mut waiters, child.id() as i32);
        drop(waiters);
        // The child may have exited before we registered; reap now rather than at the next tick.
        self.dispatcher.reap();
        Ok((child, rx))
    }

    /// Expect the status of `pid`, a child spawned some other way.
    pub fn register(&self, pid: i32) -> oneshot::Receiver<ChildExit> {
        let mut waiters = lock(&self.dispatcher.waiters);
        self.register_locked(&mut waiters, pid)
    }

    fn register_locked(&self, waiters: &mut Waiters, pid: i32) -> oneshot::Receiver<ChildExit> {
        let (tx, rx) = oneshot::channel();
        waiters.insert(pid, tx);
        rx
    }

    /// Collect what has ended now; how many statuses were collected.
    pub fn reap(&self) -> usize {
        self.dispatcher.reap()
    }
}

fn lock(w: &Mutex<Waiters>) -> std::sync::MutexGuard<'_, Waiters> {
    // A panic while holding this lock cannot leave the map inconsistent.
    w.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scripted children: `ended` statuses waiting to be collected, others running.
    #[derive(Default)]
    struct FakeWait {
        ended: Mutex<Vec<(i32, ChildExit)>>,
        asked: Mutex<Vec<Option<i32>>>,
    }

    impl Wait for Arc<FakeWait> {
        fn wait(&self, pid: Option<i32>) -> Waited {
            self.asked.lock().unwrap().push(pid);
            let mut ended = self.ended.lock().unwrap();
            let found = ended.iter().position(|(p, _)| pid.is_none_or(|want| *p == want));
            match found {
                Some(i) => {
                    let (p, exit) = ended.remove(i);
                    Waited::Ended(p, exit)
                }
                None => Waited::Running,
            }
        }
    }

    fn fake(ended: &[(i32, ChildExit)]) -> Arc<FakeWait> {
        let w = Arc::new(FakeWait::default());
        w.ended.lock().unwrap().extend_from_slice(ended);
        w
    }

    #[test]
    fn own_children_mode_never_takes_a_hosts_child() {
        let host_child = (7, ChildExit::Exited(0));
        let ours = (11, ChildExit::Exited(3));
        let wait = fake(&[host_child, ours]);
        let reaper = Reaper::with_wait(ReapMode::OwnChildren, Box::new(wait.clone()));
        let mut rx = reaper.register(11);
        assert_eq!(reaper.reap(), 1);
        assert_eq!(rx.try_recv(), Ok(ChildExit::Exited(3)));
        assert!(wait.asked.lock().unwrap().iter().all(|p| *p == Some(11)), "only our pid was asked about");
        assert_eq!(*wait.ended.lock().unwrap(), vec![host_child], "the host's child is left for the host");
    }

    #[test]
    fn everything_mode_reaps_orphans_and_hands_over_our_children() {
        let wait = fake(&[(5, ChildExit::Signaled(9)), (6, ChildExit::Exited(0)), (8, ChildExit::Exited(1))]);
        let reaper = Reaper::with_wait(ReapMode::Everything, Box::new(wait.clone()));
        let mut rx = reaper.register(6);
        assert_eq!(reaper.reap(), 3, "orphans 5 and 8 are reaped too");
        assert_eq!(rx.try_recv(), Ok(ChildExit::Exited(0)));
        assert!(wait.ended.lock().unwrap().is_empty());
        assert!(wait.asked.lock().unwrap().iter().all(Option::is_none), "waitpid(-1) only");
    }

    #[test]
    fn a_running_child_is_asked_again_later() {
        let wait = fake(&[]);
        let reaper = Reaper::with_wait(ReapMode::OwnChildren, Box::new(wait.clone()));
        let mut rx = reaper.register(4);
        assert_eq!(reaper.reap(), 0);
        assert!(rx.try_recv().is_err());
        wait.ended.lock().unwrap().push((4, ChildExit::Exited(2)));
        assert_eq!(reaper.reap(), 1);
        assert_eq!(rx.try_recv(), Ok(ChildExit::Exited(2)));
        assert_eq!(reaper.reap(), 0, "nothing left to ask about");
    }

    struct Gone;
    impl Wait for Gone {
        fn wait(&self, _: Option<i32>) -> Waited {
            Waited::NoChild
        }
    }

    #[test]
    fn a_child_reaped_elsewhere_ends_its_wait_instead_of_hanging_it() {
        let reaper = Reaper::with_wait(ReapMode::OwnChildren, Box::new(Gone));
        let mut rx = reaper.register(9);
        reaper.reap();
        assert!(matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Closed)));
    }
}
