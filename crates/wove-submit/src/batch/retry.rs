//! The `retryStrategy` that reads the worker's exit codes.
//!
//! AWS Batch retries a failed attempt when no `evaluateOnExit` rule matches,
//! allows five rules, and matches exit codes one pattern per rule (digits,
//! with an optional trailing `*`). So the rules name what is worth retrying
//! and end with a catch-all `EXIT`, which covers the permanent codes:
//! 1. `RETRY` a platform failure: the host was terminated (spot reclaim,
//!    scale-in), whatever the exit code;
//! 2. `RETRY` each retryable code the worker chooses itself (from
//!    `wove_proto::exit`: the final event undelivered, an internal error);
//! 3. `EXIT` on anything else: a task that failed, a bad payload or
//!    configuration, and a job Batch stopped (SIGTERM/SIGKILL on a timeout or
//!    a terminate), which must not start again.

use serde::{Deserialize, Serialize};
use wove_proto::exit::{Exit, FIXED};

/// At most this many rules (the API's limit).
pub const MAX_RULES: usize = 5;

/// Batch's `retryStrategy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Attempts in all, 1 to 10.
    pub attempts: i32,
    /// The rules, first match wins.
    pub evaluate_on_exit: Vec<EvaluateOnExit>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvaluateOnExit {
    /// `RETRY` or `EXIT`.
    pub action: String,
    /// Exit code pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_code: Option<String>,
    /// Container reason pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_reason: Option<String>,
    /// Job status reason pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_status_reason: Option<String>,
}

impl EvaluateOnExit {
    fn new(action: &str) -> Self {
        Self { action: action.into(), on_exit_code: None, on_reason: None, on_status_reason: None }
    }
}

/// The rules for `attempts` attempts.
pub fn retry_strategy(attempts: i32) -> RetryStrategy {
    let mut rules = vec![EvaluateOnExit { on_status_reason: Some("Host EC2*".into()), ..EvaluateOnExit::new("RETRY") }];
    for exit in FIXED.into_iter().filter(|e| *e != Exit::Success && e.retryable()) {
        rules.push(EvaluateOnExit { on_exit_code: Some(exit.code().to_string()), ..EvaluateOnExit::new("RETRY") });
    }
    // Two catch-alls: a rule whose field is absent from the attempt does not
    // match, and an attempt may carry an exit code, a reason, or both.
    rules.push(EvaluateOnExit { on_exit_code: Some("*".into()), ..EvaluateOnExit::new("EXIT") });
    rules.push(EvaluateOnExit { on_reason: Some("*".into()), ..EvaluateOnExit::new("EXIT") });
    RetryStrategy { attempts, evaluate_on_exit: rules }
}

/// What the rules do with an attempt, as Batch reads them: the first rule
/// whose every given pattern matches the attempt; `RETRY` when none does.
pub fn action_for<'a>(
    strategy: &'a RetryStrategy,
    exit_code: Option<i32>,
    reason: Option<&str>,
    status_reason: Option<&str>,
) -> &'a str {
    let code = exit_code.map(|c| c.to_string());
    let matches = |pattern: &Option<String>, value: Option<&str>| match (pattern, value) {
        (None, _) => true,
        (Some(p), Some(v)) => pattern_matches(p, v),
        (Some(_), None) => false,
    };
    strategy
        .evaluate_on_exit
        .iter()
        .find(|r| {
            matches(&r.on_exit_code, code.as_deref())
                && matches(&r.on_reason, reason)
                && matches(&r.on_status_reason, status_reason)
        })
        .map_or("RETRY", |rule| rule.action.as_str())
}

/// Batch's patterns: literal, or a prefix ending in `*`.
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

/// Whether a pattern is one Batch accepts for `onExitCode`: digits, and at most a trailing `*`.
pub fn is_exit_code_pattern(pattern: &str) -> bool {
    let digits = pattern.strip_suffix('*').unwrap_or(pattern);
    !pattern.is_empty() && pattern.len() <= 512 && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_follow_the_contract_within_the_limit() {
        let s = retry_strategy(3);
        assert!(s.evaluate_on_exit.len() <= MAX_RULES);
        for code in Exit::permanent_codes() {
            assert_eq!(action_for(&s, Some(i32::from(code)), None, None), "EXIT", "permanent {code}");
        }
        for code in [70, 75] {
            assert_eq!(action_for(&s, Some(code), None, None), "RETRY", "retryable {code}");
        }
        // Stopped by Batch itself (timeout, terminate): never started again.
        assert_eq!(action_for(&s, Some(143), None, None), "EXIT");
        assert_eq!(action_for(&s, Some(137), Some("OutOfMemoryError: Container killed"), None), "EXIT");
        // No exit code at all (the container never ran): still not retried blindly.
        assert_eq!(action_for(&s, None, Some("CannotPullContainerError: x"), None), "EXIT");
        // The host went away: retried whatever the code.
        assert_eq!(action_for(&s, Some(137), None, Some("Host EC2 (instance i-0ab) terminated.")), "RETRY");
        for rule in &s.evaluate_on_exit {
            assert!(rule.on_exit_code.as_deref().is_none_or(is_exit_code_pattern));
            // Batch refuses a rule that matches on nothing.
            let patterns = [&rule.on_exit_code, &rule.on_reason, &rule.on_status_reason];
            assert!(patterns.iter().any(|p| p.is_some()), "a rule with no pattern: {rule:?}");
        }
        // The two catch-alls: one for an attempt with an exit code, one for an attempt with only a reason.
        let tail = &s.evaluate_on_exit[s.evaluate_on_exit.len() - 2..];
        assert_eq!((tail[0].action.as_str(), tail[0].on_exit_code.as_deref()), ("EXIT", Some("*")));
        assert_eq!((tail[1].action.as_str(), tail[1].on_reason.as_deref()), ("EXIT", Some("*")));
    }

    #[test]
    fn patterns_read_as_batch_reads_them() {
        assert!(pattern_matches("7*", "75") && pattern_matches("75", "75") && !pattern_matches("75", "750"));
        assert!(is_exit_code_pattern("7*") && !is_exit_code_pattern("7a") && !is_exit_code_pattern("*7"));
    }
}
