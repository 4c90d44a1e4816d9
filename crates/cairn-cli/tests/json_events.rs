//! The `--json` events of `cairn run` and `cairn resume` are documented: every event name the
//! code can emit is listed in the README, and every event the README's table lists is one
//! the code emits, so the documentation cannot drift silently.

use std::collections::BTreeSet;
use std::path::Path;

/// The source files whose events `cairn run` and `cairn resume` print (and `abandon`'s and
/// `runs prune`'s, which share `app.rs`).
const SOURCES: [&str; 3] = ["src/app.rs", "src/progress.rs", "src/store.rs"];

/// The README section with the table of events.
const SECTION: &str = "## `--json` events of `cairn run` and `cairn resume`";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The event names a source emits: the quoted names between `"event":` and the next comma,
/// which covers `"event": "name"` and `"event": if x { "a" } else { "b" }`.
fn emitted(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in source.match_indices("\"event\":") {
        let rest = &source[at + "\"event\":".len()..];
        let value = &rest[..rest.find(',').unwrap_or(rest.len())];
        for name in value.split('"').skip(1).step_by(2) {
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

#[test]
fn the_readme_lists_every_json_event_the_run_commands_emit() {
    let readme = read("README.md");
    let mut names = BTreeSet::new();
    for source in SOURCES {
        names.extend(emitted(&read(source)));
    }
    // The scan itself must find the events it is meant to check.
    for known in [
        "run_started",
        "task_done",
        "run_finished",
        "would_prune",
        "pruned",
    ] {
        assert!(
            names.contains(known),
            "the scan missed `{known}`: {names:?}"
        );
    }
    let missing: Vec<&String> = names
        .iter()
        // Named in code style, or quoted in a JSON example (`{"event": "pruned"`).
        .filter(|name| {
            !readme.contains(&format!("`{name}`")) && !readme.contains(&format!("\"{name}\""))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "events emitted but not documented in crates/cairn-cli/README.md: {missing:?}"
    );
}

#[test]
fn every_event_in_the_readme_table_is_one_the_code_emits() {
    let readme = read("README.md");
    let start = readme
        .find(SECTION)
        .expect("the README has the events section");
    let section = &readme[start + SECTION.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    let listed: Vec<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .collect();
    assert!(listed.len() >= 15, "the table lists the events: {listed:?}");
    let mut names = BTreeSet::new();
    for source in SOURCES {
        names.extend(emitted(&read(source)));
    }
    let unknown: Vec<&&str> = listed.iter().filter(|n| !names.contains(**n)).collect();
    assert!(
        unknown.is_empty(),
        "the README lists events the code does not emit: {unknown:?}"
    );
}
