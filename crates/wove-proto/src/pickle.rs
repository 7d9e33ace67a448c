//! A pickle as events carry it: standard base64 on the wire, raw bytes inside.
//!
//! A result pickle can be hundreds of megabytes. Holding it raw and encoding
//! it straight into the event's body keeps one copy of the encoded text in
//! memory (the body) instead of two (a base64 string, then the body).

use std::fmt;

use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Pickle bytes, serialized as standard base64 (what Wove's `_decode_pickle` reads).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    /// Decode standard base64 text.
    pub fn from_base64(text: &str) -> Result<Self, base64::DecodeError> {
        STANDARD.decode(text).map(Self)
    }

    /// The base64 text (a copy: for tests and small pickles).
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// Bytes the base64 text takes in an event.
    pub fn encoded_len(&self) -> usize {
        encoded_len(self.0.len())
    }
}

/// Bytes of standard, padded base64 for `raw` bytes.
pub fn encoded_len(raw: usize) -> usize {
    raw.div_ceil(3) * 4
}

impl fmt::Debug for Pickle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pickle({} bytes)", self.0.len())
    }
}

impl Serialize for Pickle {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&Base64Display::new(&self.0, &STANDARD))
    }
}

impl<'de> Deserialize<'de> for Pickle {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn travels_as_standard_base64() {
        let pickle = Pickle(vec![0x80, 0x05, 0xff, 0xfe, b'.']);
        let json = serde_json::to_string(&pickle).unwrap();
        assert_eq!(json, format!("\"{}\"", STANDARD.encode(&pickle.0)));
        assert_eq!(json.len() - 2, pickle.encoded_len());
        assert_eq!(serde_json::from_str::<Pickle>(&json).unwrap(), pickle);
    }

    #[test]
    fn text_that_is_not_base64_is_refused() {
        assert!(serde_json::from_str::<Pickle>("\"not base64!\"").is_err());
    }

    #[test]
    fn encoded_length_is_exact_for_every_remainder() {
        for n in 0..10 {
            assert_eq!(encoded_len(n), STANDARD.encode(vec![0u8; n]).len());
        }
    }
}
