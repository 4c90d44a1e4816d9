//! The `cairn` binary: parses the command line, installs telemetry (only a binary may install
//! the global subscriber) and hands over to `cairn_cli::app`. It also picks the process's
//! allocator, as only a binary should.

use std::process::ExitCode;

use cairn_cli::app;
use cairn_cli::cli::{Cli, Command};
use clap::Parser as _;

/// jemalloc instead of glibc's malloc. A run's memory comes in two waves: the first batch
/// (every task of the workflow, its journal events and their encoded records at once), then
/// state that grows with each finished task, allocated on other threads. With glibc's
/// defaults, much of what the first wave freed was not reused by the second: a 100,000-task
/// run peaked at 440 to 463 MB, and at about 335 MB with jemalloc (docs/benchmarks.md,
/// "Memory per task").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = &cli.command {
        return app::completions(*shell);
    }
    // Progress goes to stdout; logs go to stderr, errors only unless RUST_LOG asks for more
    // (for example `RUST_LOG=cairn=info`), since the progress lines already say what happens.
    // A collector (OTEL_EXPORTER_OTLP_ENDPOINT) still gets every span and INFO event.
    let config = cairn_telemetry::Config::new("cairn")
        .with_default_filter("error")
        .with_export_filter(cairn_telemetry::DEFAULT_FILTER);
    let _telemetry = match cairn_telemetry::init(config) {
        Ok(guard) => Some(guard),
        Err(error) => {
            cairn_cli::out::write_stderr(format_args!("warning: telemetry is off: {error}\n"));
            None
        }
    };
    if matches!(
        cli.command,
        Command::Run(_) | Command::Resume(_) | Command::Scheduler(_)
    ) && std::process::id() == 1
    {
        // As PID 1 every orphan of every command becomes cairn's child, and cairn waits only
        // for the commands it started: the rest stay zombies until the PID limit is hit.
        cairn_cli::out::write_stderr(format_args!(
            "warning: cairn is process 1 (a container without an init): processes that commands leave behind (daemons, `setsid ... &`) become its children and are never reaped, so zombies pile up until forks fail. Run the container with an init: `docker run --init`, `tini -- cairn ...`, or `init: true` in compose\n"
        ));
    }
    app::run(cli)
}
