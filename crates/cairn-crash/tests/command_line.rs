//! Bad command lines: the harness and the worker refuse them with a message and exit
//! status 2, before any work and without a panic; `--help` prints the usage and succeeds.

use std::process::{Command, Output};

use cairn_crash::dag::Dag;

const EXE: &str = env!("CARGO_BIN_EXE_cairn-crash");

fn run(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .env_remove("CAIRN_CRASH_AT")
        .output()
        .unwrap()
}

fn assert_refused(args: &[&str], says: &str) {
    let output = run(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?} printed a summary");
}

#[test]
fn bad_harness_options_are_refused_before_any_work() {
    assert_refused(&["--iterations"], "--iterations needs a value");
    assert_refused(&["--iterations", "-1"], "takes a number");
    assert_refused(&["--seed", "x"], "takes a number");
    assert_refused(&["--adapter", "zfs"], "the adapter is");
    assert_refused(&["--durability", "maybe"], "the durability is");
    assert_refused(&["--bogus"], "unknown option `--bogus`");
    assert_refused(
        &["--kills-per-round", "0"],
        "--kills-per-round must be at least 1",
    );
    assert_refused(&["--tasks", "0"], "--tasks must be at least 1");
    let file = tempfile::NamedTempFile::new().unwrap();
    let under_a_file = file.path().join("rounds");
    assert_refused(
        &[
            "--work-dir",
            under_a_file.to_str().unwrap(),
            "--iterations",
            "1",
        ],
        &format!("--work-dir {} cannot be used", under_a_file.display()),
    );
    assert!(!under_a_file.exists());
    assert_refused(
        &["--max-work-us", "18446744073709551615", "--iterations", "1"],
        "--max-work-us is at most",
    );
}

#[test]
fn bad_worker_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    assert_refused(&["worker"], "the worker needs --dir");
    assert_refused(
        &["worker", "--dir", dir, "--tasks", "0"],
        "--tasks must be at least 1",
    );
    assert_refused(
        &[
            "worker",
            "--dir",
            dir,
            "--max-work-us",
            "18446744073709551615",
        ],
        "--max-work-us is at most",
    );
    assert_refused(
        &["worker", "--dir", dir, "--speed", "1"],
        "unknown worker option",
    );
}

#[test]
fn help_prints_the_usage_and_succeeds() {
    let output = run(&["--help"]);
    assert!(output.status.success(), "{}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("usage: cairn-crash"), "{stdout}");
}

#[test]
fn the_longest_work_time_does_not_overflow_the_generator() {
    let dag = Dag::generate(5, 50, u64::MAX);
    assert_eq!(dag.total_tasks(), 50);
}
