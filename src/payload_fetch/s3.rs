//! One GET of an `s3://` object with the job's own AWS identity, through
//! `object_store`: its credential chain (environment keys, web identity as
//! IRSA sets it, ECS and EKS Pod Identity container credentials, IMDSv2),
//! `AWS_REGION` and `AWS_ENDPOINT_URL(_S3)`. Every request it makes, the
//! credential fetches included, goes through our own HTTP client (our
//! resolver, our trusted roots); retries are ours ([`super::fetch`]), so
//! that one budget bounds them all.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpClient, HttpConnector};
use object_store::{ClientConfigKey, ClientOptions, ObjectStoreExt as _, RetryConfig};

use super::body::Body;
use super::error::{denied_fix, FetchError};
use super::reference::PayloadRef;
use super::s3_error::S3Error;

/// A store for one bucket.
#[derive(Debug)]
pub struct Bucket {
    name: String,
    store: AmazonS3,
    region: Option<String>,
    /// Where a bucket's region is asked, when S3 says it is elsewhere without saying where.
    endpoint: String,
    client: reqwest::Client,
}

/// Hands object_store our client, built for the options it asks with
/// (plain http for the metadata endpoints, https for S3 unless AWS_ALLOW_HTTP).
#[derive(Debug)]
struct Connector {
    ca_bundle: Option<PathBuf>,
}

/// Longest wait for a connection: short, so an unreachable metadata
/// endpoint (no IMDS outside EC2) costs seconds, not the whole budget.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest silence while the object's bytes arrive.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl HttpConnector for Connector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let allow_http = options.get_config_value(&ClientConfigKey::AllowHttp).is_some_and(|v| v == "true");
        let client = client(self.ca_bundle.as_deref(), allow_http)
            .map_err(|detail| object_store::Error::Generic { store: "S3", source: detail.into() })?;
        Ok(HttpClient::new(client))
    }
}

fn client(ca_bundle: Option<&std::path::Path>, allow_http: bool) -> Result<reqwest::Client, String> {
    wove_deliver::client::builder(ca_bundle, crate::report::USER_AGENT)
        .map_err(|e| e.to_string())?
        .https_only(!allow_http)
        // A redirect would be followed with the request's signature; S3 never needs one.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(IDLE_TIMEOUT)
        .build()
        .map_err(|e| wove_proto::error_chain(&e))
}

impl Bucket {
    /// The store for `bucket`, configured from the `AWS_*` environment.
    pub fn open(bucket: &str, ca_bundle: Option<PathBuf>) -> Result<Self, FetchError> {
        let builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            // One attempt per call: the caller's loop retries within its budget.
            .with_retry(RetryConfig { max_retries: 0, ..RetryConfig::default() })
            .with_http_connector(Connector { ca_bundle: ca_bundle.clone() });
        let setting = |key: AmazonS3ConfigKey| builder.get_config_value(&key);
        let region = setting(AmazonS3ConfigKey::Region);
        let allow_http = setting(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp)).is_some_and(|v| v == "true");
        let endpoint = setting(AmazonS3ConfigKey::S3Endpoint)
            .or_else(|| setting(AmazonS3ConfigKey::Endpoint))
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", region.as_deref().unwrap_or("us-east-1")));
        let refused = |detail: String| FetchError::Refused {
            url: format!("s3://{bucket}"),
            detail: format!("the S3 client cannot be set up from the AWS_* environment: {detail}"),
        };
        let client = client(ca_bundle.as_deref(), allow_http).map_err(refused)?;
        let store = builder.build().map_err(|e| refused(wove_proto::error_chain(&e)))?;
        Ok(Self { name: bucket.to_string(), store, region, endpoint, client })
    }

    /// The bucket's region as S3 tells anyone who asks: `x-amz-bucket-region`
    /// on an unsigned HEAD of the bucket (whatever its status).
    async fn region_of_bucket(&self) -> Option<String> {
        let url = format!("{}/{}", self.endpoint.trim_end_matches('/'), self.name);
        let response = tokio::time::timeout(CONNECT_TIMEOUT, self.client.head(url).send()).await.ok()?.ok()?;
        let region = response.headers().get("x-amz-bucket-region")?.to_str().ok()?;
        (!region.is_empty() && region.len() <= 64).then(|| region.to_string())
    }

    /// Fetch the object once, at most `limit` bytes.
    pub async fn attempt(&self, key: &str, reference: &PayloadRef, limit: u64) -> Result<Vec<u8>, FetchError> {
        let shown = reference.shown();
        let path = object_store::path::Path::parse(key)
            .map_err(|e| FetchError::Refused { url: shown.clone(), detail: format!("the key cannot be used: {e}") })?;
        let result = match self.store.get(&path).await {
            Ok(result) => result,
            Err(e) => {
                return Err(match self.classify(e, &shown) {
                    FetchError::WrongRegion { url, bucket_region: None, configured } => {
                        FetchError::WrongRegion { url, bucket_region: self.region_of_bucket().await, configured }
                    }
                    other => other,
                })
            }
        };
        let mut body = Body::start(limit, Some(result.meta.size), reference.size())?;
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| FetchError::Transient { detail: error_text(&e), retry_after: None })?;
            body.push(&chunk)?;
        }
        body.finish(reference.sha256(), reference.size())
    }

    fn classify(&self, error: object_store::Error, shown: &str) -> FetchError {
        let url = shown.to_string();
        let text = error_text(&error);
        let s3 = S3Error::parse(&text);
        if s3.is_wrong_region() || text.contains("incorrectly configured region") {
            return FetchError::WrongRegion { url, bucket_region: s3.region, configured: self.region.clone() };
        }
        match error {
            object_store::Error::NotFound { .. } => FetchError::NotFound { url, code: s3.code },
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                let fix = denied_fix(s3.code.as_deref(), false, None, SystemTime::now());
                FetchError::Denied { url, code: s3.code, fix }
            }
            _ => match status_of(&text) {
                // A client error no retry changes (400 InvalidRequest, 405, …), unless S3 says it is throttling.
                Some(status @ 400..=499)
                    if !matches!(status, 408 | 425 | 429)
                        && !s3.code.as_deref().is_some_and(S3Error::is_throttling) =>
                {
                    FetchError::Refused { url, detail: text }
                }
                // 5xx, throttling, connection failures, credentials not (yet) to be had.
                _ => FetchError::Transient { detail: text, retry_after: None },
            },
        }
    }
}

/// The error with its causes, as one line.
fn error_text(error: &object_store::Error) -> String {
    wove_proto::error_chain(error)
}

/// The status in object_store's "Server returned non-2xx status code: 503 Service Unavailable: …".
fn status_of(text: &str) -> Option<u16> {
    let rest = text.split("status code: ").nth(1)?;
    rest.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_from_object_stores_text() {
        assert_eq!(
            status_of("Generic S3 error: Server returned non-2xx status code: 503 Service Unavailable: <Error>"),
            Some(503)
        );
        assert_eq!(status_of("error sending request"), None);
    }
}
