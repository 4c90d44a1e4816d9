//! The one-writer lock and status compare-and-swap across real processes: the test binary
//! re-runs itself as a child process that holds a run.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use cairn_checkpoint::{CheckpointerFactory, Error, RunId, RunMeta, RunStatus};
use cairn_checkpoint_file::FileFactory;
use cairn_queue::Timestamp;

const CHILD_ROOT: &str = "CAIRN_FILE_TEST_CHILD_ROOT";

/// In the child: open the run, say so, keep it until stdin closes, then race a claim.
async fn act_as_child(root: &str) {
    let factory = FileFactory::builder(root).build().unwrap();
    let id = RunId::new("shared").unwrap();
    let opened = factory
        .open(&id)
        .await
        .unwrap()
        .expect("the parent began the run");
    println!("HELD {}", std::process::id());
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    drop(opened);
    let mut wins = 0;
    for _ in 0..50 {
        if let Ok(Ok(_)) = factory
            .compare_and_swap_status(&id, RunStatus::Running, RunStatus::Paused)
            .await
        {
            wins += 1;
        }
        if let Ok(Ok(_)) = factory
            .compare_and_swap_status(&id, RunStatus::Paused, RunStatus::Running)
            .await
        {
            wins += 1;
        }
    }
    println!("WINS {wins}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_and_swap_hold_across_processes() {
    if let Ok(root) = std::env::var(CHILD_ROOT) {
        act_as_child(&root).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let factory = FileFactory::builder(dir.path()).build().unwrap();
    let id = RunId::new("shared").unwrap();
    drop(
        factory
            .begin(RunMeta::new(id.clone(), "wf", "s", "", Timestamp(1)))
            .await
            .unwrap(),
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lock_and_swap_hold_across_processes",
            "--nocapture",
        ])
        .env(CHILD_ROOT, dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child_pid = child.id();
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
        if line.starts_with("HELD") {
            break;
        }
    }
    assert!(factory.is_held(&id).await.unwrap());
    match factory.open(&id).await {
        Err(Error::Locked { holder, .. }) => {
            assert!(holder.contains(&format!("pid {child_pid}")), "{holder}")
        }
        other => panic!("expected Locked naming the child, got {other:?}"),
    }
    // Release the child, then race it on claims.
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut parent_wins = 0u64;
    for _ in 0..50 {
        if let Ok(Ok(_)) = factory
            .compare_and_swap_status(&id, RunStatus::Running, RunStatus::Paused)
            .await
        {
            parent_wins += 1;
        }
        if let Ok(Ok(_)) = factory
            .compare_and_swap_status(&id, RunStatus::Paused, RunStatus::Running)
            .await
        {
            parent_wins += 1;
        }
    }
    let mut child_wins = None;
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("WINS ") {
            child_wins = Some(n.trim().parse::<u64>().unwrap());
        }
    }
    assert!(child.wait().unwrap().success());
    let child_wins = child_wins.expect("the child reported its wins");
    let meta = factory.load_meta(&id).await.unwrap().unwrap();
    // Swaps alternate pause, claim, pause...: the winners together made `total` swaps, of
    // which `total / 2` were claims, each adding exactly one epoch.
    let total = parent_wins + child_wins;
    assert!(total > 0, "someone won");
    let expected_status = if total % 2 == 1 {
        RunStatus::Paused
    } else {
        RunStatus::Running
    };
    assert_eq!(meta.status, expected_status);
    assert_eq!(
        meta.lease_epoch,
        1 + total / 2,
        "no claim was lost or doubled"
    );
    assert!(!factory.is_held(&id).await.unwrap());
}
