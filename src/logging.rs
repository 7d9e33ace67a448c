//! Logs on stderr: human-readable by default, JSON lines for log pipelines.
//!
//! Nothing secret is passed to a log macro on purpose: URLs go through
//! [`crate::redact::redact_url`] and secrets have a redacting `Debug`. And
//! every line goes through [`crate::redact::scrub`] on its way out, for what a
//! message quotes by accident.

use clap::ValueEnum;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Install the global subscriber. `filter` is a level (`info`) or
/// comma-separated `target=level` pairs (`info,hyper=warn`); an invalid filter
/// falls back to `info` and says so.
///
/// Targets rather than `EnvFilter`: the span and field matching it adds costs
/// a regex engine, over a megabyte of the static binary, for filters no one
/// writes for a one-task process.
pub fn init(format: LogFormat, filter: &str) {
    let (targets, bad) = match filter.trim().parse::<Targets>() {
        Ok(targets) => (targets, None),
        Err(e) => (Targets::new().with_default(tracing::Level::INFO), Some(e.to_string())),
    };
    use std::io::IsTerminal as _;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| ScrubbingStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let layer = match format {
        LogFormat::Human => layer.boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_current_span(false).boxed(),
    };
    // A second init (tests embedding the worker) is harmless; ignore it.
    let _ = tracing_subscriber::registry().with(layer.with_filter(targets)).try_init();
    if let Some(e) = bad {
        tracing::warn!(filter, error = %e, "invalid log filter, using `info`");
    }
}

/// Stderr, with every registered secret scrubbed. The formatter hands over
/// each event whole, so a secret is never split across two writes.
struct ScrubbingStderr;

impl std::io::Write for ScrubbingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(crate::redact::scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
