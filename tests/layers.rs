//! The worker's modules import one way: each only from those before it in [`ORDER`]. The
//! configuration is data that the supervisor, the runners and the worker read, never the other
//! way round; the command line is built on top of everything and nothing is built on it.
//! A new module must take its place here, which is where a reader learns what it may use.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first. A module may name `crate::M` only for an `M` before it.
const ORDER: &[&str] = &[
    // Foundations: no configuration, no runner.
    "redact",
    "exit",
    "stdout",
    "startup",
    "signals",
    "deadline",
    "logging",
    "cgroup",
    "task_index",
    "termination_message",
    "report",
    "payload_fetch",
    // Pure data, defaults written once; detection in RunnerSettings::detect.
    "config",
    // Processes: spawning, reaping, signals, output, OOM kills.
    "supervise",
    // The task kinds, built on the supervisor.
    "runner",
    "payload_source",
    // One run: payload in, task run, events out.
    "worker",
    // Flags into a config, then the tool commands.
    "cli",
    "commands",
];

/// The top-level module a source file belongs to (`src/runner/wasm/engine.rs` is `runner`).
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::NAME` in code (comments, doc comments included, are not code).
fn imports(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" // ").next().unwrap_or(code);
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let preceded_by_ident = rest[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_');
            rest = &rest[at + "crate::".len()..];
            if preceded_by_ident {
                continue; // `wove_crate::` or the like, not ours
            }
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            // `use crate::{a::{b, c}, d}` names `a` and `d`: the first segment of each
            // top-level item of the group.
            if name.is_empty() && rest.starts_with('{') {
                found.extend(group_heads(&rest[1..]));
            } else if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// The first path segment of each top-level item of a `{...}` group, `rest` starting after `{`.
fn group_heads(rest: &str) -> Vec<String> {
    let (mut heads, mut depth, mut item) = (Vec::new(), 0usize, String::new());
    let mut push = |item: &mut String| {
        let head = item.trim().split("::").next().unwrap_or("").trim().to_string();
        if !head.is_empty() && head.chars().all(|c| c.is_alphanumeric() || c == '_') {
            heads.push(head);
        }
        item.clear();
    };
    for c in rest.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => push(&mut item),
            _ if depth == 0 => item.push(c),
            _ => {}
        }
    }
    push(&mut item);
    heads
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_imports_only_those_before_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let rank = |module: &str| ORDER.iter().position(|m| *m == module);
    let mut breaches = Vec::new();
    let mut modules = BTreeSet::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        // The crate root and the binary see everything: they are not a layer.
        if module == "lib" || module == "main" {
            continue;
        }
        modules.insert(module.clone());
        let Some(own) = rank(&module) else {
            breaches.push(format!("src/{}: module `{module}` has no place in ORDER", relative.display()));
            continue;
        };
        for used in imports(&std::fs::read_to_string(file).unwrap()) {
            // `crate::proto` is wove-proto re-exported: below everything.
            if used == module || used == "proto" {
                continue;
            }
            match rank(&used) {
                Some(theirs) if theirs < own => {}
                Some(_) => breaches
                    .push(format!("src/{}: `{module}` uses `crate::{used}`, which comes after it", relative.display())),
                None => breaches.push(format!("src/{}: `crate::{used}` is not a module in ORDER", relative.display())),
            }
        }
    }
    assert!(breaches.is_empty(), "layering broken:\n{}", breaches.join("\n"));
    // Each name in ORDER is a module that exists: the list cannot drift from the tree.
    let listed: BTreeSet<String> = ORDER.iter().map(|m| m.to_string()).collect();
    assert_eq!(listed, modules, "ORDER and the modules under src/ differ");
}

#[test]
fn the_scanner_sees_what_it_must() {
    let source = "use crate::{config::{Config, RunnerSettings}, runner};\n// crate::worker in a comment\n\
                  /// [`crate::cli`]\nlet x = crate::supervise::run(); // crate::commands\nlet y = wove_crate::other;\n";
    let found: Vec<String> = imports(source).into_iter().collect();
    assert_eq!(found, ["config", "runner", "supervise"]);
}
