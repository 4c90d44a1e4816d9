//! A job id may not start with `-` (it would read as an option on a command line); a job
//! file already stored under such a name is reported and left where it is, and audit
//! records of such a job do not make the shared audit log unreadable.

mod common;

use std::sync::Arc;

use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId, JobStore, LeftOutPlace};
use cairn_checkpoint_file::FileJobStore;
use cairn_queue::Timestamp;
use cairn_scheduler::SchedulerConfig;
use common::{Rig, every_minute, id};

#[test]
fn an_id_starting_with_a_dash_is_refused_with_the_reason() {
    let refused = JobId::new("-x").unwrap_err();
    assert_eq!(refused.id, "-x");
    assert!(
        refused.reason.contains("must not start with '-'"),
        "{refused}"
    );
    assert!(JobId::new("x-").is_ok());
    assert!(JobId::new("a-b_c").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_named_with_a_leading_dash_is_reported_once_and_left_in_place() {
    let root = tempfile::tempdir().unwrap();
    let file = FileJobStore::open(root.path()).unwrap();
    let rig = Rig::over(Arc::new(file.clone()), SchedulerConfig::default());
    rig.scheduler
        .jobs()
        .add(every_minute("healthy"))
        .await
        .unwrap();
    // A job an earlier build stored under `-x`: copy a real job file to that name.
    let healthy = std::fs::read(file.job_path(&id("healthy"))).unwrap();
    let dashed = file.dir().join("-x.json");
    std::fs::write(&dashed, &healthy).unwrap();

    let first = rig.tick_when_due(&id("healthy")).await;
    assert_eq!(first.runs.len(), 1, "the other job runs: {first:?}");
    assert_eq!(first.left_out.len(), 1, "{first:?}");
    let entry = &first.left_out[0];
    assert_eq!((entry.id.as_ref(), entry.name.as_str()), (None, "-x.json"));
    assert!(
        entry.reason.contains("must not start with '-'"),
        "{entry:?}"
    );
    assert!(matches!(entry.place, LeftOutPlace::LeftInPlace { .. }));

    let second = rig.tick_when_due(&id("healthy")).await;
    assert!(second.left_out.is_empty(), "reported once: {second:?}");
    assert_eq!(
        std::fs::read(&dashed).unwrap(),
        healthy,
        "never moved or changed"
    );
    let quarantine = file.dir().join("quarantine");
    assert_eq!(std::fs::read_dir(quarantine).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_of_a_dashed_job_do_not_hide_the_others() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    // Written by a build that still allowed the name: decoding stored data accepts it.
    let dashed: JobId = serde_json::from_value(serde_json::json!("-x")).unwrap();
    let nightly = id("nightly");
    for job in [&dashed, &nightly] {
        store
            .append_audit(&JobAuditRecord::new(
                Timestamp(1),
                job.clone(),
                JobAuditAction::Created,
                "job created",
            ))
            .await
            .unwrap();
    }
    let records = store.read_audit(&nightly).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].job_id, nightly);
}
