//! An abandon whose future is dropped (a timeout, a lost `select!` branch, Ctrl-C) while
//! its swap to `cancelled` is still queued in the store may see that swap land later. A
//! store wrapper makes that late landing happen every time: it hands the swap to a task of
//! its own that waits for the test's word before it reaches the store, as an adapter's
//! queued blocking work would, and the test drops the abandon meanwhile. Before the swap
//! lands, the run is resumed (claimed, one epoch on) and comes back to the status the
//! abandon read. The late swap expects the epoch the abandon read or fenced, so it is
//! refused: the run nobody decided to abandon is left exactly as it is.

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_checkpoint::{
    AuditRecord, Checkpointer, CheckpointerFactory, MemoryFactory, Opened, Owner, Quarantined,
    QuarantinedRun, Result, RunError, RunFilter, RunId, RunMeta, RunStatus, StatusConflict,
};
use cairn_runs::ResumePolicy;
use tokio::sync::{Notify, Semaphore};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

/// What a held swap returned once it reached the store (an error as its text).
type Landed = std::result::Result<std::result::Result<RunMeta, StatusConflict>, String>;

/// The held swap: the test's word to let it through, and what it did.
#[derive(Debug)]
struct Held {
    /// Signalled once a swap to `cancelled` has been handed to its task.
    reached: Notify,
    /// One permit lets one held swap through to the store.
    release: Semaphore,
    /// Signalled once the held swap has reached the store and returned.
    landed: Notify,
    /// What it returned.
    outcome: Mutex<Option<Landed>>,
}

/// Forwards to `inner`, except that every status swap to `cancelled` (with or without an
/// epoch) runs on a task of its own, which waits for [`LateSwaps::release`] before it
/// reaches `inner`. A caller that is dropped meanwhile does not stop it.
#[derive(Debug)]
struct LateSwaps {
    inner: Store,
    held: Arc<Held>,
}

impl LateSwaps {
    fn new(inner: Store) -> LateSwaps {
        LateSwaps {
            inner,
            held: Arc::new(Held {
                reached: Notify::new(),
                release: Semaphore::new(0),
                landed: Notify::new(),
                outcome: Mutex::new(None),
            }),
        }
    }

    /// Waits until a swap to `cancelled` is held.
    async fn reached(&self) {
        self.held.reached.notified().await;
    }

    /// Lets the held swap through and waits until it has returned; returns what it did.
    async fn release(&self) -> Landed {
        let landed = self.held.landed.notified();
        self.held.release.add_permits(1);
        landed.await;
        self.held
            .outcome
            .lock()
            .unwrap()
            .take()
            .expect("the held swap returned")
    }

    /// Runs `swap` (a call on `inner`) on its own task once released, and returns its
    /// outcome to the caller, if the caller is still there.
    async fn hold<F>(&self, swap: F) -> Result<std::result::Result<RunMeta, StatusConflict>>
    where
        F: Future<Output = Result<std::result::Result<RunMeta, StatusConflict>>> + Send + 'static,
    {
        let held = Arc::clone(&self.held);
        let task = tokio::spawn(async move {
            held.release
                .acquire()
                .await
                .expect("the gate stays open")
                .forget();
            let outcome = swap.await;
            *held.outcome.lock().unwrap() = Some(match &outcome {
                Ok(swapped) => Ok(swapped.clone()),
                Err(err) => Err(err.to_string()),
            });
            held.landed.notify_one();
            outcome
        });
        self.held.reached.notify_one();
        task.await.expect("the held swap's task ran")
    }
}

#[async_trait]
impl CheckpointerFactory for LateSwaps {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        self.inner.begin(meta).await
    }
    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
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
        if to != RunStatus::Cancelled {
            return self.inner.compare_and_swap_status(run_id, from, to).await;
        }
        let (inner, run_id) = (Arc::clone(&self.inner), run_id.clone());
        self.hold(async move { inner.compare_and_swap_status(&run_id, from, to).await })
            .await
    }
    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<std::result::Result<RunMeta, StatusConflict>> {
        let (inner, run_id) = (Arc::clone(&self.inner), run_id.clone());
        let swap = async move {
            inner
                .compare_and_swap_status_at(&run_id, from, expected_epoch, to)
                .await
        };
        if to != RunStatus::Cancelled {
            return swap.await;
        }
        self.hold(swap).await
    }
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<std::result::Result<RunMeta, StatusConflict>> {
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
    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        self.inner.list_quarantined().await
    }
    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        self.inner.append_audit(run_id, record).await
    }
    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        self.inner.read_audit(run_id).await
    }
}

/// Polls `abandon` until its swap to `cancelled` is held, then drops it, as a timeout would.
async fn drop_once_held<T: std::fmt::Debug>(late: &LateSwaps, abandon: impl Future<Output = T>) {
    tokio::select! {
        outcome = abandon => panic!("the abandon returned while its swap was held: {outcome:?}"),
        () = late.reached() => {}
    }
}

