//! The workflow files the README points a new user at (`examples/hello.toml`, the main job,
//! and `examples/flaky.toml`) run as their comments say. The other CLI tests use workflows
//! of their own, so without these a change to the format or its checks could break the first
//! command of the README unnoticed.

mod common;

use common::{Sandbox, assert_contains, text};

/// A file of the workspace's `examples/` folder, copied into the sandbox (so the run's
/// `.cairn/` state and the tasks' side effects stay there).
fn copy_example(sandbox: &Sandbox, name: &str) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    let workflow = std::fs::read_to_string(&source)
        .unwrap_or_else(|err| panic!("read {}: {err}", source.display()));
    sandbox.write(name, &workflow);
}

/// What one task's first attempt printed on stdout.
fn first_stdout(sandbox: &Sandbox, run_id: &str, task: &str) -> String {
    sandbox.read(&format!(".cairn/output/{run_id}/{task}.1.stdout"))
}

#[test]
fn the_readme_main_job_runs_every_task_of_hello_to_completion() {
    let sandbox = Sandbox::new();
    copy_example(&sandbox, "hello.toml");
    let output = sandbox.run(&["run", "hello.toml"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let run_id = sandbox.only_run_id();
    let runs = sandbox.runs();
    assert_eq!(runs[0]["status"], "completed");
    // Each task's own output, from its own attempt: the pipeline really ran, in full.
    assert_eq!(
        first_stdout(&sandbox, &run_id, "fetch"),
        "fetching sources\nfetched\n"
    );
    assert_eq!(first_stdout(&sandbox, &run_id, "lint"), "linting\n");
    assert_eq!(
        first_stdout(&sandbox, &run_id, "compile"),
        "compiling\ncompiled 42 units\n"
    );
    assert_eq!(
        first_stdout(&sandbox, &run_id, "test"),
        "running tests\nall tests passed\n"
    );
    assert_eq!(
        first_stdout(&sandbox, &run_id, "package"),
        "packaging for release\n",
        "the task's `env` reaches its command"
    );
}

#[test]
fn flaky_fails_at_publish_then_asks_and_resumes_without_redoing_work_once_fixed() {
    let sandbox = Sandbox::new();
    copy_example(&sandbox, "flaky.toml");

    // `publish` fails: exit 1.
    let first = sandbox.run(&["run", "flaky.toml"]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    assert_contains(&text(&first.stdout), "create examples/.fixed");
    let run_id = sandbox.only_run_id();

    // The next run asks what to do (no terminal here, so exit 3 with the ways forward).
    let second = sandbox.run(&["run", "flaky.toml"]);
    assert_eq!(second.status.code(), Some(3), "{}", text(&second.stderr));
    assert_contains(
        &text(&second.stderr),
        &format!("cairn resume {run_id} --state-dir .cairn"),
    );

    // "Fix" it and resume: `prepare` and `build` are not run again.
    sandbox.touch(".fixed");
    let resumed = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let runs = sandbox.runs();
    assert_eq!(
        runs.len(),
        1,
        "the resume continued the failed run: {runs:?}"
    );
    assert_eq!(runs[0]["status"], "completed");
    let outputs: Vec<String> = std::fs::read_dir(sandbox.path(&format!(".cairn/output/{run_id}")))
        .expect("the run's output folder")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".stdout"))
        .collect();
    for task in ["prepare", "build"] {
        let attempts = outputs
            .iter()
            .filter(|name| name.starts_with(&format!("{task}.")))
            .count();
        assert_eq!(attempts, 1, "`{task}` ran once: {outputs:?}");
    }
    assert_eq!(
        first_stdout(&sandbox, &run_id, "build"),
        "building\nbuilt\n"
    );
    assert_contains(
        &outputs
            .iter()
            .filter(|name| name.starts_with("publish."))
            .map(|name| sandbox.read(&format!(".cairn/output/{run_id}/{name}")))
            .collect::<String>(),
        "published",
    );
    assert_eq!(
        first_stdout(&sandbox, &run_id, "announce"),
        "announcing the release\n"
    );
}
