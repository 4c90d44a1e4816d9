//! The conformance cases of what reading and status moves leave alone: `open` changes no
//! status, `peek` and `load_meta` write nothing (a torn tail and bad state stay for `open`),
//! a writer never finishes a run moved on under it, and a held run is never quarantined.

use super::cases::{append, begin, id, meta, sample_event, sample_events, stored_meta};
use super::{CaseResult, ConformanceHarness, Damage};
use crate::audit::AuditAction;
use crate::error::Error;
use crate::meta::{RunError, RunFilter, RunId, RunStatus};
use crate::port::CheckpointerFactory;

/// Opens `run_id` through `factory`, which must find it.
async fn open_found(factory: &dyn CheckpointerFactory, run_id: &RunId) -> crate::port::Opened {
    match factory.open(run_id).await {
        Ok(Some(opened)) => opened,
        Ok(None) => panic!("open of run {run_id} found nothing, but the run was begun"),
        Err(err) => panic!("open of run {run_id} failed: {err:?}"),
    }
}

/// `open` takes the writer lock and reads, nothing more: a paused run and a failed run stay
/// as stored (status, epoch, owner, `updated_at`, `finished_at`, error), while the writer
/// holds them and after it is gone.
pub async fn open_changes_no_status<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    drop(begin(&*factory, meta("open-paused", "wf", "scope", 1)).await);
    factory
        .compare_and_swap_status(&id("open-paused"), RunStatus::Running, RunStatus::Paused)
        .await
        .expect("cas")
        .expect("running → paused");
    let failing = begin(&*factory, meta("open-failed", "wf", "scope", 2)).await;
    failing
        .fail(&RunError::new("task_failed", "task 0 failed"))
        .await
        .expect("fail");
    drop(failing);
    // Let the clock move on, so a write by `open` would show in `updated_at`.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for name in ["open-paused", "open-failed"] {
        let run_id = id(name);
        let before = stored_meta(h, &run_id).await;
        let opened = open_found(&*h.factory(), &run_id).await;
        assert_eq!(
            opened.recovered.meta, before,
            "open of {name} reads the stored metadata"
        );
        assert_eq!(
            stored_meta(h, &run_id).await,
            before,
            "open of {name} changed its metadata"
        );
        drop(opened);
        assert_eq!(
            stored_meta(h, &run_id).await,
            before,
            "dropping the writer of {name} changed its metadata"
        );
    }
    CaseResult::Passed
}

/// A status moved on under a live writer (a cancel from another process, which a writer's
/// lock does not refuse) is what the writer's `complete` and `fail` meet: `Terminal` naming
/// the stored status, and the cancelled run stays cancelled. A writer that finished from a
/// status it read at `open` would overwrite the cancel.
pub async fn a_writer_never_finishes_a_run_cancelled_under_it<H: ConformanceHarness>(
    h: &H,
) -> CaseResult {
    let run_id = id("cancelled-under");
    let factory = h.factory();
    let writer = begin(&*factory, meta("cancelled-under", "wf", "scope", 1)).await;
    append(&*writer, &sample_events(0, 2)).await;
    let cancelled = h
        .factory()
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Cancelled)
        .await
        .expect("a swap to cancelled is no claim, so a writer does not refuse it")
        .expect("running → cancelled");
    assert!(
        cancelled.finished_at.is_some(),
        "a swap to a terminal status sets finished_at: {cancelled:?}"
    );
    let err = writer
        .complete()
        .await
        .expect_err("the run is cancelled, so it never completes");
    assert!(
        matches!(&err, Error::Terminal { run_id: named, status: RunStatus::Cancelled } if *named == run_id),
        "{err:?}"
    );
    let err = writer
        .fail(&RunError::new("late", "too late"))
        .await
        .expect_err("nor fails");
    assert!(
        matches!(
            &err,
            Error::Terminal {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{err:?}"
    );
    drop(writer);
    assert_eq!(
        stored_meta(h, &run_id).await,
        cancelled,
        "the cancel is what is stored"
    );
    CaseResult::Passed
}

/// `quarantine` of a run a live writer holds is `Locked` and moves nothing: the run stays
/// listed and opens afterwards with every event, its writer keeps appending, and nothing is
/// listed as quarantined.
pub async fn quarantine_of_a_held_run_moves_nothing<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("held-aside");
    let factory = h.factory();
    let writer = begin(&*factory, meta("held-aside", "wf", "scope", 1)).await;
    append(&*writer, &sample_events(0, 2)).await;
    for quarantiner in [h.factory(), factory.clone()] {
        match quarantiner.quarantine(&run_id, "asked while held").await {
            Err(Error::Locked { run_id: named, .. }) => assert_eq!(named, run_id),
            other => panic!("quarantine of a held run gave {other:?}, not Locked"),
        }
    }
    append(&*writer, &sample_events(2, 3)).await;
    drop(writer);
    let quarantined = factory.list_quarantined().await.expect("list_quarantined");
    assert!(
        quarantined.iter().all(|entry| entry.run_id != run_id),
        "a refused quarantine lists nothing: {quarantined:?}"
    );
    let listed = factory.list(&RunFilter::default()).await.expect("list");
    assert!(
        listed.iter().any(|meta| meta.run_id == run_id),
        "the run is still listed: {listed:?}"
    );
    let opened = open_found(&*h.factory(), &run_id).await;
    assert_eq!(opened.recovered.events, sample_events(0, 3));
    CaseResult::Passed
}

