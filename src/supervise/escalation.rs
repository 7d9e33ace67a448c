//! When to signal a running task: the TERM → grace → KILL escalation, as a
//! state machine over instants, with no process and no clock of its own.
//!
//! [`super::run`] feeds it the time and the signals the worker receives and
//! sends what it answers; the tests feed it instants and check the answers.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::Stop;

/// The escalation of one task.
#[derive(Debug, Clone)]
pub struct Escalation {
    grace: Duration,
    cancel_grace: Duration,
    timeout_at: Option<Instant>,
    kill_at: Option<Instant>,
    stopped: Option<Stop>,
}

impl Escalation {
    /// A task started at `now`, stopped after `timeout` if given; `grace` is
    /// the time between TERM and KILL after a timeout, `cancel_grace` after a
    /// cancelling signal.
    pub fn new(now: Instant, timeout: Option<Duration>, grace: Duration, cancel_grace: Duration) -> Self {
        Self { grace, cancel_grace, timeout_at: timeout.map(|t| now + t), kill_at: None, stopped: None }
    }

    /// When [`Self::on_time`] next has something to do, if ever.
    pub fn next_wake(&self) -> Option<Instant> {
        match (self.timeout_at, self.kill_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Why the task is being stopped, once it is.
    pub fn stopped(&self) -> Option<Stop> {
        self.stopped
    }

    /// The signals to send to the task's group at `now`.
    pub fn on_time(&mut self, now: Instant) -> Vec<Signal> {
        let mut send = Vec::new();
        if self.timeout_at.is_some_and(|at| now >= at) {
            self.timeout_at = None;
            if self.stopped.is_none() {
                self.stopped = Some(Stop::Timeout);
                self.kill_at = Some(now + self.grace);
                send.push(Signal::SIGTERM);
            }
        }
        if self.kill_at.is_some_and(|at| now >= at) {
            self.kill_at = None;
            send.push(Signal::SIGKILL);
        }
        send
    }

    /// The worker received `signal` at `now`: it is passed on, and SIGTERM or
    /// SIGINT also cancels the task, whose group is killed after the cancel
    /// grace (never later than a timeout's grace already running).
    pub fn on_signal(&mut self, signal: Signal, now: Instant) -> Vec<Signal> {
        if matches!(signal, Signal::SIGTERM | Signal::SIGINT) {
            if self.stopped.is_none() {
                self.stopped = Some(Stop::Cancelled(signal));
            }
            let cancel_by = now + self.cancel_grace;
            self.kill_at = Some(self.kill_at.map_or(cancel_by, |at| at.min(cancel_by)));
        }
        vec![signal]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_timeout_sends_term_then_kill_after_the_grace() {
        let t0 = Instant::now();
        let mut e = Escalation::new(t0, Some(10 * S), 3 * S, 2 * S);
        assert_eq!(e.next_wake(), Some(t0 + 10 * S));
        assert!(e.on_time(t0 + 9 * S).is_empty(), "nothing before the timeout");
        assert_eq!(e.on_time(t0 + 10 * S), [Signal::SIGTERM]);
        assert_eq!(e.stopped(), Some(Stop::Timeout));
        assert_eq!(e.next_wake(), Some(t0 + 13 * S));
        assert!(e.on_time(t0 + 12 * S).is_empty(), "nothing during the grace");
        assert_eq!(e.on_time(t0 + 13 * S), [Signal::SIGKILL]);
        assert_eq!(e.next_wake(), None, "KILL is sent once");
    }

    #[test]
    fn a_cancel_kills_after_the_cancel_grace() {
        let t0 = Instant::now();
        let mut e = Escalation::new(t0, None, 10 * S, 2 * S);
        assert_eq!(e.next_wake(), None, "no timeout, nothing planned");
        assert_eq!(e.on_signal(Signal::SIGTERM, t0 + S), [Signal::SIGTERM], "forwarded");
        assert_eq!(e.stopped(), Some(Stop::Cancelled(Signal::SIGTERM)));
        assert_eq!(e.next_wake(), Some(t0 + 3 * S));
        assert_eq!(e.on_time(t0 + 3 * S), [Signal::SIGKILL]);
    }

    #[test]
    fn a_second_term_does_not_push_the_kill_later() {
        let t0 = Instant::now();
        let mut e = Escalation::new(t0, None, 10 * S, 5 * S);
        e.on_signal(Signal::SIGTERM, t0);
        e.on_signal(Signal::SIGTERM, t0 + 4 * S);
        assert_eq!(e.next_wake(), Some(t0 + 5 * S));
    }

    #[test]
    fn a_cancel_during_a_timeout_grace_shortens_it_but_keeps_the_reason() {
        let t0 = Instant::now();
        let mut e = Escalation::new(t0, Some(S), 30 * S, 2 * S);
        e.on_time(t0 + S);
        e.on_signal(Signal::SIGINT, t0 + 2 * S);
        assert_eq!(e.stopped(), Some(Stop::Timeout));
        assert_eq!(e.next_wake(), Some(t0 + 4 * S));
        // A cancel whose grace would end after the timeout's does not extend it.
        let mut e = Escalation::new(t0, Some(S), 3 * S, 30 * S);
        e.on_time(t0 + S);
        e.on_signal(Signal::SIGTERM, t0 + 2 * S);
        assert_eq!(e.next_wake(), Some(t0 + 4 * S));
    }

    #[test]
    fn other_signals_are_forwarded_without_stopping_anything() {
        let t0 = Instant::now();
        let mut e = Escalation::new(t0, Some(10 * S), S, S);
        for sig in [Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGQUIT] {
            assert_eq!(e.on_signal(sig, t0), [sig]);
        }
        assert_eq!(e.stopped(), None);
        assert_eq!(e.next_wake(), Some(t0 + 10 * S));
    }

    #[test]
    fn a_cancel_after_the_timeout_kill_plans_nothing_new_but_a_kill() {
        let t0 = Instant::now();
        let mut e = Escalation::new(t0, Some(S), S, S);
        e.on_time(t0 + S);
        e.on_time(t0 + 2 * S);
        assert_eq!(e.on_signal(Signal::SIGTERM, t0 + 3 * S), [Signal::SIGTERM]);
        assert_eq!(e.next_wake(), Some(t0 + 4 * S), "a task that outlives KILL gets KILL again");
    }
}
