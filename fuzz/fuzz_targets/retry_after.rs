//! `Retry-After` as any receiver may send it: a delay or nothing, never a panic.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use wove_worker::internals::retry::{next_delay, parse_retry_after, Backoff};

fuzz_target!(|input: (String, u32, u64, u16)| {
    let (text, now, remaining_ms, retry) = input;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(now));
    let asked = parse_retry_after(&text, now);
    let remaining = Duration::from_millis(remaining_ms % 3_600_000);
    let backoff = Backoff { base: Duration::from_millis(500), cap: Duration::from_secs(30) };
    let wait = next_delay(asked, &backoff, u32::from(retry), remaining);
    assert!(wait <= remaining);
});
