//! One GET of an http(s) payload URL, such as a presigned S3 URL: the body
//! streamed into a [`Body`], an error answer read (boundedly) for S3's code.

use std::time::SystemTime;

use super::body::Body;
use super::error::{denied_fix, FetchError};
use super::reference::PayloadRef;
use super::s3_error::S3Error;

/// Most of an error answer read for its code and region.
const ERROR_BODY_BYTES: usize = 8 * 1024;

/// Fetch `reference` once with `client`, at most `limit` bytes.
pub async fn attempt(
    client: &reqwest::Client,
    url: &url::Url,
    reference: &PayloadRef,
    limit: u64,
) -> Result<Vec<u8>, FetchError> {
    let shown = reference.shown();
    // `without_url`: the error's text would carry the query (the signature).
    let transient = |e: reqwest::Error| FetchError::Transient {
        detail: wove_proto::error_chain(&e.without_url()),
        retry_after: None,
    };
    let mut response = client.get(url.as_str()).send().await.map_err(|e| {
        if e.is_redirect() {
            FetchError::Refused { url: shown.clone(), detail: wove_proto::error_chain(&e.without_url()) }
        } else {
            transient(e)
        }
    })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| wove_deliver::retry::parse_retry_after(v, SystemTime::now()));
        let bucket_region =
            response.headers().get("x-amz-bucket-region").and_then(|v| v.to_str().ok()).map(str::to_string);
        let text = read_error_body(&mut response).await;
        let error = S3Error::parse(&text);
        return Err(classify(status, error, bucket_region, retry_after, reference, &shown));
    }
    let mut body = Body::start(limit, response.content_length(), reference.size())?;
    while let Some(chunk) = response.chunk().await.map_err(transient)? {
        body.push(&chunk)?;
    }
    body.finish(reference.sha256(), reference.size())
}

async fn read_error_body(response: &mut reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= ERROR_BODY_BYTES {
            bytes.truncate(ERROR_BODY_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn classify(
    status: u16,
    error: S3Error,
    bucket_region: Option<String>,
    retry_after: Option<std::time::Duration>,
    reference: &PayloadRef,
    shown: &str,
) -> FetchError {
    let url = shown.to_string();
    if error.is_wrong_region() || (status == 301 && bucket_region.is_some()) {
        return FetchError::WrongRegion { url, bucket_region: bucket_region.or(error.region), configured: None };
    }
    match status {
        401 | 403 => {
            let fix = denied_fix(error.code.as_deref(), true, reference.expires_at(), SystemTime::now());
            FetchError::Denied { url, code: error.code, fix }
        }
        404 | 410 => FetchError::NotFound { url, code: error.code },
        408 | 425 | 429 | 500..=599 => FetchError::Transient {
            detail: format!("HTTP {status}{}", error.code.map(|c| format!(" ({c})")).unwrap_or_default()),
            retry_after,
        },
        // S3 throttles with 503 SlowDown, but some proxies say 400 with S3's code.
        _ if error.code.as_deref().is_some_and(S3Error::is_throttling) => {
            FetchError::Transient { detail: format!("HTTP {status} ({})", error.code.unwrap_or_default()), retry_after }
        }
        _ => FetchError::Refused {
            url,
            detail: format!("HTTP {status}{}", error.code.map(|c| format!(" ({c})")).unwrap_or_default()),
        },
    }
}
