//! `ResumePolicy`: the lookup a run request goes through, and the explicit operations
//! (resume by id, abandon) that follow a prompt.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_checkpoint::{
    AuditAction, AuditRecord, CheckpointerFactory, Owner, ProcessStart, RunFilter, RunId, RunMeta,
    RunStatus, wall_clock_now,
};
use cairn_telemetry::{emit, names};
use serde_json::json;

use crate::decision::{
    Approval, Decision, FailedRunPrompt, FreshRun, LiveRun, PausedRun, ResumeReason, ResumedRun,
    RunRequest,
};
use crate::error::{Error, Result};
use crate::preview::InputPreview;

/// How often an operation re-reads a run whose status changed under it before giving up.
/// Each retry follows a real status change by someone else, so this bounds a livelock only.
const MAX_ATTEMPTS: usize = 8;

/// The outcome of an abandon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abandoned {
    /// The run's metadata after the abandon (status `cancelled`).
    pub meta: RunMeta,
    /// The status it was abandoned from (`failed`, `paused`, or `running` for an
    /// interrupted run).
    pub previous_status: RunStatus,
    /// Set only when [`ResumePolicy::abandon_forced`] overrode an interrupted run's last
    /// owner that could not be shown to have exited. `None` for every other abandon,
    /// forced or not: force changes nothing for a failed or paused run, or for a run whose
    /// owner is known to have exited.
    pub overridden: Option<OverriddenOwner>,
}

/// The claim a forced abandon overrode: what the store recorded about the interrupted
/// run's last owner when it was cancelled. Also in the `Abandoned` audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverriddenOwner {
    /// The last recorded owner (`None` when the store recorded none).
    pub owner: Option<Owner>,
    /// The lease epoch of that owner's claim.
    pub lease_epoch: u64,
}

/// What this process can tell about a run's last owner from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnerLiveness {
    /// It ran on this host and is gone: `/proc` has no entry for its pid, or the host has
    /// rebooted since it started, or its pid now belongs to a process that started at
    /// another time (a reused pid).
    Exited,
    /// It ran on this host and `/proc` has an entry for its pid that started when it did (or,
    /// for an owner recorded without its start, any entry: a reused pid cannot be told apart
    /// then, and the careful answer is kept).
    AliveHere,
    /// It cannot be checked from here: it ran on another host, or this host has no `/proc`.
    Unknown,
}

impl OwnerLiveness {
    /// Checks `owner` from this process. Hosts are compared by name
    /// (`cairn_checkpoint::Owner::current`), processes through `/proc`: the pid, and, when
    /// the owner's start was recorded, the boot and the start time too.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{Owner, ProcessStart};
    /// use cairn_runs::OwnerLiveness;
    ///
    /// // This very process is alive here (on a host with `/proc`).
    /// let me = Owner::current();
    /// assert!(matches!(OwnerLiveness::of(&me), OwnerLiveness::AliveHere | OwnerLiveness::Unknown));
    /// // A process that had this pid before this one started (a reused pid) is gone.
    /// if let Some(start) = &me.start {
    ///     let earlier = ProcessStart { ticks: start.ticks.saturating_sub(1), ..start.clone() };
    ///     let reused = Owner { start: Some(earlier), ..me.clone() };
    ///     assert_eq!(OwnerLiveness::of(&reused), OwnerLiveness::Exited);
    /// }
    /// // A process on another host can never be checked from here.
    /// let remote = Owner { pid: 1, host: "no-such-host.invalid".to_owned(), start: None };
    /// assert_eq!(OwnerLiveness::of(&remote), OwnerLiveness::Unknown);
    /// ```
    pub fn of(owner: &Owner) -> OwnerLiveness {
        let proc = std::path::Path::new("/proc");
        if owner.host != Owner::current().host || !proc.join("self").exists() {
            return OwnerLiveness::Unknown;
        }
        let Some(recorded) = &owner.start else {
            return if proc.join(owner.pid.to_string()).exists() {
                OwnerLiveness::AliveHere
            } else {
                OwnerLiveness::Exited
            };
        };
        // Every process of an earlier boot is gone, whatever now holds its pid.
        if ProcessStart::current_boot_id().is_some_and(|boot| boot != recorded.boot_id) {
            return OwnerLiveness::Exited;
        }
        match ProcessStart::of(owner.pid) {
            Some(now) if now == *recorded => OwnerLiveness::AliveHere,
            // Another process got the pid.
            Some(_) => OwnerLiveness::Exited,
            // The entry went away, or could not be read although the pid exists (a race with
            // its exit, or restricted /proc): the careful answer unless it is really gone.
            None if proc.join(owner.pid.to_string()).exists() => OwnerLiveness::AliveHere,
            None => OwnerLiveness::Exited,
        }
    }
}

/// The resume policy over one store.
///
/// See `docs/resume-policy.md` for the lookup table. In short: interrupted runs are recovered
/// automatically, failed runs never silently, paused runs only with their approval, and a
/// live run is never given a second writer.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunError};
/// use cairn_runs::{Decision, ResumePolicy, RunRequest};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryFactory::new();
/// let policy = ResumePolicy::new(store.clone());
///
/// // Nothing ran yet: start fresh, and begin the run with the id the decision chose.
/// let Decision::Fresh(fresh) = policy.decide(&RunRequest::new("site", "default", "build A")).await?
/// else { panic!("expected a fresh run") };
/// let run = store.begin(fresh.meta(cairn_checkpoint::wall_clock_now())).await?;
/// run.fail(&RunError::new("task_failed", "build exited with 2")).await?;
/// drop(run);
///
/// // A new request finds the failed run and asks instead of resuming it.
/// let Decision::FailedPrompt(prompt) = policy.decide(&RunRequest::new("site", "default", "build B")).await?
/// else { panic!("expected a prompt") };
/// assert_eq!(prompt.run_id, fresh.run_id);
/// assert_eq!(prompt.new_input, "build B");
///
/// // Explicit intent resumes it.
/// let resumed = policy.resume(&prompt.run_id).await?;
/// assert_eq!(resumed.meta.lease_epoch, 2);
/// # Ok::<(), cairn_runs::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ResumePolicy {
    factory: Arc<dyn CheckpointerFactory>,
}

impl ResumePolicy {
    /// A policy over `factory` (any adapter, or an `Arc` of one): the same argument
    /// `cairn_executor::Executor::new` takes.
    ///
    /// # Examples
    ///
    /// One store shared with other code (an executor, say) through an `Arc`:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Error, ResumePolicy};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store: Arc<dyn CheckpointerFactory> = Arc::new(MemoryFactory::new());
    /// let policy = ResumePolicy::new(Arc::clone(&store));
    ///
    /// let id = RunId::new("r1")?;
    /// let writer = store.begin(RunMeta::new(id.clone(), "wf", "s", "in", Timestamp(1))).await?;
    /// // The policy sees the run begun through the shared store: it is running.
    /// let refused = policy.resume(&id).await.unwrap_err();
    /// assert!(matches!(refused, Error::NotResumable { current: RunStatus::Running, .. }));
    /// let unknown = policy.resume(&RunId::new("r2")?).await.unwrap_err();
    /// assert!(matches!(unknown, Error::NotFound { .. }));
    /// drop(writer);
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn new(factory: impl CheckpointerFactory) -> ResumePolicy {
        ResumePolicy {
            factory: Arc::new(factory),
        }
    }

