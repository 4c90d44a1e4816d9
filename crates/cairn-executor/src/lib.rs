//! Drains a durable cairn run on tokio, classifies its outcome and resumes it after a crash.
//!
//! The [`Executor`] knows only the storage port (`cairn-checkpoint`), never an adapter. It
//! takes a [`RunPlan`] (named [`Phase`]s of tasks), a [`Registry`] of [`Handler`]s by task
//! kind, and a [`Start`] mode, and drives the run to its end:
//!
//! - **Batches.** Each cycle applies every handler result that is ready, starts every
//!   runnable task up to [`ExecutorConfig::concurrency`], appends all those events with one
//!   `append` (one fsync), and only then lets the new handler bodies run. A task's `Started`
//!   record is therefore durable before its body runs, and its `Completed` record after.
//! - **Rules stay in the queue.** Retries, blocking of dependents, dedup of follow-ups and
//!   crash recovery are decided by `cairn-queue`; the executor only supplies the backoff time
//!   ([`RetryPolicy`]) and classifies handler results.
//! - **Every exit is finalized.** [`classify`] (pure) maps why the drive stopped to a
//!   [`Disposition`]: complete, leave running (graceful shutdown: resumable), or fail. The
//!   executor then records it, even after a handler or executor panic.
//! - **Resume.** [`Start::Auto`] adopts an interrupted run (status `running`, no live writer)
//!   of the same workflow and scope, after checking its format version, run id and scope;
//!   state that does not fit is quarantined. `failed` runs are left to the resume policy,
//!   which hands them over with [`Start::Adopt`].
//!
//! `docs/durability.md` states the guarantee: every task's completion is recorded exactly
//! once, bodies run at least once, and only attempts that were running at a crash (or that
//! failed and retried) run again.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use cairn_checkpoint::NoopFactory;
//! use cairn_executor::{
//!     Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals,
//!     Start, handler_fn,
//! };
//! use cairn_queue::{Handoff, TaskSpec};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), cairn_executor::Error> {
//! let registry = Registry::new().with(
//!     "greet",
//!     handler_fn(|ctx| async move {
//!         let done = vec![format!("greeted {}", ctx.inputs())];
//!         Ok(Finish::Complete(Handoff { done, ..Handoff::default() }))
//!     }),
//! );
//! let executor = Executor::new(Arc::new(NoopFactory), registry, ExecutorConfig::default())?;
//!
//! let mut phase = Phase::new("hello");
//! let first = phase.task(TaskSpec::new("greet").inputs("world".into()), []);
//! phase.task(TaskSpec::new("greet").inputs("again".into()), [first]);
//! let plan = RunPlan::new("demo", "default").phase(phase);
//!
//! let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
//! assert_eq!(report.disposition, Disposition::Complete);
//! assert_eq!(report.counts.done, 2);
//! # Ok(()) }
//! ```

mod attempt;
mod config;
mod drive;
mod error;
mod executor;
mod handler;
mod outcome;
mod plan;

pub use config::{ExecutorConfig, RetryPolicy};
pub use error::{Error, Result};
pub use executor::Executor;
pub use handler::{
    Finish, FnHandler, Handler, HandlerResult, Registry, TaskContext, TaskFailure, handler_fn,
};
pub use outcome::{CancelCause, Disposition, FailedTask, RunReport, RunStop, classify};
pub use plan::{Phase, PlanProblem, PlannedTask, RunPlan, RunSignals, Start, TaskAt};
