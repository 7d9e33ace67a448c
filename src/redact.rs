//! Keeping the callback token out of every log line.
//!
//! The token is the last path segment of the callback URL: anyone holding it
//! can forge events for the run. URLs are only ever logged through
//! [`redact_url`], and HTTP errors are stripped of their URL before display.

/// The URL with its last path segment (and any query) replaced by `[redacted]`.
pub fn redact_url(url: &str) -> String {
    let (base, _query) = url.split_once('?').unwrap_or((url, ""));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    match base[scheme_end..].rfind('/') {
        Some(i) if scheme_end + i + 1 < base.len() => format!("{}[redacted]", &base[..scheme_end + i + 1]),
        _ => base.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_the_token_and_query() {
        assert_eq!(redact_url("http://web:9010/wove/events/abc123"), "http://web:9010/wove/events/[redacted]");
        assert_eq!(redact_url("https://h/x/tok?sig=1"), "https://h/x/[redacted]");
        assert_eq!(redact_url("http://h:1"), "http://h:1");
        assert_eq!(redact_url("http://h/"), "http://h/");
    }
}
