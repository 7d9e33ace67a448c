//! The body as it arrives: counted against the bound while it is read, hashed
//! on the way, and handed over only once its SHA-256 matches. Nothing of an
//! object that is too large, or altered, is ever decoded.

use sha2::{Digest as _, Sha256};

use super::FetchError;

/// Bytes received so far, within `limit`.
#[derive(Debug)]
pub struct Body {
    bytes: Vec<u8>,
    hasher: Sha256,
    limit: u64,
}

impl Body {
    /// Start a body of at most `limit` bytes, whose length the server says is
    /// `announced` (Content-Length) and the submitter said is `expected`.
    /// Either over the limit, or the two disagreeing, fails before a byte is read.
    pub fn start(limit: u64, announced: Option<u64>, expected: Option<u64>) -> Result<Self, FetchError> {
        if let Some(length) = announced.filter(|&n| n > limit) {
            return Err(FetchError::TooLarge { limit, length: Some(length) });
        }
        if let (Some(announced), Some(expected)) = (announced, expected) {
            if announced != expected {
                return Err(FetchError::SizeMismatch { expected, actual: announced });
            }
        }
        // Never more than the bound up front, whatever the server claims.
        let capacity = announced.or(expected).unwrap_or(0).min(limit).min(64 * 1024 * 1024);
        Ok(Self { bytes: Vec::with_capacity(capacity as usize), hasher: Sha256::new(), limit })
    }

    /// Take the next chunk, or fail as soon as the bound is passed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), FetchError> {
        let total = self.bytes.len() as u64 + chunk.len() as u64;
        if total > self.limit {
            return Err(FetchError::TooLarge { limit: self.limit, length: None });
        }
        self.hasher.update(chunk);
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The bytes, if they are what the reference names.
    pub fn finish(self, sha256: &[u8; 32], expected_size: Option<u64>) -> Result<Vec<u8>, FetchError> {
        let actual_size = self.bytes.len() as u64;
        if let Some(expected) = expected_size.filter(|&n| n != actual_size) {
            return Err(FetchError::SizeMismatch { expected, actual: actual_size });
        }
        let actual: [u8; 32] = self.hasher.finalize().into();
        if &actual != sha256 {
            return Err(FetchError::DigestMismatch { expected: hex::encode(sha256), actual: hex::encode(actual) });
        }
        Ok(self.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    #[test]
    fn a_matching_body_is_handed_over() {
        let mut body = Body::start(10, Some(5), Some(5)).unwrap();
        body.push(b"he").unwrap();
        body.push(b"llo").unwrap();
        assert_eq!(body.finish(&sha(b"hello"), Some(5)).unwrap(), b"hello");
    }

    #[test]
    fn the_bound_holds_before_and_while_reading() {
        assert!(matches!(Body::start(10, Some(11), None), Err(FetchError::TooLarge { length: Some(11), .. })));
        // No Content-Length: the bound holds chunk by chunk.
        let mut body = Body::start(10, None, None).unwrap();
        body.push(&[0; 10]).unwrap();
        assert!(matches!(body.push(&[0; 1]), Err(FetchError::TooLarge { length: None, .. })));
        // A server claiming a huge length reserves nothing near it.
        assert!(Body::start(u64::MAX, Some(u64::MAX / 2), None).unwrap().bytes.capacity() <= 64 * 1024 * 1024);
    }

    #[test]
    fn an_altered_body_is_refused() {
        assert!(matches!(Body::start(10, Some(4), Some(5)), Err(FetchError::SizeMismatch { expected: 5, actual: 4 })));
        let mut body = Body::start(10, None, None).unwrap();
        body.push(b"hellO").unwrap();
        let err = body.finish(&sha(b"hello"), None).unwrap_err();
        assert!(matches!(err, FetchError::DigestMismatch { .. }), "{err:?}");
        let mut body = Body::start(10, None, None).unwrap();
        body.push(b"hell").unwrap();
        assert!(matches!(body.finish(&sha(b"hell"), Some(5)), Err(FetchError::SizeMismatch { .. })));
    }
}
