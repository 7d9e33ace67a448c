//! Running one guest to its end on a plain thread.
//!
//! The synchronous WASI bindings block on an internal runtime of their own
//! and must not run on a tokio worker thread, so the guest gets a thread of
//! its own; the async side ticks the engine's epoch and can ask it to stop.
//! Every way a guest can end is mapped to a [`GuestEnd`] here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::engine::Program;
use super::output::CappedOutput;

/// Everything a guest run needs.
#[derive(Debug)]
pub struct GuestSpec {
    /// The loaded program.
    pub program: Program,
    /// `argv`, program name first.
    pub argv: Vec<String>,
    /// The guest's whole environment.
    pub env: Vec<(String, String)>,
    /// Bytes on stdin.
    pub stdin: Vec<u8>,
    /// Preopened directories: host path, guest path, writable.
    pub dirs: Vec<(String, String, bool)>,
    /// Linear memory limit in bytes.
    pub memory_bytes: usize,
    /// Stdout limit in bytes.
    pub output_bytes: usize,
    /// Wall-clock deadline.
    pub deadline: Instant,
}

/// How a guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEnd {
    /// It returned from `_start`/`run` (code 0) or called `proc_exit` (any code).
    Exited(i32),
    /// It trapped: the message, and the full error with its wasm backtrace.
    Trapped(String, String),
    /// The wall-clock limit passed.
    Timeout,
    /// It tried to grow memory past the limit.
    MemoryLimit,
    /// It wrote more than the output limit to stdout.
    OutputLimit,
    /// A cancelling signal stopped it.
    Cancelled,
    /// It could not be started (missing import, no entry point, bad directory).
    Setup(String),
}

/// The end and what the guest wrote to stdout.
#[derive(Debug)]
pub struct GuestReport {
    /// How it ended.
    pub end: GuestEnd,
    /// Its stdout, at most the output limit.
    pub stdout: Vec<u8>,
}

/// Shared between the guest thread and the async side.
#[derive(Debug, Default)]
pub struct Interrupt {
    /// Set by the async side on a cancelling signal.
    pub cancel: AtomicBool,
    /// Set by the guest's stdout on a write past the output limit.
    pub output_exceeded: AtomicBool,
    timed_out: AtomicBool,
}

struct Limits {
    memory_bytes: usize,
    memory_hit: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_hit = true;
            // An error (not `false`) traps at once, so a runaway guest cannot
            // keep going on a failed allocation.
            return Err(wasmtime::Error::msg(format!("memory limit of {} bytes reached", self.memory_bytes)));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

struct P1State {
    wasi: WasiP1Ctx,
    limits: Limits,
}

struct P2State {
    ctx: WasiCtx,
    table: ResourceTable,
    limits: Limits,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

/// Run the guest to its end. Blocks: call from a plain thread.
pub fn run(engine: &Engine, spec: GuestSpec, interrupt: Arc<Interrupt>) -> GuestReport {
    let stdout = CappedOutput::new(spec.output_bytes, interrupt.clone());
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdin(MemoryInputPipe::new(spec.stdin.clone()))
        .stdout(stdout.clone())
        .inherit_stderr()
        .args(&spec.argv)
        .envs(&spec.env)
        .allow_blocking_current_thread(true);
    for (host, guest, writable) in &spec.dirs {
        let perms = if *writable { FsPerms::ReadWrite } else { FsPerms::ReadOnly };
        if let Err(e) = builder.preopened_dir(host, guest, perms) {
            return GuestReport { end: GuestEnd::Setup(format!("cannot open directory {host}: {e}")), stdout: vec![] };
        }
    }
    let limits = Limits { memory_bytes: spec.memory_bytes, memory_hit: false };
    let end = match &spec.program {
        Program::Module(module) => {
            let mut store = Store::new(engine, P1State { wasi: builder.build_p1(), limits });
            store.limiter(|s| &mut s.limits);
            arm_epoch(&mut store, spec.deadline, interrupt.clone());
            let result = run_p1(engine, &mut store, module);
            classify(result.map(|()| 0), store.data().limits.memory_hit, &interrupt)
        }
        Program::Component(component) => {
            let state = P2State { ctx: builder.build(), table: ResourceTable::new(), limits };
            let mut store = Store::new(engine, state);
            store.limiter(|s| &mut s.limits);
            arm_epoch(&mut store, spec.deadline, interrupt.clone());
            let result = run_p2(engine, &mut store, component);
            classify(result, store.data().limits.memory_hit, &interrupt)
        }
    };
    GuestReport { end, stdout: stdout.contents().to_vec() }
}

/// Check the clock and the cancel flag each epoch tick (the async side ticks).
fn arm_epoch<T: 'static>(store: &mut Store<T>, deadline: Instant, interrupt: Arc<Interrupt>) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if interrupt.cancel.load(Ordering::Relaxed) {
            return Err(wasmtime::Error::msg("cancelled"));
        }
        if interrupt.output_exceeded.load(Ordering::Relaxed) {
            return Err(wasmtime::Error::msg("output limit reached"));
        }
        if Instant::now() >= deadline {
            interrupt.timed_out.store(true, Ordering::Relaxed);
            return Err(wasmtime::Error::msg("wall-clock limit reached"));
        }
        Ok(UpdateDeadline::Continue(1))
    });
}