/// The late swap's refusal: it names the run as it is now, one or more claims on.
fn refused(landed: Landed, now: &RunMeta) -> StatusConflict {
    let conflict = match landed {
        Ok(Err(conflict)) => conflict,
        Ok(Ok(cancelled)) => panic!("the late swap cancelled the run: {cancelled:?}"),
        Err(err) => panic!("the late swap failed: {err}"),
    };
    assert_eq!(
        (conflict.current, conflict.current_epoch),
        (now.status, now.lease_epoch),
        "{conflict:?}"
    );
    assert!(conflict.claimed_by_another(), "{conflict:?}");
    conflict
}

/// Resumes `run_id` by id (a claim, one epoch on) and drives it until it fails again.
async fn resumed_and_failed_again(store: &Store, run_id: &RunId) -> RunMeta {
    let resumed = ResumePolicy::new(Arc::clone(store))
        .resume(run_id)
        .await
        .expect("the failed run resumes by id");
    let opened = store
        .open(run_id)
        .await
        .expect("the resumer opens the run")
        .expect("the run exists");
    let again = opened
        .checkpointer
        .fail(&RunError::new("task_failed", "the second failure"))
        .await
        .expect("the resumed run fails again");
    assert_eq!(again.lease_epoch, resumed.meta.lease_epoch);
    again
}

/// A dropped `abandon` of a failed run whose swap lands after the run was resumed by id and
/// failed again: the swap expects the epoch of the failure the abandon read, so the second
/// failure, which nobody decided to abandon, stays as it is.
async fn a_dropped_abandon_spares_the_next_failure(store: Store) {
    let read = failed(&*store, "r1", "site", "default", "in", 10).await;
    let late = Arc::new(LateSwaps::new(Arc::clone(&store)));
    let policy = ResumePolicy::new(Arc::clone(&late) as Store);
    drop_once_held(&late, policy.abandon(&read.run_id)).await;

    let again = resumed_and_failed_again(&store, &read.run_id).await;
    assert_eq!(again.lease_epoch, read.lease_epoch + 1);
    let conflict = refused(late.release().await, &again);
    assert_eq!(conflict.expected_epoch, Some(read.lease_epoch));
    assert_eq!(
        meta(&*store, &read.run_id).await,
        again,
        "the later failure is untouched"
    );
    assert!(abandon_records(&*store, &read.run_id).await.is_empty());

    // Abandoning it is still a decision anyone can make, about this failure.
    let abandoned = ResumePolicy::new(Arc::clone(&store))
        .abandon(&read.run_id)
        .await
        .expect("the second failure can be abandoned on purpose");
    assert_eq!(
        (abandoned.meta.status, abandoned.meta.lease_epoch),
        (RunStatus::Cancelled, again.lease_epoch)
    );
}
on_both_stores!(a_dropped_abandon_spares_the_next_failure);

/// The same for the clean-up of failed runs (`abandon_failed`, `cairn runs prune
/// --include-failed`): dropped while its swap is held, it never cancels the run once it was
/// resumed and failed again.
async fn a_dropped_clean_up_spares_the_next_failure(store: Store) {
    let read = failed(&*store, "r1", "site", "default", "in", 10).await;
    let late = Arc::new(LateSwaps::new(Arc::clone(&store)));
    let policy = ResumePolicy::new(Arc::clone(&late) as Store);
    drop_once_held(&late, policy.abandon_failed(&read)).await;

    let again = resumed_and_failed_again(&store, &read.run_id).await;
    let conflict = refused(late.release().await, &again);
    assert_eq!(
        (conflict.expected, conflict.expected_epoch),
        (RunStatus::Failed, Some(read.lease_epoch))
    );
    assert_eq!(meta(&*store, &read.run_id).await, again);
    assert!(abandon_records(&*store, &read.run_id).await.is_empty());
}
on_both_stores!(a_dropped_clean_up_spares_the_next_failure);

/// The clean-up decides on the failure it listed: a run listed `failed` that was resumed and
/// failed again before the clean-up reached it is a newer failure (which may not be past
/// the prune cutoff), so it is left as it is, with no abandon record.
async fn a_clean_up_spares_a_failure_newer_than_its_listing(store: Store) {
    let listed = failed(&*store, "r1", "site", "default", "in", 10).await;
    let again = resumed_and_failed_again(&store, &listed.run_id).await;
    assert_eq!(again.status, RunStatus::Failed);
    let policy = ResumePolicy::new(Arc::clone(&store));
    let outcome = policy
        .abandon_failed(&listed)
        .await
        .expect("the store answers");
    assert!(outcome.is_none(), "{outcome:?}");
    assert_eq!(meta(&*store, &listed.run_id).await, again);
    assert!(abandon_records(&*store, &listed.run_id).await.is_empty());
    // The failure as it is now can still be cleaned up on purpose.
    let abandoned = policy
        .abandon_failed(&again)
        .await
        .expect("the store answers")
        .expect("the current failure is abandoned");
    assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
}
on_both_stores!(a_clean_up_spares_a_failure_newer_than_its_listing);