    /// The store this policy works on.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Decision, ResumePolicy, ResumeReason, RunRequest};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let policy = ResumePolicy::new(MemoryFactory::new());
    /// let id = RunId::new("r1")?;
    /// let meta = RunMeta::new(id.clone(), "site", "default", "build A", Timestamp(1));
    /// // Begun through the policy's store, then left without a writer, as after a crash.
    /// drop(policy.factory().begin(meta).await?);
    ///
    /// let request = RunRequest::new("site", "default", "build B");
    /// let Decision::Resume(resumed) = policy.decide(&request).await? else { panic!() };
    /// assert_eq!((resumed.meta.run_id, resumed.reason), (id, ResumeReason::Interrupted));
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn factory(&self) -> &Arc<dyn CheckpointerFactory> {
        &self.factory
    }

    /// Decides what a run request does. Never executes anything; a `Resume` decision has
    /// already claimed the run (status `running`, lease epoch bumped) for the caller to drive.
    ///
    /// With an approval, only the approved run is considered: it is resumed if it is paused,
    /// and also if something marked it failed after the approval was asked for. Without one,
    /// the runs of the request's workflow and scope decide:
    ///
    /// | runs of the workflow and scope (first match wins) | decision                  |
    /// |-------------------------------|-------------------------------------------|
    /// | any `running` run held live, or claimed by another live process on this host | `Live` (never a second writer, even forced) |
    /// | no non-terminal run, or a newer run finished after it | `Fresh` (no prompt) |
    /// | newest non-terminal is `running`, lock not held, last owner another live process on this host | `Live` (it claimed the run and is about to open it) |
    /// | newest non-terminal is `running`, lock not held, otherwise (interrupted) | `Resume` (`Interrupted`), audited |
    /// | newest non-terminal is `paused` | `AwaitingApproval` (forced: `Fresh`)    |
    /// | newest non-terminal is `failed` | `FailedPrompt`, audited (forced: `Fresh`) |
    ///
    /// Whether the last owner of a `running` run that no writer holds is alive is told as
    /// [`ResumePolicy::abandon`] tells it ([`OwnerLiveness::of`]), with two differences that
    /// follow from recovery continuing a run where an abandon cancels it. An owner that
    /// cannot be checked (another host, no `/proc`, none recorded) does not stop the
    /// recovery: a run left by a host that is gone must still be picked up without an
    /// operator, and the executor's `Start::AdoptInterrupted` refuses a claim that a later
    /// one overtook. And this process itself is not a live owner: a run it owns that no
    /// writer holds is one its own drive left `running` (a shutdown, a drive that failed),
    /// and it may take it up again. So only another process alive on this host makes the
    /// decision `Live`: between a claim and the open that takes the writer lock the run
    /// looks interrupted, and without this check a second caller would claim it over the
    /// first one's claim, and both would be told `Resume`.
    ///
    /// # Errors
    ///
    /// - `Error::NotFound` when an approval names an unknown run; `Error::Quarantined` (with
    ///   where its state is kept) when it names a run whose state was quarantined.
    /// - `Error::ApprovalMismatch` when it names a run of another workflow or scope.
    /// - `Error::NotResumable` when the approved run is already `running` (approved twice)
    ///   or terminal.
    /// - `Error::HeldByWriter` when the approved run is `paused` or `failed` but a live
    ///   writer still holds it.
    /// - `Error::Storage` when the store fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Decision, ResumePolicy, ResumeReason, RunRequest};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = store.begin(RunMeta::new(id.clone(), "deploy", "prod", "v2", Timestamp(1))).await?;
    /// store.compare_and_swap_status(&id, RunStatus::Running, RunStatus::Paused).await?.unwrap();
    /// drop(run);
    ///
    /// let policy = ResumePolicy::new(store);
    /// let request = RunRequest::new("deploy", "prod", "").approve(id.clone());
    /// let Decision::Resume(resumed) = policy.decide(&request).await? else { panic!() };
    /// assert_eq!(resumed.reason, ResumeReason::Approved);
    /// assert_eq!(resumed.meta.status, RunStatus::Running);
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Safe to call again after a drop. Until it decides it only reads. Its writes are one
    /// store call each: for an approval, a `ResumeRequested` record, a claim, then the
    /// `Approved` record; for a recovery, a claim, then a record. A call that reached the
    /// store stands after the drop (with the file adapter, a call under way finishes in the
    /// background). The lasting effect is a claim made before the drop (of an interrupted or
    /// an approved run): the run is then `running`, owned by this process, with no writer.
    /// A plain request from this process recovers it again (`Resume`, `Interrupted`), while
    /// other processes are told `Live` until this one has exited. If the drop lost the
    /// approval's `Approved` record, that recovery still finishes the approval (its
    /// `ResumeRequested` record, written before the claim), as for [`ResumePolicy::resume`].
    pub async fn decide(&self, request: &RunRequest) -> Result<Decision> {
        if let Some(approval) = &request.approval {
            return self.approve(request, approval).await;
        }
        for _ in 0..MAX_ATTEMPTS {
            if let Some(decision) = self.lookup(request).await? {
                return Ok(decision);
            }
        }
        // Every attempt raced with another process changing the candidate's status. Saying
        // "live elsewhere" would be a guess; report the last status seen instead.
        let runs = self.list_scope(request).await?;
        match runs.last() {
            Some(meta) => Err(Error::NotResumable {
                run_id: meta.run_id.clone(),
                current: meta.status,
            }),
            None => self.fresh(request, None).await,
        }
    }

    /// Resumes a failed or paused run by id: explicit intent, no prompt.
    ///
    /// The move to `running` is ONE claim at the status and lease epoch read, which bumps the
    /// epoch. If several callers (threads or processes) resume the same run at once, exactly
    /// one gets `Ok`; the others get `Error::NotResumable { current: Running }`. The caller
    /// drives the returned run (it re-runs the run's own input) and never changes its status
    /// first. A `ResumeRequested` audit record, written before the claim, names the epoch
    /// it takes; `ResumedById` follows once it won.
    ///
    /// # Errors
    ///
    /// - `Error::NotFound` for an unknown run.
    /// - `Error::Quarantined` (with where its state is kept) for a run whose state was
    ///   quarantined: nothing can open it, so it cannot be resumed.
    /// - `Error::NotResumable` when the run is `running` (another resumer won, or it is being
    ///   driven), `completed` or `cancelled`.
    /// - `Error::HeldByWriter` when it is `failed` or `paused` but the process that failed or
    ///   paused it still holds its writer lock; nothing is claimed.
    /// - `Error::Storage` when the store fails (also when the `ResumedById` record cannot be
    ///   written after the claim; the run is then `running` without a driver, which the next
    ///   request recovers as interrupted, and that recovery finishes this resume).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunError, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Error, ResumePolicy};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = store.begin(RunMeta::new(id.clone(), "wf", "s", "in", Timestamp(1))).await?;
    /// run.fail(&RunError::new("task_failed", "boom")).await?;
    /// drop(run);
    ///
    /// let policy = ResumePolicy::new(store);
    /// assert_eq!(policy.resume(&id).await?.previous_status, RunStatus::Failed);
    /// let again = policy.resume(&id).await.unwrap_err();
    /// assert!(matches!(again, Error::NotResumable { current: RunStatus::Running, .. }));
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Dropped before the claim, nothing has changed but, possibly, a `ResumeRequested`
    /// record whose claim never happened (it owes nothing). Dropped after it (during the
    /// `ResumedById` write), the run is left as when that write fails (`Error::Storage`
    /// above): `running`, owned by this process, with no writer. A second `resume` is
    /// refused (`NotResumable`, it is `running`), and a request for its workflow and scope
    /// recovers it as interrupted (from this process at once, from others once this one has
    /// exited). That recovery finishes this resume: `cairn_executor::retries_owed` reads the
    /// `ResumeRequested` record, so the failed tasks get their fresh attempts.
    pub async fn resume(&self, run_id: &RunId) -> Result<ResumedRun> {
        let meta = self.load_listed(run_id).await?;
        match self.claim_explicit(meta, Via::ById).await? {
            Claim::Won { meta, previous } => {
                let meta = *meta;
                let detail = json!({
                    "previous_status": previous.as_str(),
                    "lease_epoch": meta.lease_epoch,
                });
                self.audit(
                    run_id,
                    AuditAction::ResumedById,
                    format!("resumed by id from {previous}"),
                    detail,
                )
                .await?;
                emit::resumed_by_id(run_id.as_str(), previous.as_str(), meta.lease_epoch);
                Ok(ResumedRun {
                    meta,
                    previous_status: previous,
                    reason: ResumeReason::ById,
                    requested_input: None,
                })
            }
            Claim::Held { current, holder } => Err(Error::HeldByWriter {
                run_id: run_id.clone(),
                current,
                holder,
            }),
            Claim::Refused { current, .. } => Err(Error::NotResumable {
                run_id: run_id.clone(),
                current,
            }),
        }
    }

