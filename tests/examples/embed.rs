//! The README's minimal embedding: one durable run of two tasks on the file adapter. The
//! README shows this file from its first `use` on, and `tests/readme.rs` checks that it
//! still does and that `embed` runs.

use std::error::Error;
use std::path::Path;

use cairn_checkpoint_file::FileFactory;
// The executor, plans, handlers, and the queue and checkpoint types they use.
use cairn_executor::prelude::*;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let report = embed(Path::new(".cairn")).await?;
    println!(
        "run {}: {}, {} task(s) done",
        report.run_id, report.disposition, report.counts.done
    );
    Ok(())
}

/// Drives one run in the store at `root`; if an earlier process was killed mid-run, this
/// one picks that run up where it stopped.
///
/// # Errors
///
/// Fails when the store cannot be opened or written, or when another process drives this
/// workflow's run (`RunInProgress`). A task that fails is no error here: the report says so.
pub async fn embed(root: &Path) -> Result<RunReport, Box<dyn Error>> {
    // `Sync`: an append returns only after fdatasync.
    let factory = FileFactory::builder(root)
        .durability(Durability::Sync)
        .build()?;
    let registry = Registry::new().with(
        "fetch",
        handler_fn(|ctx| async move {
            // The same for every attempt of this task, across retries and resumes: pass it to
            // external systems, so that a body that runs twice has its effect once.
            let key = ctx.idempotency_key();
            let done = vec![format!("fetched {} (key {key})", ctx.inputs())];
            Ok(Finish::Complete(Handoff {
                done,
                ..Handoff::default()
            }))
        }),
    );
    // A store that cannot begin the run is an error, not a run that quietly keeps nothing.
    let config = ExecutorConfig::default().with_require_durability(true);
    let executor = Executor::new(factory, registry, config)?;

    let mut phase = Phase::new("download");
    let index = phase.task(TaskSpec::new("fetch").inputs("index".into()), []);
    phase.task(TaskSpec::new("fetch").inputs("pages".into()), [index]);
    let plan = RunPlan::new("site", "default").phase(phase);

    // `Auto`: adopt this workflow's interrupted run if there is one, else begin a new one.
    // While another process drives a run of it, this fails with `RunInProgress` instead.
    let report = executor
        .run(plan, Start::Auto, RunSignals::default())
        .await?;
    // Always true with `require_durability`; without it, a failed `begin` shows up only here.
    if !report.durable {
        return Err(format!("run {} was not recorded on disk", report.run_id).into());
    }
    Ok(report)
}
