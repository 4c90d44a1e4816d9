//! Audit records: one append-only JSON line (`audit.jsonl`) per recovery decision.

use cairn_queue::Timestamp;
use serde::{Deserialize, Serialize};

use crate::meta::RunId;

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A run was begun.
    Begun,
    /// An interrupted run was adopted after a crash.
    Recovered,
    /// A task that was running at a crash was reset to pending.
    TaskReset,
    /// A task that was running at a crash had no attempts left and was failed.
    TaskFailedOnRecovery,
    /// A running attempt that its drive stopped itself (a shutdown's grace ran out, a
    /// cancel, the run's deadline) was released: the task is pending again and that attempt
    /// does not count, so it runs again under the same number.
    TaskReleased,
    /// A torn last journal record was cut on open.
    TornTailCut,
    /// State was moved to quarantine.
    Quarantined,
    /// State that should have moved to quarantine could not be moved (a read-only store,
    /// missing permissions): it stays where it is, untouched, and is left out of listings
    /// until it can move. After a `Quarantined` record written ahead of a move that then
    /// failed, this record says the move did not happen. Detail: `path`, `reason`, `error`.
    LeftInPlace,
    /// State was discarded from use (never deleted: see `Quarantined`).
    Discarded,
    /// A failed run's resume was offered to the caller instead of happening silently.
    FailedResumePrompted,
    /// A failed or paused run was abandoned (now cancelled).
    Abandoned,
    /// A fresh run was forced past a failed one.
    ForcedFresh,
    /// An explicit resume (by id, or by an approval) of a `failed` or `paused` run is about
    /// to claim it: written ahead of the claim, so that a resume cut off between its claim
    /// and its `ResumedById` or `Approved` record is still known to be explicit. Detail:
    /// `previous_status`, `lease_epoch` (the epoch the claim takes if it wins) and `via`
    /// (`by_id` or `approval`). Without a `ResumedById` or `Approved` record at that epoch
    /// after it, the claim lost, failed, or was cut off before its record.
    ResumeRequested,
    /// A run was resumed by explicit id.
    ResumedById,
    /// A paused run was resumed by an approval.
    Approved,
    /// Durable checkpointing could not begin and the run degraded to non-durable.
    BeginDegraded,
    /// A run finished; `detail` carries the outcome.
    Finished,
    /// A journal written in an older on-disk format was rewritten, atomically, in the current
    /// one; `detail` names both formats and what was carried over.
    JournalRewritten,
    /// A task that had not finished took a corrected definition (new inputs, attempt limit)
    /// when its run was adopted with a reloaded plan. Detail: `task_id`, `name`, `status`,
    /// `inputs_changed`, `max_attempts` (`[old, new]` when it changed).
    TaskAmended,
}

/// One audit line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When the decision was made.
    pub at: Timestamp,
    /// The run it concerns.
    pub run_id: RunId,
    /// What was decided.
    pub action: AuditAction,
    /// Why, for people.
    pub message: String,
    /// Structured details (task ids, paths, epochs...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl AuditRecord {
    /// Builds a record with no structured detail.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{AuditAction, AuditRecord, RunId};
    /// use cairn_queue::Timestamp;
    /// let rec = AuditRecord::new(Timestamp(5), RunId::new("r1")?, AuditAction::Abandoned, "user abandoned");
    /// assert_eq!(rec.action, AuditAction::Abandoned);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn new(
        at: Timestamp,
        run_id: RunId,
        action: AuditAction,
        message: impl Into<String>,
    ) -> Self {
        AuditRecord {
            at,
            run_id,
            action,
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }

    /// Adds structured detail.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{AuditAction, AuditRecord, RunId};
    /// use cairn_queue::Timestamp;
    /// let id = RunId::new("r1")?;
    /// let plain = AuditRecord::new(Timestamp(5), id, AuditAction::TaskReset, "task 3 reset");
    /// // A record without detail leaves the field out of its JSON line.
    /// assert!(!serde_json::to_string(&plain)?.contains("detail"));
    /// let rec = plain.with_detail(serde_json::json!({ "task_id": 3 }));
    /// assert_eq!(rec.detail["task_id"], 3);
    /// let line = serde_json::to_string(&rec)?;
    /// assert_eq!(serde_json::from_str::<AuditRecord>(&line)?, rec);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}
