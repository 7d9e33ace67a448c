//! A receiver's reply as any receiver may send it: any status, any bytes in
//! `Retry-After`, a body in chunks of any size, endless or not. The worker
//! reads a bounded amount, never waits sooner than the backoff floor, never
//! past the budget, and never panics.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use wove_worker::internals::reply::{Head, Skim, MAX_BODY_BYTES};
use wove_worker::internals::retry::{next_delay, Backoff};

#[derive(Debug, arbitrary::Arbitrary)]
struct Reply {
    status: u16,
    retry_after: Option<Vec<u8>>,
    /// Chunk sizes; each is scaled up to gigabytes by `scale`.
    chunks: Vec<u32>,
    scale: u8,
    now: u32,
    retry: u16,
    remaining_ms: u32,
}

fuzz_target!(|r: Reply| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(r.now));
    let head = Head::read(r.status, r.retry_after.as_deref(), now);
    let backoff = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30) };
    let remaining = Duration::from_millis(u64::from(r.remaining_ms));
    let wait = next_delay(head.retry_after, &backoff, u32::from(r.retry), remaining);
    assert!(wait <= remaining);
    assert!(wait >= backoff.floor(u32::from(r.retry)).min(remaining), "{wait:?} under the floor");

    // An endless body: the chunks repeat; reading must stop by itself. (An
    // HTTP client never hands over an empty chunk: a body of them is no body.)
    if r.chunks.iter().all(|&c| c == 0) {
        return;
    }
    let mut skim = Skim::default();
    let mut taken = 0u64;
    let sizes = r.chunks.iter().map(|&c| (c as usize) << (r.scale % 24));
    for (n, size) in sizes.cycle().enumerate() {
        if !skim.wants_more() || n > 1_000_000 {
            break;
        }
        skim.took(size);
        taken += 1;
    }
    assert!(!skim.wants_more(), "still reading after {taken} chunks");
    // The last chunk may cross the bound; nothing after it is read.
    let largest = r.chunks.iter().map(|&c| (c as usize) << (r.scale % 24)).max().unwrap_or(0);
    assert!(skim.read() <= MAX_BODY_BYTES.saturating_add(largest).saturating_add(1));
});
