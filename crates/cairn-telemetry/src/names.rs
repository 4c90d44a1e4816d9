//! Stable event, span and field names. `docs/telemetry.md` documents them as a schema table;
//! changing one is a breaking change for every dashboard built on them.

/// Emitted when a run starts (fresh or resumed). Fields: `run_id`, `workflow`, `scope`,
/// `tasks_total`, `resumed`.
pub const RUN_STARTED: &str = "orchestrator run started";
/// Emitted once per resume, before any task starts. Fields: `run_id`, `lease_epoch`,
/// `tasks_pending`, `tasks_done`, `tasks_reset`, `tasks_failed`.
pub const RESUMED: &str = "orchestrator resumed";
/// Emitted when a run ends. Fields: `run_id`, `outcome` (`complete | leave_running | fail`),
/// `resumed`, `duration_ms`, `tasks_done`, `tasks_failed`, `tasks_skipped`, `tasks_blocked`.
pub const RUN_FINISHED: &str = "orchestrator run finished";
/// A failed run's resume was offered instead of happening silently. Fields: `run_id` (the
/// failed run), `workflow`, `scope`.
pub const FAILED_RESUME_PROMPTED: &str = "orchestrator failed_resume_prompted";
/// A failed, paused, interrupted or quarantined run was abandoned. INFO; WARN when forced.
/// Fields: `run_id`, `previous_status`, `forced`; when forced also `last_owner` (`pid N on
/// HOST`, or `none recorded`) and `last_lease_epoch`, the owner it overrode.
pub const RUN_ABANDONED: &str = "orchestrator run_abandoned";
/// A fresh run forced past a failed, paused or quarantined one has begun (emitted with its
/// `ForcedFresh` audit record, never for a forced run that did not begin). Fields: `run_id`
/// (the new run), `failed_run_id` (the run forced past).
pub const FRESH_RUN_FORCED: &str = "orchestrator fresh_run_forced";
/// A run was resumed by explicit id. Fields: `run_id`, `previous_status`, `lease_epoch`.
pub const RESUMED_BY_ID: &str = "orchestrator resumed_by_id";
/// Stored state was quarantined. Fields: `run_id`, `reason`, `location`.
pub const STATE_QUARANTINED: &str = "orchestrator state_quarantined";
/// A task that was running at a crash was reset (or failed, when out of attempts). Fields:
/// `run_id`, `task_id`, `task_name` (when the task has one, see [`TASK_SPAN`]), `kind`,
/// `attempt`, `now` (`pending | failed`).
pub const TASK_RESET: &str = "orchestrator task_reset";
/// A task attempt failed: its handler returned an error (retryable or permanent), ran past
/// its timeout, panicked, or returned a handoff that cannot be stored. WARN. Fields:
/// `run_id`, `task_id`, `task_name` (when the task has one), `kind`, `attempt`,
/// `max_attempts`, `error.kind`, `error.message`, `will_retry` (whether the task gets
/// another attempt). Emitted inside the attempt's task
/// span ([`TASK_SPAN`]) when it fails there, else inside the run span ([`RUN_SPAN`]).
pub const TASK_FAILED: &str = "orchestrator task_failed";
/// `begin` failed and the run degraded to non-durable. Fields: `run_id`, `error`.
pub const BEGIN_DEGRADED: &str = "orchestrator begin_degraded";
/// A recurring job's circuit breaker tripped. Fields: `job_id`, `consecutive_errors`, `last_error`.
pub const BREAKER_TRIPPED: &str = "scheduler breaker_tripped";
/// A recurring job was revived. Fields: `job_id`, `forced`.
pub const JOB_REVIVED: &str = "scheduler job_revived";

/// The root span of one run. Fields: `run_id`, `workflow`, `scope`, `resumed`,
/// `resumed_from_run_id`, `resumed_from_epoch` (the last two only on a resume; the
/// OpenTelemetry layer turns them into a span link to the interrupted run).
pub const RUN_SPAN: &str = "orchestrator run";
/// One span per task attempt, a child of its [`RUN_SPAN`] (which carries `run_id`). Fields:
/// `task_id`, `kind`, `attempt`, `outcome` (recorded when the attempt ends:
/// `complete | skip | retry | fail | panic | timeout | cancelled`), and `task_name` when the
/// task has a name: what people call it, beside the queue's `t<N>` id (the executor takes
/// it from the plan, `PlannedTask::name`; the `cairn` CLI names each task by its id in the
/// workflow file). Follow-ups and unnamed plan tasks have none.
pub const TASK_SPAN: &str = "orchestrator task";