    /// Abandons a failed, paused or interrupted run: it becomes `cancelled` (one status
    /// compare-and-swap, at the lease epoch the abandon read or fenced). After that, a request
    /// for its workflow and scope starts fresh with no prompt.
    ///
    /// An interrupted run (`running`, no live writer) is abandoned only when its last owner
    /// is known to have exited ([`OwnerLiveness::Exited`]): a resumer claims a run, and
    /// becomes its owner, before it opens it, and that claim must win. The abandon holds the
    /// run's writer lock from its check of the lease to the swap to `cancelled`, and the
    /// store refuses every claim while a writer holds the run, so a resumer that claimed
    /// before the open makes the abandon fail instead of being cancelled under its feet, and
    /// one that comes later is refused and changes nothing. [`ResumePolicy::abandon_forced`] also abandons runs whose
    /// owner cannot be checked. An interrupted run whose stored state is damaged
    /// (`cairn_checkpoint::Error::Corruption`, which nobody can open or resume) is abandoned
    /// all the same, without the lock nobody can take; its `Abandoned` audit record names the
    /// damage (`detail.state_damage`), and the damaged files are left as they are.
    ///
    /// # Errors
    ///
    /// - `Error::NotFound` for an unknown run; `Error::Quarantined` for a quarantined one
    ///   ([`ResumePolicy::abandon_quarantined`] settles it).
    /// - `Error::AlreadyTerminal` when it is `completed` or `cancelled` (also when a
    ///   concurrent abandon won).
    /// - `Error::StillRunning` when it is `running` and a live process drives it
    ///   (`live: true`), or nobody drives it but its last owner cannot be shown to have
    ///   exited (`live: false`: a resumer that claimed it may be about to open it, or the
    ///   owner ran on another host).
    /// - `Error::ClaimedDuringAbandon` when another process (a resumer) claimed it during
    ///   the abandon: that claim stands.
    /// - `Error::Storage` when the store fails (including state that `open` refuses and
    ///   quarantines).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunError, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Error, ResumePolicy};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = store.begin(RunMeta::new(id.clone(), "wf", "s", "in", Timestamp(1))).await?;
    /// run.fail(&RunError::new("task_failed", "boom")).await?;
    /// drop(run);
    ///
    /// let policy = ResumePolicy::new(store);
    /// assert_eq!(policy.abandon(&id).await?.meta.status, RunStatus::Cancelled);
    /// let again = policy.abandon(&id).await.unwrap_err();
    /// assert!(matches!(again, Error::AlreadyTerminal { status: RunStatus::Cancelled, .. }));
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Safe to call again after a drop: a run found `cancelled` is `AlreadyTerminal`. The
    /// abandon itself is one status compare-and-swap
    /// (`CheckpointerFactory::compare_and_swap_status_at`) that expects the lease epoch the
    /// abandon checked: the one it read for a failed or paused run, the one it verified under
    /// the writer lock for an interrupted run, or the one its own claim took for a damaged
    /// one. Dropped after it, the run is `cancelled` but its `Abandoned` audit record and
    /// telemetry may be missing. Dropped before it, the swap may still land after the drop
    /// (an adapter may finish it in the background), but only on the run as the abandon
    /// checked it: a run resumed since (claimed, one epoch on) is never cancelled by it, even
    /// once it is `failed` or `paused` again, or `running` under a later claim. The writer
    /// lock held for an interrupted run is released with the dropped future (an `open` the
    /// file adapter has under way finishes in the background and then lets go of it).
    /// One case leaves a claim behind: an interrupted run whose state is damaged is fenced by
    /// a claim instead of the lock, and a drop (or a store error) between that claim and the
    /// swap leaves it `running` and owned by this process. Other processes refuse to abandon
    /// it (`StillRunning`, or `OwnerAlive` when forced) until this one has exited; an abandon
    /// from this process takes it back at once, since no process can open its state to
    /// drive it.
    pub async fn abandon(&self, run_id: &RunId) -> Result<Abandoned> {
        self.abandon_run(run_id, false).await
    }

