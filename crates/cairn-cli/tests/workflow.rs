//! Workflow parsing and validation through the library: error kinds with their line and
//! column, topological order, the plan the executor gets, and human durations.

use std::path::Path;
use std::time::Duration;

use cairn_cli::duration::{format_duration, parse_duration};
use cairn_cli::workflow::{WorkflowError, WorkflowErrorKind, parse, parse_copy};

fn parse_err(text: &str) -> WorkflowError {
    parse(Path::new("dir/wf.toml"), text).expect_err("the workflow must be rejected")
}

#[test]
fn each_error_kind_is_located_at_its_item() {
    let cases: &[(&str, WorkflowErrorKind, usize, usize)] = &[
        (
            "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"x\"\ndepends_on = [\"b\"]\n",
            WorkflowErrorKind::UnknownDependency,
            5,
            15,
        ),
        (
            "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"x\"\n[[task]]\nid = \"a\"\nrun = \"y\"\n",
            WorkflowErrorKind::DuplicateId,
            6,
            6,
        ),
        (
            "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"x\"\ntimeout = \"ten\"\n",
            WorkflowErrorKind::BadDuration,
            5,
            11,
        ),
        (
            "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"x\"\n  colour = \"red\"\n",
            WorkflowErrorKind::UnknownKey,
            5,
            3,
        ),
        (
            "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"x\"\nmax_attempts = 0\n",
            WorkflowErrorKind::InvalidValue,
            5,
            16,
        ),
        (
            "name = \"w\"\n[[task]]\nid = \"a b\"\nrun = \"x\"\n",
            WorkflowErrorKind::InvalidValue,
            3,
            6,
        ),
        (
            "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"x\"\nmax_attempts = \"three\"\n",
            WorkflowErrorKind::Syntax,
            5,
            16,
        ),
    ];
    for (text, kind, line, column) in cases {
        let error = parse_err(text);
        assert_eq!(error.kind, *kind, "{text:?}: {error}");
        assert_eq!(
            (error.line, error.column),
            (*line, *column),
            "{text:?}: {error}"
        );
        assert_eq!(error.path, Path::new("dir/wf.toml"));
        assert!(
            error
                .to_string()
                .starts_with(&format!("dir/wf.toml:{line}:{column}: "))
        );
    }
}

#[test]
fn a_cycle_names_its_tasks_and_points_into_it() {
    let text = "name = \"w\"\n\
                [[task]]\nid = \"a\"\nrun = \"x\"\ndepends_on = [\"c\"]\n\
                [[task]]\nid = \"b\"\nrun = \"x\"\ndepends_on = [\"a\"]\n\
                [[task]]\nid = \"c\"\nrun = \"x\"\ndepends_on = [\"b\"]\n";
    let error = parse_err(text);
    assert_eq!(error.kind, WorkflowErrorKind::Cycle);
    assert!(
        error.message.contains("a -> c -> b -> a"),
        "{}",
        error.message
    );
    assert_eq!(error.line, 5);
}

#[test]
fn missing_name_run_or_tasks_are_errors() {
    assert_eq!(
        parse_err("[[task]]\nid = \"a\"\nrun = \"x\"\n").kind,
        WorkflowErrorKind::MissingKey
    );
    assert_eq!(
        parse_err("name = \"w\"\n").kind,
        WorkflowErrorKind::MissingKey
    );
    let no_run = parse_err("name = \"w\"\n[[task]]\nid = \"a\"\n");
    assert_eq!(no_run.kind, WorkflowErrorKind::MissingKey);
    assert_eq!(no_run.line, 2);
    assert_eq!(parse_err("name = [\n").kind, WorkflowErrorKind::Syntax);
}

#[test]
fn tasks_come_in_topological_order_keeping_file_order_otherwise() {
    let text = "name = \"w\"\n\
                [[task]]\nid = \"deploy\"\nrun = \"x\"\ndepends_on = [\"build\", \"lint\"]\n\
                [[task]]\nid = \"lint\"\nrun = \"x\"\n\
                [[task]]\nid = \"build\"\nrun = \"x\"\n\
                [[task]]\nid = \"docs\"\nrun = \"x\"\n";
    let workflow = parse(Path::new("wf.toml"), text).unwrap();
    let ids: Vec<&str> = workflow.tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["lint", "build", "deploy", "docs"]);
    assert_eq!(workflow.dir, Path::new("."));
}

