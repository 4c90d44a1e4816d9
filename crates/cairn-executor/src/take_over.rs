//! What an adoption does to a run's queue before anything runs or is amended. The executor
//! and hosts that preview an adoption (a reload's changes, say) share this one function, so
//! the preview cannot drift from the drive.

use cairn_queue::{Queue, Recovery, Status, TaskId, Timestamp};

/// What [`take_over`] changed in a queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TakenOver {
    /// The tasks that were `running` when the run stopped, and what each became
    /// (`Queue::recover`).
    pub recoveries: Vec<Recovery>,
    /// The failed tasks given fresh attempts, with their kinds (only when asked for).
    pub retried: Vec<(TaskId, String)>,
}

/// Brings a run's queue, as read back from the store, to the state an adoption drives (and
/// a [`crate::RunPlan::reload`] amends): every `running` task is recovered (back to
/// `pending` with attempts left, else `failed`), and when `retry_failed` is true every
/// `failed` task then gets fresh attempts, its blocked dependents returning to `pending`.
///
/// `retry_failed` is true for an explicit resume of a failed or paused run
/// ([`crate::Start::Adopt`]), and for an interrupted run whose last explicit resume stopped
/// before its retries were journaled ([`crate::retries_owed`]); an interrupted run otherwise
/// continues as it was, so a task that failed for good stays failed.
///
/// Hosts call it on a peeked queue before [`crate::RunPlan::reload_changes`] and
/// [`crate::RunPlan::fit_problems`], so that those judge the tasks as the drive will find
/// them: a task left `running` by a crash on its last attempt is `failed` by then, not
/// `running`.
///
/// # Examples
///
/// ```
/// use cairn_executor::take_over;
/// use cairn_executor::queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskSpec, Timestamp};
///
/// let mut queue = Queue::new(QueueConfig::default());
/// let last = queue.enqueue(TaskSpec::new("a").max_attempts(1), EnqueuedBy::Root, Timestamp(0))?.id;
/// let again = queue.enqueue(TaskSpec::new("b").max_attempts(2), EnqueuedBy::Root, Timestamp(0))?.id;
/// queue.start(last, Timestamp(1))?;
/// queue.start(again, Timestamp(1))?;
/// // The process died here. An interrupted run's adoption does not retry failed tasks:
/// let taken = take_over(&mut queue, false, Timestamp(5));
/// assert_eq!(taken.recoveries.len(), 2);
/// assert_eq!(queue.get(last).map(|t| t.status), Some(Status::Failed), "no attempt left");
/// assert_eq!(queue.get(again).map(|t| t.status), Some(Status::Pending));
/// // An explicit resume of the failed run would:
/// let taken = take_over(&mut queue, true, Timestamp(6));
/// assert_eq!(taken.retried, vec![(last, "a".to_owned())]);
/// assert_eq!(queue.get(last).map(|t| t.status), Some(Status::Pending));
/// # Ok::<(), cairn_executor::queue::Error>(())
/// ```
pub fn take_over(queue: &mut Queue, retry_failed: bool, now: Timestamp) -> TakenOver {
    let recoveries = queue.recover(now);
    let retried = if retry_failed {
        let failed: Vec<(TaskId, String)> = queue
            .tasks()
            .filter(|t| t.status == Status::Failed)
            .map(|t| (t.id, t.kind.clone()))
            .collect();
        // `retry` refuses only a task that is not failed, and each of these is.
        failed
            .into_iter()
            .filter(|(id, _)| queue.retry(*id, now).is_ok())
            .collect()
    } else {
        Vec::new()
    };
    TakenOver {
        recoveries,
        retried,
    }
}
