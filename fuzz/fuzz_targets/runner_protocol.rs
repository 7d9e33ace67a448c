//! The runner protocol's report channel, as a runner executable may write it:
//! however the bytes arrive in chunks, the reader finds the same outcome, and
//! never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wove_worker::runner::protocol::{parse_line, ReportReader};

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (bytes, cuts) = input;
    for line in bytes.split(|&b| b == b'\n') {
        let _ = parse_line(line);
    }
    let mut whole = ReportReader::default();
    let live_whole = whole.feed(&bytes);
    let whole = whole.finish();

    let mut chunked = ReportReader::default();
    let mut live_chunked = Vec::new();
    let mut rest = &bytes[..];
    for cut in cuts {
        let n = (cut as usize).min(rest.len());
        let (head, tail) = rest.split_at(n);
        live_chunked.extend(chunked.feed(head));
        rest = tail;
    }
    live_chunked.extend(chunked.feed(rest));
    let chunked = chunked.finish();
    assert_eq!(whole.outcome, chunked.outcome);
    assert_eq!(live_whole, live_chunked);
});