    /// Abandons like [`ResumePolicy::abandon`], and also an interrupted run whose last owner
    /// cannot be checked from here ([`OwnerLiveness::Unknown`]: it ran on another host, or
    /// this host has no `/proc`). This is the operator's override for an owner that is gone
    /// for good but cannot be shown to be; the `Abandoned` audit record then says it was
    /// forced and names the owner and lease epoch it overrode
    /// ([`Abandoned::overridden`]).
    ///
    /// Force never overrides a writer that can be shown to be alive: a held writer lock is
    /// still `StillRunning { live: true }`, and an owner pid alive on this host is
    /// `Error::OwnerAlive` (stop that process first). If an overridden owner is in fact
    /// alive elsewhere, it keeps running the tasks it had started; the run is `cancelled`,
    /// so nothing resumes it again and no task of it completes twice through a resume.
    ///
    /// # Errors
    ///
    /// As [`ResumePolicy::abandon`], except that `StillRunning { live: false }` does not
    /// come, plus `Error::OwnerAlive` when the last owner is a live process on this host.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, Owner, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Error, ResumePolicy};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// // A run whose driver ran on a host that is gone for good.
    /// let store = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let mut meta = RunMeta::new(id.clone(), "wf", "s", "in", Timestamp(1));
    /// meta.owner = Some(Owner { pid: 4242, host: "gone.example".to_owned(), start: None });
    /// drop(store.begin(meta).await?);
    ///
    /// let policy = ResumePolicy::new(store);
    /// let refused = policy.abandon(&id).await.unwrap_err();
    /// assert!(matches!(refused, Error::StillRunning { live: false, .. }));
    /// let abandoned = policy.abandon_forced(&id).await?;
    /// assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
    /// let overridden = abandoned.overridden.expect("an owner was overridden");
    /// assert_eq!(overridden.owner.map(|o| o.host).as_deref(), Some("gone.example"));
    /// assert_eq!(overridden.lease_epoch, 1);
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`ResumePolicy::abandon`].
    pub async fn abandon_forced(&self, run_id: &RunId) -> Result<Abandoned> {
        self.abandon_run(run_id, true).await
    }

    /// Abandons a run as it was `listed`, only if it was `failed` then and has not changed
    /// since: one status compare-and-swap from `failed` to `cancelled` at the listed lease
    /// epoch, audited like [`ResumePolicy::abandon`]. For a clean-up that names failed runs
    /// in bulk (`cairn runs prune --include-failed`): a run that changed since it was listed
    /// (a resumer took it, even if it has failed again since; a person abandoned it) is left
    /// as it is, so such a clean-up never cancels a run someone is working on, nor a failure
    /// newer than the one it listed.
    ///
    /// Returns `Ok(None)` when the run was not `failed` as listed, or is not `failed` at the
    /// listed epoch any more; the caller says so.
    ///
    /// # Errors
    ///
    /// `Error::NotFound` for an unknown run; `Error::Storage` when the store fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunError, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::ResumePolicy;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let failed = RunId::new("failed")?;
    /// let run = store.begin(RunMeta::new(failed.clone(), "wf", "s", "in", Timestamp(1))).await?;
    /// run.fail(&RunError::new("task_failed", "boom")).await?;
    /// drop(run);
    /// let interrupted = RunId::new("interrupted")?;
    /// drop(store.begin(RunMeta::new(interrupted.clone(), "wf", "s2", "in", Timestamp(2))).await?);
    ///
    /// let listed = store.load_meta(&failed).await?.expect("it exists");
    /// let other = store.load_meta(&interrupted).await?.expect("it exists");
    /// let policy = ResumePolicy::new(store);
    /// let abandoned = policy.abandon_failed(&listed).await?.expect("it was failed");
    /// assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
    /// // Not failed: left alone.
    /// assert!(policy.abandon_failed(&other).await?.is_none());
    /// // Not failed any more: left alone.
    /// assert!(policy.abandon_failed(&listed).await?.is_none());
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Safe to call again after a drop: the run is still `failed` (nothing changed) or it is
    /// `cancelled`, which a second call answers with `Ok(None)`. Dropped after the
    /// compare-and-swap, the run is `cancelled` but its `Abandoned` audit record and
    /// telemetry may be missing. Dropped before it, the swap may still land after the drop,
    /// but it expects the listed lease epoch
    /// (`CheckpointerFactory::compare_and_swap_status_at`): a run resumed meanwhile (claimed,
    /// one epoch on) is never cancelled by it, even once it has failed again.
    pub async fn abandon_failed(&self, listed: &RunMeta) -> Result<Option<Abandoned>> {
        let run_id = &listed.run_id;
        // The failure this clean-up decides on is the one listed, at its epoch. A swap on
        // the status alone would also take a later failure of the same run (resumed and
        // failed again since the listing) that nobody asked to abandon.
        if listed.status != RunStatus::Failed {
            return Ok(None);
        }
        let swapped = match self
            .factory
            .compare_and_swap_status_at(
                run_id,
                RunStatus::Failed,
                listed.lease_epoch,
                RunStatus::Cancelled,
            )
            .await
        {
            Err(cairn_checkpoint::Error::NotFound { .. }) => {
                return Err(Error::NotFound {
                    run_id: run_id.clone(),
                });
            }
            other => other?,
        };
        match swapped {
            Ok(cancelled) => self
                .abandoned(
                    run_id,
                    RunStatus::Failed,
                    cancelled,
                    LastClaim::Finished,
                    None,
                )
                .await
                .map(Some),
            Err(_) => Ok(None),
        }
    }

    async fn abandon_run(&self, run_id: &RunId, force: bool) -> Result<Abandoned> {
        let mut meta = self.load_listed(run_id).await?;
        for _ in 0..MAX_ATTEMPTS {
            let previous = meta.status;
            match previous {
                // At the epoch read: a swap that lands late (its future dropped) cannot cancel
                // the run after a resume, even once it is back in the status read. A run that
                // changed under a live call is read again and decided on afresh.
                RunStatus::Failed | RunStatus::Paused => match self
                    .factory
                    .compare_and_swap_status_at(
                        run_id,
                        previous,
                        meta.lease_epoch,
                        RunStatus::Cancelled,
                    )
                    .await?
                {
                    Ok(cancelled) => {
                        return self
                            .abandoned(run_id, previous, cancelled, LastClaim::Finished, None)
                            .await;
                    }
                    Err(_) => meta = self.load(run_id).await?,
                },
                RunStatus::Completed | RunStatus::Cancelled => {
                    return Err(Error::AlreadyTerminal {
                        run_id: run_id.clone(),
                        status: previous,
                    });
                }
                RunStatus::Running => match self.abandon_interrupted(&meta, force).await? {
                    Interrupted::Cancelled(abandoned) => return Ok(*abandoned),
                    Interrupted::Changed(current) => meta = *current,
                },
            }
        }
        Err(Error::NotResumable {
            run_id: run_id.clone(),
            current: meta.status,
        })
    }

    /// The `running` branch of an abandon. `Changed` when the run's status changed under it
    /// (it failed, paused...) and the abandon must look again.
    async fn abandon_interrupted(&self, meta: &RunMeta, force: bool) -> Result<Interrupted> {
        let run_id = &meta.run_id;
        if self.factory.is_held(run_id).await? {
            return Err(Error::StillRunning {
                run_id: run_id.clone(),
                live: true,
                owner: meta.owner.clone(),
            });
        }
        // This process's own claim on a run no writer holds is what an abandon of damaged
        // state leaves when it is cut off between its claim and its swap. Whether the claim
        // may be taken back is known only after the open: a run nobody can open has no
        // driver to protect, while sound state may be about to be driven from here.
        let last = match self.last_claim(meta, force) {
            Err(refused) if meta.owner.as_ref() != Some(&Owner::current()) => {
                return Err(refused);
            }
            last => last,
        };
        // The writer lock is held from the check of the lease below to the swap, and the
        // store refuses every claim while a writer holds the run: a resumer's claim that
        // comes meanwhile changes nothing, so the lease checked is the one cancelled. A
        // driver that starts meanwhile makes `open` fail with `Locked`, and one that starts
        // later finds the run cancelled. The abandon takes no lease of its own: holding the
        // lock is its fence, and a claim that later lost would have moved the lease anyway.
        //
        // A run whose stored state is damaged cannot be opened by anyone, so no driver holds
        // it (`is_held` said so above) and none can start one: it is abandoned without the
        // lock, which is the way out a person needs (resuming it can only fail), and its
        // audit record names the damage. The damaged files stay where they are.
        let mut damage = None;
        let opened = match self.factory.open(run_id).await {
            Ok(Some(opened)) => Some(opened),
            Err(cairn_checkpoint::Error::Corruption {
                file,
                offset,
                detail,
                ..
            }) => {
                damage = Some(format!("{file} is damaged at byte {offset}: {detail}"));
                None
            }
            Ok(None) => {
                return Err(Error::NotFound {
                    run_id: run_id.clone(),
                });
            }
            Err(cairn_checkpoint::Error::Locked { .. }) => {
                return Err(Error::StillRunning {
                    run_id: run_id.clone(),
                    live: true,
                    owner: meta.owner.clone(),
                });
            }
            Err(other) => return Err(other.into()),
        };
        let last = match last {
            Ok(last) => last,
            // A refusal gets this far only for this process's own claim (above).
            Err(_) if damage.is_some() => LastClaim::Ours {
                lease_epoch: meta.lease_epoch,
            },
            Err(refused) => {
                drop(opened);
                return Err(refused);
            }
        };
        let current = match &opened {
            Some(opened) => opened.recovered.meta.clone(),
            None => self.load(run_id).await?,
        };
        if current.status != RunStatus::Running {
            drop(opened);
            return Ok(Interrupted::Changed(Box::new(current)));
        }
        if current.lease_epoch != meta.lease_epoch || current.owner != meta.owner {
            // A resumer claimed it after the checks above, before the open: its claim stands.
            drop(opened);
            return Err(self.claimed_during_abandon(run_id, current.owner, current.lease_epoch));
        }
        // The swap expects the lease this abandon fenced: the one verified under the open
        // lock, or the one its own claim takes below. Should the swap land late (this future
        // dropped, the adapter finishing it in the background), a run claimed since then
        // is not cancelled by it.
        let mut fenced_epoch = current.lease_epoch;
        if opened.is_none() {
            // No lock fences a damaged run: a claim at the epoch checked does. A resumer's
            // claim that lands between the read and this claim makes this one lose and change
            // nothing; one that comes later expects an epoch that is gone.
            match self
                .factory
                .claim(run_id, RunStatus::Running, current.lease_epoch)
                .await?
            {
                Ok(claimed) => fenced_epoch = claimed.lease_epoch,
                Err(conflict) if conflict.claimed_by_another() => {
                    return Err(self.claimed_during_abandon(
                        run_id,
                        conflict.current_owner,
                        conflict.current_epoch,
                    ));
                }
                Err(_) => return Ok(Interrupted::Changed(Box::new(self.load(run_id).await?))),
            }
        }
        let swapped = self
            .factory
            .compare_and_swap_status_at(
                run_id,
                RunStatus::Running,
                fenced_epoch,
                RunStatus::Cancelled,
            )
            .await;
        drop(opened);
        match swapped? {
            Ok(cancelled) => {
                let abandoned = self
                    .abandoned(run_id, RunStatus::Running, cancelled, last, damage)
                    .await?;
                Ok(Interrupted::Cancelled(Box::new(abandoned)))
            }
            // Still `running`, one claim on: a resumer claimed the damaged run after this
            // abandon's own claim (no lock fences it). That claim stands.
            Err(conflict) if conflict.claimed_by_another() => Err(self.claimed_during_abandon(
                run_id,
                conflict.current_owner,
                conflict.current_epoch,
            )),
            Err(_) => Ok(Interrupted::Changed(Box::new(self.load(run_id).await?))),
        }
    }

    /// The refusal of an abandon whose lease another claim (by `claimer`, at `lease_epoch`)
    /// took first: the run is that claimer's now.
    fn claimed_during_abandon(
        &self,
        run_id: &RunId,
        claimer: Option<Owner>,
        lease_epoch: u64,
    ) -> Error {
        tracing::warn!(
            target: names::DETAIL_TARGET,
            run_id = run_id.as_str(),
            owner = claimer.as_ref().map(ToString::to_string),
            lease_epoch,
            "resume policy: abandon refused; another process claimed the run during it"
        );
        Error::ClaimedDuringAbandon {
            run_id: run_id.clone(),
            claimer,
        }
    }

    /// Whether an interrupted run, as `meta` records it, may be abandoned (and whether that
    /// overrides its owner), or the refusal.
    fn last_claim(&self, meta: &RunMeta, force: bool) -> Result<LastClaim> {
        let liveness = meta.owner.as_ref().map(OwnerLiveness::of);
        let overridden = || {
            LastClaim::Overridden(OverriddenOwner {
                owner: meta.owner.clone(),
                lease_epoch: meta.lease_epoch,
            })
        };
        match (liveness, &meta.owner) {
            (Some(OwnerLiveness::Exited), Some(owner)) => Ok(LastClaim::Exited {
                owner: owner.clone(),
                lease_epoch: meta.lease_epoch,
            }),
            (Some(OwnerLiveness::AliveHere), Some(owner)) if force => Err(Error::OwnerAlive {
                run_id: meta.run_id.clone(),
                owner: owner.clone(),
            }),
            (Some(OwnerLiveness::Unknown) | None, _) if force => Ok(overridden()),
            _ => Err(Error::StillRunning {
                run_id: meta.run_id.clone(),
                live: false,
                owner: meta.owner.clone(),
            }),
        }
    }

    /// One pass of the lookup. `None` when a claim raced with a status change and the
    /// lookup must start over.
    async fn lookup(&self, request: &RunRequest) -> Result<Option<Decision>> {
        let runs = self.list_scope(request).await?;

        // A live writer anywhere in the scope blocks everything, even a forced run: two
        // drivers of one workflow and scope would race on the same side effects. So does
        // another live process's claim it has not opened yet, on any run of the scope, not
        // only the candidate: a run superseded by a newer finished one can still be claimed
        // by id (`resume`), and once its claimer opens it, it is held and blocks anyway.
        for meta in runs.iter().rev() {
            if meta.status != RunStatus::Running {
                continue;
            }
            if self.factory.is_held(&meta.run_id).await? {
                return Ok(Some(self.live(meta, LiveBecause::Held)));
            }
            if owned_by_another_live_process(meta) {
                return Ok(Some(self.live(meta, LiveBecause::Claimed)));
            }
        }

        // A quarantined run newer than every listed one decides first: if it had not
        // finished, its progress is lost and a fresh run would repeat its done tasks.
        let lost = self.lost_runs(request).await?;
        if let Some(newest_lost) = lost.last() {
            let key = |meta: &RunMeta| (meta.created_at, meta.run_id.clone());
            if runs
                .last()
                .is_none_or(|newest| key(&newest_lost.meta) > key(newest))
            {
                return Ok(Some(self.past_lost_run(newest_lost, request).await?));
            }
        }

        // Only the newest non-terminal run can match, and only if no run of the scope
        // finished after it: a newer finished run (typically the one forced past it)
        // supersedes it. It stays resumable by id.
        let Some(newest) = runs.iter().rposition(|meta| !meta.status.is_terminal()) else {
            return Ok(Some(self.fresh(request, None).await?));
        };
        if newest + 1 < runs.len() {
            return Ok(Some(self.fresh(request, None).await?));
        }
        let candidate = &runs[newest];
        match candidate.status {
            RunStatus::Running => self.recover_interrupted(candidate, request).await,
            RunStatus::Paused | RunStatus::Failed if request.force => {
                Ok(Some(self.fresh(request, Some(candidate)).await?))
            }
            RunStatus::Paused => Ok(Some(self.awaiting_approval(candidate, request))),
            RunStatus::Failed => Ok(Some(self.prompt(candidate, request).await?)),
            RunStatus::Completed | RunStatus::Cancelled => {
                // `rposition` above only picks non-terminal runs.
                Ok(Some(self.fresh(request, None).await?))
            }
        }
    }

    async fn list_scope(&self, request: &RunRequest) -> Result<Vec<RunMeta>> {
        let filter = RunFilter {
            workflow: Some(request.workflow.clone()),
            scope: Some(request.scope.clone()),
            statuses: Vec::new(),
        };
        Ok(self.factory.list(&filter).await?)
    }

    async fn approve(&self, request: &RunRequest, approval: &Approval) -> Result<Decision> {
        let run_id = &approval.run_id;
        let meta = self.load_listed(run_id).await?;
        if meta.workflow != request.workflow || meta.scope != request.scope {
            return Err(Error::ApprovalMismatch {
                run_id: run_id.clone(),
                workflow: request.workflow.clone(),
                scope: request.scope.clone(),
                found_workflow: meta.workflow,
                found_scope: meta.scope,
            });
        }
        // An approval is explicit intent for exactly this run, so it claims the run from
        // `failed` as well as from `paused`: something may have failed the paused run after
        // the approval was asked for, and the prompt must never swallow an approval.
        match self.claim_explicit(meta, Via::Approval).await? {
            Claim::Won { meta, previous } => {
                let meta = *meta;
                let detail = json!({
                    "previous_status": previous.as_str(),
                    "lease_epoch": meta.lease_epoch,
                });
                self.audit(
                    run_id,
                    AuditAction::Approved,
                    format!("approved; resumed from {previous}"),
                    detail,
                )
                .await?;
                emit::resumed_by_id(run_id.as_str(), previous.as_str(), meta.lease_epoch);
                tracing::info!(
                    target: names::DETAIL_TARGET,
                    run_id = run_id.as_str(),
                    previous_status = previous.as_str(),
                    lease_epoch = meta.lease_epoch,
                    "resume policy: approved run resumed"
                );
                Ok(Decision::Resume(ResumedRun {
                    meta,
                    previous_status: previous,
                    reason: ResumeReason::Approved,
                    requested_input: Some(request.input.clone()),
                }))
            }
            Claim::Held { current, holder } => Err(Error::HeldByWriter {
                run_id: run_id.clone(),
                current,
                holder,
            }),
            Claim::Refused {
                current: RunStatus::Running,
            } if self.factory.is_held(run_id).await? => {
                // Re-read so the decision names the current owner and epoch.
                let current = self.load(run_id).await?;
                Ok(self.live(&current, LiveBecause::Held))
            }
            Claim::Refused { current, .. } => Err(Error::NotResumable {
                run_id: run_id.clone(),
                current,
            }),
        }
    }

    /// Claims a `failed` or `paused` run for an explicit resume, at the epoch read, following
    /// status changes between the two (paused → failed) but never claiming from `running`:
    /// a run that is already `running` has an owner, or is about to.
    ///
    /// Each claim is preceded by a `ResumeRequested` record naming the epoch it would take.
    /// A claim that wins but whose caller is stopped before its `ResumedById` or `Approved`
    /// record (an audit write that fails, a dropped future) leaves the run `running` with no
    /// driver; whoever adopts it next reads that record and finishes the resume, retrying
    /// the failed tasks (`cairn_executor::retries_owed`), rather than failing it again.
    /// The claim compares the epoch, so it can only take the epoch the record names.
    async fn claim_explicit(&self, mut meta: RunMeta, via: Via) -> Result<Claim> {
        let mut requested = None;
        for _ in 0..MAX_ATTEMPTS {
            let previous = meta.status;
            if !matches!(previous, RunStatus::Failed | RunStatus::Paused) {
                return Ok(Claim::Refused { current: previous });
            }
            let lease_epoch = meta.lease_epoch.saturating_add(1);
            // One record per distinct attempt: a retry after a refusal by a writer's lock
            // expects the same status and epoch, and its record is already written.
            if requested != Some((previous, lease_epoch)) {
                self.audit(
                    &meta.run_id,
                    AuditAction::ResumeRequested,
                    format!(
                        "{} requested for the {previous} run; claiming lease epoch {lease_epoch}",
                        via.describe()
                    ),
                    json!({
                        "previous_status": previous.as_str(),
                        "lease_epoch": lease_epoch,
                        "via": via.as_str(),
                    }),
                )
                .await?;
                requested = Some((previous, lease_epoch));
            }
            match self
                .factory
                .claim(&meta.run_id, previous, meta.lease_epoch)
                .await?
            {
                Ok(claimed) => {
                    return Ok(Claim::Won {
                        meta: Box::new(claimed),
                        previous,
                    });
                }
                // A writer that holds the run refuses every claim until it lets go, so
                // trying again at once would only repeat the refusal.
                Err(conflict) if conflict.held_by_writer() => {
                    return Ok(Claim::Held {
                        current: conflict.current,
                        holder: conflict.held_by.unwrap_or_default(),
                    });
                }
                Err(conflict) => {
                    meta.status = conflict.current;
                    meta.lease_epoch = conflict.current_epoch;
                    meta.owner = conflict.current_owner;
                }
            }
        }
        Ok(Claim::Refused {
            current: meta.status,
        })
    }

    async fn recover_interrupted(
        &self,
        candidate: &RunMeta,
        request: &RunRequest,
    ) -> Result<Option<Decision>> {
        let run_id = &candidate.run_id;
        // No writer holds the run, but its owner may be a process that has just claimed it
        // and not opened it yet: a claim over its claim would win (it expects the epoch that
        // claim made) and leave both callers told to drive the run.
        if owned_by_another_live_process(candidate) {
            return Ok(Some(self.live(candidate, LiveBecause::Claimed)));
        }
        // The claim is compared on the epoch listed, so of several processes that listed the
        // run at that epoch exactly one wins, and the others change nothing.
        let claimed = match self
            .factory
            .claim(run_id, RunStatus::Running, candidate.lease_epoch)
            .await?
        {
            Ok(claimed) => claimed,
            // Another process claimed the run between our listing and our claim: it is that
            // process's now, and the conflict names it.
            Err(conflict) if conflict.claimed_by_another() => {
                let mut current = candidate.clone();
                current.lease_epoch = conflict.current_epoch;
                current.owner = conflict.current_owner;
                return Ok(Some(self.live(&current, LiveBecause::Claimed)));
            }
            // Its status changed since the listing (it failed, paused...): look again.
            Err(_) => return Ok(None),
        };
        let detail = json!({
            "previous_owner": candidate.owner.as_ref().map(ToString::to_string),
            "lease_epoch": claimed.lease_epoch,
        });
        self.audit(
            run_id,
            AuditAction::Recovered,
            // A claim, not yet a recovery: the drive that opens the run next may still find
            // its state damaged.
            "interrupted run claimed for automatic recovery (no live writer held it)".to_owned(),
            detail,
        )
        .await?;
        tracing::info!(
            target: names::DETAIL_TARGET,
            run_id = run_id.as_str(),
            workflow = candidate.workflow.as_str(),
            scope = candidate.scope.as_str(),
            lease_epoch = claimed.lease_epoch,
            "resume policy: interrupted run recovered"
        );
        Ok(Some(Decision::Resume(ResumedRun {
            meta: claimed,
            previous_status: RunStatus::Running,
            reason: ResumeReason::Interrupted,
            requested_input: Some(request.input.clone()),
        })))
    }

    /// A `Fresh` decision. Writes nothing: the `ForcedFresh` record on the run forced past
    /// waits for [`ResumePolicy::fresh_run_begun`], so it never names a run that did not begin.
    pub(crate) async fn fresh(
        &self,
        request: &RunRequest,
        past: Option<&RunMeta>,
    ) -> Result<Decision> {
        let run_id = fresh_run_id();
        if let Some(past) = past {
            tracing::info!(
                target: names::DETAIL_TARGET,
                run_id = run_id.as_str(),
                forced_past = past.run_id.as_str(),
                workflow = request.workflow.as_str(),
                scope = request.scope.as_str(),
                "resume policy: fresh run forced; recorded once it has begun"
            );
        } else {
            tracing::info!(
                target: names::DETAIL_TARGET,
                run_id = run_id.as_str(),
                workflow = request.workflow.as_str(),
                scope = request.scope.as_str(),
                "resume policy: fresh run"
            );
        }
        Ok(Decision::Fresh(FreshRun {
            run_id,
            workflow: request.workflow.clone(),
            scope: request.scope.clone(),
            input: request.input.clone(),
            forced_past: past.map(|meta| meta.run_id.clone()),
            forced_past_status: past.map(|meta| meta.status),
        }))
    }

    /// Records that the fresh run `fresh` (from a [`Decision::Fresh`]) has durably begun.
    /// For a forced run, this is the `ForcedFresh` record on the run it was forced past
    /// (`detail.new_run_id` names the fresh run) and `orchestrator fresh_run_forced`; for a
    /// plain fresh run it does nothing. Call it once, right after `begin` returned (with the
    /// executor: from `Executor::on_begun`), never when `begin` failed.
    ///
    /// The record is written only after the fresh run exists because it answers a question:
    /// a quarantined run forced past counts as settled, and no longer makes a run of its
    /// workflow ask first. A forced run that never began must not answer it. A crash between
    /// `begin` and this record only means the question is asked again.
    ///
    /// # Errors
    ///
    /// - `Error::NotFound` (nothing written) when the store has no run `fresh.run_id`: it
    ///   has not begun, or `begin` failed.
    /// - `Error::Storage` when the store fails (the fresh run has begun then, but the run
    ///   forced past carries no record of it: a quarantined one still asks).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, RunError};
    /// use cairn_checkpoint::{RunId, RunMeta, wall_clock_now};
    /// use cairn_queue::Timestamp;
    /// use cairn_runs::{Decision, Error, ResumePolicy, RunRequest};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryFactory::new();
    /// let failed = RunId::new("r1")?;
    /// let run = store.begin(RunMeta::new(failed.clone(), "site", "default", "A", Timestamp(1))).await?;
    /// run.fail(&RunError::new("task_failed", "boom")).await?;
    /// drop(run);
    ///
    /// let policy = ResumePolicy::new(store.clone());
    /// let request = RunRequest::new("site", "default", "B").force();
    /// let Decision::Fresh(fresh) = policy.decide(&request).await? else { panic!() };
    /// // Not begun yet: nothing is recorded on the failed run.
    /// assert!(matches!(policy.fresh_run_begun(&fresh).await, Err(Error::NotFound { .. })));
    /// drop(store.begin(fresh.meta(wall_clock_now())).await?);
    /// policy.fresh_run_begun(&fresh).await?;
    /// let audit = store.read_audit(&failed).await?;
    /// assert_eq!(audit.last().map(|r| r.action), Some(AuditAction::ForcedFresh));
    /// # Ok::<(), cairn_runs::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Safe to call again after a drop. Its one write is the `ForcedFresh` record: dropped
    /// before that was stored, the run forced past carries no record, as after a crash (a
    /// quarantined one still asks); stored twice by a retry, the first record settles the
    /// question and the second changes nothing.
    pub async fn fresh_run_begun(&self, fresh: &FreshRun) -> Result<()> {
        let Some(past) = &fresh.forced_past else {
            return Ok(());
        };
        if self.factory.load_meta(&fresh.run_id).await?.is_none() {
            return Err(Error::NotFound {
                run_id: fresh.run_id.clone(),
            });
        }
        let status = fresh
            .forced_past_status
            .map_or("unknown", |status| status.as_str());
        let run_id = &fresh.run_id;
        // Only the audit log of the run forced past is written: its metadata stays byte for
        // byte as it was, so it can still be resumed by id.
        let detail = json!({
            "new_run_id": run_id.as_str(),
            "status": status,
        });
        self.audit(
            past,
            AuditAction::ForcedFresh,
            format!("a fresh run {run_id} was forced past this {status} run"),
            detail,
        )
        .await?;
        emit::fresh_run_forced(run_id.as_str(), past.as_str());
        Ok(())
    }

    async fn prompt(&self, failed: &RunMeta, request: &RunRequest) -> Result<Decision> {
        let prompt = FailedRunPrompt {
            run_id: failed.run_id.clone(),
            workflow: failed.workflow.clone(),
            scope: failed.scope.clone(),
            failed_at: failed.finished_at,
            error: failed.error.clone(),
            prior_input: InputPreview::new(&failed.input),
            new_input: request.input.clone(),
        };
        let detail = json!({
            "new_input_preview": InputPreview::new(&request.input).to_string(),
        });
        self.audit(
            &failed.run_id,
            AuditAction::FailedResumePrompted,
            "a new request found this failed run; offered resume, abandon or force instead of \
             resuming it"
                .to_owned(),
            detail,
        )
        .await?;
        emit::failed_resume_prompted(
            failed.run_id.as_str(),
            failed.workflow.as_str(),
            failed.scope.as_str(),
        );
        Ok(Decision::FailedPrompt(prompt))
    }

    fn awaiting_approval(&self, paused: &RunMeta, request: &RunRequest) -> Decision {
        tracing::info!(
            target: names::DETAIL_TARGET,
            run_id = paused.run_id.as_str(),
            workflow = paused.workflow.as_str(),
            scope = paused.scope.as_str(),
            "resume policy: paused run awaits its approval"
        );
        Decision::AwaitingApproval(PausedRun {
            run_id: paused.run_id.clone(),
            workflow: paused.workflow.clone(),
            scope: paused.scope.clone(),
            paused_since: paused.updated_at,
            prior_input: InputPreview::new(&paused.input),
            new_input: request.input.clone(),
        })
    }

    fn live(&self, meta: &RunMeta, because: LiveBecause) -> Decision {
        match because {
            LiveBecause::Held => tracing::warn!(
                target: names::DETAIL_TARGET,
                run_id = meta.run_id.as_str(),
                owner = meta.owner.as_ref().map(ToString::to_string),
                lease_epoch = meta.lease_epoch,
                "resume policy: run is live elsewhere; not starting a second writer"
            ),
            LiveBecause::Claimed => tracing::warn!(
                target: names::DETAIL_TARGET,
                run_id = meta.run_id.as_str(),
                owner = meta.owner.as_ref().map(ToString::to_string),
                lease_epoch = meta.lease_epoch,
                "resume policy: another live process claimed the run to drive it; not claiming it again"
            ),
        }
        Decision::Live(LiveRun {
            run_id: meta.run_id.clone(),
            owner: meta.owner.clone(),
            lease_epoch: meta.lease_epoch,
        })
    }

    /// Audits and reports an abandon whose swap from `previous` succeeded.
    async fn abandoned(
        &self,
        run_id: &RunId,
        previous: RunStatus,
        cancelled: RunMeta,
        last: LastClaim,
        damage: Option<String>,
    ) -> Result<Abandoned> {
        let (mut message, mut detail, overridden) = match last {
            LastClaim::Finished => (
                format!("abandoned from {previous}; now cancelled"),
                json!({ "previous_status": previous.as_str(), "forced": false }),
                None,
            ),
            LastClaim::Exited { owner, lease_epoch } => (
                format!(
                    "abandoned while interrupted: no process was driving it and its last owner \
                     ({owner}, lease epoch {lease_epoch}) has exited; now cancelled"
                ),
                json!({
                    "previous_status": previous.as_str(),
                    "forced": false,
                    "last_owner": owner_json(Some(&owner)),
                    "last_lease_epoch": lease_epoch,
                }),
                None,
            ),
            LastClaim::Ours { lease_epoch } => (
                format!(
                    "abandoned while interrupted: its last claim (lease epoch {lease_epoch}) was \
                     this process's own, and no process can open its state to drive it; now \
                     cancelled"
                ),
                json!({
                    "previous_status": previous.as_str(),
                    "forced": false,
                    "last_owner": owner_json(Some(&Owner::current())),
                    "last_lease_epoch": lease_epoch,
                }),
                None,
            ),
            LastClaim::Overridden(overridden) => {
                let owner = overridden
                    .owner
                    .as_ref()
                    .map_or_else(|| "none recorded".to_owned(), ToString::to_string);
                (
                    format!(
                        "forced abandon while interrupted: overrode its last owner ({owner}, \
                         lease epoch {}), which could not be shown to have exited; now \
                         cancelled, and nothing resumes it again",
                        overridden.lease_epoch
                    ),
                    json!({
                        "previous_status": previous.as_str(),
                        "forced": true,
                        "last_owner": owner_json(overridden.owner.as_ref()),
                        "last_lease_epoch": overridden.lease_epoch,
                    }),
                    Some(overridden),
                )
            }
        };
        if let Some(damage) = damage {
            message.push_str(&format!(
                "; its stored state could not be read ({damage}) and was left as it is"
            ));
            detail["state_damage"] = json!(damage);
        }
        // The swap is done: the run is cancelled whatever happens to its audit record, so
        // the telemetry is emitted and a failed audit write says the abandon took effect.
        let audited = self
            .audit(run_id, AuditAction::Abandoned, message, detail)
            .await;
        match &overridden {
            Some(overridden) => emit::run_abandoned_forced(
                run_id.as_str(),
                previous.as_str(),
                &overridden
                    .owner
                    .as_ref()
                    .map_or_else(|| "none recorded".to_owned(), ToString::to_string),
                overridden.lease_epoch,
            ),
            None => emit::run_abandoned(run_id.as_str(), previous.as_str()),
        }
        let abandoned = Abandoned {
            meta: cancelled,
            previous_status: previous,
            overridden,
        };
        match audited {
            Ok(()) => Ok(abandoned),
            Err(Error::Storage(source)) => Err(Error::AbandonedNotAudited {
                abandoned: Box::new(abandoned),
                source,
            }),
            Err(other) => Err(other),
        }
    }

    /// The error for a run id the store does not list: `Quarantined` when its state was
    /// moved aside, else `NotFound`.
    async fn not_found_or_quarantined(&self, run_id: &RunId) -> Error {
        match self.factory.list_quarantined().await {
            Ok(listed) => match listed.into_iter().rev().find(|e| e.run_id == *run_id) {
                Some(entry) => Error::Quarantined {
                    run_id: run_id.clone(),
                    location: entry.location,
                },
                None => Error::NotFound {
                    run_id: run_id.clone(),
                },
            },
            Err(err) => err.into(),
        }
    }

    /// The metadata of a run an operation names, or why there is none: `Quarantined` (with
    /// where its state is kept) for a run whose state was moved aside, so the caller is not
    /// told "no run" about a run a quarantine prompt has just named; else `NotFound`.
    async fn load_listed(&self, run_id: &RunId) -> Result<RunMeta> {
        match self.load(run_id).await {
            Err(Error::NotFound { .. }) => Err(self.not_found_or_quarantined(run_id).await),
            other => other,
        }
    }

    async fn load(&self, run_id: &RunId) -> Result<RunMeta> {
        self.factory
            .load_meta(run_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                run_id: run_id.clone(),
            })
    }

    pub(crate) async fn audit(
        &self,
        run_id: &RunId,
        action: AuditAction,
        message: String,
        detail: serde_json::Value,
    ) -> Result<()> {
        let record =
            AuditRecord::new(wall_clock_now(), run_id.clone(), action, message).with_detail(detail);
        self.factory.append_audit(run_id, &record).await?;
        Ok(())
    }
}

