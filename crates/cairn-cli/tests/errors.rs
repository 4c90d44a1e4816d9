//! How errors read: each cause once, even when a library error repeats its source in its own
//! message.

mod common;

use common::{Sandbox, assert_contains, text};

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

#[test]
fn a_sled_store_held_by_a_run_is_a_store_error_that_says_why() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"touch started; while ! test -f release; do sleep 0.05; done\"\n",
    );
    let mut first = sandbox.spawn(&["run", "wf.toml", "--adapter", "sled"], "out1", "err1");
    common::wait_for("the task to start", || sandbox.path("started").exists());
    let output = sandbox.run(&["runs", "--adapter", "sled", "--state-dir", ".cairn"]);
    let stderr = text(&output.stderr);
    sandbox.touch("release");
    assert_eq!(common::wait_exit(&mut first).code(), Some(0));
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("one process at a time"),
        "the message says why: {stderr}"
    );
}

/// A `--state-dir` that can never be a folder is a usage error (2) naming what it is: a file,
/// a path under a file, a dangling symbolic link, a symbolic link loop. Nothing is made.
#[test]
fn a_state_dir_that_cannot_be_a_folder_is_a_usage_error_saying_why() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    sandbox.touch("afile");
    std::os::unix::fs::symlink("loop", sandbox.path("loop")).unwrap();
    std::os::unix::fs::symlink("nowhere", sandbox.path("dangling")).unwrap();
    for (dir, why) in [
        ("afile", "is not a folder (it is a file)"),
        ("afile/sub", "cannot be made: afile is a file, not a folder"),
        (
            "dangling",
            "is not a folder (it is a symbolic link to nowhere, which does not exist)",
        ),
        ("loop", "is not a folder (it is a symbolic link loop)"),
    ] {
        let output = sandbox.run(&["run", "wf.toml", "--state-dir", dir]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{dir}: {stderr}");
        assert_contains(&stderr, &format!("the state folder {dir} {why}"));
    }
    assert!(!sandbox.path("nowhere").exists(), "nothing was made");
}

/// The file and sled stores are separate: a state folder that holds one is not silently
/// given the other beside it (where a failed run of the first would be passed over, and
/// listings would show only half). Exit 2, naming the flag to use.
#[test]
fn a_state_folder_holding_one_adapters_store_refuses_the_other() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"false\"\nmax_attempts = 1\n",
    );
    assert_eq!(sandbox.run(&["run", "wf.toml"]).status.code(), Some(1));
    let output = sandbox.run(&["run", "wf.toml", "--adapter", "sled"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds the file adapter's runs"), "{stderr}");
    assert!(stderr.contains("pass --adapter file"), "{stderr}");
    assert!(
        !sandbox.path(".cairn/sled").exists(),
        "no sled store was made"
    );

    let other = Sandbox::new();
    other.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    assert_eq!(
        other
            .run(&["run", "wf.toml", "--adapter", "sled"])
            .status
            .code(),
        Some(0)
    );
    let listed = other.run(&["runs", "--all", "--state-dir", ".cairn"]);
    let stderr = text(&listed.stderr);
    assert_eq!(listed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("holds a sled store"), "{stderr}");
    assert!(stderr.contains("pass --adapter sled"), "{stderr}");
}

/// `cairn jobs` keeps the stores apart too: on a folder holding the other adapter's store,
/// `jobs list` does not say "no jobs" and `jobs add` does not start a second job store
/// beside it (after which nothing would refuse the wrong adapter any more). Exit 2, naming
/// the flag to use.
#[test]
fn jobs_commands_on_the_other_adapters_state_folder_are_refused() {
    for (made_with, other, says) in [
        ("sled", "file", "pass --adapter sled"),
        ("file", "sled", "pass --adapter file"),
    ] {
        let sandbox = Sandbox::new();
        sandbox.write("wf.toml", common::ECHO);
        let add = [
            "jobs",
            "add",
            "wf.toml",
            "j",
            "--every",
            "1h",
            "--adapter",
            made_with,
        ];
        assert_eq!(sandbox.run(&add).status.code(), Some(0), "{made_with}");
        let jobs = [
            vec!["jobs", "list", "--adapter", other],
            vec!["jobs", "show", "j", "--adapter", other],
            vec!["jobs", "pause", "j", "--adapter", other],
            vec![
                "jobs",
                "add",
                "wf.toml",
                "k",
                "--every",
                "1h",
                "--adapter",
                other,
            ],
        ];
        for args in jobs {
            let output = sandbox.run(&args);
            let stderr = text(&output.stderr);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
            assert_contains(&stderr, says);
        }
        let second = match other {
            "sled" => ".cairn/sled",
            _ => ".cairn/jobs",
        };
        assert!(!sandbox.path(second).exists(), "{second} was made");
    }
}
