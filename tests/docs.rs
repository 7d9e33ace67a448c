//! The documentation. Its pages list closed sets that the code defines once
//! (exit codes, the error kinds the worker makes, termination statuses, flags);
//! these keep each table in step with the code, both ways, on the page that
//! holds it. And every relative link between the pages, anchors included,
//! leads somewhere.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use wove_proto::exit::{Exit, FIXED};
use wove_proto::{ErrorKind, Status};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn page(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The rows of the table whose header line starts with `header`.
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
    // The contract: on the front page.
    let rows = table(&page("README.md"), "| code | meaning | kind |");
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
    let rows = table(&page("docs/events.md"), "| kind | source | when |");
    let documented: Vec<(&str, &str, &str)> =
        rows.iter().map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str())).collect();
    let expected: Vec<(&str, &str, &str)> =
        ErrorKind::ALL.iter().map(|k| (k.as_str(), k.source(), k.description())).collect();
    assert_eq!(documented, expected);
}

#[test]
fn every_termination_status_is_documented_and_no_other() {
    let rows = table(&page("docs/operations.md"), "| `status` | meaning |");
    let documented: Vec<(&str, &str)> = rows.iter().map(|r| (r[0].as_str(), r[1].as_str())).collect();
    let expected: Vec<(&str, &str)> = Status::ALL.iter().map(|s| (s.as_str(), s.description())).collect();
    assert_eq!(documented, expected);
}

#[test]
fn every_flag_and_its_variable_is_documented() {
    // The configuration table, and the signing table beside the schemes it chooses between.
    let readme = page("docs/operations.md") + &page("docs/events.md");
    let command = wove_worker::command();
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
    assert!(missing.is_empty(), "not in docs/operations.md nor docs/events.md: {missing:?}");
}

/// The Markdown pages of the repository (not the vendored advisory database,
/// nor build output).
fn markdown_pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !(name.starts_with('.')
                    || ["target", "deny", "corpus", "node_modules", "dist"].contains(&name.as_str()))
                {
                    walk(&path, found);
                }
            } else if name.ends_with(".md") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new(ROOT), &mut found);
    found.sort();
    found
}

/// The lines of a page outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|line| {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The anchors GitHub gives a page's headings: lowercased, punctuation dropped
/// (backticks included), spaces made hyphens, repeats numbered.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose(text) {
        let Some(heading) = line.strip_prefix('#').map(|h| h.trim_start_matches('#')) else { continue };
        let Some(heading) = heading.strip_prefix(' ') else { continue };
        let slug: String = heading
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut unique = slug.clone();
        let mut n = 0;
        while !seen.insert(unique.clone()) {
            n += 1;
            unique = format!("{slug}-{n}");
        }
    }
    seen
}

/// Every `[text](target)` of a page's prose whose target is not a URL.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for line in prose(text) {
        // Inline code may show link syntax without being a link.
        let line: String = line.split('`').step_by(2).collect::<Vec<_>>().join("");
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = &after[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push(target.to_string());
            }
            rest = &after[end..];
        }
    }
    links
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let pages = markdown_pages();
    for expected in ["README.md", "docs/payload.md", "SECURITY.md", "CONTRIBUTING.md", "crates/wove-submit/README.md"] {
        assert!(pages.contains(&Path::new(ROOT).join(expected)), "{expected} not found among {pages:?}");
    }
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in relative_links(&text) {
            checked += 1;
            let (path, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() { page.clone() } else { page.parent().unwrap().join(path) };
            let shown = format!("{}: ({link})", page.strip_prefix(ROOT).unwrap().display());
            if !target.exists() {
                broken.push(format!("{shown}: no such file"));
            } else if !anchor.is_empty() {
                let headings = anchors(&std::fs::read_to_string(&target).unwrap_or_default());
                if !headings.contains(anchor) {
                    broken.push(format!("{shown}: no heading #{anchor}"));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} links found: is the parser blind?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_sees_a_broken_link_and_a_good_one() {
    let text = "# A `code` heading: yes\n## Again\n## Again\n```\n[in](code.md)\n```\nSee [a](#a-code-heading-yes), [b](#again-1), `[c](not-a-link)` and [d](x.md#y).";
    let headings = anchors(text);
    assert!(
        headings.contains("a-code-heading-yes") && headings.contains("again") && headings.contains("again-1"),
        "{headings:?}"
    );
    assert_eq!(relative_links(text), ["#a-code-heading-yes", "#again-1", "x.md#y"]);
}

#[test]
fn the_front_page_stays_a_front_page() {
    let lines = page("README.md").lines().count();
    assert!(lines <= 250, "README.md has {lines} lines: move the detail to a page under docs/");
}
