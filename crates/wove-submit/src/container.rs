//! Rules on the container as it will run, the same for a Kubernetes Job and
//! an AWS Batch job: what its command line and environment may not take
//! from the submitter, and that the payload it carries is the one the job
//! says it carries. Each backend runs these on its final object, after every
//! flag, option file, patch and hook, so no way of building a job steps
//! around them.

use wove_proto::env as vars;
use wove_proto::Payload;

/// Worker flags the submitter decides: given on the command line they would
/// override what it set in the environment (the payload's source, the
/// shutdown budget the grace period is sized from, the task index each
/// pod or child gets, the signing secret), or send every event to stdout.
pub const OWNED_FLAGS: [&str; 6] =
    ["--payload-file", "--shutdown-budget", "--index", "--signing-secret-file", "--signing-scheme", "--print-events"];

/// Variables the platform sets for each pod or child: one set in the job
/// would give every index the same task.
pub const PLATFORM_INDEX_VARS: [&str; 2] = [vars::JOB_COMPLETION_INDEX, vars::AWS_BATCH_JOB_ARRAY_INDEX];

/// The first of `args` that is one of [`OWNED_FLAGS`] (`--flag` or `--flag=value`).
pub fn owned_flag<'a>(args: impl IntoIterator<Item = &'a String>) -> Option<&'a str> {
    args.into_iter().map(String::as_str).find(|arg| {
        let flag = arg.split_once('=').map_or(*arg, |(flag, _)| flag);
        OWNED_FLAGS.contains(&flag)
    })
}

/// The payload as a job carries it.
#[derive(Debug, Clone, Copy)]
pub enum Carried<'a> {
    /// Base64 in an environment variable.
    Base64(&'a str),
    /// Bytes in a Secret or a file.
    Bytes(&'a [u8]),
}

/// Why the payload a job carries is not the payload it names by `sha256`
/// ([`crate::EncodedPayload::sha256`]: the digest of the caller's base64,
/// which the submitter may have sent gzip-compressed).
pub fn payload_mismatch(carried: Carried<'_>, sha256: Option<&str>) -> Option<String> {
    use base64::Engine as _;
    let b64 = &base64::engine::general_purpose::STANDARD;
    let bytes = match carried {
        Carried::Base64(text) => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            match b64.decode(&compact) {
                Ok(bytes) => bytes,
                Err(e) => return Some(format!("is not a payload (not base64: {e})")),
            }
        }
        Carried::Bytes(bytes) => bytes.to_vec(),
    };
    // Never quoted: the payload holds the callback token.
    if let Err(e) = Payload::from_bytes(&bytes) {
        return Some(format!("is not a payload ({})", wove_proto::error_chain(&e)));
    }
    let Some(expected) = sha256 else {
        return Some("the job no longer says which payload it carries (its payload-sha256 was removed)".into());
    };
    // As the caller gave it, or as the submitter compressed it.
    let mut digests = vec![crate::naming::sha256_hex(b64.encode(&bytes).as_bytes())];
    if wove_proto::gzip::is_gzip(&bytes) {
        if let Ok(inflated) = wove_proto::gzip::inflate(&bytes, wove_proto::payload::MAX_PAYLOAD_BYTES) {
            digests.push(crate::naming::sha256_hex(b64.encode(inflated).as_bytes()));
        }
    }
    if digests.iter().any(|d| d == expected) {
        return None;
    }
    Some(format!(
        "is not the payload the job names (its payload-sha256 is {expected}): a patch or hook replaced it, \
         and a second submit of the same payload would not find this job"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_flags_in_either_spelling() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(owned_flag(&args(&["--log", "debug", "--shutdown-budget=300"])), Some("--shutdown-budget=300"));
        assert_eq!(owned_flag(&args(&["--payload-file", "/etc/x"])), Some("--payload-file"));
        assert_eq!(owned_flag(&args(&["--log=debug", "--kill-grace", "3"])), None);
        assert_eq!(owned_flag(&args(&["--indexes"])), None);
    }

    #[test]
    fn a_payload_is_checked_against_its_digest() {
        use base64::Engine as _;
        let payload = crate::EncodedPayload::from_text(
            r#"{"version":1,"callback_url":"http://h/wove/events/tok","run_id":"r","task_id":"t","task":{"runner":"x"}}"#,
        )
        .unwrap();
        let sha = Some(payload.sha256());
        assert_eq!(payload_mismatch(Carried::Base64(payload.base64()), sha), None);
        assert_eq!(payload_mismatch(Carried::Bytes(&payload.bytes()), sha), None);
        // Compressed by the submitter, it is still the same payload.
        let packed = payload.gzip_base64();
        assert_eq!(payload_mismatch(Carried::Base64(&packed), sha), None);
        let packed_bytes = base64::engine::general_purpose::STANDARD.decode(&packed).unwrap();
        assert_eq!(payload_mismatch(Carried::Bytes(&packed_bytes), sha), None);

        let problem = payload_mismatch(Carried::Base64("eyJub3QiOiAicGF5bG9hZCJ9"), sha).unwrap();
        assert!(problem.starts_with("is not a payload"), "{problem}");
        assert!(!problem.contains("tok"), "{problem}");
        let other = crate::EncodedPayload::from_text(
            r#"{"version":1,"callback_url":"http://h/wove/events/tok","run_id":"o","task_id":"t","task":{"runner":"x"}}"#,
        )
        .unwrap();
        assert!(payload_mismatch(Carried::Base64(other.base64()), sha).unwrap().contains("replaced"));
        assert!(payload_mismatch(Carried::Base64(payload.base64()), None).unwrap().contains("removed"));
    }
}
