//! The `wasm` runner: WebAssembly tasks, sandboxed by wasmtime.
//!
//! - [`engine`]: the engine configuration (shared with `precompile`) and loading.
//! - [`source`]: module bytes from the image, the payload, or https + sha256.
//! - [`guest`]: one guest run on its own thread, with memory, time and output limits.
//!
//! The guest gets its JSON input on stdin, its args and env, and no
//! filesystem or network unless the task grants directories. What it writes
//! to stdout is the result.

pub mod engine;
pub mod guest;
pub mod output;
pub mod source;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use wove_proto::task::{ModuleSource, WasmLimits, WasmTask};
use wove_proto::{ErrorInfo, ErrorKind, Payload, PayloadError};

use super::{BoxFuture, Context, Finished, Outcome, Prepared, Runner, TaskValue};
use crate::config::RunnerSettings;
use engine::{LoadError, Program};
use guest::{GuestEnd, GuestReport, GuestSpec, Interrupt};
use source::Fetched;

/// How often the engine's epoch ticks: the granularity of timeouts and cancels.
const TICK: Duration = Duration::from_millis(10);
/// A guest stuck inside a host call (a long sleep) never sees the epoch; past
/// its deadline by this much, the worker stops waiting for it.
const ABANDON_AFTER: Duration = Duration::from_secs(2);
/// Limit on a module download.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `{"runner": "wasm", "module": ..., ...}` tasks.
#[derive(Debug, Clone, Copy, Default)]
pub struct WasmRunner;

impl Runner for WasmRunner {
    fn name(&self) -> &str {
        wove_proto::task::WASM_RUNNER
    }

    fn prepare(&self, payload: &Payload, settings: &RunnerSettings) -> Result<Box<dyn Prepared>, PayloadError> {
        let task: WasmTask = payload.task_for(self.name())?.decode()?;
        task.validate()?;
        settings.limits.check_command(&task.args, task.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let max_module = settings.limits.wasm_module_bytes;
        // Decoded here so bad base64 is a bad payload, before anything starts.
        let module = match &task.module {
            ModuleSource::Path(path) => Module::File { path: path.into(), max_bytes: max_module },
            ModuleSource::Base64(text) => {
                Module::Inline(base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|e| {
                    PayloadError::Field {
                        field: "task.module.base64".into(),
                        problem: format!("not valid base64: {e}"),
                    }
                })?)
            }
            ModuleSource::Url { url, sha256, max_bytes } => Module::Url {
                url: url.clone(),
                sha256: sha256.clone(),
                // The task may ask for less than the worker allows, never more.
                max_bytes: max_bytes.unwrap_or(WasmLimits::DOWNLOAD_BYTES).min(max_module),
            },
        };
        if let Module::Inline(bytes) = &module {
            if bytes.len() as u64 > max_module {
                return Err(PayloadError::field(
                    "task.module.base64",
                    format!("{} bytes, more than the {max_module} allowed (--max-wasm-module-bytes)", bytes.len()),
                ));
            }
        }
        Ok(Box::new(PreparedWasm { task, module }))
    }
}

/// The module source, decoded.
enum Module {
    File { path: std::path::PathBuf, max_bytes: u64 },
    Inline(Vec<u8>),
    Url { url: String, sha256: String, max_bytes: u64 },
}

struct PreparedWasm {
    task: WasmTask,
    module: Module,
}

impl Prepared for PreparedWasm {
    fn run(self: Box<Self>, ctx: Context) -> BoxFuture<'static, Finished> {
        Box::pin(async move { self.execute(ctx).await.into() })
    }
}

impl PreparedWasm {
    /// The module fetched, the guest run on a thread of its own, its end read as an outcome.
    /// The task's timeout covers all of it, the download included.
    async fn execute(self, ctx: Context) -> Outcome {
        let started = Instant::now();
        let timeout = Duration::from_secs_f64(self.task.limits.timeout_seconds.unwrap_or(WasmLimits::TIMEOUT_SECONDS));
        let deadline = started + timeout;
        let fetched = match fetch(self.module, &ctx, deadline, timeout).await {
            Ok(fetched) => fetched,
            Err(outcome) => return outcome,
        };
        let engine = match engine::engine() {
            Ok(engine) => engine,
            Err(e) => return Outcome::failed(ErrorInfo::of(ErrorKind::EngineUnavailable, e.to_string())),
        };
        let spec = spec_of(&self.task, &ctx, deadline);
        match run_guest(engine, fetched, spec, &ctx, deadline + ABANDON_AFTER).await {
            Ok(waited) => waited.outcome(timeout),
            Err(outcome) => outcome,
        }
    }
}

