//! The worker's stdout, shared by a task's output (streamed through) and
//! the lines of `--print-events`: an event line always starts a line of its
//! own, even when the task left half a line unfinished.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the last byte a task's output put on stdout was not a newline.
static MID_LINE: AtomicBool = AtomicBool::new(false);

/// Record that `bytes` went to stdout from a task.
pub fn task_wrote(bytes: &[u8]) {
    if let Some(&last) = bytes.last() {
        MID_LINE.store(last != b'\n', Ordering::Relaxed);
    }
}

/// Write `line` (ending in a newline) to stdout at the start of a line.
pub fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    if MID_LINE.swap(false, Ordering::Relaxed) {
        let _ = out.write_all(b"\n");
    }
    let _ = out.write_all(line.as_bytes());
    let _ = out.flush();
}
