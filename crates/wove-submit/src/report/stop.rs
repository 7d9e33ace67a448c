//! Stopping a reporting wait from outside, at a safe point only.
//!
//! A program that runs `wait --report` in the background stops it when it
//! no longer needs it (`--stop-on-stdin-eof`: its parent went away, or
//! cancelled the job). That must never cut short a report being posted, or
//! the ending of a job just reported: the weave ends the moment the report
//! arrives, which is exactly when the watch is told to stop. So the wait
//! looks at this signal only while it waits for the platform to change.

use tokio::sync::watch;

/// Raises the stop.
#[derive(Debug)]
pub struct StopHandle(watch::Sender<bool>);

/// Tells a reporting wait to stop at its next safe point.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Receiver<bool>);

/// A new stop, not yet raised.
pub fn stop_signal() -> (StopHandle, StopSignal) {
    let (tx, rx) = watch::channel(false);
    (StopHandle(tx), StopSignal(rx))
}

impl StopHandle {
    /// Ask the wait to stop.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl StopSignal {
    /// Whether the stop was raised.
    pub fn is_raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the stop is raised (never, if its handle is dropped unraised).
    pub async fn raised(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|raised| *raised).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves once `stop` is raised; never when there is none.
pub async fn raised(stop: Option<&StopSignal>) {
    match stop {
        Some(stop) => stop.raised().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_stop_is_seen_once_raised_and_never_before() {
        let (handle, signal) = stop_signal();
        assert!(!signal.is_raised());
        let early = tokio::time::timeout(std::time::Duration::from_secs(5), raised(Some(&signal))).await;
        assert!(early.is_err(), "not raised yet");
        handle.stop();
        assert!(signal.is_raised());
        raised(Some(&signal)).await;
        let none = tokio::time::timeout(std::time::Duration::from_secs(5), raised(None)).await;
        assert!(none.is_err(), "no signal, no stop");
        drop(handle);
        assert!(signal.is_raised(), "a raised stop stays raised");
    }
}
