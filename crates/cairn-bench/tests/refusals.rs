//! Bad command lines: each is refused before any bench starts (nothing on stdout), with a
//! non-zero exit and a message naming the option and the values it takes.

use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("the bench binary runs")
}

/// Asserts that `args` is refused before anything runs, with a message holding every one
/// of `says`.
fn assert_refused(args: &[&str], says: &[&str]) {
    let out = bench(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed to stdout before refusing: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    for said in says {
        assert!(
            stderr.contains(said),
            "{args:?}: expected {said:?} in {stderr:?}"
        );
    }
    assert!(
        !stderr.contains("panicked"),
        "{args:?} panicked: {stderr:?}"
    );
}

#[test]
fn numbers_out_of_range_are_refused_with_the_range() {
    for (args, says) in [
        (
            &["queue", "--max-exp", "7"][..],
            &["--max-exp", "from 3 to 6", "`7`"][..],
        ),
        (
            &["queue", "--max-exp", "-1"],
            &["--max-exp", "from 3 to 6", "`-1`"],
        ),
        (
            &["queue", "--max-exp", "99999999999"],
            &["--max-exp", "from 3 to 6"],
        ),
        (
            &["checkpoint", "--sizes", "1000,99999999999999999"],
            &["--sizes", "from 1 to 1000000", "`1000,99999999999999999`"],
        ),
        (
            &["checkpoint", "--sizes", "0"],
            &["--sizes", "from 1 to 1000000"],
        ),
        (
            &["checkpoint", "--sizes", ""],
            &["--sizes", "from 1 to 1000000"],
        ),
        (
            &[
                "checkpoint",
                "--reopen-events",
                "0",
                "--sizes",
                "1",
                "--only",
                "noop",
            ],
            &["--reopen-events", "from 1 to 3000000", "`0`"],
        ),
        (
            &["executor", "--tasks", "0"],
            &["--tasks", "from 1 to 1000000"],
        ),
        (
            &["executor", "--tasks", "2000000", "--dir", "/nonexistent"],
            &["--tasks", "from 1 to 1000000", "`2000000`"],
        ),
        (
            &["executor", "--concurrency", "1,0"],
            &["--concurrency", "from 1 to 1000000"],
        ),
        (
            &[
                "executor",
                "--group-delay-us",
                "99999999999",
                "--dir",
                "/nonexistent",
            ],
            &["--group-delay-us", "from 0 to 1000000"],
        ),
        (
            &[
                "executor",
                "--compact-after-records",
                "0",
                "--dir",
                "/nonexistent",
            ],
            &["--compact-after-records", "from 1 to 1000000000"],
        ),
    ] {
        assert_refused(args, says);
    }
}

#[test]
fn a_missing_value_or_a_bad_word_is_refused_by_name() {
    assert_refused(&["checkpoint", "--sizes"], &["--sizes needs a value"]);
    assert_refused(&["executor", "--tasks"], &["--tasks needs a value"]);
    assert_refused(
        &["executor", "--telemetry-side", "maybe"],
        &["--telemetry-side", "`on` or `off`", "`maybe`"],
    );
    assert_refused(
        &["executor", "--side-adapter", "disk"],
        &["--side-adapter", "`file` or `noop`", "`disk`"],
    );
}

#[test]
fn an_unknown_only_label_is_refused_with_the_labels() {
    assert_refused(
        &[
            "checkpoint",
            "--only",
            "file/sync,nope",
            "--sizes",
            "1",
            "--reopen-events",
            "1",
        ],
        &["--only", "`nope`", "file/sync", "file/group x64", "sqlite"],
    );
}

#[test]
fn an_option_given_twice_is_refused() {
    assert_refused(
        &["queue", "--max-exp", "3", "--max-exp", "99"],
        &["`--max-exp` is given twice"],
    );
    assert_refused(
        &[
            "executor",
            "--dir",
            "/nonexistent",
            "--dir",
            "/also-nonexistent",
        ],
        &["`--dir` is given twice"],
    );
}

#[test]
fn side_adapter_without_telemetry_side_is_refused() {
    assert_refused(
        &[
            "executor",
            "--side-adapter",
            "file",
            "--dir",
            "/nonexistent",
        ],
        &["--side-adapter only applies with --telemetry-side"],
    );
}

#[test]
fn a_missing_dir_is_refused_before_the_table_starts() {
    for bench_name in ["checkpoint", "executor"] {
        assert_refused(
            &[bench_name, "--dir", "/nonexistent-cairn-bench-dir"],
            &["/nonexistent-cairn-bench-dir", "--dir", "does not exist"],
        );
    }
}

#[test]
fn help_without_a_bench_lists_the_benches_and_succeeds() {
    for flag in ["--help", "-h", "help"] {
        let out = bench(&[flag]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{flag} failed: {out:?}");
        assert!(
            stdout.starts_with("usage: cairn-bench <queue|checkpoint|executor>"),
            "{flag} printed {stdout:?}"
        );
    }
}
