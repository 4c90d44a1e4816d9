//! The bench binary's command line: `--help` prints each bench's options and succeeds, and an
//! unknown bench or option fails with a message that names it, without running anything.

use std::process::Command;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cairn-bench"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("the bench binary runs")
}

#[test]
fn help_prints_each_benchs_options_and_succeeds() {
    for (name, option) in [
        ("queue", "--max-exp"),
        ("checkpoint", "--sizes"),
        ("executor", "--telemetry-side"),
    ] {
        let out = bench(&[name, "--help"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --help failed: {out:?}");
        assert!(
            stdout.starts_with(&format!("usage: cairn-bench {name}")) && stdout.contains(option),
            "{name} --help printed {stdout:?}"
        );
    }
}

#[test]
fn an_unknown_bench_or_option_is_refused_by_name() {
    let out = bench(&["nope", "--help"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown bench `nope`"));
    let out = bench(&["queue", "--bogus"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--bogus`"));
}
