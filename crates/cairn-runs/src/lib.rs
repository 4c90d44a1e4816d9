//! The cairn resume policy: a fresh run never silently resumes a failed one.
//!
//! When a run of a workflow is requested in a scope, [`ResumePolicy::decide`] looks at the
//! runs already stored for that workflow and scope and returns a [`Decision`]:
//!
//! - nothing matches: [`Decision::Fresh`];
//! - an interrupted run (`running`, no live writer): [`Decision::Resume`], claimed and audited
//!   (crash recovery);
//! - a run a live writer holds: [`Decision::Live`], never a second writer;
//! - a paused run: resumed only with its [`Approval`], else [`Decision::AwaitingApproval`];
//! - a failed run: [`Decision::FailedPrompt`], which resumes nothing and starts nothing, keeps
//!   the caller's new input, and offers three ways forward: [`ResumePolicy::resume`] by id,
//!   [`ResumePolicy::abandon`] then run, or a forced fresh run ([`RunRequest::force`]).
//!
//! - the newest run was quarantined before it finished (its progress is lost, so a fresh run
//!   would repeat its done tasks): [`Decision::QuarantinePrompt`], until it is abandoned
//!   ([`ResumePolicy::abandon_quarantined`]) or a run is forced past it.
//!
//! An interrupted run is abandoned only once its last owner is known to have exited;
//! [`ResumePolicy::abandon_forced`] is the audited override for an owner that cannot be
//! checked (another host), never for a writer that is provably alive.
//!
//! Completed and cancelled runs never match. Every decision is logged with `tracing`. The
//! prompt, a forced run (once it has begun: the host calls [`ResumePolicy::fresh_run_begun`]
//! after `begin`), an interrupted run's recovery, an approval, a resume by id and an
//! abandon are also audited on the run they concern; all but the recovery are emitted through
//! `cairn_telemetry::emit` (the executor emits the recovery's `orchestrator resumed`). The CLI, the executor and HTTP front ends all go through this
//! crate; `docs/resume-policy.md` has the full table and the compare-and-swap story.
//!
//! # Examples
//!
//! ```
//! use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunError, RunId, RunMeta};
//! use cairn_queue::Timestamp;
//! use cairn_runs::{CommandRenderer, Decision, ResumePolicy, RunRequest};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryFactory::new();
//! let failed = RunId::new("r1")?;
//! let run = store.begin(RunMeta::new(failed.clone(), "site", "default", "build A", Timestamp(1))).await?;
//! run.fail(&RunError::new("task_failed", "build exited with 2")).await?;
//! drop(run);
//!
//! let policy = ResumePolicy::new(store);
//! let decision = policy.decide(&RunRequest::new("site", "default", "build B")).await?;
//! let Decision::FailedPrompt(prompt) = decision else { panic!("expected a prompt") };
//! let text = prompt.render(&CommandRenderer::new("cairn").workflow("site.toml"));
//! assert!(text.contains("cairn resume r1"));
//! assert!(text.contains("cairn abandon r1 && cairn run site.toml --input \"build B\""));
//!
//! // Forcing starts fresh and leaves the failed run as it is.
//! let forced = policy.decide(&RunRequest::new("site", "default", "build B").force()).await?;
//! let Decision::Fresh(fresh) = forced else { panic!("expected a fresh run") };
//! assert_eq!(fresh.forced_past, Some(failed));
//! # Ok::<(), cairn_runs::Error>(())
//! # }).unwrap();
//! ```

mod command;
mod decision;
mod error;
mod policy;
mod preview;
mod quarantine;

pub use command::{CommandRenderer, SuggestedCommand, shell_quote};
pub use decision::{
    Approval, Decision, FailedRunPrompt, FreshRun, LiveRun, PausedRun, QuarantinedRunPrompt,
    ResumeReason, ResumedRun, RunRequest, WayForward,
};
pub use error::{Error, Result};
pub use policy::{Abandoned, OverriddenOwner, OwnerLiveness, ResumePolicy, fresh_run_id};
pub use preview::{CUT_MARKER, InputPreview, PREVIEW_CHARS};
pub use quarantine::QuarantineEntry;
