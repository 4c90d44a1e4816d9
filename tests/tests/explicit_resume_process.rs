//! An explicit resume whose process dies between its claim and its `ResumedById` record, in
//! a file store, is finished by the next process: its plain request recovers the run, the
//! failed task runs again and its dependent runs. One resume, as the person asked, not two.
//!
//! This target has no libtest harness (`harness = false`): `main` is the parent test, and
//! the same binary, re-executed with `CAIRN_TESTS_RESUMER_ROOT` set, is the resumer child.
//! The child's store fails its second audit write (the record after the claim) and the child
//! aborts there, so no destructor, flush or unlock runs, as with a kill at that instant.

mod common;

use std::path::Path;
use std::process::Command;

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use cairn_checkpoint::{AuditAction, CheckpointerFactory, RunId, RunStatus};
use cairn_checkpoint_file::FileFactory;
use cairn_executor::{Disposition, RunSignals, Start};
use cairn_runs::{Decision, ResumePolicy, ResumeReason, RunRequest};
use common::{Bodies, flaky_then_after};

const ENV_ROOT: &str = "CAIRN_TESTS_RESUMER_ROOT";
const ENV_RUN: &str = "CAIRN_TESTS_RESUMER_RUN";
/// What the child prints just before it aborts.
const CUT: &str = "CUT after the claim";

fn main() {
    if let Ok(root) = std::env::var(ENV_ROOT) {
        child(Path::new(&root));
        return;
    }
    // libtest's arguments (`--list`, which runners such as nextest ask first, name filters,
    // `--exact`, `--ignored`) work as for every other target.
    let trial = libtest_mimic::Trial::test(
        "a_resume_killed_after_its_claim_is_finished_by_the_next_process",
        || {
            parent();
            Ok(())
        },
    );
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), vec![trial]).exit();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime builds")
}

fn file_store(root: &Path) -> FileFactory {
    FileFactory::builder(root)
        .build()
        .expect("the file store opens")
}

/// The resumer: `ResumePolicy::resume` with the record after the claim failing, then death.
fn child(root: &Path) {
    let run = std::env::var(ENV_RUN).expect("the run id is set for the child");
    let run_id = RunId::new(run).expect("a valid run id");
    let faults = FaultPlan::new();
    // The first audit write is the request, the second the record after the claim.
    faults.fail_nth(FaultOp::AppendAudit, 2, FaultTiming::Before);
    let policy = ResumePolicy::new(FaultyFactory::new(file_store(root), faults));
    match runtime().block_on(policy.resume(&run_id)) {
        Err(cairn_runs::Error::Storage(_)) => {
            println!("{CUT}");
            std::process::abort();
        }
        other => println!("UNEXPECTED {other:?}"),
    }
}

fn parent() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path().join("store");
    let rt = runtime();
    let bodies = Bodies::default();
    let store = file_store(&root);
    let (executor, plan) = flaky_then_after(store.clone(), &bodies);
    let failed = rt
        .block_on(executor.run(plan.clone(), Start::Fresh, RunSignals::default()))
        .expect("the first run ends");
    assert!(
        matches!(failed.disposition, Disposition::Fail(_)),
        "{failed:?}"
    );
    let run_id = failed.run_id.clone();
    let failed_at = rt
        .block_on(store.load_meta(&run_id))
        .expect("the run reads")
        .expect("the run exists");

    // `cairn resume RUN`, killed right after its claim.
    let output = Command::new(std::env::current_exe().expect("the test binary path"))
        .env(ENV_ROOT, &root)
        .env(ENV_RUN, run_id.as_str())
        .output()
        .expect("the resumer runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(CUT) && !output.status.success(),
        "the resumer died after its claim: {output:?}"
    );
    let claimed = rt
        .block_on(store.load_meta(&run_id))
        .expect("the run reads")
        .expect("the run exists");
    assert_eq!(claimed.status, RunStatus::Running, "the claim is durable");
    assert_eq!(claimed.lease_epoch, failed_at.lease_epoch + 1);
    let audit = rt
        .block_on(store.read_audit(&run_id))
        .expect("the audit reads");
    assert!(
        audit
            .iter()
            .any(|r| r.action == AuditAction::ResumeRequested)
            && !audit.iter().any(|r| r.action == AuditAction::ResumedById),
        "{audit:?}"
    );

    // The next process asks for the workflow again: the dead resumer's run is recovered
    // and the resume it was in is finished.
    let policy = ResumePolicy::new(store.clone());
    let decision = rt
        .block_on(policy.decide(&RunRequest::new("wf", "scope", "")))
        .expect("the policy decides");
    let Decision::Resume(resumed) = decision else {
        panic!("expected a resume, got {decision:?}");
    };
    assert_eq!(resumed.reason, ResumeReason::Interrupted);
    assert_eq!(resumed.meta.run_id, run_id);
    let report = rt
        .block_on(executor.run(
            plan,
            Start::AdoptInterrupted {
                run_id: run_id.clone(),
                lease_epoch: resumed.meta.lease_epoch,
            },
            RunSignals::default(),
        ))
        .expect("the recovery ends");
    assert_eq!(report.disposition, Disposition::Complete, "{report:?}");
    assert_eq!(bodies.count("flaky"), 2, "the failed task ran again");
    assert_eq!(bodies.count("after"), 1, "and its dependent ran");
    let finished = rt
        .block_on(store.load_meta(&run_id))
        .expect("the run reads")
        .expect("the run exists");
    assert_eq!(finished.status, RunStatus::Completed);
}
