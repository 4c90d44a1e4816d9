//! `reap_leftovers`: a recorded process group is killed only while `/proc` shows it is the
//! recorded one (same boot, same leader start), and every record is consumed.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};

use cairn_cli::shell::{Leftover, Reaped, reap_leftovers, recorded_leftovers};

fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("a /proc entry");
    let after_name = &stat[stat.rfind(')').expect("a command name") + 1..];
    after_name
        .split_whitespace()
        .nth(19)
        .expect("a start time")
        .parse()
        .expect("a number")
}

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .expect("spawn sleep")
}

fn exited(child: &mut Child) -> bool {
    for _ in 0..250 {
        if child.try_wait().expect("try_wait").is_some() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[test]
fn a_live_recorded_group_is_killed_and_its_record_removed() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run-1");
    std::fs::create_dir_all(&run).unwrap();
    let mut child = sleeper();
    let pid = child.id();
    std::fs::write(
        run.join("build.group"),
        format!("{pid} {}\n", start_time(pid)),
    )
    .unwrap();

    let build = Leftover {
        task: "build".to_owned(),
        group: pid,
    };
    assert_eq!(
        recorded_leftovers(root.path(), "run-1"),
        vec![build.clone()],
        "reading the records touches nothing"
    );
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let reaped = reap_leftovers(root.path(), "run-1");
    assert_eq!(
        reaped,
        Reaped {
            killed: vec![build],
            ..Reaped::default()
        }
    );
    assert!(!reaped.any_left());
    assert!(exited(&mut child), "the recorded group was killed");
    assert!(!run.join("build.group").exists(), "the record is consumed");
}

#[test]
fn a_group_whose_leader_started_at_another_time_is_left_alone() {
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run-2");
    std::fs::create_dir_all(&run).unwrap();
    let mut child = sleeper();
    let pid = child.id();
    // The same id with another start time is a reused id: not ours to kill.
    std::fs::write(
        run.join("build.group"),
        format!("{pid} {}\n", start_time(pid) + 1),
    )
    .unwrap();
    std::fs::write(run.join("broken.group"), "not a record").unwrap();

    assert_eq!(reap_leftovers(root.path(), "run-2"), Reaped::default());
    assert!(
        child.try_wait().unwrap().is_none(),
        "an unmatched group keeps running"
    );
    assert!(!run.join("build.group").exists() && !run.join("broken.group").exists());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_run_without_records_reaps_nothing() {
    let root = tempfile::tempdir().unwrap();
    assert_eq!(
        reap_leftovers(root.path(), "no-such-run"),
        Reaped::default()
    );
    assert!(recorded_leftovers(root.path(), "no-such-run").is_empty());
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("a boot id")
        .trim()
        .to_owned()
}

#[test]
fn a_record_of_this_boot_is_killed_and_one_of_another_boot_or_host_is_left_alone() {
    // Start times count from boot, so after a power cut (or for a record another host wrote
    // into a shared state folder) an unrelated group can carry the recorded id and start.
    let root = tempfile::tempdir().unwrap();
    let run = root.path().join("run-3");
    std::fs::create_dir_all(&run).unwrap();
    let mut ours = sleeper();
    let mut other_boot = sleeper();
    for (task, child, boot) in [
        ("ours", &ours, boot_id()),
        (
            "stranger",
            &other_boot,
            "00000000-0000-0000-0000-000000000000".to_owned(),
        ),
    ] {
        let pid = child.id();
        std::fs::write(
            run.join(format!("{task}.group")),
            format!("{pid} {} {boot}\n", start_time(pid)),
        )
        .unwrap();
    }

    let reaped = reap_leftovers(root.path(), "run-3");
    assert_eq!(
        reaped,
        Reaped {
            killed: vec![Leftover {
                task: "ours".to_owned(),
                group: ours.id(),
            }],
            other_boot: vec![Leftover {
                task: "stranger".to_owned(),
                group: other_boot.id(),
            }],
            ..Reaped::default()
        }
    );
    assert!(exited(&mut ours), "this boot's group was killed");
    assert!(
        other_boot.try_wait().unwrap().is_none(),
        "another boot's record names nothing here: left alone"
    );
    other_boot.kill().unwrap();
    other_boot.wait().unwrap();
}

/// Runs `script` behind cairn's `SCRIPT_PREFIX`, writing `go` to its stdin (or nothing) and
/// then closing it, as cairn does once the group is recorded (or as cairn's death does).
fn behind_the_prefix(script: &str, go: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{}{script}", cairn_cli::shell::SCRIPT_PREFIX))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut stdin = child.stdin.take().expect("a stdin pipe");
    stdin.write_all(go).expect("write the go-ahead");
    drop(stdin);
    child.wait_with_output().expect("wait for sh")
}

/// The gate: without cairn's go-ahead (its pipe closed unwritten, as when cairn is killed
/// between starting the command and recording its group) the script never runs; with it,
/// the script runs with `/dev/null` as stdin.
#[test]
fn a_script_runs_only_after_cairn_says_go_and_then_reads_dev_null() {
    let script = "echo ran; readlink /proc/self/fd/0; cat";
    let closed = behind_the_prefix(script, b"");
    assert_eq!(closed.status.code(), Some(125), "{closed:?}");
    assert!(closed.stdout.is_empty(), "{closed:?}");

    let opened = behind_the_prefix(script, b"\nmore input cairn never sends\n");
    assert_eq!(opened.status.code(), Some(0), "{opened:?}");
    assert_eq!(String::from_utf8_lossy(&opened.stdout), "ran\n/dev/null\n");
}
