//! Signals the worker receives, fanned out to whoever needs them.
//!
//! Every forwardable signal is broadcast (the supervisor passes it to the
//! task's process group). SIGTERM and SIGINT also mean *cancel*: the first one
//! is latched in a watch channel, so a signal that arrives before the task
//! starts, or between two awaits, is never missed.

use std::sync::Arc;

use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

// Defined with the start-up state, which blocks exactly these from the first instruction.
pub use crate::startup::FORWARDED;

/// Plays signals into a [`Signals`], as the process's handlers do.
#[derive(Debug, Clone)]
pub struct Injector {
    forward: broadcast::Sender<Signal>,
    cancel: Arc<watch::Sender<Option<(Signal, Instant)>>>,
}

impl Injector {
    /// Act as if the worker received `sig`: SIGTERM and SIGINT cancel (the
    /// first one is kept, with its time), and every signal is forwarded.
    pub fn deliver(&self, sig: Signal) {
        if matches!(sig, Signal::SIGTERM | Signal::SIGINT) {
            self.cancel.send_if_modified(|c| {
                c.is_none() && {
                    *c = Some((sig, Instant::now()));
                    true
                }
            });
        }
        let _ = self.forward.send(sig);
    }
}

/// Receivers for the worker's signals.
#[derive(Debug, Clone)]
pub struct Signals {
    forward: broadcast::Sender<Signal>,
    cancel: watch::Receiver<Option<(Signal, Instant)>>,
}

impl Signals {
    /// Install the handlers, then unblock the signals they handle (the CLI
    /// blocks them from its first instruction, [`crate::startup`]): one that
    /// arrived in between is taken now, before anything can start. Must run
    /// inside the tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        let (signals, injector) = Self::injected();
        for sig in FORWARDED {
            let mut stream = signal(SignalKind::from_raw(sig as i32))?;
            let injector = injector.clone();
            tokio::spawn(async move {
                while stream.recv().await.is_some() {
                    tracing::info!(signal = %sig, "received signal");
                    injector.deliver(sig);
                }
            });
        }
        for sig in crate::startup::unblock_handled() {
            tracing::info!(signal = %sig, "received signal before the handlers were installed");
            injector.deliver(sig);
        }
        Ok(signals)
    }

    /// Signals no process signal reaches; the [`Injector`] plays them. For
    /// tests of what a signal does, and for programs that embed the worker
    /// and decide themselves when it should stop.
    pub fn injected() -> (Self, Injector) {
        let (forward, _) = broadcast::channel(32);
        let (cancel_tx, cancel) = watch::channel(None);
        (Self { forward: forward.clone(), cancel }, Injector { forward, cancel: Arc::new(cancel_tx) })
    }

    /// Signals that never fire: for embedding and tests.
    pub fn none() -> Self {
        Self::injected().0
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