/// An owner as audit detail: `{"host", "pid"}`, or `null` when none was recorded.
fn owner_json(owner: Option<&Owner>) -> serde_json::Value {
    owner.map_or(
        serde_json::Value::Null,
        |owner| json!({ "host": owner.host.as_str(), "pid": owner.pid }),
    )
}

/// Whether `meta`, a `running` run no writer holds, is recorded as owned by another process
/// that is alive on this host ([`OwnerLiveness::AliveHere`], the check an abandon makes).
/// Never for this process, nor for an owner that cannot be checked: see
/// [`ResumePolicy::decide`].
fn owned_by_another_live_process(meta: &RunMeta) -> bool {
    meta.owner.as_ref().is_some_and(|owner| {
        OwnerLiveness::of(owner) == OwnerLiveness::AliveHere && *owner != Owner::current()
    })
}

/// How a `Live` decision was found, for its log line.
#[derive(Debug, Clone, Copy)]
enum LiveBecause {
    /// A writer holds the run's lock.
    Held,
    /// Another process claimed the run (before this one could, or before it opens it).
    Claimed,
}

/// Why the last claim on a run may be dropped by an abandon.
enum LastClaim {
    /// The run was `failed` or `paused`: nobody holds a claim on it.
    Finished,
    /// An interrupted run whose last owner is known to have exited.
    Exited { owner: Owner, lease_epoch: u64 },
    /// An interrupted run whose last owner cannot be checked; a forced abandon overrides it.
    Overridden(OverriddenOwner),
    /// An interrupted run with damaged state, last claimed by this process (typically by an
    /// abandon cut off between its claim and its swap).
    Ours { lease_epoch: u64 },
}