/// Errors before the guest's code runs are setup errors, not traps.
enum RunError {
    Setup(String),
    Guest(wasmtime::Error),
}

fn run_p1(engine: &Engine, store: &mut Store<P1State>, module: &wasmtime::Module) -> Result<(), RunError> {
    let mut linker = wasmtime::Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut P1State| &mut s.wasi)
        .map_err(|e| RunError::Setup(format!("{e:#}")))?;
    let instance = linker.instantiate(&mut *store, module).map_err(instantiation_error)?;
    let start = instance
        .get_typed_func::<(), ()>(&mut *store, "_start")
        .map_err(|_| RunError::Setup("the module exports no `_start`: it is not a WASI command".into()))?;
    start.call(&mut *store, ()).map_err(RunError::Guest)
}

fn run_p2(
    engine: &Engine,
    store: &mut Store<P2State>,
    component: &wasmtime::component::Component,
) -> Result<i32, RunError> {
    let mut linker = wasmtime::component::Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| RunError::Setup(format!("{e:#}")))?;
    let command = wasmtime_wasi::p2::bindings::sync::Command::instantiate(&mut *store, component, &linker)
        .map_err(instantiation_error)?;
    match command.wasi_cli_run().call_run(&mut *store) {
        Ok(Ok(())) => Ok(0),
        // `wasi:cli/run` returning `err` is the component's way to exit non-zero.
        Ok(Err(())) => Ok(1),
        Err(e) => Err(RunError::Guest(e)),
    }
}

/// Instantiation runs the start function and sizes memory, so a trap or the
/// memory limit can surface here too; anything else is a setup problem.
fn instantiation_error(e: wasmtime::Error) -> RunError {
    if e.downcast_ref::<wasmtime::Trap>().is_some() || format!("{e:?}").contains("memory limit") {
        RunError::Guest(e)
    } else {
        RunError::Setup(format!("cannot instantiate: {e:#}"))
    }
}

fn classify(result: Result<i32, RunError>, memory_hit: bool, interrupt: &Interrupt) -> GuestEnd {
    // A guest that ignored its failed writes and ended anyway still lost output.
    if interrupt.output_exceeded.load(Ordering::Relaxed) && !matches!(result, Err(RunError::Setup(_))) {
        return GuestEnd::OutputLimit;
    }
    let e = match result {
        Ok(code) => return GuestEnd::Exited(code),
        Err(RunError::Setup(message)) => return GuestEnd::Setup(message),
        Err(RunError::Guest(e)) => e,
    };
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return GuestEnd::Exited(exit.0);
    }
    if interrupt.cancel.load(Ordering::Relaxed) {
        return GuestEnd::Cancelled;
    }
    if interrupt.timed_out.load(Ordering::Relaxed) {
        return GuestEnd::Timeout;
    }
    if memory_hit {
        return GuestEnd::MemoryLimit;
    }
    let full = format!("{e:?}");
    let message = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("wasm trap: {trap}"),
        None => e.root_cause().to_string(),
    };
    GuestEnd::Trapped(message, full)
}
