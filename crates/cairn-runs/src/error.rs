//! The one error type of the resume policy.

use cairn_checkpoint::{Owner, RunId, RunStatus};
use cairn_queue::Timestamp;

/// Everything a resume-policy operation can fail with.
///
/// Expected conflicts (a lost resume race, an abandon of a finished run) have their own
/// variants so callers never confuse them with a storage failure, which is `Storage`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The run is not in a status that can be resumed (or another resumer won the race and
    /// the run is now `running`).
    #[error("run {run_id} cannot be resumed: it is {current}")]
    NotResumable {
        /// The run.
        run_id: RunId,
        /// Its status when the resume was refused.
        current: RunStatus,
    },
    /// The run already is `completed` or `cancelled`; nothing can change it any more.
    #[error("run {run_id} is already {status}")]
    AlreadyTerminal {
        /// The run.
        run_id: RunId,
        /// Its terminal status.
        status: RunStatus,
    },
    /// The run is `running` and cannot be abandoned now: a live writer drives it, or its
    /// last owner cannot be shown to have exited (it may be about to drive it). An
    /// interrupted run whose owner has exited can be abandoned; one whose owner cannot be
    /// checked, with `ResumePolicy::abandon_forced`. A resumer's claim that lands during the
    /// abandon is [`Error::ClaimedDuringAbandon`] instead.
    #[error(
        "run {run_id} is running ({}); it can be abandoned only when no process drives it and its last owner has exited",
        owner_text(.owner, *.live)
    )]
    StillRunning {
        /// The run.
        run_id: RunId,
        /// Whether a live writer holds its lock right now.
        live: bool,
        /// The latest owner the store recorded.
        owner: Option<Owner>,
    },
    /// A forced abandon was refused: nobody drives the run, but its last owner is a live
    /// process on this host. Force overrides only an owner that cannot be checked (another
    /// host, no `/proc`), never a live local process, which may be a resumer about to open
    /// the run: stop that process first.
    #[error(
        "run {run_id} is not being driven, but its last owner ({owner}) is alive on this host; a forced abandon only overrides an owner that cannot be checked (another host, no /proc), never a live local process: stop that process first"
    )]
    OwnerAlive {
        /// The run.
        run_id: RunId,
        /// Its last owner, alive on this host.
        owner: Owner,
    },
    /// Another process (a resumer) claimed the interrupted run while it was being abandoned,
    /// so it was not abandoned: the claim stands and its owner is the run's recorded owner
    /// now. The claimer normally goes on to drive the run (it waits for the abandon to let go
    /// of the run's lock); if it failed, the run is interrupted again and can be resumed or
    /// abandoned once that process has exited.
    #[error(
        "run {run_id} was claimed by {} while it was being abandoned, so it was not abandoned",
        claimer_text(.claimer)
    )]
    ClaimedDuringAbandon {
        /// The run.
        run_id: RunId,
        /// The owner the claim recorded, when the store recorded one.
        claimer: Option<Owner>,
    },
    /// The run is `failed` or `paused`, so it could be resumed, but a live writer still holds
    /// its lock (the process that paused or failed it has not let go of it yet). Nothing was
    /// claimed; resume it once that process has let go.
    #[error(
        "run {run_id} is {current}, but a live writer still holds it ({holder}); resume it once that process has let go of the run"
    )]
    HeldByWriter {
        /// The run.
        run_id: RunId,
        /// Its status, which allows a resume.
        current: RunStatus,
        /// Who holds the run's writer lock, as the store names the holder.
        holder: String,
    },
    /// No run has this id.
    #[error("no run {run_id}")]
    NotFound {
        /// The run.
        run_id: RunId,
    },
    /// An approval names a run of another workflow or scope than the request.
    #[error(
        "approval names run {run_id} of workflow `{found_workflow}` in scope `{found_scope}`, \
         but the request is for workflow `{workflow}` in scope `{scope}`"
    )]
    ApprovalMismatch {
        /// The run the approval names.
        run_id: RunId,
        /// The request's workflow.
        workflow: String,
        /// The request's scope.
        scope: String,
        /// The run's workflow.
        found_workflow: String,
        /// The run's scope.
        found_scope: String,
    },
    /// The run was quarantined: its state was moved aside because it could not be used, so
    /// it has no status to change. `ResumePolicy::abandon_quarantined` settles it.
    #[error(
        "run {run_id} was quarantined (its state is kept at {location}); it has no status to \
         change: abandon it as a quarantined run to give up its lost progress"
    )]
    Quarantined {
        /// The run.
        run_id: RunId,
        /// Where its state was moved.
        location: String,
    },
    /// The quarantined run was settled already: abandoned, or a fresh run was forced past it.
    #[error(
        "quarantined run {run_id} was already settled at {} (abandoned, or a fresh run was forced past it); a run of its workflow no longer asks about it",
        crate::decision::timestamp_text(Some(*.at))
    )]
    QuarantineAbandoned {
        /// The run.
        run_id: RunId,
        /// When it was settled.
        at: Timestamp,
    },
    /// The quarantined run's metadata could not be parsed, so it belongs to no known
    /// workflow and scope: it never makes a run ask first, and there is nothing to abandon.
    #[error(
        "quarantined run {run_id} has no readable metadata, so it belongs to no known workflow and never makes a run ask first: there is nothing to abandon (its state stays at {location})"
    )]
    QuarantineUnattributed {
        /// The run.
        run_id: RunId,
        /// Where its state is kept.
        location: String,
    },
    /// The quarantined run's audit log cannot be read, so an abandon could not be recorded
    /// where the lookup reads it. A forced run (`RunRequest::force`) goes past it instead.
    #[error(
        "the audit log of quarantined run {run_id} cannot be read ({source}), so abandoning it could not be recorded; run its workflow with force to run past it"
    )]
    QuarantineAuditUnreadable {
        /// The run.
        run_id: RunId,
        /// The store's error from reading the log (`Corruption` for a damaged one, say).
        #[source]
        source: cairn_checkpoint::Error,
    },
    /// The run was abandoned (it is `cancelled` now, and nothing resumes it), but its
    /// `Abandoned` audit record could not be written. The abandon took effect: a caller
    /// reports it as done, and the store failure besides.
    #[error(
        "run {} was abandoned (it is cancelled now), but its audit record could not be written: {source}",
        .abandoned.meta.run_id
    )]
    AbandonedNotAudited {
        /// The abandon, as it would have been returned.
        abandoned: Box<crate::Abandoned>,
        /// Why the audit record was not written.
        source: cairn_checkpoint::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] cairn_checkpoint::Error),
}

fn owner_text(owner: &Option<Owner>, live: bool) -> String {
    // Not "interrupted" when no writer holds it: the owner may be alive and about to open
    // the run it has just claimed, and the refusal is exactly for that case.
    let state = if live {
        "a live writer drives it"
    } else {
        "no writer holds it now"
    };
    match owner {
        Some(owner) => format!("{state}; last owner {owner}"),
        None => format!("{state}; no owner recorded"),
    }
}

fn claimer_text(claimer: &Option<Owner>) -> String {
    match claimer {
        Some(owner) => format!("another process ({owner})"),
        None => "another process".to_owned(),
    }
}

/// Shorthand for results of resume-policy operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
