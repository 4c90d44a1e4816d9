//! Job documents a newer build wrote. Fields it added at the same format version are kept
//! across this build's rewrites (claim, outcome, pause, resume), on every job store; a
//! document of a newer format version, and a job the store leaves for a newer build, is
//! refused, reported as left for that build, and never run, rewritten or deleted.

mod common;

use std::sync::Arc;

use cairn_checkpoint::{JobId, JobStore, LeftOutPlace, MemoryJobStore};
use cairn_checkpoint_file::FileJobStore;
use cairn_checkpoint_sled::SledJobStore;
use cairn_scheduler::{Error, JOB_FORMAT_VERSION, JobStatus, SchedulerConfig};
use common::{Rig, every_minute, id};
use serde_json::{Value, json};

/// The stores: memory, file and sled, each with the folder it lives in.
fn rigs() -> Vec<(&'static str, Rig, tempfile::TempDir)> {
    let over = |store: Arc<dyn JobStore>| Rig::over(store, SchedulerConfig::default());
    let (file, sled) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let file_store = FileJobStore::open(file.path()).unwrap();
    let sled_store = SledJobStore::open(sled.path().join("cairn.sled")).unwrap();
    vec![
        (
            "memory",
            over(Arc::new(MemoryJobStore::new())),
            tempfile::tempdir().unwrap(),
        ),
        ("file", over(Arc::new(file_store)), file),
        ("sled", over(Arc::new(sled_store)), sled),
    ]
}

/// What a newer build added to the job document, at the same format version.
fn newer_fields() -> Value {
    json!({
        "labels": {"team": "ops", "tier": 1},
        "notify": ["ops@example.com"],
        "paused_until": null,
    })
}

/// The stored document of job `job`.
async fn stored(rig: &Rig, job: &str) -> (u64, Value) {
    let stored = rig.store.get(&id(job)).await.unwrap().expect("stored");
    (stored.version, stored.document)
}

