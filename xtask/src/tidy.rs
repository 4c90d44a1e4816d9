//! Tidy: the project's structural rules, checked by `cargo xtask tidy` and by a `#[test]`, so a
//! plain `cargo test` enforces them too.
//!
//! The rules (see `docs/ARCHITECTURE.md` for why):
//! - every `.rs` file opens with a `//!` comment;
//! - no ignored test is left behind;
//! - each folder in `crates/` is named exactly like its crate, and `docs/ARCHITECTURE.md` names it;
//! - `cairn-queue` depends on no async runtime, no storage crate and nothing that does I/O;
//! - `cairn-executor` never names an adapter crate;
//! - library crates never install a global tracing subscriber.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::json::{self, Json};

/// Crates that `cairn-queue` may never reach, directly or transitively: async runtimes, storage
/// engines and crates whose purpose is I/O.
const QUEUE_FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "futures-executor",
    "mio",
    "sled",
    "rusqlite",
    "libsqlite3-sys",
    "crc32c",
    "tempfile",
    "socket2",
    "hyper",
    "reqwest",
    "tonic",
    "cairn-checkpoint",
    "cairn-checkpoint-file",
    "cairn-checkpoint-sled",
];

/// The only direct dependencies `cairn-queue` may have.
const QUEUE_ALLOWED_DIRECT: &[&str] = &["serde", "serde_json", "thiserror"];

/// Adapter crates, which the executor must never name.
const ADAPTERS: &[&str] = &["cairn-checkpoint-file", "cairn-checkpoint-sled"];

/// Calls that install a global tracing subscriber.
const GLOBAL_SUBSCRIBER_CALLS: &[&str] = &[
    "set_global_default",
    "tracing_subscriber::fmt::init",
    ".try_init()",
    "cairn_telemetry::init(",
];

/// `SubscriberInitExt::init`, the usual way to install a subscriber built with
/// tracing-subscriber (`tracing_subscriber::fmt().init()`, `registry().with(..).init()`).
/// The name is common, so it counts only in files that name tracing-subscriber.
const SUBSCRIBER_INIT: &str = ".init()";

/// Runs every check and returns the violations found (empty when tidy).
pub(crate) fn check(root: &Path) -> Result<Vec<String>, String> {
    let mut problems = Vec::new();
    let files = rust_files(root);
    if files.is_empty() {
        return Err(format!("no .rs files found under {}", root.display()));
    }
    check_file_headers(root, &files, &mut problems);
    check_no_ignored_tests(root, &files, &mut problems);
    let metadata = cargo_metadata(root)?;
    check_crate_folders(root, &metadata, &mut problems);
    check_queue_dependencies(&metadata, &mut problems);
    check_executor_names_no_adapter(root, &metadata, &mut problems);
    check_no_global_subscriber_in_libraries(root, &mut problems);
    Ok(problems)
}

fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for top in ["crates", "xtask", "tests", "examples"] {
        collect_rs(&root.join(top), &mut out);
    }
    out.sort();
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name.starts_with("target-") {
            continue;
        }
        if path.is_dir() {
            collect_rs(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn check_file_headers(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    for file in files {
        let text = fs::read_to_string(file).unwrap_or_default();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        if !first.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: the file must open with a `//!` comment saying what it is for",
                relative(root, file)
            ));
        }
    }
}

fn check_no_ignored_tests(root: &Path, files: &[PathBuf], problems: &mut Vec<String>) {
    // Built from parts so this file does not match itself.
    let needle = format!("#[{}", "ignore");
    let conditional = format!("{}(", "cfg_attr");
    for file in files {
        let text = fs::read_to_string(file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            // `#[test] #[ignore]` on one line, and `#[cfg_attr(.., ignore)]`, ignore a test
            // as surely as an attribute line of its own.
            let ignored = code.contains(&needle)
                || (code.contains(&conditional)
                    && code
                        .split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|word| word == "ignore"));
            if ignored {
                problems.push(format!(
                    "{}:{}: ignored test left behind; fix it or delete it",
                    relative(root, file),
                    n + 1
                ));
            }
        }
    }
}

