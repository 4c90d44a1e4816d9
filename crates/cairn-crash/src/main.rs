//! The crash-test worker and harness behind cargo xtask crash-test.

fn main() {}
