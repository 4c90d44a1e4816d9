//! A claim that lands just before the policy's own, every time: a store wrapper lets a
//! second claimer (a resumer in another process) try to take the lease of an interrupted run
//! right before the policy takes it. The policy's claim then loses and changes nothing: the
//! run stays the other claimer's, at its epoch, and the policy names that claimer. Once the
//! policy holds the run's writer lock (an abandon, between its claim and its swap to
//! `cancelled`), the other claim is the one refused, and it changes nothing.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_checkpoint::{
    AuditAction, AuditRecord, Checkpointer, CheckpointerFactory, MemoryFactory, Opened,
    Quarantined, Result, RunFilter, RunId, RunMeta, RunStatus, StatusConflict,
};
use cairn_runs::{Decision, Error, ResumePolicy, RunRequest};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

/// Forwards to `inner`; the first time a run is opened or the lease of a `running` run is
/// taken through it (a claim, or a `running → running` swap), or with `at_cancel` the first
/// time a run is swapped from `running` to `cancelled` (with or without an epoch), another
/// claimer first tries to claim that run through `inner` at the epoch stored then.
#[derive(Debug)]
struct AnotherClaimsFirst {
    inner: Store,
    at_cancel: bool,
    /// What the other claimer's claim returned, once it ran.
    other: Mutex<Option<std::result::Result<RunMeta, StatusConflict>>>,
}

impl AnotherClaimsFirst {
    fn new(inner: Store) -> AnotherClaimsFirst {
        AnotherClaimsFirst {
            inner,
            at_cancel: false,
            other: Mutex::new(None),
        }
    }

    /// The other claimer comes when the run is swapped to `cancelled` instead.
    fn at_cancel(inner: Store) -> AnotherClaimsFirst {
        AnotherClaimsFirst {
            at_cancel: true,
            ..AnotherClaimsFirst::new(inner)
        }
    }

    /// The other claimer's won claim, if it ran.
    fn other_claim(&self) -> Option<RunMeta> {
        self.other_outcome()
            .map(|outcome| outcome.expect("the other claimer won"))
    }

    /// What the other claimer's claim returned, if it ran.
    fn other_outcome(&self) -> Option<std::result::Result<RunMeta, StatusConflict>> {
        self.other.lock().unwrap().clone()
    }

    async fn claim_first(&self, run_id: &RunId) -> Result<()> {
        if self.other.lock().unwrap().is_some() {
            return Ok(());
        }
        let stored = self
            .inner
            .load_meta(run_id)
            .await?
            .expect("the raced run exists");
        let outcome = self
            .inner
            .claim(run_id, RunStatus::Running, stored.lease_epoch)
            .await?;
        *self.other.lock().unwrap() = Some(outcome);
        Ok(())
    }
}

#[async_trait]
impl CheckpointerFactory for AnotherClaimsFirst {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        self.inner.begin(meta).await
    }
    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        if !self.at_cancel {
            self.claim_first(run_id).await?;
        }
        self.inner.open(run_id).await
    }
    async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
        self.inner.load_meta(run_id).await
    }
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
        self.inner.list(filter).await
    }
    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<std::result::Result<RunMeta, StatusConflict>> {
        let target = if self.at_cancel {
            RunStatus::Cancelled
        } else {
            RunStatus::Running
        };
        if (from, to) == (RunStatus::Running, target) {
            self.claim_first(run_id).await?;
        }
        self.inner.compare_and_swap_status(run_id, from, to).await
    }
    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<std::result::Result<RunMeta, StatusConflict>> {
        // The abandon's swap to `cancelled` is epoch-checked; the other claimer comes first
        // there too.
        if self.at_cancel && (from, to) == (RunStatus::Running, RunStatus::Cancelled) {
            self.claim_first(run_id).await?;
        }
        self.inner
            .compare_and_swap_status_at(run_id, from, expected_epoch, to)
            .await
    }
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<std::result::Result<RunMeta, StatusConflict>> {
        if from == RunStatus::Running && !self.at_cancel {
            self.claim_first(run_id).await?;
        }
        self.inner.claim(run_id, from, expected_epoch).await
    }
    async fn is_held(&self, run_id: &RunId) -> Result<bool> {
        self.inner.is_held(run_id).await
    }
    async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
        self.inner.quarantine(run_id, reason).await
    }
    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        self.inner.remove_terminal(run_id).await
    }
    async fn list_quarantined(
        &self,
    ) -> cairn_checkpoint::Result<Vec<cairn_checkpoint::QuarantinedRun>> {
        self.inner.list_quarantined().await
    }
    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        self.inner.append_audit(run_id, record).await
    }
    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        self.inner.read_audit(run_id).await
    }
}

/// A forced abandon whose lease claim is beaten by a resumer's: refused, naming the
/// resumer; the run stays exactly as the resumer's claim left it, never audited abandoned.
async fn an_abandon_that_loses_its_claim_changes_nothing(store: Store) {
    let before = interrupted_owned_by(&*store, "r1", "default", Some(gone_owner())).await;
    let raced = Arc::new(AnotherClaimsFirst::new(Arc::clone(&store)));
    let policy = ResumePolicy::new(Arc::clone(&raced) as Store);

    let refused = policy.abandon_forced(&before.run_id).await.unwrap_err();
    let resumer = raced
        .other_claim()
        .expect("the resumer claimed during the abandon");
    assert_eq!(resumer.lease_epoch, before.lease_epoch + 1);
    assert!(
        matches!(&refused, Error::ClaimedDuringAbandon { claimer, .. } if *claimer == resumer.owner),
        "the refusal names the resumer: {refused:?}"
    );
    assert_eq!(
        meta(&*store, &before.run_id).await,
        resumer,
        "the run is the resumer's, one epoch on, untouched by the abandon"
    );
    assert!(abandon_records(&*store, &before.run_id).await.is_empty());
    assert!(!store.is_held(&before.run_id).await.unwrap());
}
on_both_stores!(an_abandon_that_loses_its_claim_changes_nothing);