fn cargo_metadata(root: &Path) -> Result<Json, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(root)
        .output()
        .map_err(|e| format!("could not run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let text = String::from_utf8(output.stdout).map_err(|e| e.to_string())?;
    json::parse(&text).map_err(|e| format!("cargo metadata output is not JSON: {e}"))
}

/// Workspace packages by name, with their manifest paths.
fn workspace_packages(metadata: &Json) -> BTreeMap<String, &Json> {
    let members: BTreeSet<&str> = metadata
        .get("workspace_members")
        .items()
        .iter()
        .map(Json::str)
        .collect();
    metadata
        .get("packages")
        .items()
        .iter()
        .filter(|p| members.contains(p.get("id").str()))
        .map(|p| (p.get("name").str().to_owned(), p))
        .collect()
}

fn check_crate_folders(root: &Path, metadata: &Json, problems: &mut Vec<String>) {
    let architecture = fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap_or_default();
    for (name, package) in workspace_packages(metadata) {
        let manifest = PathBuf::from(package.get("manifest_path").str());
        let Some(dir) = manifest.parent() else {
            continue;
        };
        let in_crates = dir.parent().is_some_and(|p| p.ends_with("crates"));
        if in_crates {
            let folder = dir
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            if folder != name {
                problems.push(format!(
                    "crates/{folder}: folder name differs from its crate name `{name}`"
                ));
            }
            if !architecture.contains(&format!("`{name}`")) {
                problems.push(format!(
                    "docs/ARCHITECTURE.md: the codemap has no entry naming `{name}`"
                ));
            }
        }
    }
}

/// The package ids reachable from `start` through normal (non-dev, non-build) edges.
fn normal_closure<'a>(metadata: &'a Json, start: &'a str) -> BTreeSet<&'a str> {
    let nodes: BTreeMap<&str, &Json> = metadata
        .get("resolve")
        .get("nodes")
        .items()
        .iter()
        .map(|n| (n.get("id").str(), n))
        .collect();
    let mut seen = BTreeSet::new();
    let mut stack = vec![start];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = nodes.get(id) else { continue };
        for dep in node.get("deps").items() {
            let normal = dep
                .get("dep_kinds")
                .items()
                .iter()
                .any(|k| matches!(k.get("kind"), Json::Null));
            if normal {
                stack.push(dep.get("pkg").str());
            }
        }
    }
    seen
}

fn package_name_of_id<'a>(metadata: &'a Json, id: &str) -> &'a str {
    metadata
        .get("packages")
        .items()
        .iter()
        .find(|p| p.get("id").str() == id)
        .map(|p| p.get("name").str())
        .unwrap_or("")
}

fn check_queue_dependencies(metadata: &Json, problems: &mut Vec<String>) {
    let packages = workspace_packages(metadata);
    let Some(queue) = packages.get("cairn-queue") else {
        problems.push("cairn-queue is missing from the workspace".to_owned());
        return;
    };
    for dep in queue.get("dependencies").items() {
        let normal = matches!(dep.get("kind"), Json::Null);
        let name = dep.get("name").str();
        if normal && !QUEUE_ALLOWED_DIRECT.contains(&name) {
            problems.push(format!(
                "cairn-queue depends on `{name}`; it may depend only on {QUEUE_ALLOWED_DIRECT:?} (no I/O, no async, no storage)"
            ));
        }
    }
    for id in normal_closure(metadata, queue.get("id").str()) {
        let name = package_name_of_id(metadata, id);
        if QUEUE_FORBIDDEN.contains(&name) {
            problems.push(format!(
                "cairn-queue reaches `{name}` through its dependencies; it must stay free of runtimes, storage and I/O"
            ));
        }
    }
}

