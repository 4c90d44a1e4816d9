//! The `--json` events of `cairn run` and `cairn resume`, and of `cairn scheduler` and
//! `cairn jobs`, are documented: every event name the code can emit is listed in the README,
//! and every event a README table lists is one the code emits, so the documentation cannot
//! drift silently.

use std::collections::BTreeSet;
use std::path::Path;

/// The source files whose events `cairn run` and `cairn resume` print (and `abandon`'s and
/// `runs prune`'s, which share `app.rs`).
const SOURCES: [&str; 3] = ["src/app.rs", "src/progress.rs", "src/store.rs"];

/// The README section with the table of events.
const SECTION: &str = "## `--json` events of `cairn run` and `cairn resume`";

/// The source files whose events `cairn scheduler` and `cairn jobs` print (`store.rs` has the
/// quarantine notes the scheduler repeats).
const JOB_SOURCES: [&str; 3] = ["src/scheduler.rs", "src/jobs.rs", "src/store.rs"];

/// The README section with the scheduler's table of events.
const JOB_SECTION: &str = "## `--json` events of `cairn scheduler` and `cairn jobs`";

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

/// The event names `jobs.rs` passes to `report_change(store, job, "name", text)`: the quoted
/// lowercase words among its arguments (the text has spaces, so it is not one).
fn reported_changes(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in source.match_indices("report_change(") {
        let rest = &source[at..];
        let call = &rest[..rest.find(')').unwrap_or(rest.len())];
        for name in call.split('"').skip(1).step_by(2) {
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Every event the scheduler and jobs commands can print.
fn job_events() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in JOB_SOURCES {
        names.extend(emitted(&read(source)));
    }
    names.extend(reported_changes(&read("src/jobs.rs")));
    names
}

/// The event names listed in the first column of a README section's table.
fn listed_in(readme: &str, section: &str) -> Vec<String> {
    let start = readme
        .find(section)
        .unwrap_or_else(|| panic!("the README has the section {section}"));
    let body = &readme[start + section.len()..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    body.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// The events the run commands can print.
fn run_events() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for source in SOURCES {
        names.extend(emitted(&read(source)));
    }
    names
}

/// Fails unless the scan found each of `known` (so it finds what it is meant to check) and
/// `documented` holds for every name in `names`.
#[track_caller]
fn assert_all_documented(
    names: &BTreeSet<String>,
    known: &[&str],
    documented: impl Fn(&str) -> bool,
    place: &str,
) {
    for known in known {
        assert!(
            names.contains(*known),
            "the scan missed `{known}`: {names:?}"
        );
    }
    let missing: Vec<&String> = names.iter().filter(|name| !documented(name)).collect();
    assert!(
        missing.is_empty(),
        "events emitted but not documented in {place}: {missing:?}"
    );
}

/// Fails unless the table of `section` lists at least 15 events, all of them in `names`.
#[track_caller]
fn assert_table_emitted(section: &str, names: &BTreeSet<String>) {
    let listed = listed_in(&read("README.md"), section);
    assert!(listed.len() >= 15, "the table lists the events: {listed:?}");
    let unknown: Vec<&String> = listed.iter().filter(|n| !names.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the README's {section} lists events the code does not emit: {unknown:?}"
    );
}

#[test]
fn the_readme_lists_every_json_event_the_run_commands_emit() {
    let readme = read("README.md");
    assert_all_documented(
        &run_events(),
        &[
            "run_started",
            "task_done",
            "run_finished",
            "would_prune",
            "pruned",
        ],
        // Named in code style, or quoted in a JSON example (`{"event": "pruned"`).
        |name| readme.contains(&format!("`{name}`")) || readme.contains(&format!("\"{name}\"")),
        "crates/cairn-cli/README.md",
    );
}

#[test]
fn every_event_in_the_readme_table_is_one_the_code_emits() {
    assert_table_emitted(SECTION, &run_events());
}

#[test]
fn the_readme_names_every_json_event_of_the_scheduler_and_jobs_commands() {
    let readme = read("README.md");
    let start = readme
        .find(JOB_SECTION)
        .expect("the README has the section");
    let section = &readme[start..];
    assert_all_documented(
        &job_events(),
        &[
            "scheduler_started",
            "run_stranded",
            "breaker_tripped",
            "job_left_out",
            "added",
            "paused",
            "resumed",
            "deleted",
        ],
        |name| section.contains(&format!("`{name}`")),
        "the README's scheduler and jobs section",
    );
}

#[test]
fn every_event_in_the_scheduler_table_is_one_the_code_emits() {
    assert_table_emitted(JOB_SECTION, &job_events());
}
