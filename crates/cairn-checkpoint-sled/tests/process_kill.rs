//! `Durability::None` promises that an acknowledged write survives a killed process (not a
//! power cut). sled keeps writes in buffers of its own process until it flushes them, so the
//! test acknowledges writes in a child process that then aborts, as a kill would (no
//! destructor, no flush), and reads them back from the files it left.

use cairn_checkpoint::conformance::sample_events;
use cairn_checkpoint::{CheckpointerFactory, Durability, RunId, RunMeta};
use cairn_checkpoint_sled::SledFactory;
use cairn_queue::Timestamp;

/// The variable that tells the child which database to write; the parent leaves it unset.
const CHILD_DB: &str = "CAIRN_SLED_TEST_CHILD_DB";
const ACKNOWLEDGED: &str = "<child: writes acknowledged>";

fn run_id() -> RunId {
    RunId::new("killed").expect("valid run id")
}

/// The child: begins a run, appends, says so, and aborts.
async fn write_then_abort(path: &str) -> ! {
    let factory = SledFactory::builder()
        .path(path)
        .durability(Durability::None)
        .build()
        .expect("build");
    let meta = RunMeta::new(run_id(), "wf", "scope", "", Timestamp(0));
    let run = factory.begin(meta).await.expect("begin");
    run.append(&sample_events(0, 5)).await.expect("append");
    println!("{ACKNOWLEDGED}");
    std::io::Write::flush(&mut std::io::stdout()).expect("stdout");
    std::process::abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_acknowledged_without_fsync_survive_a_killed_process() {
    if let Ok(path) = std::env::var(CHILD_DB) {
        write_then_abort(&path).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("killed.sled");
    let child = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "writes_acknowledged_without_fsync_survive_a_killed_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, &path)
        .output()
        .expect("the child runs");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        stdout.contains(ACKNOWLEDGED),
        "the child acknowledged its writes: {stdout}\n{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(!child.status.success(), "the child aborted");
    let factory = SledFactory::open(&path).expect("the files the child left open");
    let opened = factory
        .open(&run_id())
        .await
        .expect("open")
        .expect("the acknowledged begin survived");
    assert_eq!(opened.recovered.events, sample_events(0, 5));
}
