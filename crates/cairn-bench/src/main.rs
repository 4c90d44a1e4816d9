//! Benchmarks behind `cargo xtask bench <name>`: queue, checkpoint and executor throughput.
//!
//! Each bench prints a table and ends with the one summary line its issue names, so the
//! team can compare runs. Run them in release mode; `cargo xtask bench` does.

mod checkpoint;
mod cli;
mod disk;
mod executor;
mod queue;

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        bail!("{USAGE}");
    };
    if matches!(name.as_str(), "--help" | "-h" | "help") {
        println!("{USAGE}");
        return Ok(());
    }
    let rest: Vec<String> = args.collect();
    if rest.iter().any(|arg| arg == "--help" || arg == "-h") {
        println!("{}", usage(&name)?);
        return Ok(());
    }
    match name.as_str() {
        "queue" => queue::run(&rest),
        "checkpoint" => checkpoint::run(&rest),
        "executor" => executor::run(&rest),
        other => bail!("unknown bench `{other}`; expected queue, checkpoint or executor"),
    }
}

/// What `cairn-bench --help` prints, and the refusal of a command line without a bench.
const USAGE: &str = "usage: cairn-bench <queue|checkpoint|executor> [options]\n\
     `cairn-bench <bench> --help` lists that bench's options";

/// The options of bench `name`, for `--help`.
fn usage(name: &str) -> anyhow::Result<&'static str> {
    Ok(match name {
        "queue" => {
            "usage: cairn-bench queue [--max-exp 3..6] [--no-dedup]\n\
             drains a wide DAG and a chain of 10^3 up to 10^max-exp tasks in memory \
             (--max-exp: 3 to 6, default 6)"
        }
        "checkpoint" => {
            "usage: cairn-bench checkpoint [--sizes LIST] [--reopen-events N] [--dir DIR] \
             [--only LABELS]\n\
             appends per second for each adapter and durability, and reopen time\n  \
             --sizes: run sizes from 1 to 1000000, comma-separated (default 1000,10000,100000)\n  \
             --reopen-events: 1 to 3000000 (default 1000000)\n  \
             --dir: a directory on a disk, not tmpfs (default the temp dir)\n  \
             --only: row labels, comma-separated: file/sync, file/group x1, file/group x8, \
             file/group x64, sled, sled/group x1, sled/group x8, noop, naive, sqlite"
        }
        "executor" => {
            "usage: cairn-bench executor [--tasks N] [--concurrency 1,16,256] \
             [--group-delay-us N] [--compact-after-records N] [--dir PATH] \
             [--telemetry-side on|off] [--side-adapter file|noop]\n\
             no-op tasks per second through the executor, and the telemetry overhead\n  \
             --tasks: 1 to 1000000 (default 100000)\n  \
             --concurrency: 1 to 1000000 each, comma-separated (default 1,16,256)\n  \
             --group-delay-us: 0 to 1000000 (default 0)\n  \
             --compact-after-records: 1 to 1000000000 (default the file adapter's)\n  \
             --dir: a directory on a disk, not tmpfs (default the temp dir)\n  \
             --telemetry-side: run one side of the telemetry comparison once, to profile\n  \
             --side-adapter: the adapter --telemetry-side runs on (default noop)"
        }
        other => bail!("unknown bench `{other}`; expected queue, checkpoint or executor"),
    })
}