/// The tracing target of cairn's stable events and spans: every event on it has one of the
/// stable names above as its tracing name, so a host can route `target == "cairn"` by
/// `metadata().name()`. `RUST_LOG=cairn=info` selects them, and [`DETAIL_TARGET`] too.
pub const TARGET: &str = "cairn";
/// The tracing target of cairn's diagnostics that have no stable name: what the executor
/// adopted or left alone, a shutdown's progress, an audit record it could not write, the
/// resume policy's reasoning. Their messages and fields may change between releases, so
/// build nothing on them; they are for people reading logs. A filter on the `cairn` target
/// (`RUST_LOG=cairn=info`) selects them too, since targets match by prefix; they are not
/// exported as spans of their own when outside any span (only [`TARGET`] events are).
pub const DETAIL_TARGET: &str = "cairn::detail";
/// Queue depth by status, emitted by the executor after each batch of transitions. Fields:
/// `run_id`, `pending`, `running`, `done`, `skipped`, `failed`, `blocked`.
pub const QUEUE_DEPTH: &str = "orchestrator queue_depth";

/// Optional field of [`RUN_SPAN`]: the lease epoch this execution holds. When absent, the
/// OpenTelemetry layer infers it (1 for a fresh run, `resumed_from_epoch + 1` for a resume of
/// the same run id).
pub const RUN_SPAN_LEASE_EPOCH: &str = "lease_epoch";

/// Attribute on the run span's link (and on the run span itself): the run id of the execution
/// the link points to.
pub const ATTR_RUN_ID: &str = "cairn.run_id";
/// Attribute on the run span's link (and on the run span itself): the lease epoch of the
/// execution the link points to.
pub const ATTR_LEASE_EPOCH: &str = "cairn.lease_epoch";
/// Attribute on a run span's link saying why it exists: [`LINK_KIND_RESUMED_FROM`] or
/// [`LINK_KIND_PARENT`].
pub const ATTR_LINK_KIND: &str = "cairn.link.kind";
/// [`ATTR_LINK_KIND`] of the link from a resumed run to the execution it resumed.
pub const LINK_KIND_RESUMED_FROM: &str = "resumed_from";
/// [`ATTR_LINK_KIND`] of the link from a run span to the span it was opened inside (a run
/// span always starts its own trace, so an enclosing span becomes a link).
pub const LINK_KIND_PARENT: &str = "parent";

/// Counter of finished task attempts. Attributes: `outcome`, `kind`.
pub const METRIC_TASK_OUTCOMES: &str = "cairn.task.outcomes";
/// Histogram of task attempt durations in seconds ([`TASK_SPAN`] open to its `outcome` being
/// recorded, to its close if none was), with buckets from 1 ms to an hour. Attributes:
/// `outcome`, `kind`.
pub const METRIC_TASK_DURATION: &str = "cairn.task.duration";
/// Histogram of run execution durations in seconds (from [`RUN_FINISHED`] `duration_ms`),
/// with buckets from 100 ms to a day. Attributes: `outcome`, `resumed`.
pub const METRIC_RUN_DURATION: &str = "cairn.run.duration";
/// Counter of resumes ([`RESUMED`] events).
pub const METRIC_RESUMES: &str = "cairn.run.resumes";
/// Counter of quarantines ([`STATE_QUARANTINED`] events).
pub const METRIC_QUARANTINES: &str = "cairn.state.quarantines";
/// Gauge of queued tasks by status, summed over the runs in progress in this process (from
/// [`QUEUE_DEPTH`] events; a run's share is dropped at [`RUN_FINISHED`]). Attribute: `status`.
pub const METRIC_QUEUE_DEPTH: &str = "cairn.queue.depth";
