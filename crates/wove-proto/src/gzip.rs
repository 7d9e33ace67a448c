//! Compressed payloads: gzip inside the base64, told apart from JSON by
//! gzip's magic bytes (JSON text never starts with byte 0x1f).

use std::io::{Read as _, Write as _};

use crate::payload::PayloadError;

const MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether these bytes are gzip data.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Inflate gzip data, refusing more than `limit` bytes of output (a small
/// payload must not inflate into gigabytes).
pub fn inflate(bytes: &[u8], limit: usize) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::GzDecoder::new(bytes).take(cap).read_to_end(&mut out).map_err(|e| PayloadError::Gzip(e.into()))?;
    if out.len() > limit {
        return Err(PayloadError::TooLarge { limit });
    }
    Ok(out)
}

/// Compress with gzip at the best ratio: a payload is compressed once and
/// travels through size-limited places (environments, API requests).
pub fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let text = br#"{"version":1}"#.repeat(100);
        let packed = deflate(&text);
        assert!(is_gzip(&packed) && packed.len() < text.len() / 10);
        assert_eq!(inflate(&packed, text.len()).unwrap(), text);
        assert!(
            matches!(inflate(&packed, text.len() - 1), Err(PayloadError::TooLarge { limit }) if limit == text.len() - 1)
        );
        let mut broken = packed.clone();
        broken.truncate(packed.len() / 2);
        assert!(matches!(inflate(&broken, 1 << 20), Err(PayloadError::Gzip(_))));
        assert!(!is_gzip(b"{\"a\":1}"));
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        // 64 MiB of zeros packs into about 64 KiB.
        let bomb = deflate(&vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20);
        assert!(matches!(inflate(&bomb, 1 << 20), Err(PayloadError::TooLarge { limit: 1_048_576 })));
    }
}