/// A forced abandon holds the run's writer lock from its check of the lease to its swap to
/// `cancelled`: a resumer's claim in that window (which no lock stops, review 52 F3) is
/// refused by the store as held by a live writer and changes nothing, so the abandon
/// cancels the lease it checked and never one a resumer took meanwhile.
async fn a_claim_during_an_abandon_is_refused_and_changes_nothing(store: Store) {
    let before = interrupted_owned_by(&*store, "r1", "default", Some(gone_owner())).await;
    let raced = Arc::new(AnotherClaimsFirst::at_cancel(Arc::clone(&store)));
    let policy = ResumePolicy::new(Arc::clone(&raced) as Store);

    let abandoned = policy.abandon_forced(&before.run_id).await.unwrap();
    let refused = raced
        .other_outcome()
        .expect("the resumer tried to claim during the abandon")
        .expect_err("the store refuses a claim while the abandon holds the run");
    assert!(refused.held_by_writer(), "{refused:?}");
    assert_eq!(
        (refused.current_epoch, &refused.current_owner),
        (before.lease_epoch, &before.owner),
        "the refusal names the lease the abandon checked"
    );
    let after = meta(&*store, &before.run_id).await;
    assert_eq!(after.status, RunStatus::Cancelled);
    assert_eq!(
        (after.lease_epoch, &after.owner),
        (before.lease_epoch, &before.owner),
        "the resumer's claim changed no lease"
    );
    assert_eq!(abandoned.meta, after);
    assert_eq!(abandon_records(&*store, &before.run_id).await.len(), 1);
    assert!(!store.is_held(&before.run_id).await.unwrap());
}
on_both_stores!(a_claim_during_an_abandon_is_refused_and_changes_nothing);

/// An abandon of damaged state fences the run with its own claim (no lock can), then swaps
/// it to `cancelled`. A resumer's claim that lands between the two (no lock refuses it)
/// takes the run one epoch further. The swap expects the epoch the abandon's own claim
/// took, so it is refused: the abandon names the resumer, and the run stays the resumer's,
/// never cancelled under it. File store only: memory state cannot be damaged.
#[test]
fn a_claim_between_an_abandons_claim_and_swap_of_damaged_state_stands() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Store = Arc::new(file_store(dir.path()));
    runtime().block_on(async {
        let (journal, bytes) =
            damaged_interrupted_owned_by(&*store, dir.path(), "d1", Some(gone_owner())).await;
        let before = meta(&*store, &id("d1")).await;
        let raced = Arc::new(AnotherClaimsFirst::at_cancel(Arc::clone(&store)));
        let policy = ResumePolicy::new(Arc::clone(&raced) as Store);

        let refused = policy.abandon_forced(&before.run_id).await.unwrap_err();
        let resumer = raced
            .other_claim()
            .expect("the resumer claimed between the abandon's claim and its swap");
        assert_eq!(
            resumer.lease_epoch,
            before.lease_epoch + 2,
            "one epoch past the abandon's own claim"
        );
        assert!(
            matches!(&refused, Error::ClaimedDuringAbandon { claimer, .. } if *claimer == resumer.owner),
            "the refusal names the resumer: {refused:?}"
        );
        assert_eq!(
            meta(&*store, &before.run_id).await,
            resumer,
            "the run is the resumer's, running, untouched by the abandon's swap"
        );
        assert!(abandon_records(&*store, &before.run_id).await.is_empty());
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            bytes,
            "kept byte for byte"
        );
    });
}

/// A request that recovers an interrupted run but whose claim is beaten by another
/// process's: `Live`, naming that process and its epoch; the run stays as that claim left
/// it, and the loser audits no recovery.
async fn a_recovery_that_loses_its_claim_changes_nothing(store: Store) {
    let before = interrupted_owned_by(&*store, "r1", "default", Some(gone_owner())).await;
    let raced = Arc::new(AnotherClaimsFirst::new(Arc::clone(&store)));
    let policy = ResumePolicy::new(Arc::clone(&raced) as Store);

    let decision = policy
        .decide(&RunRequest::new("site", "default", "in"))
        .await
        .unwrap();
    let other = raced
        .other_claim()
        .expect("the other process claimed during the lookup");
    match decision {
        Decision::Live(live) => {
            assert_eq!(live.run_id, before.run_id);
            assert_eq!(live.owner, other.owner, "Live names the winner");
            assert_eq!(live.lease_epoch, before.lease_epoch + 1);
        }
        other => panic!("a lost claim must not resume: {other:?}"),
    }
    assert_eq!(
        meta(&*store, &before.run_id).await,
        other,
        "the run is the winner's, one epoch on, untouched by the loser"
    );
    let actions = audit_actions(&*store, &before.run_id).await;
    assert!(
        !actions.contains(&AuditAction::Recovered),
        "the loser audits no recovery: {actions:?}"
    );
}
on_both_stores!(a_recovery_that_loses_its_claim_changes_nothing);
