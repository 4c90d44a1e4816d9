//! Project automation: `cargo xtask ci | tidy | bench <name> | crash-test [options]`.
//!
//! xtask is std-only so it builds in seconds. `cargo xtask ci` is exactly what CI runs
//! (`.ci/run` calls it), so a local pass means a green CI.

mod json;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                    fmt check, clippy, rustdoc, all tests, crash pass, tidy, cargo-deny
  tidy                  structural checks (also run as a #[test])
  bench <name> [args]   run a release benchmark: queue | checkpoint | executor
  crash-test [args]     kill -9 / power-loss crash harness (see --help)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => no_arguments("ci", &args[1..]).and_then(|()| ci()),
        Some("tidy") => no_arguments("tidy", &args[1..]).and_then(|()| run_tidy()),
        Some("bench") => bench(&args[1..]),
        Some("crash-test") => crash_test(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Refuses arguments to a command that takes none: a flag someone expects to change what CI
/// runs must not be dropped without a word.
fn no_arguments(command: &str, rest: &[String]) -> Result<(), String> {
    match rest.first() {
        None => Ok(()),
        Some(extra) => Err(format!(
            "`{command}` takes no arguments, but got `{extra}`\n\n{USAGE}"
        )),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(workspace_root());
    cmd
}

/// `cargo` for the CI steps: without incremental caches, which a build from a fresh clone never
/// reuses and which took several GB of CI's disk.
fn ci_cargo() -> Command {
    let mut cmd = cargo();
    cmd.env("CARGO_INCREMENTAL", "0");
    cmd
}

/// Runs a command, echoing it, and fails with its exit status.
fn run(step: &str, cmd: &mut Command) -> Result<(), String> {
    eprintln!("xtask: [{step}] {cmd:?}");
    let started = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("[{step}] could not start: {e}"))?;
    eprintln!(
        "xtask: [{step}] finished in {:.1}s with {status}",
        started.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("[{step}] failed ({status})"))
    }
}

/// cairn-telemetry feature sets that `ci` lints on their own (besides the workspace's).
const TELEMETRY_FEATURE_SETS: [&str; 3] = ["", "export", "otlp-grpc"];

fn ci() -> Result<(), String> {
    let started = Instant::now();
    run("fmt", ci_cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(
        "clippy",
        ci_cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The workspace build unifies features, so cairn-telemetry's smaller feature sets (the
    // executor's events-only build, cairn-bench's export without OTLP) are linted apart:
    // dead code behind a feature gate shows up only there.
    for features in TELEMETRY_FEATURE_SETS {
        run(
            "clippy-features",
            ci_cargo().args([
                "clippy",
                "--locked",
                "-p",
                "cairn-telemetry",
                "--lib",
                "--no-default-features",
                "--features",
                features,
                "--",
                "-D",
                "warnings",
            ]),
        )?;
    }
    // Rustdoc is the docs users read: a broken or ambiguous intra-doc link, or a public page
    // that links to a private item, fails here instead of shipping as plain text.
    run(
        "doc",
        ci_cargo().env("RUSTDOCFLAGS", "-D warnings").args([
            "doc",
            "--workspace",
            "--no-deps",
            "--locked",
        ]),
    )?;
    run(
        "test",
        // Every crate's tests run even when one fails, so one red crate hides no other.
        ci_cargo().args(["test", "--workspace", "--locked", "--no-fail-fast"]),
    )?;
    // The short crash pass (50 kills per adapter, every forced crash point, 10,000
    // power-loss states). A debug build, because the test step above already built it.
    run(
        "crash-test",
        ci_cargo().args(["run", "--locked", "-p", "cairn-crash", "--", "--ci"]),
    )?;
    run_tidy()?;
    deny()?;
    eprintln!(
        "xtask: ci passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn run_tidy() -> Result<(), String> {
    let problems = tidy::check(&workspace_root())?;
    if problems.is_empty() {
        eprintln!("xtask: [tidy] ok");
        Ok(())
    } else {
        Err(format!(
            "[tidy] {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        ))
    }
}

fn deny() -> Result<(), String> {
    let installed = Command::new("cargo-deny")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        run(
            "deny-install",
            cargo().args(["install", "cargo-deny", "--locked"]),
        )?;
    }
    // The advisories check needs a database this machine cannot reach; these three work offline.
    run(
        "deny",
        cargo().args(["deny", "check", "bans", "licenses", "sources"]),
    )
}

/// A release benchmark. Runs the bench directly rather than through `run`, so that its
/// summary (the line an issue names) stays the last line printed.
fn bench(args: &[String]) -> Result<(), String> {
    if args.is_empty() {
        return Err("usage: cargo xtask bench <queue|checkpoint|executor> [options]".to_owned());
    }
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--locked", "-p", "cairn-bench", "--"])
        .args(args);
    run_last("bench", cmd)
}

/// The crash harness in a release build (`--iterations 10000` is the soak). The seed is
/// printed first; a failure prints the command that replays it.
fn crash_test(args: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["run", "--release", "--locked", "-p", "cairn-crash", "--"])
        .args(args);
    run_last("crash-test", cmd)
}

/// Runs a command whose own last line is its summary: the command is printed before it and
/// nothing after it, and a failure exits with the command's own status.
fn run_last(label: &str, mut cmd: Command) -> Result<(), String> {
    eprintln!("xtask: [{label}] {cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("[{label}] could not start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        std::process::exit(status.code().unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::no_arguments;

    #[test]
    fn ci_and_tidy_refuse_arguments_they_would_ignore() {
        assert_eq!(no_arguments("ci", &[]), Ok(()));
        let refused = no_arguments("tidy", &["--fix".to_owned()]).unwrap_err();
        assert!(
            refused.starts_with("`tidy` takes no arguments, but got `--fix`"),
            "{refused}"
        );
    }
}
