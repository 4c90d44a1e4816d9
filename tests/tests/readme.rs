//! The README's minimal embedding is `examples/embed.rs` of this crate: the README shows it
//! verbatim, it names no crate but those the README says it needs, it runs a durable run
//! to completion on the file adapter, and, as its docs and the README promise, it picks up
//! a run whose process was killed mid-run (this test binary, re-run as a child that aborts
//! inside the second task's body) without running the finished task again.

// The example's `main` is for `cargo run --example embed`; the tests call `embed` itself.
#[allow(dead_code)]
#[path = "../examples/embed.rs"]
pub mod embed;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use cairn_checkpoint::{CheckpointerFactory, Durability, RunId, RunStatus};
use cairn_checkpoint_file::FileFactory;
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    TaskFailure, handler_fn,
};
use cairn_queue::{Event, Handoff, TaskId, TaskSpec};

/// Set (to the store's folder) in the child that is killed mid-run.
const ENV_KILLED_ROOT: &str = "CAIRN_TESTS_README_KILLED_ROOT";
/// What the child prints just before it aborts.
const KILLED: &str = "KILLED inside the second task";

const README: &str = include_str!("../../README.md");
const EXAMPLE: &str = include_str!("../examples/embed.rs");

/// The code block that follows the README's "minimal embedding" sentence, with its fence.
fn readme_block() -> (&'static str, &'static str) {
    let start = README
        .find("A minimal embedding")
        .expect("the README introduces its minimal embedding");
    let rest = &README[start..];
    let open = rest.find("```").expect("a code block follows");
    let rest = &rest[open + 3..];
    let (fence, rest) = rest.split_once('\n').expect("the fence ends its line");
    let close = rest.find("```").expect("the code block is closed");
    (fence, &rest[..close])
}

#[test]
fn the_readme_shows_the_example_verbatim_and_compiled() {
    let (fence, shown) = readme_block();
    assert_eq!(
        fence, "rust",
        "the README's block is plain `rust`, not `ignore`"
    );
    // The example without its `//!` header, which only says where it is shown.
    let body = EXAMPLE
        .lines()
        .skip_while(|line| line.starts_with("//!"))
        .skip_while(|line| line.is_empty())
        .map(|line| format!("{line}\n"))
        .collect::<String>();
    assert_eq!(
        shown, body,
        "README.md's minimal embedding differs from tests/examples/embed.rs: copy the file over"
    );
}

#[test]
fn the_example_needs_only_the_crates_the_readme_names() {
    // The README says the executor, the file adapter and tokio are enough: every path the
    // example names starts in one of them (or std).
    let allowed = [
        "std::",
        "cairn_executor::",
        "cairn_checkpoint_file::",
        "tokio::",
    ];
    let mut named = 0;
    for line in EXAMPLE.lines().filter(|l| l.starts_with("use ")) {
        named += 1;
        let path = line.trim_start_matches("use ");
        assert!(
            allowed.iter().any(|crate_| path.starts_with(crate_)),
            "the example names another crate: {line}"
        );
    }
    assert!(named >= 3, "the example's imports were found");
    assert!(
        EXAMPLE.contains("#[tokio::main]"),
        "tokio is named by its attribute"
    );
    for other in ["cairn_queue::", "cairn_checkpoint::", "async_trait::"] {
        assert!(!EXAMPLE.contains(other), "the example names {other}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_runs_a_durable_run_to_completion() {
    let dir = tempfile::tempdir().unwrap();
    let report = embed::embed(dir.path()).await.unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert!(report.durable);
    assert_eq!(report.counts.done, 2);

    // It is on disk, completed, in the folder it was given.
    let store = FileFactory::builder(dir.path()).build().unwrap();
    let meta = store.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Completed);
    assert_eq!(meta.workflow, "site");
}

/// The child: the example's plan (same workflow, scope, kinds and inputs) on the same store,
/// whose `pages` body aborts the process, so no destructor, flush or unlock runs, as with a
/// `kill -9` at that instant.
fn killed_mid_run(root: &Path) {
    let factory = FileFactory::builder(root)
        .durability(Durability::Sync)
        .build()
        .unwrap();
    let registry = Registry::new().with(
        "fetch",
        handler_fn(|ctx| async move {
            if ctx.inputs().as_str() == Some("pages") {
                println!("{KILLED}");
                std::io::stdout().flush().unwrap();
                std::process::abort();
            }
            Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
        }),
    );
    let executor = Executor::new(factory, registry, ExecutorConfig::default()).unwrap();
    let mut phase = Phase::new("download");
    let index = phase.task(TaskSpec::new("fetch").inputs("index".into()), []);
    phase.task(TaskSpec::new("fetch").inputs("pages".into()), [index]);
    let plan = RunPlan::new("site", "default").phase(phase);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ended = runtime.block_on(executor.run(plan, Start::Fresh, RunSignals::default()));
    println!("UNEXPECTED: the run ended: {ended:?}");
}

/// How many `Started` and `Completed` records each task has in `events`.
fn starts_and_completions(events: &[Event]) -> BTreeMap<TaskId, (usize, usize)> {
    let mut out: BTreeMap<TaskId, (usize, usize)> = BTreeMap::new();
    for event in events {
        match event {
            Event::Started { id, .. } => out.entry(*id).or_default().0 += 1,
            Event::Completed { id, .. } => out.entry(*id).or_default().1 += 1,
            _ => {}
        }
    }
    out
}

#[test]
fn the_example_picks_up_a_run_killed_mid_run_without_redoing_its_finished_task() {
    if let Some(root) = std::env::var_os(ENV_KILLED_ROOT) {
        killed_mid_run(Path::new(&root));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_example_picks_up_a_run_killed_mid_run_without_redoing_its_finished_task",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_KILLED_ROOT, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(KILLED) && !output.status.success(),
        "the child died inside the second task: {output:?}"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store = FileFactory::builder(dir.path()).build().unwrap();
    let runs = runtime.block_on(store.list(&Default::default())).unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run_id: RunId = runs[0].run_id.clone();
    assert_eq!(
        runs[0].status,
        RunStatus::Running,
        "the killed run is interrupted"
    );
    let before = runtime
        .block_on(store.peek(&run_id))
        .unwrap()
        .expect("the run exists");
    let done_before: Vec<TaskId> = starts_and_completions(&before.events)
        .into_iter()
        .filter(|(_, (_, completed))| *completed == 1)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        done_before.len(),
        1,
        "the first task's completion was durable"
    );

    let report = runtime.block_on(embed::embed(dir.path())).unwrap();
    assert_eq!(report.run_id, run_id, "the example adopted the killed run");
    assert!(report.resumed);
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(report.counts.done, 2);
    let meta = runtime.block_on(store.load_meta(&run_id)).unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Completed);
    let after = runtime
        .block_on(store.peek(&run_id))
        .unwrap()
        .expect("the run exists");
    let tasks = starts_and_completions(&after.events);
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert!(
        tasks.values().all(|(_, completed)| *completed == 1),
        "each task completed once: {tasks:?}"
    );
    for id in done_before {
        assert_eq!(tasks[&id].0, 1, "the finished task did not start again");
    }
}