/// A dropped abandon of a paused run whose swap lands after the run was resumed (an
/// approval's claim) and paused again: refused, the run stays paused.
async fn a_dropped_abandon_spares_the_next_pause(store: Store) {
    let read = paused(&*store, "r1", "site", "default", "in", 10).await;
    let late = Arc::new(LateSwaps::new(Arc::clone(&store)));
    let policy = ResumePolicy::new(Arc::clone(&late) as Store);
    drop_once_held(&late, policy.abandon(&read.run_id)).await;

    let resumed = store
        .claim(&read.run_id, RunStatus::Paused, read.lease_epoch)
        .await
        .unwrap()
        .expect("nobody else claimed the paused run");
    let again = store
        .compare_and_swap_status(&read.run_id, RunStatus::Running, RunStatus::Paused)
        .await
        .unwrap()
        .expect("the resumed run pauses again");
    assert_eq!(again.lease_epoch, resumed.lease_epoch);
    let conflict = refused(late.release().await, &again);
    assert_eq!(conflict.expected, RunStatus::Paused);
    assert_eq!(meta(&*store, &read.run_id).await, again);
    assert!(abandon_records(&*store, &read.run_id).await.is_empty());
}
on_both_stores!(a_dropped_abandon_spares_the_next_pause);

/// A dropped forced abandon of an interrupted run, cut off after its check of the lease
/// under the writer lock: the lock goes with the dropped future, a resumer then claims the
/// run, and the abandon's swap lands after that claim. It expects the epoch checked under
/// the lock, so the resumer's claim stands.
async fn a_dropped_abandon_of_an_interrupted_run_spares_a_later_claim(store: Store) {
    let read = interrupted_owned_by(&*store, "r1", "default", Some(gone_owner())).await;
    let late = Arc::new(LateSwaps::new(Arc::clone(&store)));
    let policy = ResumePolicy::new(Arc::clone(&late) as Store);
    drop_once_held(&late, policy.abandon_forced(&read.run_id)).await;
    assert!(
        !store.is_held(&read.run_id).await.unwrap(),
        "the writer lock went with the dropped abandon"
    );

    let resumer = store
        .claim(&read.run_id, RunStatus::Running, read.lease_epoch)
        .await
        .unwrap()
        .expect("the resumer's claim wins once the abandon is gone");
    let conflict = refused(late.release().await, &resumer);
    assert_eq!(conflict.expected_epoch, Some(read.lease_epoch));
    assert_eq!(
        meta(&*store, &read.run_id).await,
        resumer,
        "the run is the resumer's, running one epoch on"
    );
    assert!(abandon_records(&*store, &read.run_id).await.is_empty());
}
on_both_stores!(a_dropped_abandon_of_an_interrupted_run_spares_a_later_claim);

/// A dropped forced abandon of an interrupted run whose state is damaged: no lock fences
/// it, so the abandon claims it (one epoch on) and then swaps. Its swap lands after a
/// resumer claimed the run again (two epochs on): it expects the epoch its own claim took,
/// so the resumer's claim stands. File store only: memory state cannot be damaged.
#[test]
fn a_dropped_abandon_of_damaged_state_spares_a_later_claim() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Store = Arc::new(file_store(dir.path()));
    runtime().block_on(async {
        let (journal, bytes) =
            damaged_interrupted_owned_by(&*store, dir.path(), "d1", Some(gone_owner())).await;
        let read = meta(&*store, &id("d1")).await;

        let late = Arc::new(LateSwaps::new(Arc::clone(&store)));
        let policy = ResumePolicy::new(Arc::clone(&late) as Store);
        drop_once_held(&late, policy.abandon_forced(&read.run_id)).await;
        let fenced = meta(&*store, &read.run_id).await;
        assert_eq!(
            (fenced.status, fenced.lease_epoch, &fenced.owner),
            (
                RunStatus::Running,
                read.lease_epoch + 1,
                &Some(Owner::current())
            ),
            "the abandon's own claim fenced the damaged run"
        );

        let resumer = store
            .claim(&read.run_id, RunStatus::Running, fenced.lease_epoch)
            .await
            .unwrap()
            .expect("a resumer claims the run the dropped abandon had claimed");
        let conflict = refused(late.release().await, &resumer);
        assert_eq!(conflict.expected_epoch, Some(fenced.lease_epoch));
        assert_eq!(meta(&*store, &read.run_id).await, resumer);
        assert!(abandon_records(&*store, &read.run_id).await.is_empty());
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            bytes,
            "kept byte for byte"
        );
    });
}