fn assert_kept(store: &str, step: &str, document: &Value) {
    for (key, value) in newer_fields().as_object().unwrap() {
        assert_eq!(
            document.get(key),
            Some(value),
            "{store}: after {step}, the newer build's field `{key}` is lost: {document}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_a_newer_build_added_survive_this_builds_rewrites() {
    for (store, rig, _dir) in rigs() {
        let job = id("nightly");
        rig.scheduler
            .jobs()
            .add(every_minute("nightly"))
            .await
            .unwrap();
        // The newer build rewrote the job with its fields, at this build's format version.
        let (version, mut document) = stored(&rig, "nightly").await;
        assert_eq!(document["format_version"], JOB_FORMAT_VERSION);
        for (key, value) in newer_fields().as_object().unwrap() {
            document[key] = value.clone();
        }
        let written = rig.store.put(&job, Some(version), &document).await;
        written.unwrap().unwrap();

        // Every write this build makes keeps them.
        rig.runner.then(&[false]);
        let report = rig.tick_when_due(&job).await;
        assert_eq!(report.runs.len(), 1, "{store}");
        let (_, after_run) = stored(&rig, "nightly").await;
        assert_eq!(after_run["consecutive_errors"], 1, "{store}: {after_run}");
        assert_kept(store, "a run (claim and outcome)", &after_run);
        rig.scheduler.jobs().pause(&job).await.unwrap();
        assert_kept(store, "a pause", &stored(&rig, "nightly").await.1);
        let resumed = rig.scheduler.jobs().resume(&job, false).await.unwrap();
        assert_eq!(resumed.status, JobStatus::Active, "{store}");
        assert_kept(store, "a resume", &stored(&rig, "nightly").await.1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_document_of_a_newer_format_version_is_refused_and_left_as_it_is() {
    for (store, rig, _dir) in rigs() {
        let job = id("nightly");
        rig.scheduler
            .jobs()
            .add(every_minute("nightly"))
            .await
            .unwrap();
        let (version, mut document) = stored(&rig, "nightly").await;
        document["format_version"] = json!(JOB_FORMAT_VERSION + 1);
        // A newer build may change anything else: this build must not need to decode it.
        document["schedule"] = json!({"kind": "lunar", "phase": "full"});
        document["next_run_at"] = json!(null);
        let written = rig.store.put(&job, Some(version), &document).await;
        let version = written.unwrap().unwrap();

        rig.clock.advance(std::time::Duration::from_secs(3600));
        let report = rig.scheduler.tick().await.unwrap();
        assert!(report.runs.is_empty(), "{store}: {report:?}");
        assert!(report.unreadable.is_empty(), "{store}: {report:?}");
        assert_eq!(report.left_out.len(), 1, "{store}: {report:?}");
        assert!(
            matches!(report.left_out[0].place, LeftOutPlace::NewerFormat { .. }),
            "{store}: {report:?}"
        );
        // Reported once, as every left-out entry is, not every tick.
        let again = rig.scheduler.tick().await.unwrap();
        assert!(again.left_out.is_empty(), "{store}: {again:?}");
        let listed = rig.scheduler.jobs().list_readable().await.unwrap();
        assert!(listed.unreadable.is_empty(), "{store}: {listed:?}");
        assert_eq!(listed.newer.len(), 1, "{store}: {listed:?}");
        assert_eq!(listed.newer[0].id.as_ref(), Some(&job), "{store}");
        for refused in operator_calls(&rig, &job, Revive::Too).await {
            assert!(
                matches!(refused, Err(Error::NewerFormat { .. })),
                "{store}: {refused:?}"
            );
        }
        assert_eq!(
            stored(&rig, "nightly").await,
            (version, document.clone()),
            "{store}: the newer document is left exactly as it was"
        );
    }
}

/// A job whose stored file or value a newer build wrote (the store's format, not the
/// document's) is never run, rewritten or deleted by this build's scheduler, and is reported
/// once as left for the newer build.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_store_leaves_for_a_newer_build_is_never_run_or_changed() {
    let memory = MemoryJobStore::new();
    let rig = Rig::over(Arc::new(memory.clone()), SchedulerConfig::default());
    let job = id("nightly");
    rig.scheduler
        .jobs()
        .add(every_minute("nightly"))
        .await
        .unwrap();
    rig.scheduler
        .jobs()
        .add(every_minute("healthy"))
        .await
        .unwrap();
    assert!(memory.plant_newer_format(&job));
    let report = rig.tick_when_due(&id("healthy")).await;
    let ran: Vec<&str> = report.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["healthy"], "{report:?}");
    assert_eq!(report.left_out.len(), 1, "{report:?}");
    assert!(matches!(
        report.left_out[0].place,
        LeftOutPlace::NewerFormat { .. }
    ));
    for refused in operator_calls(&rig, &job, Revive::No).await {
        assert!(
            matches!(refused, Err(Error::NewerFormat { .. })),
            "{refused:?}"
        );
    }
    assert!(
        memory
            .read_audit(&job)
            .await
            .unwrap()
            .iter()
            .all(|record| { record.action == cairn_checkpoint::JobAuditAction::Created })
    );
}

#[test]
fn a_job_reads_back_with_the_fields_it_does_not_know() {
    let document = json!({
        "format_version": JOB_FORMAT_VERSION,
        "id": "nightly",
        "name": "nightly",
        "schedule": {"kind": "every", "interval_ms": 60_000},
        "workflow": "wf.toml",
        "input": "",
        "status": "active",
        "consecutive_errors": 0,
        "max_consecutive_errors": 10,
        "next_run_at": 60_000,
        "last_run_at": null,
        "last_error": null,
        "delete_after_run": false,
        "created_at": 0,
        "labels": {"team": "ops"},
    });
    let job = cairn_scheduler::Job::from_stored(cairn_checkpoint::StoredJob {
        id: id("nightly"),
        version: 1,
        document: document.clone(),
    })
    .unwrap();
    assert_eq!(job.to_document(), document, "re-encoded whole");
}

/// Whether [`operator_calls`] also tries a forced resume.
#[derive(PartialEq)]
enum Revive {
    Too,
    No,
}

/// What each operator call on `job` returned: show, pause, (a forced resume), delete, and
/// the way out for an unreadable document, which must not delete a newer one either.
async fn operator_calls(rig: &Rig, job: &JobId, revive: Revive) -> Vec<Result<(), Error>> {
    let jobs = rig.scheduler.jobs();
    let mut results = vec![
        jobs.show(job).await.map(|_| ()),
        jobs.pause(job).await.map(|_| ()),
    ];
    if revive == Revive::Too {
        results.push(jobs.resume(job, true).await.map(|_| ()));
    }
    results.push(jobs.delete(job).await.map(|_| ()));
    results.push(jobs.delete_unreadable(job).await.map(|_| ()));
    results
}
