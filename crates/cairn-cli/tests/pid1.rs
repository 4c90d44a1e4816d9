//! cairn as process 1 (a container without an init) cannot reap the orphans its commands
//! leave, so it says so at start (review 51 F21).

mod common;

use std::process::Command;

use common::{Sandbox, assert_contains, assert_lacks, text};

const WARNING: &str = "warning: cairn is process 1";

#[test]
fn cairn_as_process_1_warns_that_orphans_are_not_reaped() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"z\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );

    // Not process 1: no warning.
    let plain = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
    assert_lacks(&text(&plain.stderr), WARNING);

    // A new PID namespace makes cairn its process 1; it needs the rights to make one
    // (root, or user namespaces), which a CI container may not grant.
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .output();
    if !probe.is_ok_and(|probe| probe.status.success()) {
        eprintln!("skipped the process-1 half: `unshare --pid --fork` is not allowed here");
        return;
    }
    let as_init = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            env!("CARGO_BIN_EXE_cairn"),
            "run",
            "wf.toml",
        ])
        .current_dir(sandbox.path(""))
        .output()
        .expect("run cairn under unshare");
    let stderr = text(&as_init.stderr);
    assert_eq!(as_init.status.code(), Some(0), "{stderr}");
    assert_contains(&stderr, WARNING);
    assert_contains(&stderr, "docker run --init");
}
