//! The payload store on the command line: its flags, and the S3 work around
//! a job's life (upload and presign before submit, delete once it is over).

use std::time::Duration;

use clap::Args;
pub use wove_submit::store::s3::StoreClient;
use wove_submit::store::{split_object_url, PayloadStore, StoredObject};

use super::args::{refused, seconds};
use super::{Failure, SubmitExit};

#[derive(Debug, Args)]
#[command(next_help_heading = "Payload store")]
pub struct StoreArgs {
    /// Where a payload too large for the job goes, s3://bucket[/prefix]: it is
    /// uploaded to <prefix>/<job name>/<sha256>, the job gets its reference
    /// and digest, and `wait`, `cancel` or `cleanup` delete it once the job is over.
    #[arg(long, env = "WOVE_SUBMIT_PAYLOAD_STORE", value_name = "S3_URL")]
    pub payload_store: Option<String>,
    /// Send every payload through the store, even one that would fit in the job.
    #[arg(long, env = "WOVE_SUBMIT_PAYLOAD_STORE_ALWAYS")]
    pub payload_store_always: bool,
    /// Give the worker an https URL presigned for this many seconds instead
    /// of a reference it reads with its own role (refused when the signing
    /// credentials expire sooner; at most 7 days).
    #[arg(long, env = "WOVE_SUBMIT_PRESIGN", value_name = "SECS", value_parser = seconds)]
    pub presign: Option<Duration>,
}

impl StoreArgs {
    /// Fold the flags into the options' store.
    pub fn apply(&self, store: &mut Option<PayloadStore>) -> Result<(), Failure> {
        if let Some(url) = &self.payload_store {
            let mut given = store.take().unwrap_or_else(|| PayloadStore::new(url.clone()));
            given.url = url.clone();
            *store = Some(given);
        }
        if (self.payload_store_always || self.presign.is_some()) && store.is_none() {
            return Err(refused(
                "--payload-store-always and --presign need a payload store (--payload-store s3://bucket/prefix)",
            ));
        }
        if let Some(store) = store.as_mut() {
            store.always |= self.payload_store_always;
            if let Some(presign) = self.presign {
                store.presign_seconds = Some(presign.as_secs().max(1));
            }
        }
        Ok(())
    }
}

/// The store's S3 client, from the standard AWS chain.
pub async fn client(api_timeout: Duration) -> StoreClient {
    StoreClient::connect(None, api_timeout).await
}

/// Upload the payload's object, and presign it when asked: the URL to put in
/// the job instead of the `s3://` reference, if there is one.
pub async fn upload(store: &StoreClient, object: &StoredObject) -> Result<Option<String>, Failure> {
    // A presign that cannot be had is refused before anything is uploaded.
    let presigned = match object.presign_seconds {
        Some(secs) => Some(store.presign(object, secs).await.map_err(|e| match e {
            wove_submit::store::s3::StoreClientError::PresignOutlivesCredentials { .. } => refused(e),
            other => Failure::new(SubmitExit::Api, other),
        })?),
        None => None,
    };
    store.upload(object).await.map_err(|e| Failure::new(SubmitExit::Api, e))?;
    eprintln!(
        "wove-submit: payload uploaded to {} ({} bytes, sha256 {})",
        object.url(),
        object.bytes.len(),
        object.sha256
    );
    Ok(presigned)
}

/// Delete the payload object of a job that is over. A failure is only a
/// warning: the bucket's lifecycle rule is the backstop, and the job's outcome stands.
pub async fn release(store: &StoreClient, object_url: Option<&str>) {
    let Some((bucket, key)) = object_url.and_then(split_object_url) else { return };
    match store.delete(bucket, key).await {
        Ok(()) => eprintln!("wove-submit: payload object s3://{bucket}/{key} deleted"),
        Err(e) => eprintln!(
            "wove-submit: warning: {} (a lifecycle rule on the bucket removes it later)",
            wove_submit::error_chain(&e)
        ),
    }
}

/// The payload a job reads by reference, downloaded and checked against the
/// job's digest: what `wait --report` reports to when no payload is given.
pub async fn download_payload(
    store: &StoreClient,
    object_url: &str,
    sha256: Option<&str>,
) -> Result<wove_proto::Payload, Failure> {
    let failed =
        |e: String| Failure::new(SubmitExit::Api, format!("cannot read the job's payload back from {object_url}: {e}"));
    let (bucket, key) = split_object_url(object_url).ok_or_else(|| failed("not an s3://bucket/key URL".into()))?;
    let bytes = store.get(bucket, key, super::args::MAX_PAYLOAD_READ).await.map_err(|e| failed(e.to_string()))?;
    // The key ends in the digest the job was given; a different object is not this job's payload.
    let actual = wove_submit::naming::sha256_hex(&bytes);
    if sha256.or_else(|| key.rsplit('/').next()).is_some_and(|want| want != actual) {
        return Err(failed(format!("its SHA-256 is {actual}, not the job's")));
    }
    wove_proto::Payload::decode_within(
        &bytes,
        super::args::MAX_PAYLOAD_READ as usize,
        wove_proto::Form::Any,
        &mut |_| {},
    )
    .map_err(|e| failed(e.to_string()))
}
