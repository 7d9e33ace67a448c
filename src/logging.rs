//! Logs on stderr: human-readable by default, JSON lines for log pipelines.
//!
//! Nothing secret is passed to a log macro on purpose: URLs go through
//! [`crate::redact::redact_url`] and secrets have a redacting `Debug`. And
//! every line goes through [`crate::redact::scrub`] on its way out, for what a
//! message quotes by accident.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Install the global subscriber. `filter` is a level or tracing directives;
/// an invalid filter falls back to `info` and says so.
pub fn init(format: LogFormat, filter: &str) {
    let (env_filter, bad) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e.to_string())),
    };
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_writer(|| ScrubbingStderr)
        .with_env_filter(env_filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    // A second init (tests embedding the worker) is harmless; ignore it.
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
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
