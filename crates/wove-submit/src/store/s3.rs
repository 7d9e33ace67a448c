//! The payload store's S3 side: upload (with S3's own SHA-256 check), presign,
//! delete and list, through the AWS SDK with the same credential chain and
//! HTTPS client as the Batch client.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use base64::Engine as _;

use super::StoredObject;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreClientError {
    /// S3 answered with an error, or could not be reached.
    #[error("{action} {url}: {detail}")]
    S3 {
        /// What was being done.
        action: &'static str,
        /// The object or prefix.
        url: String,
        /// S3's code and message, or the transport's error.
        detail: String,
    },
    /// No answer within the time allowed.
    #[error("{action} {url}: no answer within {} s", .after.as_secs_f64())]
    Timeout {
        /// What was being done.
        action: &'static str,
        /// The object or prefix.
        url: String,
        /// The limit.
        after: Duration,
    },
    /// A presigned URL would outlive the credentials that sign it.
    #[error("--presign {wanted} s: the credentials that would sign the URL expire in {left} s, and a presigned URL stops working with them; presign for less, or let the job read the object with its own role (no --presign)")]
    PresignOutlivesCredentials {
        /// The duration asked for.
        wanted: u64,
        /// What the credentials have left.
        left: u64,
    },
    /// No credentials to sign with.
    #[error("cannot presign: {0}")]
    Credentials(String),
}

/// One object in the store, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key.
    pub key: String,
    /// When it was written.
    pub last_modified: Option<SystemTime>,
}

/// The S3 client of the payload store.
#[derive(Debug, Clone)]
pub struct StoreClient {
    s3: aws_sdk_s3::Client,
    config: aws_config::SdkConfig,
    api_timeout: Duration,
}

impl StoreClient {
    /// Configure the AWS way: the standard credential and region chain and
    /// `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`. Path-style addressing when an
    /// endpoint is set (a local or S3-compatible server), virtual-hosted otherwise.
    pub async fn connect(region: Option<&str>, api_timeout: Duration) -> Self {
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
        let http =
            aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
        if let Some(region) = region {
            loader = loader.region(aws_config::Region::new(region.to_string()));
        }
        let config = loader.load().await;
        let path_style = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"].iter().any(|v| std::env::var_os(v).is_some());
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config).force_path_style(path_style).build(),
        );
        Self { s3, config, api_timeout }
    }

    async fn timed<T, E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        action: &'static str,
        url: String,
        call: impl std::future::Future<Output = Result<T, aws_sdk_s3::error::SdkError<E>>>,
    ) -> Result<T, StoreClientError> {
        match tokio::time::timeout(self.api_timeout, call).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => {
                let detail = match (e.code(), e.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_string(),
                    _ => wove_proto::error_chain(&e),
                };
                Err(StoreClientError::S3 { action, url, detail })
            }
            Err(_) => Err(StoreClientError::Timeout { action, url, after: self.api_timeout }),
        }
    }

    /// Upload the object with its SHA-256, which S3 checks: bytes altered on
    /// the way are refused, not stored.
    pub async fn upload(&self, object: &StoredObject) -> Result<(), StoreClientError> {
        let sha = hex::decode(&object.sha256).unwrap_or_default();
        let call = self
            .s3
            .put_object()
            .bucket(&object.bucket)
            .key(&object.key)
            .body(ByteStream::from(object.bytes.clone()))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(base64::engine::general_purpose::STANDARD.encode(sha))
            .content_type(if wove_proto::gzip::is_gzip(&object.bytes) {
                "application/gzip"
            } else {
                "application/json"
            })
            .send();
        self.timed("upload to", object.url(), call).await.map(|_| ())
    }

    /// An https GET URL for the object, valid for `seconds`, refused when the
    /// signing credentials expire sooner (the URL would stop working with them).
    pub async fn presign(&self, object: &StoredObject, seconds: u64) -> Result<String, StoreClientError> {
        use aws_credential_types::provider::ProvideCredentials as _;
        let provider = self
            .config
            .credentials_provider()
            .ok_or_else(|| StoreClientError::Credentials("no AWS credentials are configured".into()))?;
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| StoreClientError::Credentials(wove_proto::error_chain(&e)))?;
        if let Some(expiry) = credentials.expiry() {
            let left = expiry.duration_since(SystemTime::now()).unwrap_or_default().as_secs();
            if left < seconds {
                return Err(StoreClientError::PresignOutlivesCredentials { wanted: seconds, left });
            }
        }
        let config = PresigningConfig::expires_in(Duration::from_secs(seconds))
            .map_err(|e| StoreClientError::Credentials(wove_proto::error_chain(&e)))?;
        let call = self.s3.get_object().bucket(&object.bucket).key(&object.key).presigned(config);
        let presigned = self.timed("presign", object.url(), call).await?;
        Ok(presigned.uri().to_string())
    }

    /// The object's bytes, at most `max_bytes`.
    pub async fn get(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Vec<u8>, StoreClientError> {
        let url = format!("s3://{bucket}/{key}");
        let out = self.timed("download", url.clone(), self.s3.get_object().bucket(bucket).key(key).send()).await?;
        if out.content_length().is_some_and(|n| n < 0 || n as u64 > max_bytes) {
            return Err(StoreClientError::S3 {
                action: "download",
                url,
                detail: format!("larger than {max_bytes} bytes"),
            });
        }
        let body = tokio::time::timeout(self.api_timeout, out.body.collect())
            .await
            .map_err(|_| StoreClientError::Timeout { action: "download", url: url.clone(), after: self.api_timeout })?
            .map_err(|e| StoreClientError::S3 { action: "download", url, detail: wove_proto::error_chain(&e) })?;
        Ok(body.into_bytes().to_vec())
    }

    /// Delete `s3://bucket/key`; an object already gone is no error.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreClientError> {
        let call = self.s3.delete_object().bucket(bucket).key(key).send();
        self.timed("delete", format!("s3://{bucket}/{key}"), call).await.map(|_| ())
    }

    /// Every object under `prefix`.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, StoreClientError> {
        let mut out = Vec::new();
        let mut token = None;
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        loop {
            let call = self.s3.list_objects_v2().bucket(bucket).prefix(&prefix).set_continuation_token(token).send();
            let page = self.timed("list", format!("s3://{bucket}/{prefix}"), call).await?;
            out.extend(page.contents().iter().filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_string(),
                    last_modified: o.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
                })
            }));
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => return Ok(out),
            }
        }
    }
}
