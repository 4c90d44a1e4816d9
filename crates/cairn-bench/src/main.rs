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
    match name.as_str() {
        "queue" => queue::run(&rest),
        "checkpoint" => checkpoint::run(&rest),
        "executor" => executor::run(&rest),
        other => bail!("unknown bench `{other}`; expected queue, checkpoint or executor"),
    }
}
