//! The one engine configuration, shared by `wove-worker precompile` and the
//! runner: wasmtime refuses a `.cwasm` made with any other (version, CPU
//! flags, epoch interruption, wasm features), so both must build it here.

use std::path::Path;
use std::sync::OnceLock;

use wasmtime::component::Component;
use wasmtime::{Engine, Module, Precompiled};

/// A loaded program, ready to instantiate.
#[derive(Debug, Clone)]
pub enum Program {
    /// A core module (WASI preview 1 command: `_start`).
    Module(Module),
    /// A component (WASI preview 2: `wasi:cli/run`).
    Component(Component),
}

/// Why a program could not be loaded. Messages are for the task's error.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not WebAssembly at all.
    #[error("not a WebAssembly module, component or precompiled .cwasm")]
    NotWasm,
    /// wasmtime rejected it (invalid module, unsupported feature).
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    /// A `.cwasm` made by another wasmtime version or configuration.
    #[error(
        "precompiled module is incompatible with this worker ({0}); \
         precompile it again with this worker's `wove-worker precompile`"
    )]
    Incompatible(String),
    /// A `.cwasm` from a source other than the image.
    #[error("precompiled modules are accepted only from `path` (files in the image), never from the payload or a URL")]
    UntrustedPrecompiled,
    /// A `.cwasm` outside the directories the operator trusts, or one the
    /// worker's user could have written.
    #[error("refusing to load the precompiled module {path}: {why}")]
    UntrustedPrecompiledFile {
        /// The file.
        path: String,
        /// Which rule it breaks.
        why: String,
    },
    /// A `.wasm` given to a worker built without the compiler.
    #[error(
        "this worker is built without a WebAssembly compiler: precompile the module with `wove-worker precompile`"
    )]
    NoCompiler,
    /// The file could not be read.
    #[error("cannot read {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}

/// The engine configuration. Epoch interruption is what enforces the
/// wall-clock limit; everything else stays at wasmtime's defaults.
pub fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    config.wasm_component_model(true);
    config
}

/// The process's engine, built once.
pub fn engine() -> Result<&'static Engine, LoadError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| Engine::new(&config()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| LoadError::Invalid(format!("cannot configure the engine: {e}")))
}

/// Whether bytes look like WebAssembly (`\0asm`), as opposed to a `.cwasm` (ELF).
fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\0asm")
}

/// A component's header: `\0asm`, then version 0x0d and layer 1.
#[cfg(any(feature = "wasm", test))]
fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && is_wasm(bytes) && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

/// Load a file from the image: `.wasm` compiled, `.cwasm` without compiling.
///
/// Loading a `.cwasm` runs machine code from it (wasmtime's deserialize is
/// `unsafe` for that reason): only files in a directory the operator named
/// (`trusted_dirs`, from `--precompiled-dir`) that the worker's own user
/// cannot write are loaded, and from the very file descriptor that was
/// checked, so swapping the file after the check changes nothing.
pub fn load_file(engine: &Engine, path: &Path, trusted_dirs: &[std::path::PathBuf]) -> Result<Program, LoadError> {
    use std::io::Read as _;
    let read_err =
        |e: &dyn std::fmt::Display| LoadError::Read { path: path.display().to_string(), detail: e.to_string() };
    let mut file = std::fs::File::open(path).map_err(|e| read_err(&e))?;
    let mut head = [0u8; 8];
    let n = file.read(&mut head).map_err(|e| read_err(&e))?;
    if n < head.len() {
        return Err(LoadError::NotWasm);
    }
    if is_wasm(&head) {
        let bytes = std::fs::read(path).map_err(|e| read_err(&e))?;
        return compile(engine, &bytes);
    }
    if !head.starts_with(b"\x7fELF") {
        return Err(LoadError::NotWasm);
    }
    trust_precompiled(path, &file, trusted_dirs)?;
    let mut bytes = head.to_vec();
    file.read_to_end(&mut bytes).map_err(|e| read_err(&e))?;
    let incompatible = |e: &dyn std::fmt::Display| LoadError::Incompatible(e.to_string());
    match Engine::detect_precompiled(&bytes) {
        // SAFETY: `deserialize` trusts its input to be a `.cwasm` this
        // wasmtime produced. These bytes come from a file in a directory the
        // operator declared trusted, not writable by the worker's user (so
        // not by a task running as it), read from the descriptor that was
        // checked; wasmtime still checks version and configuration.
        Some(Precompiled::Module) => {
            unsafe { Module::deserialize(engine, &bytes) }.map(Program::Module).map_err(|e| incompatible(&e))
        }
        Some(Precompiled::Component) => {
            unsafe { Component::deserialize(engine, &bytes) }.map(Program::Component).map_err(|e| incompatible(&e))
        }
        None => Err(incompatible(&"not a wasmtime precompiled file")),
    }
}

