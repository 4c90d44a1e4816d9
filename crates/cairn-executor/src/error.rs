//! The one error type of `cairn-executor`.

use cairn_checkpoint::{Owner, RunId, RunStatus};
use cairn_queue::TaskId;

use crate::outcome::RunReport;
use crate::plan::PlanProblem;

/// Everything the executor can refuse or fail with, outside a run's own outcome.
///
/// A run that starts and then fails (a task failed, a handler panicked, the deadline passed)
/// is not an `Error`: it is a [`RunReport`] whose disposition is `Fail`. These variants are
/// for the cases where no run could be driven at all, or where finalizing it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `begin` failed and the host requires durability, so the run did not degrade. (A plan
    /// whose run id the store already holds is `RunExists`, which never degrades either: a
    /// non-durable run under another run's id would report as that run. It is this variant,
    /// with `AlreadyExists`, only when the existing run's status cannot be read.)
    #[error("cannot begin durable run {run_id}: {source}")]
    BeginFailed {
        /// The run that could not be begun.
        run_id: RunId,
        /// The store's error.
        #[source]
        source: cairn_checkpoint::Error,
    },
    /// The plan's run id names a run the store already holds, so a fresh run cannot take it.
    /// Nothing was changed. The message says what to do about the existing run, by its
    /// status: resume it (through the resume policy, `cairn-runs`), abandon it, adopt it if
    /// it was interrupted, or give the plan another run id.
    #[error("run {run_id} already exists and is {status}: {}", run_exists_advice(*.status))]
    RunExists {
        /// The plan's run id.
        run_id: RunId,
        /// The existing run's status.
        status: RunStatus,
    },
    /// `RunSignals::shutdown` was already cancelled when a fresh run was about to be begun,
    /// so none was: a run begun now would only be left `running` at once, for someone to
    /// resume or abandon. Nothing was written.
    #[error("the host is shutting down, so run {run_id} was not begun; nothing was written")]
    ShutDownBeforeBegin {
        /// The run id the plan would have been begun under.
        run_id: RunId,
    },
    /// The plan cannot run: an empty kind or one with no handler, an `after` position that
    /// is not an earlier task, task ids in `depends_on`, a task allowed 0 attempts, or more
    /// tasks than the queue may hold. Found before a fresh run is begun, so nothing was written and the
    /// corrected plan can begin under the same run id.
    #[error("the plan cannot run, so no run was begun: {}", problems_text(.problems))]
    InvalidPlan {
        /// Every problem found, in plan order.
        problems: Vec<PlanProblem>,
    },
    /// Looking for an interrupted run to adopt failed, so the executor could not tell
    /// whether starting fresh is safe.
    #[error("cannot look up interrupted runs of {target}: {source}")]
    Lookup {
        /// The workflow and scope that were looked up.
        target: String,
        /// The store's error.
        #[source]
        source: cairn_checkpoint::Error,
    },
    /// `Start::Auto` found a run of the plan's workflow and scope that another process is
    /// driving: its writer lock was held, or another process claimed or opened it while this
    /// call tried to adopt it. Nothing was begun: a second run would do again the work that
    /// run acknowledged, under other idempotency keys. Wait for that run to end (or stop it)
    /// and start again; to run the same workflow and scope side by side on purpose, give
    /// each plan its own run id (`RunPlan::run_id`).
    #[error(
        "run {run_id} of {target} is being driven by another process ({why}), so no second run was begun: wait for it to end and start again, or give the plan its own run id to run beside it"
    )]
    RunInProgress {
        /// The run another process drives.
        run_id: RunId,
        /// The workflow and scope that were looked up.
        target: String,
        /// How that was seen.
        why: String,
    },
    /// `Start::Auto` found an interrupted run to adopt, but claiming it (the status
    /// compare-and-swap that takes its lease, before it is opened) failed for a reason other
    /// than bad state or a lost race: the store failed, or a newer build wrote the run (the
    /// store's `NewerFormat`, which leaves it in place). Nothing was begun, and the run was
    /// not opened.
    #[error("cannot claim interrupted run {run_id} to adopt it: {source}")]
    Claim {
        /// The run.
        run_id: RunId,
        /// The store's error.
        #[source]
        source: cairn_checkpoint::Error,
    },
    /// Opening a run to adopt it failed for a reason other than state that does not fit (for
    /// example `Locked`: another writer holds it), or its state is damaged (`Corruption`),
    /// which is left where it is: abandon the run (`cairn-runs`) or begin a fresh one.
    #[error("cannot open run {run_id}: {source}")]
    Open {
        /// The run.
        run_id: RunId,
        /// The store's error.
        #[source]
        source: cairn_checkpoint::Error,
    },
    /// `Start::Adopt` named a run that does not exist.
    #[error("run {run_id} cannot be adopted: it does not exist")]
    AdoptNotFound {
        /// The run.
        run_id: RunId,
    },
    /// `Start::Adopt` or `Start::AdoptInterrupted` named a run of another workflow or scope
    /// than the plan's: the plan is not this run's. Nothing was run and the run's state stays
    /// where it is (a run the caller claimed stays `running`, interrupted, for a resume with
    /// its own plan to adopt).
    #[error("run {run_id} cannot be adopted with this plan: {reason}; nothing was changed")]
    AdoptOtherPlan {
        /// The run.
        run_id: RunId,
        /// Which of the run's workflow and scope the plan does not match.
        reason: String,
    },
    /// `Start::Adopt` named a run whose state does not fit (an older format version, another
    /// run id, or state that does not replay). Its state was quarantined.
    #[error("run {run_id} cannot be adopted ({reason}); its state was quarantined to {location}")]
    AdoptRefused {
        /// The run.
        run_id: RunId,
        /// Why it was refused.
        reason: String,
        /// Where its state went, or why quarantining it failed.
        location: String,
        /// What found the state bad, typed (downcast it):
        /// - a `cairn_checkpoint::Error` when the store did (the open failed with
        ///   `VersionMismatch`, `ForeignRun` or `Unreadable`; `Corruption` is `Error::Open`
        ///   instead);
        /// - a `cairn_queue::Error` when the run's events do not replay;
        /// - `None` when the executor found it unfit itself (another run's id, a snapshot of
        ///   another format version), which `reason` says.
        ///
        /// Boxed as a trait object, not as one error type: that keeps `Error` small (clippy's
        /// `result_large_err`), and the source chain still yields the error itself, where a
        /// `Box<cairn_checkpoint::Error>` would show up as the box and not downcast.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// `Start::Adopt` or `Start::AdoptInterrupted` named a run that is not `running`, so
    /// nobody claimed it for this caller. A failed or paused run must be claimed first:
    /// `ResumePolicy::resume` in `cairn-runs`, or `CheckpointerFactory::claim`, moves it to
    /// `running` under a new lease epoch; then adopt it. A completed or cancelled run never
    /// runs again. Nothing was changed: the run's state stays where it is.
    #[error("run {run_id} cannot be adopted: it is {status}, {}", not_claimed_advice(*.status))]
    AdoptNotClaimed {
        /// The run.
        run_id: RunId,
        /// The status it was found in.
        status: RunStatus,
    },
    /// `Start::Adopt` or `Start::AdoptInterrupted` named a run whose stored lease is no longer the caller's
    /// claim: it is `running` at another lease epoch than the one the caller claimed it at,
    /// because another process claimed it since (and is about to drive it, or drives it).
    /// The run is that claimer's now, so nothing was run; the run stays as the store has it.
    #[error(
        "run {run_id} cannot be adopted: this caller claimed it at lease epoch {claimed_epoch}, but its lease is at epoch {lease_epoch} now ({}), so that claim is the run's and nothing was run",
        owner_text(.owner)
    )]
    AdoptLeaseMoved {
        /// The run.
        run_id: RunId,
        /// The lease epoch the caller claimed it at.
        claimed_epoch: u64,
        /// The lease epoch the store holds.
        lease_epoch: u64,
        /// The owner the store records for that lease.
        owner: Option<Owner>,
    },
    /// The executor configuration is unusable.
    #[error("invalid executor configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The run was driven, but recording its end (`complete` or `fail`) failed. The report
    /// says what the run's disposition was; the stored status may still be `running`.
    #[error("run {} ended as {} but finalizing it failed: {source}", report.run_id, report.disposition)]
    Finalize {
        /// What the run did.
        report: Box<RunReport>,
        /// The store's error from `complete` or `fail`.
        #[source]
        source: cairn_checkpoint::Error,
    },
    /// A handler tried to enqueue a follow-up of a kind no handler is registered for.
    #[error(
        "task {parent} cannot enqueue a follow-up of kind `{kind}`: no handler is registered for it"
    )]
    UnknownKind {
        /// The task whose handler asked.
        parent: TaskId,
        /// The unknown kind.
        kind: String,
    },
    /// The queue refused a follow-up (bounds, unknown dependencies, bad spec...).
    #[error("task {parent} cannot enqueue a follow-up: {source}")]
    Enqueue {
        /// The task whose handler asked.
        parent: TaskId,
        /// The queue's error.
        #[source]
        source: cairn_queue::Error,
    },
    /// A follow-up was requested after the run stopped or after its parent attempt ended.
    #[error("task {parent} cannot enqueue a follow-up: its attempt or the run has ended")]
    NotRunning {
        /// The task whose handler asked.
        parent: TaskId,
    },
}

