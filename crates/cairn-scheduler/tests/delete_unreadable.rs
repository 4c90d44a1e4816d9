//! Deleting a job whose stored document does not decode: `delete` refuses it (it decodes
//! first), `delete_unreadable` removes it and keeps the document whole in the audit log, and
//! a job that decodes is left to `delete`, which behaves as before.

mod common;

use std::sync::Arc;

use cairn_checkpoint::{JobAuditAction, JobStore, MemoryJobStore};
use cairn_checkpoint_file::FileJobStore;
use cairn_scheduler::{Error, SchedulerConfig};
use common::{Rig, every_minute, id};

/// The stores the scheduler runs over: memory, and the file adapter (its folder is returned
/// so it lives as long as the rig).
fn rigs() -> Vec<(Rig, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let file = FileJobStore::open(dir.path()).unwrap();
    vec![
        (Rig::memory(), None),
        (
            Rig::over(Arc::new(file), SchedulerConfig::default()),
            Some(dir),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_job_is_deleted_on_request_and_its_document_is_kept() {
    for (rig, _dir) in rigs() {
        let jobs = rig.scheduler.jobs();
        jobs.add(every_minute("good")).await.unwrap();
        let odd = id("odd");
        // Written by something else: the store holds it, the scheduler cannot decode it.
        // (Version 0 no build wrote; a newer build's document is never deleted by this one:
        // tests/newer_job_documents.rs.)
        let document = serde_json::json!({"format_version": 0, "id": "odd", "note": "é\n"});
        rig.store.put(&odd, None, &document).await.unwrap().unwrap();

        let err = jobs.delete(&odd).await.unwrap_err();
        assert!(matches!(err, Error::BadDocument { .. }), "{err:?}");
        assert!(rig.store.get(&odd).await.unwrap().is_some(), "unchanged");

        let gone = jobs.delete_unreadable(&odd).await.unwrap();
        assert_eq!((gone.id.clone(), gone.version), (odd.clone(), 1));
        assert_eq!(gone.document, document);
        assert!(rig.store.get(&odd).await.unwrap().is_none());
        let listed = jobs.list_readable().await.unwrap();
        assert_eq!(listed.jobs.len(), 1);
        assert!(listed.unreadable.is_empty(), "{listed:?}");
        assert!(listed.left_out.is_empty(), "{listed:?}");

        let audit = jobs.audit_log(&odd).await.unwrap();
        let actions: Vec<JobAuditAction> = audit.iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [JobAuditAction::Quarantined, JobAuditAction::Deleted]
        );
        assert_eq!(audit[0].detail["document"], document, "kept whole");
        assert_eq!(audit[0].detail["version"], 1);
        assert!(audit[0].detail["reason"].is_string(), "{:?}", audit[0]);

        // Once gone, it is unknown.
        let again = jobs.delete_unreadable(&odd).await.unwrap_err();
        assert!(matches!(again, Error::NotFound { .. }), "{again:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_decodes_is_refused_and_its_plain_delete_is_unchanged() {
    for (rig, _dir) in rigs() {
        let jobs = rig.scheduler.jobs();
        let good = id("good");
        let added = jobs.add(every_minute("good")).await.unwrap();

        let err = jobs.delete_unreadable(&good).await.unwrap_err();
        assert!(
            matches!(err, Error::NotDamaged { ref id } if *id == good),
            "{err:?}"
        );
        assert_eq!(jobs.show(&good).await.unwrap(), added, "nothing changed");

        assert_eq!(jobs.delete(&good).await.unwrap(), added);
        let actions: Vec<JobAuditAction> = jobs
            .audit_log(&good)
            .await
            .unwrap()
            .iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(actions, [JobAuditAction::Created, JobAuditAction::Deleted]);
    }
}

#[tokio::test]
async fn a_job_that_no_longer_validates_counts_as_undecodable() {
    let store = Arc::new(MemoryJobStore::new());
    let rig = Rig::over(store.clone(), SchedulerConfig::default());
    let jobs = rig.scheduler.jobs();
    let job = jobs.add(every_minute("shrunk")).await.unwrap();
    // Its interval edited below the floor by hand: it parses, but no longer validates.
    let mut document = job.to_document();
    document["schedule"]["interval_ms"] = serde_json::json!(10);
    store
        .put(&job.id, Some(job.version), &document)
        .await
        .unwrap()
        .unwrap();
    let gone = jobs.delete_unreadable(&job.id).await.unwrap();
    assert_eq!(gone.document, document);
    assert!(store.get(&job.id).await.unwrap().is_none());
}
