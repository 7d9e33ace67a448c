//! The runner protocol's report channel, as a runner executable may write it:
//! however the bytes arrive in chunks, and whatever the line bound, the
//! reader finds the same outcome and the same first violation, and never
//! panics. Lines are also repeated to sizes far past the input's own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wove_worker::runner::protocol::{parse_line, ReportReader, Reported};

fn read(bytes: &[u8], repeat: usize, bound: usize, cuts: &[u16]) -> (Reported, usize) {
    let mut reader = ReportReader::new(bound);
    let mut live = 0;
    for _ in 0..repeat {
        let mut rest = bytes;
        for &cut in cuts {
            let n = usize::from(cut).min(rest.len());
            let (head, tail) = rest.split_at(n);
            live += reader.feed(head).len();
            rest = tail;
        }
        live += reader.feed(rest).len();
    }
    (reader.finish(), live)
}

fuzz_target!(|input: (Vec<u8>, Vec<u16>, u16, u8)| {
    let (bytes, cuts, bound, repeat) = input;
    for line in bytes.split(|&b| b == b'\n') {
        let _ = parse_line(line);
    }
    // Small bounds make every size extreme; 0 takes the default.
    let bound = if bound == 0 { 64 << 20 } else { usize::from(bound) };
    let repeat = usize::from(repeat % 16).max(1);
    let (whole, live_whole) = read(&bytes, repeat, bound, &[]);
    let (chunked, live_chunked) = read(&bytes, repeat, bound, &cuts);
    assert_eq!(whole.outcome, chunked.outcome);
    assert_eq!(whole.violation, chunked.violation);
    assert_eq!(live_whole, live_chunked);
});