fn check_executor_names_no_adapter(root: &Path, metadata: &Json, problems: &mut Vec<String>) {
    let packages = workspace_packages(metadata);
    let Some(executor) = packages.get("cairn-executor") else {
        problems.push("cairn-executor is missing from the workspace".to_owned());
        return;
    };
    for dep in executor.get("dependencies").items() {
        let name = dep.get("name").str();
        if ADAPTERS.contains(&name) {
            problems.push(format!(
                "cairn-executor names adapter crate `{name}` in its manifest; it may know only the port"
            ));
        }
    }
    let mut files = Vec::new();
    collect_rs(&root.join("crates/cairn-executor"), &mut files);
    for file in files {
        let text = fs::read_to_string(&file).unwrap_or_default();
        for adapter in ADAPTERS {
            if text.contains(&adapter.replace('-', "_")) {
                problems.push(format!(
                    "{}: names adapter crate `{adapter}`; the executor may know only the port",
                    relative(root, &file)
                ));
            }
        }
    }
}

fn check_no_global_subscriber_in_libraries(root: &Path, problems: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(root.join("crates")) else {
        return;
    };
    for entry in entries.flatten() {
        let crate_dir = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // cairn-telemetry provides `init` for binaries; it is the one place allowed to install.
        if name == "cairn-telemetry" || !crate_dir.join("src/lib.rs").exists() {
            continue;
        }
        let mut files = Vec::new();
        collect_rs(&crate_dir.join("src"), &mut files);
        for file in files {
            let rel = relative(root, &file);
            if rel.ends_with("src/main.rs") || rel.contains("/src/bin/") {
                continue;
            }
            let text = fs::read_to_string(&file).unwrap_or_default();
            let names_subscriber_crate =
                text.contains("tracing_subscriber") || text.contains("SubscriberInitExt");
            let init = names_subscriber_crate.then_some(SUBSCRIBER_INIT);
            for call in GLOBAL_SUBSCRIBER_CALLS.iter().copied().chain(init) {
                if text.contains(call) {
                    problems.push(format!(
                        "{rel}: library code installs a global tracing subscriber (`{call}`); only binaries may"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives one level below the workspace root")
            .to_path_buf()
    }

    /// The tidy rules hold for the whole workspace.
    #[test]
    fn test() {
        let problems = check(&workspace_root()).expect("tidy could not run");
        assert!(problems.is_empty(), "tidy found:\n{}", problems.join("\n"));
    }

    /// A tiny `cargo metadata` document where cairn-queue reaches tokio and the executor names
    /// the file adapter.
    fn bad_metadata() -> Json {
        json::parse(
            r#"{
              "workspace_members": ["q", "e"],
              "packages": [
                {"id": "q", "name": "cairn-queue", "manifest_path": "/w/crates/cairn-queue/Cargo.toml",
                 "dependencies": [{"name": "serde", "kind": null}, {"name": "tokio", "kind": null}]},
                {"id": "e", "name": "cairn-executor", "manifest_path": "/w/crates/cairn-executor/Cargo.toml",
                 "dependencies": [{"name": "cairn-checkpoint-file", "kind": "dev"}]},
                {"id": "t", "name": "tokio", "manifest_path": "/r/tokio/Cargo.toml", "dependencies": []},
                {"id": "s", "name": "serde", "manifest_path": "/r/serde/Cargo.toml", "dependencies": []}
              ],
              "resolve": {"nodes": [
                {"id": "q", "deps": [{"pkg": "s", "dep_kinds": [{"kind": null}]},
                                     {"pkg": "t", "dep_kinds": [{"kind": null}]}]},
                {"id": "s", "deps": []}, {"id": "t", "deps": []}, {"id": "e", "deps": []}
              ]}
            }"#,
        )
        .unwrap()
    }

    /// The dependency-direction rules fire on a graph that breaks them.
    #[test]
    fn dependency_rules_detect_violations() {
        let metadata = bad_metadata();
        let mut problems = Vec::new();
        check_queue_dependencies(&metadata, &mut problems);
        assert!(
            problems.iter().any(|p| p.contains("depends on `tokio`")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("reaches `tokio`")),
            "{problems:?}"
        );
        let mut problems = Vec::new();
        check_executor_names_no_adapter(Path::new("/nonexistent"), &metadata, &mut problems);
        assert!(
            problems.iter().any(|p| p.contains("cairn-checkpoint-file")),
            "{problems:?}"
        );
    }

    /// An empty scratch folder of its own for one test (xtask is std-only: no tempfile).
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cairn-tidy-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes `text` at `root/rel`, creating its folders.
    fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
        let path = root.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    /// The ignored-test rule fires on every way of ignoring a test, and not on a comment.
    #[test]
    fn ignore_rule_detects_every_form_of_an_ignored_test() {
        let dir = scratch("ignore");
        // Built from parts so this file does not match itself.
        let ignore = format!("#[{}]", "ignore");
        let own_line = write(
            &dir,
            "a.rs",
            &format!("//! A.\n#[test]\n{ignore}\nfn a() {{}}\n"),
        );
        let same_line = write(
            &dir,
            "b.rs",
            &format!("//! B.\n#[test] {ignore}\nfn b() {{}}\n"),
        );
        let reasoned = write(
            &dir,
            "c.rs",
            &format!("//! C.\n#[test]\n#[{} = \"slow\"]\nfn c() {{}}\n", "ignore"),
        );
        let conditional = write(
            &dir,
            "d.rs",
            &format!(
                "//! D.\n#[test]\n#[{}(miri, ignore)]\nfn d() {{}}\n",
                "cfg_attr"
            ),
        );
        let comment = write(
            &dir,
            "e.rs",
            &format!("//! E.\n// never {ignore} a test\n#[test]\nfn e() {{}}\n"),
        );
        let mut problems = Vec::new();
        check_no_ignored_tests(
            &dir,
            &[own_line, same_line, reasoned, conditional, comment],
            &mut problems,
        );
        fs::remove_dir_all(&dir).unwrap();
        let flagged: Vec<&str> = problems.iter().map(|p| &p[..4]).collect();
        assert_eq!(flagged, ["a.rs", "b.rs", "c.rs", "d.rs"], "{problems:?}");
    }

    /// The crate-folder rule fires on a folder named unlike its crate and on a crate the
    /// codemap does not name.
    #[test]
    fn crate_folder_rule_detects_a_misnamed_folder_and_a_missing_codemap_entry() {
        let dir = scratch("folders");
        write(
            &dir,
            "docs/ARCHITECTURE.md",
            "- `cairn-queue`: the queue.\n",
        );
        let metadata = json::parse(&format!(
            r#"{{
              "workspace_members": ["q", "x"],
              "packages": [
                {{"id": "q", "name": "cairn-queue", "manifest_path": "{root}/crates/cairn-queue/Cargo.toml", "dependencies": []}},
                {{"id": "x", "name": "cairn-extra", "manifest_path": "{root}/crates/extra/Cargo.toml", "dependencies": []}}
              ]
            }}"#,
            root = dir.display()
        ))
        .unwrap();
        let mut problems = Vec::new();
        check_crate_folders(&dir, &metadata, &mut problems);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("crates/extra: folder name differs"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("no entry naming `cairn-extra`"),
            "{problems:?}"
        );
    }

    /// The executor rule fires on source that names an adapter, tests included.
    #[test]
    fn executor_rule_detects_an_adapter_named_in_source() {
        let dir = scratch("executor");
        write(
            &dir,
            "crates/cairn-executor/src/lib.rs",
            "//! Executor.\npub fn f() {}\n",
        );
        write(
            &dir,
            "crates/cairn-executor/tests/flow.rs",
            &format!("//! Flow.\nuse {}_file::FileFactory;\n", "cairn_checkpoint"),
        );
        let metadata = json::parse(
            r#"{"workspace_members": ["e"], "packages": [
                {"id": "e", "name": "cairn-executor", "manifest_path": "/w/crates/cairn-executor/Cargo.toml", "dependencies": []}
            ]}"#,
        )
        .unwrap();
        let mut problems = Vec::new();
        check_executor_names_no_adapter(&dir, &metadata, &mut problems);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "crates/cairn-executor/tests/flow.rs: names adapter crate `cairn-checkpoint-file`"
            ),
            "{problems:?}"
        );
    }

    /// The subscriber rule fires on every way a library installs a global subscriber, and
    /// leaves binaries and cairn-telemetry alone.
    #[test]
    fn subscriber_rule_detects_libraries_installing_a_global_subscriber() {
        let dir = scratch("subscriber");
        let lib = "//! A library.\n";
        write(&dir, "crates/lib-a/src/lib.rs", lib);
        write(
            &dir,
            "crates/lib-a/src/logs.rs",
            "//! Logs.\nfn f() { tracing_subscriber::fmt().init(); }\n",
        );
        write(&dir, "crates/lib-b/src/lib.rs", lib);
        write(
            &dir,
            "crates/lib-b/src/logs.rs",
            "//! Logs.\nuse tracing_subscriber::util::SubscriberInitExt as _;\nfn f() { registry().with(layer).try_init(); }\n",
        );
        write(&dir, "crates/lib-c/src/lib.rs", lib);
        write(
            &dir,
            "crates/lib-c/src/logs.rs",
            "//! Logs.\nfn f() { tracing::subscriber::set_global_default(s); }\n",
        );
        write(&dir, "crates/lib-d/src/lib.rs", lib);
        write(
            &dir,
            "crates/lib-d/src/run.rs",
            "//! Run.\nfn f() { cairn_telemetry::init(config); }\n",
        );
        // Not a subscriber: `.init()` of something else, in a file that names no
        // tracing-subscriber.
        write(&dir, "crates/lib-e/src/lib.rs", lib);
        write(
            &dir,
            "crates/lib-e/src/cache.rs",
            "//! Cache.\nfn f() { cache.init(); Cache::new().init(); }\n",
        );
        // Binaries and cairn-telemetry may install one.
        write(&dir, "crates/app/src/lib.rs", lib);
        write(
            &dir,
            "crates/app/src/main.rs",
            "//! App.\nfn main() { cairn_telemetry::init(config); }\n",
        );
        write(&dir, "crates/cairn-telemetry/src/lib.rs", lib);
        write(
            &dir,
            "crates/cairn-telemetry/src/init.rs",
            "//! Init.\nfn f() { tracing::subscriber::set_global_default(s); }\n",
        );
        let mut problems = Vec::new();
        check_no_global_subscriber_in_libraries(&dir, &mut problems);
        fs::remove_dir_all(&dir).unwrap();
        problems.sort();
        let flagged: Vec<&str> = problems.iter().map(|p| &p[..12]).collect();
        assert_eq!(
            flagged,
            [
                "crates/lib-a",
                "crates/lib-b",
                "crates/lib-c",
                "crates/lib-d"
            ],
            "{problems:?}"
        );
        assert!(problems[0].contains("`.init()`"), "{problems:?}");
    }

    /// The header rule really fires on a file without `//!`.
    #[test]
    fn header_rule_detects_missing_doc_comment() {
        let dir = scratch("header");
        let bad = dir.join("bad.rs");
        fs::write(&bad, "fn main() {}\n").unwrap();
        let good = dir.join("good.rs");
        fs::write(&good, "//! Fine.\nfn main() {}\n").unwrap();
        let mut problems = Vec::new();
        check_file_headers(&dir, &[bad, good], &mut problems);
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("bad.rs"));
    }
}
