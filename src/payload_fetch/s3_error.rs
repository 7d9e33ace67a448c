//! S3's error answer (`<Error><Code>…</Code><Region>…</Region>…</Error>`),
//! read for the two fields that decide what to tell the user. A body that is
//! not S3's simply has neither.

/// The fields of an S3 error that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Error {
    /// `AccessDenied`, `NoSuchKey`, `SlowDown`, …
    pub code: Option<String>,
    /// The bucket's region, in a wrong-region answer.
    pub region: Option<String>,
    /// The message, for `AuthorizationHeaderMalformed`'s "expecting 'eu-west-1'".
    pub message: Option<String>,
}

impl S3Error {
    /// Read the fields from `text` (XML, possibly inside another message).
    pub fn parse(text: &str) -> Self {
        let region = element(text, "Region").or_else(|| element(text, "BucketRegion"));
        let message = element(text, "Message");
        // "The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'"
        let expecting = message
            .as_deref()
            .and_then(|m| m.split("expecting '").nth(1))
            .and_then(|rest| rest.split('\'').next())
            .map(str::to_string);
        Self { code: element(text, "Code"), region: region.or(expecting), message }
    }

    /// The request went to the wrong region's endpoint, or was signed for the wrong region.
    pub fn is_wrong_region(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException")
        ) || (self.code.as_deref() == Some("InvalidRequest")
            && self.message.as_deref().is_some_and(|m| m.contains("region")))
    }

    /// S3's ways of saying "slow down".
    pub fn is_throttling(code: &str) -> bool {
        matches!(
            code,
            "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "RequestTimeout"
                | "InternalError"
                | "ServiceUnavailable"
        )
    }
}

fn element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    let value = text[start..end].trim();
    (!value.is_empty() && value.len() <= 256).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_bodies_are_read() {
        let denied = S3Error::parse(
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
        );
        assert_eq!(denied.code.as_deref(), Some("AccessDenied"));
        assert!(!denied.is_wrong_region());
        let redirect = S3Error::parse("Server returned non-2xx status code: 301: <Error><Code>PermanentRedirect</Code><Region>eu-west-1</Region></Error>");
        assert!(redirect.is_wrong_region());
        assert_eq!(redirect.region.as_deref(), Some("eu-west-1"));
        let malformed = S3Error::parse("<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'ap-south-1'</Message></Error>");
        assert!(malformed.is_wrong_region());
        assert_eq!(malformed.region.as_deref(), Some("ap-south-1"));
        assert_eq!(S3Error::parse("plain text"), S3Error::default());
    }
}
