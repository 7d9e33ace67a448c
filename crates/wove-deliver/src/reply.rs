//! What a sender takes from a receiver's reply: its status, its
//! `Retry-After`, and as little of its body as keeps the connection usable.
//! Everything here is bounded by the sender, not by the receiver: a header
//! of any length or bytes, a body of any size or none that ends.

use std::time::{Duration, SystemTime};

use crate::retry::{classify_status, parse_retry_after, Verdict};

/// Most of a reply's body a sender reads. What a receiver says in a body
/// is not ours to act on: the status decides.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Longest a sender spends reading a reply's body.
pub const BODY_READ: Duration = Duration::from_secs(2);
/// Longest `Retry-After` value read; anything longer is not a delay or a date.
const MAX_RETRY_AFTER: usize = 64;

/// A reply's head, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// Delivered, retry, or give up.
    pub verdict: Verdict,
    /// The wait the receiver asked for, if it asked in a form we read.
    pub retry_after: Option<Duration>,
}

impl Head {
    /// Read a status and the raw bytes of a `Retry-After` header, as of `now`.
    pub fn read(status: u16, retry_after: Option<&[u8]>, now: SystemTime) -> Self {
        let retry_after = retry_after
            .filter(|v| v.len() <= MAX_RETRY_AFTER)
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| parse_retry_after(v, now));
        Self { status, verdict: classify_status(status), retry_after }
    }
}

/// Counts a body's bytes as chunks arrive and says when to stop reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skim {
    read: usize,
}

impl Skim {
    /// Whether to read another chunk.
    pub fn wants_more(&self) -> bool {
        self.read <= MAX_BODY_BYTES
    }

    /// A chunk of `len` bytes arrived (and was dropped at once).
    pub fn took(&mut self, len: usize) {
        self.read = self.read.saturating_add(len);
    }

    /// Bytes read so far.
    pub fn read(&self) -> usize {
        self.read
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stops_after_the_bound() {
        let mut skim = Skim::default();
        let mut chunks = 0;
        while skim.wants_more() && chunks < 1_000_000 {
            skim.took(1000);
            chunks += 1;
        }
        assert_eq!(chunks, MAX_BODY_BYTES / 1000 + 1);
        assert_eq!(skim.read(), chunks * 1000, "every byte taken is counted");
        // The 8 KiB of docs/events.md, to the byte.
        let mut exact = Skim::default();
        exact.took(8 * 1024);
        assert!(exact.wants_more());
        exact.took(1);
        assert!(!exact.wants_more());
        skim.took(usize::MAX);
        assert!(!skim.wants_more());
    }

    #[test]
    fn retry_after_that_is_not_a_delay_is_ignored() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(Head::read(429, Some(b"3"), now).retry_after, Some(Duration::from_secs(3)));
        assert_eq!(Head::read(429, Some(b"\xff\xfe"), now).retry_after, None);
        assert_eq!(Head::read(429, Some("9".repeat(100).as_bytes()), now).retry_after, None);
        assert_eq!(Head::read(204, None, now).verdict, Verdict::Delivered);
    }
}