#[test]
fn the_plan_carries_definitions_dependencies_and_attempts() {
    let text = "name = \"site\"\n\
                [[task]]\nid = \"fetch\"\nrun = \"echo f\"\ntimeout = \"1m30s\"\nmax_attempts = 5\n\
                env = { A = \"1\" }\ncwd = \"sub\"\npermanent_exit_codes = [2, 9]\n\
                [[task]]\nid = \"render\"\nrun = \"echo r\"\ndepends_on = [\"fetch\"]\n";
    let workflow = parse(Path::new("w/site.toml"), text).unwrap();
    assert_eq!(workflow.dir, Path::new("w"));
    let plan = workflow.plan("prod", "build it");
    assert_eq!(
        (
            plan.workflow.as_str(),
            plan.scope.as_str(),
            plan.input.as_str()
        ),
        ("site", "prod", "build it")
    );
    let tasks = &plan.phases[0].tasks;
    assert_eq!(tasks[0].spec.kind, "shell");
    assert_eq!(tasks[0].spec.max_attempts, Some(5));
    assert_eq!(tasks[1].spec.max_attempts, None);
    assert_eq!(tasks[1].after, vec![0]);
    let inputs = &tasks[0].spec.inputs;
    assert_eq!(inputs["id"], "fetch");
    assert_eq!(inputs["run"], "echo f");
    assert_eq!(inputs["timeout_ms"], 90_000);
    assert_eq!(inputs["env"]["A"], "1");
    assert_eq!(inputs["cwd"], "sub");
    assert_eq!(inputs["permanent_exit_codes"], serde_json::json!([2, 9]));
    // The same file gives the same plan, so the queue's dedup guard matches on resume.
    let again = parse(Path::new("w/site.toml"), text)
        .unwrap()
        .plan("prod", "build it");
    assert_eq!(plan, again);
}

/// `retry_delay` sets the run's backoff: the first retry waits it, later ones double up to ten
/// minutes (or the delay itself when longer); without it the executor's default stays
/// (review 51 F10). A delay that does not parse is located.
#[test]
fn retry_delay_sets_the_plans_backoff() {
    let task = "[[task]]\nid = \"a\"\nrun = \"true\"\n";
    let plan = |head: &str| {
        parse(
            Path::new("w/wf.toml"),
            &format!("name = \"w\"\n{head}{task}"),
        )
        .unwrap()
        .plan("s", "")
    };
    let retry = plan("retry_delay = \"30s\"\n").retry.expect("a backoff");
    assert_eq!(retry.base, Duration::from_secs(30));
    assert_eq!(retry.max, Duration::from_secs(600));
    let long = plan("retry_delay = \"1h\"\n").retry.expect("a backoff");
    assert_eq!(
        (long.base, long.max),
        (Duration::from_secs(3600), Duration::from_secs(3600))
    );
    assert_eq!(plan("").retry, None);

    let err = parse_err(&format!("name = \"w\"\nretry_delay = \"soon\"\n{task}"));
    assert_eq!(err.kind, WorkflowErrorKind::BadDuration);
    assert_eq!(err.line, 2);
    assert!(err.message.contains("`retry_delay`"), "{}", err.message);
}

#[test]
fn durations_parse_and_format() {
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
    assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
    assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
    assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
    for bad in [
        "",
        "5",
        "m",
        "5x",
        "0s",
        "1.5s",
        "-1s",
        "5 s",
        "99999999999999999999s",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} must be rejected");
    }
    // A decimal is named as the problem, not a missing unit.
    for decimal in ["1.5h", "2,5m"] {
        let message = parse_duration(decimal).unwrap_err().to_string();
        assert!(message.contains("numbers are whole"), "{message}");
        assert!(!message.contains("no unit"), "{message}");
    }
    assert_eq!(format_duration(Duration::from_millis(12)), "12ms");
    assert_eq!(format_duration(Duration::from_millis(12_340)), "12.3s");
    assert_eq!(
        format_duration(Duration::from_secs(3 * 3600 + 5 * 60)),
        "3h05m"
    );
}

/// A run's own copy was valid when the run started: checks added since (reserved `CAIRN_`
/// names, the per-string length limit) must not strand it on resume, while a new run of the
/// same text is refused, located.
#[test]
fn a_runs_copy_is_not_held_to_checks_added_after_it_started() {
    let long = "x".repeat(131_072);
    for (text, line, column) in [
        (
            "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\nenv = { CAIRN_RUN_ID = \"mine\" }\n"
                .to_owned(),
            5,
            9,
        ),
        (
            format!("name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"{long}\"\n"),
            4,
            7,
        ),
    ] {
        let error = parse_err(&text);
        assert_eq!(error.kind, WorkflowErrorKind::InvalidValue, "{error}");
        assert_eq!((error.line, error.column), (line, column), "{error}");
        let copy = parse_copy(Path::new("dir/wf.toml"), &text).expect("the copy parses");
        assert_eq!(copy.tasks.len(), 1);
    }
    // The copy still gets the checks a run could never have passed.
    assert!(parse_copy(Path::new("dir/wf.toml"), "name = \"w\"\n").is_err());
}