/// How the `running` branch of an abandon ended, when it did not fail.
enum Interrupted {
    Cancelled(Box<Abandoned>),
    Changed(Box<RunMeta>),
}

/// The outcome of an explicit claim.
enum Claim {
    Won {
        meta: Box<RunMeta>,
        previous: RunStatus,
    },
    Refused {
        current: RunStatus,
    },
    /// The status allowed the claim, but a live writer holds the run's lock.
    Held {
        current: RunStatus,
        holder: String,
    },
}

/// Which explicit resume claims a run, for its `ResumeRequested` record.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// [`ResumePolicy::resume`].
    ById,
    /// An approval given to [`ResumePolicy::decide`].
    Approval,
}

impl Via {
    /// The record's `via` detail.
    fn as_str(self) -> &'static str {
        match self {
            Via::ById => "by_id",
            Via::Approval => "approval",
        }
    }

    /// The record's message, for people.
    fn describe(self) -> &'static str {
        match self {
            Via::ById => "resume by id",
            Via::Approval => "approval",
        }
    }
}

/// A new time-sortable run id. The entropy mixes the process id, a process-wide counter and
/// the clock's sub-millisecond nanoseconds, so ids from one process never repeat and ids
/// from different processes almost never collide (`begin` rejects a collision anyway).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{RunId, wall_clock_now};
/// use cairn_runs::fresh_run_id;
///
/// let (first, second) = (fresh_run_id(), fresh_run_id());
/// assert_ne!(first, second);
/// assert_eq!(first.as_str().len(), 26);
/// // Time-sortable: it sorts after any id of an earlier millisecond.
/// let a_second_ago = RunId::generate(wall_clock_now().0 - 1_000, u128::MAX);
/// assert!(a_second_ago < first);
/// ```
pub fn fresh_run_id() -> RunId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let entropy = (u128::from(std::process::id()) << 64)
        ^ (u128::from(count) << 32)
        ^ u128::from(now.subsec_nanos());
    RunId::generate(wall_clock_now().0, entropy)
}
