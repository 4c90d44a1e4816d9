//! The cairn command: run durable workflows of shell commands and resume them after a crash.

fn main() {}
