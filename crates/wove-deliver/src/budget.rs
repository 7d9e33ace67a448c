//! How long a delivery may take, retries included.
//!
//! The worker's budget ends early when SIGTERM arrives (its `Deadline`);
//! `wove-submit`'s is a plain instant. The delivery loop reads either
//! through [`Budget`].

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// A time limit the delivery loop checks before each attempt and races every wait against.
pub trait Budget {
    /// Time left, zero once passed.
    fn remaining(&self) -> Duration;

    /// Whether it has passed.
    fn passed(&self) -> bool {
        self.remaining().is_zero()
    }

    /// Resolves when the limit passes (noticing any change that brings it earlier).
    fn reached(&self) -> impl Future<Output = ()> + Send;
}

impl Budget for Instant {
    fn remaining(&self) -> Duration {
        self.saturating_duration_since(Instant::now())
    }

    fn reached(&self) -> impl Future<Output = ()> + Send {
        tokio::time::sleep_until(*self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_instant_is_a_budget_that_ends_at_it() {
        let end = Instant::now() + Duration::from_secs(5);
        assert_eq!(end.remaining(), Duration::from_secs(5));
        assert!(!end.passed());
        end.reached().await;
        assert!(end.passed());
        assert_eq!(end.remaining(), Duration::ZERO);
        assert!(Instant::now() >= end, "reached no earlier than the instant");
    }
}
