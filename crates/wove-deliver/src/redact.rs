//! A callback URL as it may be logged: its token (the last path segment),
//! query and user info never show.

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The URL without its secret parts: `scheme://host[:port]/path/[redacted]`.
/// A URL that does not parse is not shown at all: its parts cannot be told apart.
pub fn redact_url(url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return "(a callback URL that does not parse)".to_string();
    };
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_string(),
        (None, _) => String::new(),
    };
    // The token is the last segment that is not empty: a trailing `/`, `//`
    // or `/.` must not leave it showing. It and all after it are hidden.
    let path = parsed.path();
    let kept = match token_span(path) {
        Some((start, _)) => format!("{}{REDACTED}", &path[..start]),
        None => path.to_string(),
    };
    format!("{}://{host}{kept}", parsed.scheme())
}

/// Where the token is in a URL's path: its last non-empty segment.
pub fn token_span(path: &str) -> Option<(usize, usize)> {
    let trimmed = path.trim_end_matches(['/', '.']);
    let start = trimmed.rfind('/').map_or(0, |i| i + 1);
    (start < trimmed.len()).then_some((start, trimmed.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_their_shape_but_not_their_secrets() {
        assert_eq!(redact_url("http://web:9010/wove/events/abc123"), "http://web:9010/wove/events/[redacted]");
        assert_eq!(redact_url("https://h/x/tok?sig=1"), "https://h/x/[redacted]");
        assert_eq!(redact_url("https://user:pw@h/x/tok"), "https://h/x/[redacted]");
        assert_eq!(redact_url("http://h:1"), "http://h:1/");
        for tail in ["/", "//", "/.", "/./", "///."] {
            let url = format!("http://web:9010/wove/events/abc123{tail}");
            assert_eq!(redact_url(&url), "http://web:9010/wove/events/[redacted]", "{url}");
        }
        assert_eq!(redact_url("http://h/"), "http://h/");
        // The host of this one is the token: nothing of it may show.
        assert_eq!(redact_url("http://[TOKEN/wove/events/TOKEN"), "(a callback URL that does not parse)");
    }
}
