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

/// The delivery loop's view: the same instant, brought forward by a shutdown.
impl wove_deliver::Budget for Deadline {
    fn remaining(&self) -> Duration {
        Deadline::remaining(self)
    }

    fn passed(&self) -> bool {
        Deadline::passed(self)
    }

    fn reached(&self) -> impl std::future::Future<Output = ()> + Send {
        Deadline::reached(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signals::Signals;
    use nix::sys::signal::Signal;

    const S: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn a_deadline_passes_at_its_time() {
        let started = Instant::now();
        let d = Deadline::after(10 * S);
        assert_eq!(d.remaining(), 10 * S);
        assert!(!d.passed(), "not before its time");
        tokio::time::sleep(10 * S - Duration::from_millis(1)).await;
        assert!(!d.passed(), "not a millisecond early either");
        d.reached().await;
        assert_eq!(started.elapsed(), 10 * S);
        assert!(d.passed() && d.remaining().is_zero());
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelling_signal_brings_it_forward_to_the_shutdown_budget() {
        let (signals, injector) = Signals::injected();
        let started = Instant::now();
        let d = Deadline::after(300 * S).or_shutdown(&signals, 5 * S);
        tokio::time::sleep(10 * S).await;
        assert_eq!(d.remaining(), 290 * S, "no signal yet: the delivery budget counts");
        injector.deliver(Signal::SIGHUP);
        assert_eq!(d.remaining(), 290 * S, "only SIGTERM and SIGINT cancel");
        injector.deliver(Signal::SIGTERM);
        assert_eq!(d.current(), started + 15 * S, "five seconds from the signal");
        d.reached().await;
        assert_eq!(started.elapsed(), 15 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_while_waiting_wakes_the_wait_early() {
        let (signals, injector) = Signals::injected();
        let started = Instant::now();
        let d = Deadline::after(300 * S).or_shutdown(&signals, 2 * S);
        tokio::spawn(async move {
            tokio::time::sleep(S).await;
            injector.deliver(Signal::SIGINT);
        });
        d.reached().await;
        assert_eq!(started.elapsed(), 3 * S);
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_never_extends_an_earlier_deadline() {
        let (signals, injector) = Signals::injected();
        let started = Instant::now();
        let d = Deadline::after(3 * S).or_shutdown(&signals, 25 * S);
        injector.deliver(Signal::SIGTERM);
        assert_eq!(d.current(), started + 3 * S);
        // A second signal does not restart the budget.
        tokio::time::sleep(S).await;
        injector.deliver(Signal::SIGTERM);
        assert_eq!(d.current(), started + 3 * S);
    }
}
