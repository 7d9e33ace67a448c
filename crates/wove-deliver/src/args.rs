//! The delivery and signing flags, defined once for both programs that post
//! events: `wove-worker`, and `wove-submit` when it reports a failure
//! outside the worker. Same names, same environment variables, same
//! defaults, so one configuration signs both alike.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use wove_proto::env as vars;
use wove_proto::request::Signing;
use wove_proto::sign::Scheme;

use crate::retry::Backoff;
use crate::secrets::{self, Loaded, SecretsError};
use crate::sink::Policy;

/// How events are signed and posted.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Delivery and signing")]
pub struct DeliveryArgs {
    /// Signature scheme for events.
    #[arg(long, env = "WOVE_WORKER_SIGNING_SCHEME", value_enum, default_value_t = SchemeArg::WoveV1)]
    pub signing_scheme: SchemeArg,

    /// Key id sent as X-Wove-Key (wove-v1).
    #[arg(long, env = "WOVE_WORKER_SIGNING_KEY_ID", default_value = "default", value_name = "ID")]
    pub signing_key_id: String,

    /// File with one signing secret per line (current first).
    #[arg(long, env = vars::SIGNING_SECRET_FILE, value_name = "PATH")]
    pub signing_secret_file: Option<PathBuf>,

    /// Treat a missing signing secret as a configuration error.
    #[arg(long, env = "WOVE_WORKER_REQUIRE_SIGNING")]
    pub require_signing: bool,

    /// Seconds one delivery attempt may take.
    #[arg(long, env = "WOVE_WORKER_ATTEMPT_TIMEOUT", default_value = shown_seconds(Policy::default().attempt_timeout), value_name = "SECS", value_parser = seconds)]
    pub attempt_timeout: Duration,

    /// Seconds the final event may take, all retries included.
    #[arg(long, env = "WOVE_WORKER_DELIVERY_BUDGET", default_value = shown_seconds(crate::DEFAULT_BUDGET), value_name = "SECS", value_parser = seconds)]
    pub delivery_budget: Duration,

    /// First retry delay ceiling in seconds (doubles per retry; each wait is between half and all of it).
    #[arg(long, env = "WOVE_WORKER_BACKOFF_BASE", default_value = shown_seconds(Policy::default().backoff.base), value_name = "SECS", value_parser = seconds)]
    pub backoff_base: Duration,

    /// Largest retry delay ceiling in seconds.
    #[arg(long, env = "WOVE_WORKER_BACKOFF_CAP", default_value = shown_seconds(Policy::default().backoff.cap), value_name = "SECS", value_parser = seconds)]
    pub backoff_cap: Duration,

    /// PEM file of extra CAs to trust for an https callback URL.
    #[arg(long, env = "WOVE_WORKER_CA_BUNDLE", value_name = "PATH")]
    pub ca_bundle: Option<PathBuf>,
}

/// The signing scheme as spelled on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// Wove's X-Wove-* headers, verified by NetworkExecutorSecurity.
    WoveV1,
    /// Standard Webhooks' webhook-* headers.
    StandardWebhooks,
}

impl From<SchemeArg> for Scheme {
    fn from(s: SchemeArg) -> Self {
        match s {
            SchemeArg::WoveV1 => Scheme::WoveV1,
            SchemeArg::StandardWebhooks => Scheme::StandardWebhooks,
        }
    }
}

/// Delivery flags that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// The secrets could not be read or parsed.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// `--require-signing` without any secret.
    #[error("signing is required (--require-signing) but no secret is set: set WOVE_WORKER_SIGNING_SECRET or WOVE_WORKER_SIGNING_SECRET_FILE")]
    MissingSecret,
    /// The backoff's first ceiling is above its largest.
    #[error("--backoff-base must not exceed --backoff-cap")]
    BackoffOrder,
}

impl DeliveryArgs {
    /// The signing configuration, with the secrets of `env_secret`
    /// (`WOVE_WORKER_SIGNING_SECRET`, passed in so that this reads no
    /// environment itself) and of the secret file; also their texts.
    pub fn signing(&self, env_secret: Option<&str>) -> Result<(Signing, Vec<String>), ArgsError> {
        let scheme: Scheme = self.signing_scheme.into();
        let Loaded { secrets, texts } = secrets::load(scheme, env_secret, self.signing_secret_file.as_deref())?;
        if self.require_signing && secrets.is_empty() {
            return Err(ArgsError::MissingSecret);
        }
        Ok((Signing { scheme, key_id: self.signing_key_id.clone(), secrets }, texts))
    }

    /// Each attempt's limit and the waits between attempts.
    pub fn policy(&self) -> Result<Policy, ArgsError> {
        if self.backoff_base > self.backoff_cap {
            return Err(ArgsError::BackoffOrder);
        }
        Ok(Policy {
            attempt_timeout: self.attempt_timeout,
            backoff: Backoff { base: self.backoff_base, cap: self.backoff_cap },
        })
    }
}

/// A positive number of seconds (fractions allowed).
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !value.is_finite() || value <= 0.0 || value > 1e9 {
        return Err(format!("`{text}` must be a positive number of seconds"));
    }
    Ok(Duration::from_secs_f64(value))
}

/// A duration as [`seconds`] reads it back (`0.5`, `300`): the text of a flag's default, so
/// that clap's help shows the default the code holds rather than a copy of it.
pub fn shown_seconds(duration: Duration) -> String {
    duration.as_secs_f64().to_string()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        delivery: DeliveryArgs,
    }

    fn parse(args: &[&str]) -> DeliveryArgs {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied())).unwrap().delivery
    }

    #[test]
    fn a_shown_default_reads_back_as_itself() {
        for duration in [Duration::from_millis(500), Duration::from_secs(300), Duration::from_millis(2500)] {
            assert_eq!(seconds(&shown_seconds(duration)), Ok(duration));
        }
        assert_eq!(shown_seconds(Duration::from_secs(30)), "30");
    }

    #[test]
    fn no_flags_are_the_policy_defaults() {
        assert_eq!(parse(&[]).policy().unwrap(), Policy::default());
        assert_eq!(parse(&[]).delivery_budget, crate::DEFAULT_BUDGET);
    }

    #[test]
    fn a_required_secret_must_be_there_and_the_backoff_in_order() {
        assert!(matches!(parse(&["--require-signing"]).signing(None), Err(ArgsError::MissingSecret)));
        let (signing, texts) =
            parse(&["--require-signing", "--signing-key-id", "k2"]).signing(Some("a1b2 c3d4")).unwrap();
        assert_eq!((signing.secrets.len(), signing.key_id.as_str(), texts.len()), (2, "k2", 2));
        assert!(matches!(parse(&["--backoff-base", "2", "--backoff-cap", "1"]).policy(), Err(ArgsError::BackoffOrder)));
        assert!(seconds("0").is_err() && seconds("x").is_err() && seconds("inf").is_err());
        assert_eq!(seconds("0.25"), Ok(Duration::from_millis(250)));
    }
}