/// The module's bytes or file. A file is checked before the engine reads it (a wrong path to
/// a huge file costs nothing); a download is part of the task, so its timeout and a cancel
/// cut it short.
async fn fetch(module: Module, ctx: &Context, deadline: Instant, timeout: Duration) -> Result<Fetched, Outcome> {
    match module {
        Module::File { path, max_bytes } => match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > max_bytes => {
                let message = format!(
                    "the module {} is {} bytes, more than the {max_bytes} allowed (--max-wasm-module-bytes)",
                    path.display(),
                    meta.len()
                );
                Err(Outcome::failed(ErrorInfo::of(ErrorKind::ModuleTooLarge, message)))
            }
            _ => Ok(Fetched::File(path)),
        },
        Module::Inline(bytes) => Ok(Fetched::Bytes(bytes)),
        Module::Url { url, sha256, max_bytes } => {
            let download = source::download(&url, &sha256, max_bytes, ctx.ca_bundle.as_deref(), DOWNLOAD_TIMEOUT);
            tokio::select! {
                fetched = download => fetched
                    .map(Fetched::Bytes)
                    .map_err(|e| Outcome::failed(ErrorInfo::of(e.kind(), wove_proto::error_chain(&e)))),
                sig = ctx.signals.wait_cancelled() => Err(Outcome::Cancelled(Some(sig))),
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    let message = format!(
                        "downloading the module took longer than the task's timeout of {}s",
                        timeout.as_secs_f64()
                    );
                    Err(Outcome::failed(ErrorInfo::of(ErrorKind::Timeout, message)))
                }
            }
        }
    }
}

/// What the guest gets: its arguments, environment, input, directories and bounds.
fn spec_of(task: &WasmTask, ctx: &Context, deadline: Instant) -> Spec {
    let limits = &task.limits;
    Spec {
        precompiled_dirs: ctx.settings.precompiled_dirs.clone(),
        argv: std::iter::once("task".to_string()).chain(task.args.iter().cloned()).collect(),
        env: task.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        stdin: task.input.as_ref().map(|v| serde_json::to_vec(v).unwrap_or_default()).unwrap_or_default(),
        dirs: task
            .dirs
            .iter()
            .map(|d| (d.host.clone(), d.guest.clone().unwrap_or_else(|| d.host.clone()), d.writable))
            .collect(),
        memory_bytes: usize::try_from(limits.memory_bytes.unwrap_or(WasmLimits::MEMORY_BYTES)).unwrap_or(usize::MAX),
        output_bytes: usize::try_from(limits.output_bytes.unwrap_or(WasmLimits::OUTPUT_BYTES)).unwrap_or(usize::MAX),
        deadline,
    }
}

/// How waiting for the guest thread ended.
enum Waited {
    /// A cancelling signal came (whatever the guest did after it).
    Cancelled(nix::sys::signal::Signal),
    /// Cancelled or timed out, but stuck in a host call: we stopped waiting at `abandon_at`.
    Abandoned,
    /// The thread died without reporting (a panic).
    Died,
    /// The thread reported: the module did not load, or the guest ran.
    Reported(Result<GuestReport, LoadError>),
}

impl Waited {
    fn outcome(self, timeout: Duration) -> Outcome {
        match self {
            Self::Cancelled(sig) => Outcome::Cancelled(Some(sig)),
            Self::Abandoned => Outcome::failed(
                ErrorInfo::of(ErrorKind::Timeout, format!("task exceeded its timeout of {}s", timeout.as_secs_f64()))
                    .with_detail("abandoned", true),
            ),
            Self::Died => {
                Outcome::failed(ErrorInfo::of(ErrorKind::WorkerPanic, "the WebAssembly guest thread panicked"))
            }
            Self::Reported(Err(e)) => {
                let kind = match e {
                    LoadError::Incompatible(_) => ErrorKind::IncompatiblePrecompiled,
                    LoadError::NoCompiler => ErrorKind::NoCompiler,
                    LoadError::Read { .. } | LoadError::UntrustedPrecompiledFile { .. } => ErrorKind::ModuleUnavailable,
                    _ => ErrorKind::InvalidModule,
                };
                Outcome::failed(ErrorInfo::of(kind, e.to_string()))
            }
            Self::Reported(Ok(report)) => outcome(report, timeout),
        }
    }
}

