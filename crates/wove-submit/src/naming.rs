//! Names and label values that an API server accepts, made from Wove's ids.
//!
//! Wove's run ids look like `compute:3f2a…` (with a colon) and task ids are
//! whatever the weave calls its tasks, unicode included; Kubernetes names and
//! label values allow neither. Every name here is deterministic (one run and
//! task always get the same name, so a retried submit finds its own Job) and
//! carries a short hash of the raw ids (so two runs never collide, however
//! their readable parts were cut or rewritten). The raw ids travel beside it,
//! in annotations.

use sha2::{Digest as _, Sha256};

/// Longest Kubernetes object name that is also safe as a label value: the Job
/// controller copies the Job's name into its pods' `job-name` label.
pub const MAX_NAME: usize = 63;
/// Longest label value.
pub const MAX_LABEL_VALUE: usize = 63;
/// Longest name prefix accepted, leaving room for the ids and the hash.
pub const MAX_PREFIX: usize = 20;
/// Hex digits of SHA-256 kept in names and rewritten label values: 40 bits,
/// so a collision needs about a million runs with the same readable part.
pub const HASH_LEN: usize = 10;

/// A name prefix that cannot start a valid name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name prefix {prefix:?} must be 1 to {MAX_PREFIX} characters of a-z, 0-9 and '-', starting with a letter")]
pub struct PrefixError {
    /// The prefix as given.
    pub prefix: String,
}

/// Check a name prefix: lowercase letters, digits and `-`, a letter first.
pub fn check_prefix(prefix: &str) -> Result<(), PrefixError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= MAX_PREFIX
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(PrefixError { prefix: prefix.to_string() })
    }
}

/// The deterministic name of the object that runs `task_id` of `run_id`:
/// `<prefix>-<readable ids>-<hash>`, a DNS-1123 label of at most
/// [`MAX_NAME`] characters.
///
/// The readable part is the run id when it already names the task (Wove's
/// `task:hex` form), else the task id and the run id; it is lowercased, every
/// other character becomes `-`, and it is cut to fit.
pub fn object_name(prefix: &str, run_id: &str, task_id: &str) -> Result<String, PrefixError> {
    object_name_within(prefix, run_id, task_id, MAX_NAME)
}

/// [`object_name`] for a platform with another length limit (AWS Batch allows
/// 128 characters); the result is still a DNS-1123 label.
pub fn object_name_within(prefix: &str, run_id: &str, task_id: &str, max: usize) -> Result<String, PrefixError> {
    check_prefix(prefix)?;
    let hash = short_hash(&[run_id, task_id]);
    let readable =
        if run_id.starts_with(task_id) { dns_fragment(run_id) } else { dns_fragment(&format!("{task_id}-{run_id}")) };
    // prefix + '-' + readable + '-' + hash
    let room = max.saturating_sub(prefix.len() + HASH_LEN + 2);
    let readable = trim_to(&readable, room, |c| c == '-');
    Ok(if readable.is_empty() { format!("{prefix}-{hash}") } else { format!("{prefix}-{readable}-{hash}") })
}

/// A label value standing for `raw`: `raw` itself when it is already valid,
/// otherwise its allowed characters, cut to fit, and a hash of the whole raw
/// value, so that two different ids never share a label value.
pub fn label_value(raw: &str) -> String {
    if is_label_value(raw) {
        return raw.to_string();
    }
    let hash = short_hash(&[raw]);
    let mapped: String = raw.chars().map(|c| if is_label_char(c) { c } else { '-' }).collect();
    let mapped = collapse_dashes(&mapped);
    let readable = trim_to(&mapped, MAX_LABEL_VALUE - HASH_LEN - 1, |c| !c.is_ascii_alphanumeric());
    if readable.is_empty() {
        hash
    } else {
        format!("{readable}-{hash}")
    }
}

