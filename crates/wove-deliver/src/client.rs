//! The one way an HTTP client is built here: rustls with ring, trusting
//! exactly the bundled public roots (webpki-roots) plus a private CA bundle
//! when one is configured, and our own resolver.
//!
//! The trust roots are handed to reqwest as a finished rustls config instead
//! of being left to its features. Another crate in the default build
//! (object_store, for S3) turns on reqwest's native roots, and with them every
//! client read and parsed the machine's whole certificate store as it was
//! built: about 150 files, most of a trivial task's start-up, and trust in
//! whatever the image's store holds, which the flavours built without it did
//! not have. Here every flavour trusts the same roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

/// A client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA bundle cannot be read, is not PEM, or holds no usable certificate.
    #[error("cannot use CA bundle {path}: {detail}")]
    CaBundle {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// rustls refused the configuration (its provider offers no protocol
    /// version we ask for: not expected with ring).
    #[error("cannot set up TLS")]
    Tls(#[source] rustls::Error),
}

/// A client builder naming itself `user_agent` (`wove-worker/0.1.0`),
/// trusting the bundled roots and, if given, the CAs in `ca_bundle` (PEM).
pub fn builder(ca_bundle: Option<&Path>, user_agent: &str) -> Result<reqwest::ClientBuilder, ClientError> {
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_bundle {
        // Added to the bundled public roots, not instead of them.
        add_bundle(&mut roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ClientError::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // What reqwest itself offers when it builds the config: our clients speak HTTP/1.1.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(user_agent)
        .dns_resolver(Arc::new(crate::dns::Resolver::default())))
}

fn add_bundle(roots: &mut rustls::RootCertStore, path: &Path) -> Result<(), ClientError> {
    let bad = |detail: String| ClientError::CaBundle { path: path.to_path_buf(), detail };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not PEM: {e}")))?;
        roots.add(cert).map_err(|e| bad(format!("a certificate in it is not usable: {e}")))?;
        added += 1;
    }
    if added == 0 {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn refusal(text: &[u8]) -> String {
        let (_dir, path) = bundle(text);
        match builder(Some(&path), "t") {
            Err(e @ ClientError::CaBundle { .. }) => e.to_string(),
            Err(e) => panic!("refused for another reason: {e}"),
            Ok(_) => panic!("a bad bundle was taken"),
        }
    }

    #[test]
    fn a_bundle_without_a_certificate_is_refused_naming_the_file() {
        let said = refusal(b"not a certificate\n");
        assert!(said.contains("ca.pem") && said.contains("no PEM certificate"), "{said}");
    }

    #[test]
    fn a_certificate_that_is_not_base64_is_refused() {
        let said = refusal(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        assert!(said.contains("not PEM"), "{said}");
    }

    #[test]
    fn a_certificate_whose_der_is_not_x509_is_refused() {
        // Valid base64, not a certificate.
        let said = refusal(b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n");
        assert!(said.contains("not usable"), "{said}");
    }

    #[test]
    fn a_missing_bundle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let said = builder(Some(&dir.path().join("absent.pem")), "t").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(said.contains("absent.pem"), "{said}");
    }

    /// reqwest takes a preconfigured rustls config only of its own rustls version, and otherwise
    /// fails at `build()`: this fails if the two ever drift apart.
    #[test]
    fn reqwest_takes_the_rustls_config() {
        let built = builder(None, "t").map(|b| b.build());
        assert!(matches!(built, Ok(Ok(_))), "{built:?}");
    }
}
