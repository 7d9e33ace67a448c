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
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(move || ScrubbingStderr { escape: format == LogFormat::Human })
        .with_target(false)
        // No colours: the writer escapes every control character, so that
        // nothing a payload or a task wrote can forge a line or steer a terminal.
        .with_ansi(false);
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

/// Stderr, with every registered secret scrubbed and every control character
/// escaped. The formatter hands over each event whole, so a secret is never
/// split across two writes and the one real line break is the last byte.
struct ScrubbingStderr {
    /// Escape control characters (the human format; JSON escapes its own).
    escape: bool,
}

impl std::io::Write for ScrubbingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (line, newline) = match text.strip_suffix('\n') {
            Some(line) => (line, "\n"),
            None => (&*text, ""),
        };
        let scrubbed = crate::redact::scrub(line);
        let line = if self.escape { escape_controls(&scrubbed) } else { scrubbed };
        // One lock for both parts: the line and its break are never split by another writer.
        let mut stderr = std::io::stderr().lock();
        stderr.write_all(line.as_bytes())?;
        stderr.write_all(newline.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// `text` with line breaks, terminal escapes and every other control or
/// direction-changing character written as an escape (`\n`, `\u{1b}`), so
/// that a field a payload chose (a `run_id` with a newline and a fake
/// `INFO` line in it) stays inside the line it was logged in. Tabs stay.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| (c.is_control() && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_cannot_forge_a_line() {
        let forged = "r1\nINFO exiting code=0\u{1b}[2J\r\u{202e}";
        let escaped = escape_controls(forged);
        assert_eq!(escaped, "r1\\nINFO exiting code=0\\u{1b}[2J\\r\\u{202e}");
        assert!(!escaped.chars().any(char::is_control));
        assert_eq!(escape_controls("plain\ttext"), "plain\ttext");
    }
}