/// Who holds a lease, for messages.
fn owner_text(owner: &Option<Owner>) -> String {
    owner.as_ref().map_or_else(
        || "no owner recorded".to_owned(),
        |owner| format!("claimed by {owner}"),
    )
}

/// What a caller of `Start::Adopt` should do about a run in `status`.
fn not_claimed_advice(status: RunStatus) -> &'static str {
    if status.is_terminal() {
        "which is final: it cannot run again (its state is untouched)"
    } else if status == RunStatus::Running {
        // The adopt modes drive a running run (and refuse one whose lease
        // moved on with `AdoptLeaseMoved`); should a race ever lead here, the run is someone
        // else's to drive.
        "but not for this caller to drive (its state is untouched)"
    } else {
        "not running: claim it first with `ResumePolicy::resume` (cairn-runs) or \
         `CheckpointerFactory::claim`, then adopt it (its state is untouched, not quarantined)"
    }
}

/// What a caller can do about an existing run in `status` whose id its plan names.
fn run_exists_advice(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Failed => {
            "resume it (`ResumePolicy::resume` in cairn-runs, then `Start::Adopt`), abandon it              (`ResumePolicy::abandon`), or give the plan another run id"
        }
        RunStatus::Paused => {
            "approve or resume it (`ResumePolicy::resume` in cairn-runs, then `Start::Adopt`),              abandon it (`ResumePolicy::abandon`), or give the plan another run id"
        }
        RunStatus::Running => {
            "it is being driven, or was interrupted: adopt it with `Start::Auto` (or through              the resume policy in cairn-runs), or give the plan another run id"
        }
        RunStatus::Completed | RunStatus::Cancelled => {
            "it is final and never runs again: give the plan another run id"
        }
    }
}

fn problems_text(problems: &[PlanProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Shorthand for results of executor operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
