//! How errors read: each cause once, even when a library error repeats its source in its own
//! message.

mod common;

use common::{Sandbox, text};

#[test]
fn a_store_error_names_each_cause_once() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"touch ran\"\n",
    );
    // A file where the file adapter keeps its runs folder: listing the runs fails.
    std::fs::create_dir(sandbox.path(".cairn")).unwrap();
    sandbox.write(".cairn/runs", "not a folder\n");
    let output = sandbox.run(&["run", "wf.toml"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains(".cairn/runs"),
        "the path is named: {stderr}"
    );
    let cause = "Not a directory (os error 20)";
    assert_eq!(
        stderr.matches(cause).count(),
        1,
        "the OS error is printed once: {stderr}"
    );
    assert!(!sandbox.path("ran").exists());
    assert_eq!(
        sandbox.read(".cairn/runs"),
        "not a folder\n",
        "foreign state is never removed"
    );
}

#[test]
fn error_text_skips_causes_already_in_the_line_and_keeps_new_ones() {
    let root = anyhow::Error::new(std::io::Error::other("disk on fire"));
    let error = root
        .context("write failed on /x: disk on fire")
        .context("cannot save run r1");
    assert_eq!(
        cairn_cli::app::error_text(&error),
        "cannot save run r1: write failed on /x: disk on fire"
    );
    let plain = anyhow::Error::new(std::io::Error::other("no space")).context("cannot write /y");
    assert_eq!(
        cairn_cli::app::error_text(&plain),
        "cannot write /y: no space"
    );
}