/// Compile or load and run the guest on a thread of its own (both are CPU-bound, and the
/// runtime has one thread), ticking the engine's epoch so that its deadline and a cancel
/// take effect, until it reports or `abandon_at` passes.
async fn run_guest(
    engine: &'static wasmtime::Engine,
    fetched: Fetched,
    spec: Spec,
    ctx: &Context,
    abandon_at: Instant,
) -> Result<Waited, Outcome> {
    let interrupt = Arc::new(Interrupt::default());
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let thread_interrupt = interrupt.clone();
    let spawned = std::thread::Builder::new().name("wasm-guest".into()).spawn(move || {
        let _ = tx.send(load_and_run(engine, fetched, spec, thread_interrupt));
    });
    if let Err(e) = spawned {
        let message = format!("cannot start the guest thread: {e}");
        return Err(Outcome::failed(ErrorInfo::of(ErrorKind::SpawnFailed, message)));
    }
    let mut ticks = tokio::time::interval(TICK);
    let abandon_at = tokio::time::Instant::from_std(abandon_at);
    let mut cancelled_by = None;
    let reported = loop {
        tokio::select! {
            r = &mut rx => break Some(r),
            _ = ticks.tick() => engine.increment_epoch(),
            sig = ctx.signals.wait_cancelled(), if cancelled_by.is_none() => {
                cancelled_by = Some(sig);
                interrupt.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                engine.increment_epoch();
            }
            _ = tokio::time::sleep_until(abandon_at) => break None,
        }
    };
    Ok(match (cancelled_by, reported) {
        (Some(sig), _) => Waited::Cancelled(sig),
        (None, None) => Waited::Abandoned,
        (None, Some(Err(_))) => Waited::Died,
        (None, Some(Ok(result))) => Waited::Reported(result),
    })
}

/// A [`GuestSpec`] without its program, which is loaded on the guest thread.
struct Spec {
    precompiled_dirs: Vec<std::path::PathBuf>,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Vec<u8>,
    dirs: Vec<(String, String, bool)>,
    memory_bytes: usize,
    output_bytes: usize,
    deadline: Instant,
}

/// On the guest thread: compile or load (CPU-heavy, so off the runtime), then run.
fn load_and_run(
    engine: &wasmtime::Engine,
    fetched: Fetched,
    spec: Spec,
    interrupt: Arc<Interrupt>,
) -> Result<GuestReport, LoadError> {
    let program: Program = match fetched {
        Fetched::File(path) => engine::load_file(engine, &path, &spec.precompiled_dirs)?,
        Fetched::Bytes(bytes) => engine::load_bytes(engine, &bytes)?,
    };
    let spec = GuestSpec {
        program,
        argv: spec.argv,
        env: spec.env,
        stdin: spec.stdin,
        dirs: spec.dirs,
        memory_bytes: spec.memory_bytes,
        output_bytes: spec.output_bytes,
        deadline: spec.deadline,
    };
    Ok(guest::run(engine, spec, interrupt))
}

fn outcome(report: GuestReport, timeout: Duration) -> Outcome {
    let stdout_bytes = report.stdout.len();
    let failed = |kind: ErrorKind, message: String| {
        Outcome::failed(ErrorInfo::of(kind, message).with_detail("stdout_bytes", stdout_bytes))
    };
    match report.end {
        GuestEnd::Exited(0) => Outcome::Succeeded(TaskValue::Json(result_value(&report.stdout))),
        GuestEnd::Exited(code) => {
            let mut error = ErrorInfo::of(ErrorKind::NonZeroExit, format!("the module exited with code {code}"));
            error = error.with_detail("exit_code", code);
            Outcome::failed(error)
        }
        GuestEnd::Trapped(message, full) => {
            Outcome::failed(ErrorInfo::of(ErrorKind::Trap, message).with_traceback(full))
        }
        GuestEnd::Timeout => {
            failed(ErrorKind::Timeout, format!("task exceeded its timeout of {}s", timeout.as_secs_f64()))
        }
        GuestEnd::MemoryLimit => {
            failed(ErrorKind::MemoryLimit, "the module tried to grow its memory past the limit".into())
        }
        GuestEnd::OutputLimit => {
            failed(ErrorKind::OutputLimit, "the module wrote more to stdout than the output limit".into())
        }
        // The async side reports the signal; reaching here means it raced the guest's own end.
        GuestEnd::Cancelled => Outcome::Cancelled(None),
        GuestEnd::Setup(message) => Outcome::failed(ErrorInfo::of(ErrorKind::InvalidModule, message)),
    }
}

/// Stdout as the result: empty is `null`, JSON is JSON, anything else a string.
fn result_value(stdout: &[u8]) -> serde_json::Value {
    if stdout.iter().all(u8::is_ascii_whitespace) {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(stdout).unwrap_or_else(|_| String::from_utf8_lossy(stdout).into_owned().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdout_becomes_json_or_text() {
        assert_eq!(result_value(b" \n"), serde_json::Value::Null);
        assert_eq!(result_value(b"{\"a\": [1]}\n"), serde_json::json!({"a": [1]}));
        assert_eq!(result_value(b"hello world\n"), serde_json::json!("hello world\n"));
    }
}
