//! The README lists closed sets that the code defines once (exit codes, the
//! error kinds the worker makes, termination statuses); these keep the two
//! in step, both ways.

use wove_proto::exit::{Exit, FIXED};
use wove_proto::{ErrorKind, Status};

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The rows of the README table whose header line starts with `header`.
fn table(readme: &str, header: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = readme.lines().map(str::trim).collect();
    let start = lines.iter().position(|l| l.starts_with(header)).unwrap_or_else(|| panic!("no table {header:?}"));
    lines[start + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| unquote(c.trim())).collect())
        .collect()
}

/// `` `name` `` -> `name`; other cells as they are.
fn unquote(cell: &str) -> String {
    match cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
        Some(inner) if !inner.contains('`') => inner.to_string(),
        _ => cell.to_string(),
    }
}

#[test]
fn every_exit_code_is_documented_and_no_other() {
    let rows = table(&readme(), "| code | meaning | kind |");
    let documented: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    let mut expected: Vec<String> = FIXED.iter().map(|e| e.code().to_string()).collect();
    expected.push("128+n".into());
    assert_eq!(documented, expected);
    for row in &rows {
        let Ok(code) = row[0].parse::<i32>() else { continue };
        let exit = Exit::from_code(code).unwrap();
        let kind = if exit == Exit::Success {
            ""
        } else if exit.retryable() {
            "retryable"
        } else {
            "permanent"
        };
        assert_eq!(row[2], kind, "{row:?}");
    }
}

#[test]
fn every_error_kind_is_documented_and_no_other() {
    let rows = table(&readme(), "| kind | source | when |");
    let documented: Vec<(&str, &str, &str)> =
        rows.iter().map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str())).collect();
    let expected: Vec<(&str, &str, &str)> =
        ErrorKind::ALL.iter().map(|k| (k.as_str(), k.source(), k.description())).collect();
    assert_eq!(documented, expected);
}

#[test]
fn every_termination_status_is_documented_and_no_other() {
    let rows = table(&readme(), "| `status` | meaning |");
    let documented: Vec<(&str, &str)> = rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    let expected: Vec<(&str, &str)> = Status::ALL.iter().map(|s| (s.as_str(), s.description())).collect();
    assert_eq!(documented, expected);
}

#[test]
fn every_flag_and_its_variable_is_documented() {
    use clap::CommandFactory as _;
    let readme = readme();
    let command = wove_worker::cli::Cli::command();
    let mut missing = Vec::new();
    for arg in command.get_arguments().filter(|a| !a.is_hide_set()) {
        if let Some(long) = arg.get_long() {
            if !["help", "version"].contains(&long) && !readme.contains(&format!("`--{long}")) {
                missing.push(format!("--{long}"));
            }
        }
        if let Some(var) = arg.get_env() {
            let var = var.to_string_lossy();
            if !readme.contains(var.as_ref()) {
                missing.push(var.into_owned());
            }
        }
    }
    assert!(missing.is_empty(), "not in the README: {missing:?}");
}
