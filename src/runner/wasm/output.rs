//! The guest's stdout: kept in memory (it is the result), with a hard cap.
//!
//! WASI reports a failed write to the guest as an error code, which a guest
//! may ignore and go on writing forever. So a write past the cap also raises
//! a flag that the epoch callback turns into a trap: the output limit stops
//! the guest whatever it does with the error.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::guest::Interrupt;

/// In-memory stdout that flags an attempt to exceed `cap`.
#[derive(Debug, Clone)]
pub struct CappedOutput {
    pipe: MemoryOutputPipe,
    cap: usize,
    interrupt: Arc<Interrupt>,
}

impl CappedOutput {
    /// At most `cap` bytes; overflow is reported through `interrupt`.
    pub fn new(cap: usize, interrupt: Arc<Interrupt>) -> Self {
        Self { pipe: MemoryOutputPipe::new(cap), cap, interrupt }
    }

    /// What the guest wrote.
    pub fn contents(&self) -> Bytes {
        self.pipe.contents()
    }

    fn check(&self, len: usize) {
        if len > self.cap.saturating_sub(self.pipe.contents().len()) {
            self.interrupt.output_exceeded.store(true, Ordering::Relaxed);
        }
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.check(bytes.len());
        self.pipe.write(bytes)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.pipe.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        // WASI asks for room before writing, and writes only what it is
        // granted: asking when nothing is left is the overflow.
        let permit = self.pipe.check_write();
        if !matches!(permit, Ok(n) if n > 0) {
            self.interrupt.output_exceeded.store(true, Ordering::Relaxed);
        }
        permit
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedOutput {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.check(buf.len());
        Pin::new(&mut self.pipe).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.pipe).poll_shutdown(cx)
    }
}
