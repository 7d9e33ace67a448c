//! Streaming a task's output through while keeping a bounded sample of it.
//!
//! The task's stdout and stderr go straight to the worker's own (what
//! `kubectl logs` shows); we keep only the first and last `keep` bytes for
//! error reports, so memory stays flat whatever the task prints.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What was seen on one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    keep: usize,
    /// Total bytes the task wrote.
    pub total: u64,
}

impl Captured {
    /// Keep up to `keep` bytes at each end.
    pub fn new(keep: usize) -> Self {
        Self { keep, ..Self::default() }
    }

    fn push(&mut self, mut chunk: &[u8]) {
        self.total += chunk.len() as u64;
        if self.head.len() < self.keep {
            let n = chunk.len().min(self.keep - self.head.len());
            self.head.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
        }
        if chunk.len() >= self.keep {
            self.tail.clear();
            self.tail.extend(&chunk[chunk.len() - self.keep..]);
        } else {
            let overflow = (self.tail.len() + chunk.len()).saturating_sub(self.keep);
            self.tail.drain(..overflow);
            self.tail.extend(chunk);
        }
    }

    /// Whether bytes between head and tail were dropped.
    pub fn truncated(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// The last `keep` bytes (fewer if less was written), lossily decoded.
    pub fn tail_text(&self) -> String {
        let bytes: Vec<u8> = if self.total as usize <= self.keep {
            self.head.iter().chain(self.tail.iter()).copied().collect()
        } else {
            let mut joined: Vec<u8> = self.head.iter().chain(self.tail.iter()).copied().collect();
            let start = joined.len().saturating_sub(self.keep);
            joined.drain(..start);
            joined
        };
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Head and tail with a marker where bytes were dropped.
    pub fn sample_text(&self) -> String {
        let head = String::from_utf8_lossy(&self.head);
        if !self.truncated() {
            let tail: Vec<u8> = self.tail.iter().copied().collect();
            return format!("{head}{}", String::from_utf8_lossy(&tail));
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        let dropped = self.total - (self.head.len() + self.tail.len()) as u64;
        format!("{head}\n[... {dropped} bytes omitted ...]\n{}", String::from_utf8_lossy(&tail))
    }
}

/// Lock a shared sample; a panic elsewhere cannot leave it inconsistent.
pub fn lock(seen: &Mutex<Captured>) -> MutexGuard<'_, Captured> {
    seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The most read from a task's pipe at once.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Copy `from` to `to` until EOF, recording into `seen` as it goes (so a
/// reader cut off by the drain deadline still leaves its sample). A failing
/// `to` (our own stdout closed) does not stop the copy: the task must not
/// block on a full pipe.
pub async fn pump<R, W>(mut from: R, mut to: W, seen: Arc<Mutex<Captured>>, wrote: fn(&[u8]))
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Capacity, not zeroed bytes: `read_buf` fills what the pipe gives, so a task that prints
    // little touches little of it (a zeroed 64 KiB per stream cost each task 32 page faults).
    let mut buf = Vec::with_capacity(CHUNK);
    let mut sink_ok = true;
    loop {
        buf.clear();
        match from.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                lock(&seen).push(&buf);
                if sink_ok && to.write_all(&buf).await.is_err() {
                    sink_ok = false;
                }
                wrote(&buf);
            }
        }
    }
    let _ = to.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_head_and_tail_only() {
        let mut c = Captured::new(4);
        for chunk in [&b"abc"[..], b"defgh", b"ij", b"klmnopq"] {
            c.push(chunk);
        }
        assert_eq!(c.total, 17);
        assert!(c.truncated());
        assert_eq!(c.tail_text(), "nopq");
        assert_eq!(c.sample_text(), "abcd\n[... 9 bytes omitted ...]\nnopq");
    }

    #[test]
    fn output_that_fits_head_and_tail_is_whole() {
        let mut c = Captured::new(8);
        c.push(b"hello");
        c.push(b" you");
        assert!(!c.truncated());
        assert_eq!(c.tail_text(), "ello you", "the tail is the last `keep` bytes");
        assert_eq!(c.sample_text(), "hello you");
    }
}
