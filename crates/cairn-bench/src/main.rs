//! Benchmarks behind `cargo xtask bench <name>`: queue, checkpoint and executor throughput.
//!
//! Each bench prints a table and ends with the one summary line its issue names, so the
//! team can compare runs. Run them in release mode; `cargo xtask bench` does.

mod checkpoint;
mod executor;
mod queue;

use anyhow::bail;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        bail!("usage: cairn-bench <queue|checkpoint|executor> [options]");
    };
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

/// The options of bench `name`, for `--help`.
fn usage(name: &str) -> anyhow::Result<&'static str> {
    Ok(match name {
        "queue" => {
            "usage: cairn-bench queue [--max-exp 3..6] [--no-dedup]\n\
             drains a wide DAG and a chain of 10^3 up to 10^max-exp tasks in memory"
        }
        "checkpoint" => {
            "usage: cairn-bench checkpoint [--sizes LIST] [--reopen-events N] [--dir DIR] \
             [--only LABELS]\n\
             appends per second for each adapter and durability, and reopen time"
        }
        "executor" => {
            "usage: cairn-bench executor [--tasks N] [--concurrency 1,16,256] \
             [--group-delay-us N] [--compact-after-records N] [--dir PATH] \
             [--telemetry-side on|off] [--side-adapter file|noop]\n\
             no-op tasks per second through the executor, and the telemetry overhead"
        }
        other => bail!("unknown bench `{other}`; expected queue, checkpoint or executor"),
    })
}