/// `peek` reports a torn last record in `torn_tail`. An adapter whose `peek` writes nothing
/// (the SHOULD of `CheckpointerFactory::peek`) leaves it for `open`: a second peek reports it
/// again, no cut is audited, and `open` then cuts it as if nobody had looked. An adapter that
/// keeps the default `peek` (open, then drop the writer) cuts it at the first look and audits
/// that; the case checks so and is skipped.
pub async fn peek_leaves_a_torn_tail_for_open<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("torn-peeked");
    {
        let factory = h.factory();
        let run = begin(&*factory, meta("torn-peeked", "wf", "scope", 1)).await;
        for n in 0..5 {
            append(&*run, &[sample_event(n)]).await;
        }
    }
    if let Damage::Unsupported(reason) = h.tear_last_record(&run_id) {
        return CaseResult::Skipped(reason);
    }
    let factory = h.factory();
    let mut cut_by_peek = false;
    for look in 1..=2 {
        let peeked = factory
            .peek(&run_id)
            .await
            .unwrap_or_else(|err| panic!("peek {look} of a torn run: {err:?}"))
            .expect("the run exists");
        assert_eq!(peeked.events, sample_events(0, 4), "peek {look}");
        match (look, peeked.torn_tail) {
            (_, Some(_)) => {}
            (1, None) => panic!("peek reports the torn tail open would cut"),
            (_, None) => cut_by_peek = true,
        }
    }
    let audit = factory.read_audit(&run_id).await.expect("read_audit");
    let cuts = audit
        .iter()
        .filter(|r| r.action == AuditAction::TornTailCut)
        .count();
    if cut_by_peek {
        assert_eq!(
            cuts, 1,
            "a peek that cut, cut once and audited it: {audit:?}"
        );
        return CaseResult::Skipped("the adapter's peek cuts a torn tail, as open does".into());
    }
    assert_eq!(cuts, 0, "peek cut nothing, so no cut is audited: {audit:?}");
    let opened = open_found(&*factory, &run_id).await;
    assert!(
        opened.recovered.torn_tail.is_some(),
        "open still finds the torn tail peek left"
    );
    assert_eq!(opened.recovered.events, sample_events(0, 4));
    CaseResult::Passed
}

/// Plants metadata of a format version this build does not read in a run begun with two
/// events; `None` when the harness cannot.
async fn run_with_bad_metadata<H: ConformanceHarness>(h: &H, run: &str) -> Option<String> {
    {
        let factory = h.factory();
        let writer = begin(&*factory, meta(run, "wf", "scope", 1)).await;
        append(&*writer, &sample_events(0, 2)).await;
    }
    match h.plant_version_mismatch(&id(run)) {
        Damage::Unsupported(reason) => Some(reason),
        Damage::Applied { .. } => None,
    }
}

/// Checks that nothing has quarantined `run_id` yet, and that `open` now does, with
/// `VersionMismatch`.
async fn check_left_for_open(factory: &dyn CheckpointerFactory, run_id: &RunId) {
    let quarantined = factory.list_quarantined().await.expect("list_quarantined");
    assert!(
        quarantined.iter().all(|entry| entry.run_id != *run_id),
        "reads quarantined nothing: {quarantined:?}"
    );
    match factory.open(run_id).await {
        Err(Error::VersionMismatch { run_id: named, .. }) => assert_eq!(named, *run_id),
        other => panic!("open after the reads gave {other:?}, not VersionMismatch"),
    }
    let quarantined = factory.list_quarantined().await.expect("list_quarantined");
    assert!(
        quarantined.iter().any(|entry| entry.run_id == *run_id),
        "open quarantined it: {quarantined:?}"
    );
}

/// Metadata of a format version this build does not read is a bad-state error from
/// `load_meta`, every time, and `load_meta` moves nothing: `open` afterwards still meets it
/// and quarantines it with `VersionMismatch`. (A `load_meta` that answered with the
/// metadata would have the resume policy treat the run as sound.)
pub async fn load_meta_reports_bad_metadata<H: ConformanceHarness>(h: &H) -> CaseResult {
    if let Some(reason) = run_with_bad_metadata(h, "bad-meta-read").await {
        return CaseResult::Skipped(reason);
    }
    let run_id = id("bad-meta-read");
    let factory = h.factory();
    for look in 1..=2 {
        match factory.load_meta(&run_id).await {
            Err(err) if err.is_bad_state() => {}
            other => panic!("load_meta {look} of a wrong-version run gave {other:?}"),
        }
    }
    check_left_for_open(&*factory, &run_id).await;
    CaseResult::Passed
}

/// `peek` of a run with metadata of a format version this build does not read is a
/// bad-state error. An adapter whose `peek` writes nothing leaves the run for `open` to
/// quarantine; one that keeps the default `peek` quarantines it as `open` does, and the case
/// is skipped.
pub async fn peek_leaves_bad_metadata_for_open<H: ConformanceHarness>(h: &H) -> CaseResult {
    if let Some(reason) = run_with_bad_metadata(h, "bad-meta-peeked").await {
        return CaseResult::Skipped(reason);
    }
    let run_id = id("bad-meta-peeked");
    let factory = h.factory();
    for look in 1..=2 {
        match factory.peek(&run_id).await {
            Err(Error::VersionMismatch { .. }) if look == 1 => {
                assert!(
                    factory
                        .load_meta(&run_id)
                        .await
                        .expect("load_meta")
                        .is_none(),
                    "a peek that answered VersionMismatch moved the run aside"
                );
                return CaseResult::Skipped(
                    "the adapter's peek quarantines bad state, as open does".into(),
                );
            }
            Err(err) if err.is_bad_state() => {}
            other => panic!("peek {look} of a wrong-version run gave {other:?}"),
        }
    }
    check_left_for_open(&*factory, &run_id).await;
    CaseResult::Passed
}
