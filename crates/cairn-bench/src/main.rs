//! Benchmarks behind cargo xtask bench: queue, checkpoint and executor throughput.

fn main() {}
