//! The README's minimal embedding is `examples/embed.rs` of this crate: the README shows it
//! verbatim, it names no crate but those the README says it needs, and it runs a durable run
//! to completion on the file adapter.

// The example's `main` is for `cargo run --example embed`; the tests call `embed` itself.
#[allow(dead_code)]
#[path = "../examples/embed.rs"]
pub mod embed;

use cairn_checkpoint::{CheckpointerFactory, RunStatus};
use cairn_checkpoint_file::FileFactory;
use cairn_executor::Disposition;

const README: &str = include_str!("../../README.md");
const EXAMPLE: &str = include_str!("../examples/embed.rs");

/// The code block that follows the README's "minimal embedding" sentence, with its fence.
fn readme_block() -> (&'static str, &'static str) {
    let start = README
        .find("A minimal embedding")
        .expect("the README introduces its minimal embedding");
    let rest = &README[start..];
    let open = rest.find("```").expect("a code block follows");
    let rest = &rest[open + 3..];
    let (fence, rest) = rest.split_once('\n').expect("the fence ends its line");
    let close = rest.find("```").expect("the code block is closed");
    (fence, &rest[..close])
}

#[test]
fn the_readme_shows_the_example_verbatim_and_compiled() {
    let (fence, shown) = readme_block();
    assert_eq!(
        fence, "rust",
        "the README's block is plain `rust`, not `ignore`"
    );
    // The example without its `//!` header, which only says where it is shown.
    let body = EXAMPLE
        .lines()
        .skip_while(|line| line.starts_with("//!"))
        .skip_while(|line| line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    assert_eq!(
        shown, body,
        "README.md's minimal embedding differs from tests/examples/embed.rs: copy the file over"
    );
}

#[test]
fn the_example_needs_only_the_crates_the_readme_names() {
    // The README says the executor, the file adapter and tokio are enough: every path the
    // example names starts in one of them (or std).
    let allowed = [
        "std::",
        "cairn_executor::",
        "cairn_checkpoint_file::",
        "tokio::",
    ];
    let mut named = 0;
    for line in EXAMPLE.lines().filter(|l| l.starts_with("use ")) {
        named += 1;
        let path = line.trim_start_matches("use ");
        assert!(
            allowed.iter().any(|crate_| path.starts_with(crate_)),
            "the example names another crate: {line}"
        );
    }
    assert!(named >= 3, "the example's imports were found");
    assert!(
        EXAMPLE.contains("#[tokio::main]"),
        "tokio is named by its attribute"
    );
    for other in ["cairn_queue::", "cairn_checkpoint::", "async_trait::"] {
        assert!(!EXAMPLE.contains(other), "the example names {other}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runs_a_durable_run_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let report = embed::embed(dir.path()).await.unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert!(report.durable);
    assert_eq!(report.counts.done, 2);

    // It is on disk, completed, in the folder it was given.
    let store = FileFactory::builder(dir.path()).build().unwrap();
    let meta = store.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Completed);
    assert_eq!(meta.workflow, "site");
}