/// Whether `name` is a DNS-1123 label: 1 to 63 characters of `a-z`, `0-9`
/// and `-`, alphanumeric at both ends.
pub fn is_dns1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Whether `name` is a DNS-1123 subdomain as Kubernetes checks it (most
/// object names, label key prefixes): dot-separated parts of `a-z`, `0-9` and
/// `-`, alphanumeric at both ends, at most 253 characters in all. Unlike DNS,
/// Kubernetes sets no length limit on one part.
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Whether `value` is a valid label value: empty, or at most 63 characters
/// of `A-Z a-z 0-9 _ . -`, alphanumeric at both ends.
pub fn is_label_value(value: &str) -> bool {
    value.is_empty()
        || (value.len() <= MAX_LABEL_VALUE
            && value.chars().all(is_label_char)
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Whether `key` is a valid label or annotation key: an optional DNS
/// subdomain prefix and `/`, then a name of at most 63 characters.
pub fn is_qualified_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

/// The first [`HASH_LEN`] hex digits of SHA-256 over the parts, each followed
/// by a NUL so that `("ab", "c")` and `("a", "bc")` differ.
pub fn short_hash(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let mut hex = hex::encode(hasher.finalize());
    hex.truncate(HASH_LEN);
    hex
}

/// Lowercase hex SHA-256 of `bytes`, as payload digests are written.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Lowercase ASCII letters and digits kept, everything else one `-`, no `-` at the ends.
fn dns_fragment(text: &str) -> String {
    let mapped: String =
        text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    collapse_dashes(&mapped).trim_matches('-').to_string()
}

fn collapse_dashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// Cut an ASCII string to `max` characters and strip the characters `bad` at both ends.
fn trim_to(text: &str, max: usize, bad: impl Fn(char) -> bool + Copy) -> String {
    let cut: String = text.chars().take(max).collect();
    cut.trim_matches(bad).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WOVE_RUN: &str = "compute:3f2a9c0e5b7d4e1f8a6b2c9d0e1f2a3b";

    #[test]
    fn wove_ids_make_a_readable_valid_name() {
        let name = object_name("wove", WOVE_RUN, "compute").unwrap();
        assert!(name.starts_with("wove-compute-3f2a9c0e5b7d4e1f8a6b2c9d0e1f2a3b-"), "{name}");
        assert!(is_dns1123_label(&name), "{name}");
        assert_eq!(name, object_name("wove", WOVE_RUN, "compute").unwrap(), "deterministic");
    }

    #[test]
    fn names_never_collide_when_ids_differ() {
        let a = object_name("wove", "a:b", "t").unwrap();
        let b = object_name("wove", "a-b", "t").unwrap();
        let c = object_name("wove", "a:b", "u").unwrap();
        assert!(a != b && a != c && b != c, "{a} {b} {c}");
        // Long ids that share their first hundred characters still differ.
        let long = "x".repeat(100);
        let d = object_name("wove", &format!("{long}1"), "t").unwrap();
        let e = object_name("wove", &format!("{long}2"), "t").unwrap();
        assert_ne!(d, e);
    }

    #[test]
    fn hostile_ids_still_make_valid_names() {
        for (run, task) in [
            ("", ""),
            ("::::", "—"),
            ("Ünïcödé:ÄÖÜ", "задача"),
            ("-leading:trailing-", "-x-"),
            (&"z".repeat(1000), &"y".repeat(300)),
            ("a.b_c:D", "Task.One"),
        ] {
            let name = object_name("wove", run, task).unwrap();
            assert!(is_dns1123_label(&name), "{run:?}/{task:?} -> {name}");
            let long = object_name_within("wove", run, task, 128).unwrap();
            assert!(long.len() <= 128 && long.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{long}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("wove").is_ok());
        assert!(check_prefix("team-a1").is_ok());
        for bad in ["", "Wove", "1wove", "wove_x", "w.x", &"w".repeat(21)] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values_keep_valid_ids_and_rewrite_the_rest() {
        assert_eq!(label_value("compute"), "compute");
        let rewritten = label_value(WOVE_RUN);
        assert!(rewritten.starts_with("compute-3f2a9c0e5b7d4e1f8a6b2c9d0e1f2a3b-"), "{rewritten}");
        assert!(is_label_value(&rewritten));
        // Colon and dash forms differ after rewriting.
        assert_ne!(label_value("a:b"), label_value("a-b"));
        for raw in ["", ":", "ÄÖÜ", "-x-", &"q".repeat(64), "a b c", "._x_."] {
            let v = label_value(raw);
            assert!(is_label_value(&v), "{raw:?} -> {v:?}");
        }
    }

    #[test]
    fn syntax_checks_match_the_api_rules() {
        assert!(is_dns1123_label("a-1"));
        assert!(!is_dns1123_label("A"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert!(is_label_value("A_b.c-9"));
        assert!(!is_label_value("a:b"));
        assert!(!is_label_value("_a"));
        assert!(is_qualified_key("app.kubernetes.io/name"));
        assert!(is_qualified_key("wove.dev/run"));
        assert!(!is_qualified_key("Bad_Domain/x"));
        assert!(!is_qualified_key("a/b/c"));
        assert!(is_dns1123_subdomain("wove-x-payload"));
        assert!(is_dns1123_subdomain(&format!("{}-payload", "a".repeat(63))));
        assert!(!is_dns1123_subdomain("a..b") && !is_dns1123_subdomain("A") && !is_dns1123_subdomain(&"a".repeat(254)));
    }
}
