//! The retry policy: what to retry, and how long to wait before the next try.

use std::time::{Duration, SystemTime};

use rand::RngExt as _;

/// What to do after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver took it.
    Delivered,
    /// Try again later.
    Retry,
    /// Trying again cannot help.
    Permanent,
}

/// Classify an HTTP status. Redirects are never followed, and so are permanent:
/// a callback URL that redirects is a misconfiguration, and following it would
/// send a signed event somewhere it was not addressed.
pub fn classify_status(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 425 | 429 | 500..=599 => Verdict::Retry,
        _ => Verdict::Permanent,
    }
}

/// Exponential backoff with jitter above a floor: before retry `n` (from 1),
/// wait a uniformly random time in `[ceiling/2, ceiling]`, where the ceiling
/// is `min(cap, base * 2^(n-1))`. The floor is what keeps a receiver that
/// answers at once (or says `Retry-After: 0`) from being hammered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Ceiling for the first retry.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling before retry `n`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The shortest wait before retry `n`: half its ceiling.
    pub fn floor(&self, retry: u32) -> Duration {
        self.ceiling(retry) / 2
    }

    /// A jittered delay before retry `n`, between its floor and its ceiling.
    pub fn delay(&self, retry: u32) -> Duration {
        let (floor, ceiling) = (self.floor(retry).as_secs_f64(), self.ceiling(retry).as_secs_f64());
        Duration::from_secs_f64(rand::rng().random_range(floor..=ceiling))
    }
}

/// The wait before retry `retry` (from 1): the jittered backoff, or the
/// receiver's `Retry-After` when it asks for longer than the schedule's
/// floor (a shorter one, `0` included, never brings a retry sooner than the
/// floor); never past the time left in the budget, so the last wait ends
/// exactly when the budget does.
pub fn next_delay(retry_after: Option<Duration>, backoff: &Backoff, retry: u32, remaining: Duration) -> Duration {
    let wait = match retry_after {
        Some(asked) if asked > backoff.floor(retry) => asked,
        _ => backoff.delay(retry),
    };
    wait.min(remaining)
}

/// Parse `Retry-After`: delay-seconds or an HTTP-date (relative to `now`).
/// A date in the past means "now"; anything unparseable is ignored.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn millis(max: u64) -> impl Strategy<Value = Duration> {
        (0..=max).prop_map(Duration::from_millis)
    }

    proptest! {
        #[test]
        fn waits_stay_within_their_ceiling_and_never_pass_the_budget(
            base in millis(5_000), extra in millis(60_000), retry in 0u32..200,
            retry_after in prop::option::of(millis(10_000_000)), remaining in millis(600_000),
        ) {
            let backoff = Backoff { base, cap: base + extra };
            let ceiling = backoff.ceiling(retry);
            prop_assert!(ceiling <= backoff.cap);
            prop_assert!(backoff.ceiling(retry + 1) >= ceiling, "ceilings never shrink");
            let wait = next_delay(retry_after, &backoff, retry, remaining);
            prop_assert!(wait <= remaining, "past the budget: {wait:?} > {remaining:?}");
            prop_assert!(wait >= backoff.floor(retry).min(remaining), "under the floor: {wait:?}");
            match retry_after {
                Some(asked) if asked > backoff.floor(retry) => prop_assert_eq!(wait, asked.min(remaining)),
                _ => prop_assert!(wait <= ceiling),
            }
        }

        #[test]
        fn any_retry_after_text_parses_or_is_ignored(text in "\\PC{0,64}", now in 0u64..4_000_000_000) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
            let _ = parse_retry_after(&text, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify_status(204), Verdict::Delivered);
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(classify_status(s), Verdict::Retry, "{s}");
        }
        for s in [301, 302, 307, 400, 401, 403, 404, 410, 422] {
            assert_eq!(classify_status(s), Verdict::Permanent, "{s}");
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_jitters_below_it() {
        let b = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(4) };
        assert_eq!(b.ceiling(1), Duration::from_millis(500));
        assert_eq!(b.ceiling(2), Duration::from_secs(1));
        assert_eq!(b.ceiling(4), Duration::from_secs(4));
        assert_eq!(b.ceiling(40), Duration::from_secs(4));
        for n in 1..10 {
            let d = b.delay(n);
            assert!(b.floor(n) <= d && d <= b.ceiling(n), "retry {n}: {d:?}");
        }
        assert_eq!(b.floor(1), Duration::from_millis(250));
    }

    #[test]
    fn the_wait_never_passes_the_budget() {
        let b = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30) };
        let left = Duration::from_secs(2);
        for retry in 1..64 {
            let wait = next_delay(None, &b, retry, left);
            assert!(wait <= left && wait <= b.ceiling(retry), "retry {retry}: {wait:?}");
        }
        assert_eq!(next_delay(Some(Duration::from_secs(3600)), &b, 1, left), left, "Retry-After capped");
        assert_eq!(
            next_delay(Some(Duration::from_millis(400)), &b, 1, left),
            Duration::from_millis(400),
            "Retry-After over the floor wins"
        );
        // Asking for exactly the floor is not asking for longer: the jittered schedule stands.
        let floor = b.floor(2);
        assert!(
            (0..20).any(|_| next_delay(Some(floor), &b, 2, left) > floor),
            "Retry-After equal to the floor replaced the schedule"
        );
        for asked in [Duration::ZERO, Duration::from_millis(100)] {
            let wait = next_delay(Some(asked), &b, 1, left);
            assert!(wait >= b.floor(1), "Retry-After {asked:?} under the floor: waited {wait:?}");
        }
        assert_eq!(next_delay(None, &b, 3, Duration::ZERO), Duration::ZERO, "no budget, no wait");
    }

    #[test]
    fn retries_fill_the_budget_without_passing_it() {
        // Sum the waits of a delivery that always fails: they stop at the budget, never beyond.
        let b = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30) };
        let budget = Duration::from_secs(300);
        let mut spent = Duration::ZERO;
        let mut retry = 0;
        while spent < budget && retry < 10_000 {
            retry += 1;
            spent += next_delay(None, &b, retry, budget - spent).max(Duration::from_millis(1)).min(budget - spent);
        }
        assert_eq!(spent, budget);
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
