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
//! A handler that panics fails its task (kind `panic`) and the run goes on, but the panic
//! still passes through the process's panic hook first: the default hook prints it (with a
//! backtrace under `RUST_BACKTRACE=1`) on stderr. A host that treats stderr output as an
//! alarm installs its own hook (`std::panic::set_hook`).
//!
//! # Re-exports
//!
//! The types of other crates that this crate's API uses are re-exported, so a minimal
//! embedding needs only this crate, a storage adapter and tokio: [`prelude`] has what a
//! typical host names; [`queue`] and [`checkpoint`] are the whole of `cairn-queue` and
//! `cairn-checkpoint`; [`async_trait`](macro@async_trait) implements [`Handler`] on a type of
//! your own, and [`CancellationToken`] is the type of [`RunSignals`]' tokens.
//!
//! # Examples
//!
//! ```
//! use cairn_executor::checkpoint::NoopFactory;
//! use cairn_executor::prelude::*;
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
//! let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
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
mod take_over;

pub use config::{ExecutorConfig, RetryPolicy};
pub use error::{Error, Result};
pub use executor::{Executor, open_claimed_run, retries_owed};
pub use handler::{
    Finish, FnHandler, Handler, HandlerResult, Registry, TaskContext, TaskFailure, handler_fn,
};
pub use handler::{FnHandlerWith, handler_fn_with};
pub use outcome::{
    CancelCause, Disposition, FailedTask, LISTED_FAILURES, RunReport, RunStop, classify,
};
pub use plan::{
    FitProblem, Phase, PlanProblem, PlannedTask, ReloadChange, RunPlan, RunSignals, Start, TaskAt,
};
pub use take_over::{TakenOver, take_over};

pub use async_trait::async_trait;
/// The storage port (`cairn-checkpoint`), whose factory [`Executor::new`] takes.
pub use cairn_checkpoint as checkpoint;
pub use cairn_checkpoint::{CheckpointerFactory, Durability, RunId};
/// The task queue (`cairn-queue`), whose task types handlers see.
pub use cairn_queue as queue;
pub use cairn_queue::{Enqueued, Handoff, Task, TaskError, TaskId, TaskSpec};
pub use tokio_util::sync::CancellationToken;

pub mod prelude {
    //! What a typical embedding names, for `use cairn_executor::prelude::*;`: the executor,
    //! plans, handlers and their results, and the queue and checkpoint types they use.
    //!
    //! # Examples
    //!
    //! A handler type of your own, with the re-exported [`async_trait`](macro@async_trait):
    //!
    //! ```
    //! use cairn_executor::prelude::*;
    //!
    //! #[derive(Debug)]
    //! struct Greet;
    //!
    //! #[async_trait]
    //! impl Handler for Greet {
    //!     async fn run(&self, ctx: TaskContext) -> HandlerResult {
    //!         let done = vec![format!("greeted {}", ctx.inputs())];
    //!         Ok(Finish::Complete(Handoff { done, ..Handoff::default() }))
    //!     }
    //! }
    //!
    //! let registry = Registry::new().with("greet", Greet);
    //! let signals = RunSignals { shutdown: CancellationToken::new(), ..RunSignals::default() };
    //! # let _ = (registry, signals);
    //! ```

    pub use crate::{
        CancellationToken, CheckpointerFactory, Disposition, Durability, Enqueued, Executor,
        ExecutorConfig, Finish, FitProblem, Handler, HandlerResult, Handoff, Phase, Registry,
        RetryPolicy, RunId, RunPlan, RunReport, RunSignals, Start, TaskContext, TaskError,
        TaskFailure, TaskId, TaskSpec, async_trait, handler_fn, handler_fn_with,
    };
}
