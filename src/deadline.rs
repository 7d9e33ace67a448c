//! Deadlines that a cancelling signal can bring forward.
//!
//! Kubernetes and AWS Batch both allow 30 s between SIGTERM and SIGKILL.
//! Whatever the worker is doing when SIGTERM arrives (waiting out a grace
//! period, retrying an event), it must be done within the shutdown budget
//! counted from that signal, so every wait that matters is a [`Deadline`].

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use crate::signals::Signals;

/// A time limit: a fixed instant, or earlier if shutdown begins.
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Instant,
    shutdown: Option<(Signals, Duration)>,
}

impl Deadline {
    /// `after` from now.
    pub fn after(after: Duration) -> Self {
        Self { at: Instant::now() + after, shutdown: None }
    }

    /// Also end `budget` after the first cancelling signal.
    #[must_use]
    pub fn or_shutdown(mut self, signals: &Signals, budget: Duration) -> Self {
        self.shutdown = Some((signals.clone(), budget));
        self
    }

    /// The instant in force now.
    pub fn current(&self) -> Instant {
        match &self.shutdown {
            Some((signals, budget)) => match signals.cancelled_at() {
                Some(at) => self.at.min(at + *budget),
                None => self.at,
            },
            None => self.at,
        }
    }

    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.current().saturating_duration_since(Instant::now())
    }

    /// Whether it has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.current()
    }

    /// Resolve when the deadline passes, noticing a shutdown that moves it earlier.
    pub async fn reached(&self) {
        loop {
            let target = self.current();
            match &self.shutdown {
                Some((signals, _)) if signals.cancelled_at().is_none() => {
                    tokio::select! {
                        _ = sleep_until(target) => {}
                        _ = signals.wait_cancelled() => continue,
                    }
                }
                _ => sleep_until(target).await,
            }
            if self.passed() {
                return;
            }
        }
    }
}
