//! Signals the worker receives, fanned out to whoever needs them.
//!
//! Every forwardable signal is broadcast (the supervisor passes it to the
//! task's process group). SIGTERM and SIGINT also mean *cancel*: the first one
//! is latched in a watch channel, so a signal that arrives before the task
//! starts, or between two awaits, is never missed.

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

/// Signals passed on to the task's process group. Never SIGCHLD or job-control ones.
pub const FORWARDED: [Signal; 6] =
    [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2];

/// Receivers for the worker's signals.
#[derive(Debug, Clone)]
pub struct Signals {
    forward: broadcast::Sender<Signal>,
    cancel: watch::Receiver<Option<(Signal, Instant)>>,
}

impl Signals {
    /// Install the handlers. Must run inside the tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        let (forward, _) = broadcast::channel(32);
        let (cancel_tx, cancel) = watch::channel(None);
        for sig in FORWARDED {
            let mut stream = signal(SignalKind::from_raw(sig as i32))?;
            let forward = forward.clone();
            let cancel_tx = cancel_tx.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tracing::info!(signal = %sig, "received signal");
                    if matches!(sig, Signal::SIGTERM | Signal::SIGINT) {
                        cancel_tx.send_if_modified(|c| {
                            c.is_none() && {
                                *c = Some((sig, Instant::now()));
                                true
                            }
                        });
                    }
                    let _ = forward.send(sig);
                }
            });
        }
        Ok(Self { forward, cancel })
    }

    /// Signals that never fire: for embedding and tests.
    pub fn none() -> Self {
        let (forward, _) = broadcast::channel(1);
        let (_tx, cancel) = watch::channel(None);
        Self { forward, cancel }
    }

    /// A receiver of every forwardable signal from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Signal> {
        self.forward.subscribe()
    }

    /// The first cancelling signal, if one has arrived.
    pub fn cancelled(&self) -> Option<Signal> {
        self.cancel.borrow().map(|(sig, _)| sig)
    }

    /// When the first cancelling signal arrived: shutdown budgets count from here.
    pub fn cancelled_at(&self) -> Option<Instant> {
        self.cancel.borrow().map(|(_, at)| at)
    }

    /// Wait until a cancelling signal arrives (at once if one already has).
    pub async fn wait_cancelled(&self) -> Signal {
        let mut rx = self.cancel.clone();
        loop {
            if let Some((sig, _)) = *rx.borrow_and_update() {
                return sig;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as the handlers: without it, no cancel can come.
                std::future::pending::<()>().await;
            }
        }
    }
}
