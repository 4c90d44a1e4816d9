//! The binary end to end: a worker aborts at its forced crash point, and a short harness
//! pass prints the summary line and exits 0.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use cairn_crash::crash_point::{CrashAt, Point};

const EXE: &str = env!("CARGO_BIN_EXE_cairn-crash");

#[test]
fn crash_points_parse_with_and_without_a_count() {
    let at: CrashAt = "journal-truncate:3".parse().unwrap();
    assert_eq!(at.point, Point::JournalTruncate);
    assert_eq!(at.nth, 3);
    let at: CrashAt = "recovery-read".parse().unwrap();
    assert_eq!((at.point, at.nth), (Point::RecoveryRead, 1));
    assert!(matches!(
        "journal-truncate:0".parse::<CrashAt>(),
        Err(cairn_crash::Error::Setting { .. })
    ));
    assert!(matches!(
        "nowhere".parse::<CrashAt>(),
        Err(cairn_crash::Error::Setting { .. })
    ));
}

#[test]
fn an_armed_worker_aborts_at_its_point_and_the_next_start_completes() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "worker",
        "--dir",
        dir.path().to_str().unwrap(),
        "--tasks",
        "30",
        "--max-work-us",
        "0",
        "--seed",
        "4",
    ];
    let status = Command::new(EXE)
        .args(args)
        .env("CAIRN_CRASH_AT", "journal-append-before-fsync:5")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status}");
    let status = Command::new(EXE)
        .args(args)
        .env_remove("CAIRN_CRASH_AT")
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn a_short_pass_prints_the_summary_line_last_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(EXE)
        .args([
            "--iterations",
            "3",
            "--tasks",
            "30",
            "--max-work-us",
            "500",
            "--power-states",
            "100",
            "--seed",
            "9",
            "--work-dir",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap();
    assert!(last.starts_with("crash-test: "), "{last}");
    assert!(
        last.contains(" 0 lost, 0 duplicate completions, "),
        "{last}"
    );
    assert!(last.ends_with(" power-loss states, 0 violations"), "{last}");
    let kills: u64 = last["crash-test: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(kills >= 3, "{last}");
}

#[test]
fn planted_bad_runs_are_quarantined_by_the_worker_and_not_adopted() {
    use cairn_checkpoint::Durability;
    use cairn_crash::kill;
    use cairn_crash::worker::{Adapter, WorkerOptions};

    let dir = tempfile::tempdir().unwrap();
    let options = WorkerOptions {
        dir: dir.path().to_path_buf(),
        adapter: Adapter::File,
        durability: Durability::Sync,
        seed: 12,
        tasks: 20,
        max_work_us: 0,
        compact_every: 0,
    };
    let planted = kill::plant_bad_state(&options).unwrap();
    assert_eq!(planted.len(), 2);
    let before = kill::check_quarantined(&options, &planted);
    assert!(before.other >= 4, "{:#?}", before.problems);

    let status = Command::new(EXE)
        .args(options.to_args())
        .env_remove("CAIRN_CRASH_AT")
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let after = kill::check_quarantined(&options, &planted);
    assert_eq!(after.other, 0, "{:#?}", after.problems);
}

#[test]
fn a_planted_run_moved_to_quarantine_without_its_records_is_caught() {
    use cairn_checkpoint::Durability;
    use cairn_crash::kill;
    use cairn_crash::worker::{self, Adapter, WorkerOptions};

    let dir = tempfile::tempdir().unwrap();
    let options = WorkerOptions {
        dir: dir.path().to_path_buf(),
        adapter: Adapter::File,
        durability: Durability::Sync,
        seed: 13,
        tasks: 20,
        max_work_us: 0,
        compact_every: 0,
    };
    let planted = kill::plant_bad_state(&options).unwrap();
    // What a store that moves the folder first and records the move after leaves when a
    // kill lands in between: the folders are in quarantine/, with no record anywhere.
    let root = worker::file_root(&options.dir);
    std::fs::create_dir_all(root.join("quarantine")).unwrap();
    for run_id in &planted {
        std::fs::rename(
            root.join("runs").join(run_id.as_str()),
            root.join("quarantine").join(format!("{run_id}-1")),
        )
        .unwrap();
    }
    let found = kill::check_quarantined(&options, &planted);
    assert_eq!(found.other, 2, "{:#?}", found.problems);
    assert!(
        found
            .problems
            .iter()
            .all(|p| p.contains("quarantined without its records")),
        "{:#?}",
        found.problems
    );
}