/// Whether the open `.cwasm` at `path` may be deserialized: inside one of
/// `trusted_dirs` (after resolving links) and not writable by our user,
/// by its mode bits (as root, a writable bit is what says who else may write).
fn trust_precompiled(path: &Path, file: &std::fs::File, trusted_dirs: &[std::path::PathBuf]) -> Result<(), LoadError> {
    use std::os::unix::fs::MetadataExt as _;
    let refuse = |why: String| LoadError::UntrustedPrecompiledFile { path: path.display().to_string(), why };
    if trusted_dirs.is_empty() {
        return Err(refuse("no --precompiled-dir is configured, so no precompiled module is trusted".into()));
    }
    let real = std::fs::canonicalize(path).map_err(|e| refuse(e.to_string()))?;
    let inside = trusted_dirs.iter().any(|dir| std::fs::canonicalize(dir).is_ok_and(|dir| real.starts_with(dir)));
    if !inside {
        let dirs: Vec<String> = trusted_dirs.iter().map(|d| d.display().to_string()).collect();
        return Err(refuse(format!("it is not inside a --precompiled-dir ({})", dirs.join(", "))));
    }
    let meta = file.metadata().map_err(|e| refuse(e.to_string()))?;
    let (mode, uid, gid) = (meta.mode(), meta.uid(), meta.gid());
    let us = nix::unistd::geteuid().as_raw();
    let our_groups = nix::unistd::getgroups().unwrap_or_default();
    let ours = |g: u32| nix::unistd::getegid().as_raw() == g || our_groups.iter().any(|o| o.as_raw() == g);
    let writable = (uid == us && mode & 0o200 != 0) || (ours(gid) && mode & 0o020 != 0) || mode & 0o002 != 0;
    if writable {
        return Err(refuse(format!(
            "the worker's user can write it (mode {:o}, owner {uid}:{gid}); make it read-only (chmod 0444)",
            mode & 0o7777
        )));
    }
    Ok(())
}

/// Compile WebAssembly bytes from the payload or a download. Precompiled
/// bytes are refused: deserializing them is only safe for trusted files.
pub fn load_bytes(engine: &Engine, bytes: &[u8]) -> Result<Program, LoadError> {
    if Engine::detect_precompiled(bytes).is_some() {
        return Err(LoadError::UntrustedPrecompiled);
    }
    compile(engine, bytes)
}

#[cfg(feature = "wasm")]
fn compile(engine: &Engine, bytes: &[u8]) -> Result<Program, LoadError> {
    if !is_wasm(bytes) {
        return Err(LoadError::NotWasm);
    }
    if is_component(bytes) {
        Component::new(engine, bytes).map(Program::Component).map_err(|e| LoadError::Invalid(format!("{e:#}")))
    } else {
        Module::new(engine, bytes).map(Program::Module).map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }
}

#[cfg(not(feature = "wasm"))]
fn compile(_engine: &Engine, bytes: &[u8]) -> Result<Program, LoadError> {
    if !is_wasm(bytes) {
        return Err(LoadError::NotWasm);
    }
    Err(LoadError::NoCompiler)
}

/// `wove-worker precompile`: compile `bytes` to a `.cwasm` this binary loads without compiling.
#[cfg(feature = "wasm")]
pub fn precompile(bytes: &[u8]) -> Result<Vec<u8>, LoadError> {
    let engine = engine()?;
    if !is_wasm(bytes) {
        return Err(LoadError::NotWasm);
    }
    let result = if is_component(bytes) { engine.precompile_component(bytes) } else { engine.precompile_module(bytes) };
    result.map_err(|e| LoadError::Invalid(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_tell_modules_components_and_other_things_apart() {
        assert!(is_wasm(b"\0asm\x01\0\0\0") && !is_component(b"\0asm\x01\0\0\0"));
        assert!(is_component(b"\0asm\x0d\0\x01\0"));
        assert!(!is_wasm(b"\x7fELF\x02\x01\x01\0"));
        let engine = engine().unwrap();
        assert!(matches!(load_bytes(engine, b"hello"), Err(LoadError::NotWasm | LoadError::NoCompiler)));
    }
}
