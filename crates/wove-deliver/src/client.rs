//! The one way an HTTP client is built here: rustls, bundled public roots,
//! plus a private CA bundle when one is configured, and our own resolver.

use std::path::{Path, PathBuf};

/// The CA bundle could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use CA bundle {path}: {detail}")]
pub struct CaBundleError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub detail: String,
}

/// A client builder naming itself `user_agent` (`wove-worker/0.1.0`),
/// trusting the bundled roots and, if given, the CAs in `ca_bundle` (PEM).
pub fn builder(ca_bundle: Option<&Path>, user_agent: &str) -> Result<reqwest::ClientBuilder, CaBundleError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .dns_resolver(std::sync::Arc::new(crate::dns::Resolver::default()));
    if let Some(path) = ca_bundle {
        let bad = |detail: String| CaBundleError { path: path.to_path_buf(), detail };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        // Added to the bundled public roots, not instead of them.
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}
