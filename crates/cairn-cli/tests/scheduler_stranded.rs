//! `cairn scheduler` after a `kill -9` of an earlier scheduler, with the real binary: the run
//! it left `running` is named once with the commands to resume or abandon it, and the job's
//! next run waits while that run's commands still run (no two copies of the job at once),
//! then starts once they are gone.

mod common;

use std::process::{Child, Command};

use common::{Sandbox, assert_contains, assert_lacks, signal, wait_exit, wait_for};

/// The job's one task logs `start <its process group>`; the first run's command then sleeps
/// for ten minutes (the orphan a kill -9 leaves), later runs end at once, unless a file
/// `hold` exists: then they wait until it is removed.
const WORKFLOW: &str = r#"
name = "backup"

[[task]]
id = "copy"
run = 'echo "start $$" >> log; if [ ! -e first ]; then touch first; sleep 600; fi; while [ -e hold ]; do sleep 0.1; done'
"#;

/// A sandbox with the job `backup` (every second), and everything the test started in it:
/// dropping it kills the schedulers and every command group they left, even when the test
/// fails halfway.
struct Scene {
    sandbox: Sandbox,
    schedulers: Vec<Child>,
}

impl Drop for Scene {
    fn drop(&mut self) {
        for scheduler in &mut self.schedulers {
            let _ = scheduler.kill();
            let _ = scheduler.wait();
        }
        for group in self.groups() {
            kill_quietly(-group);
        }
    }
}

impl Scene {
    fn new() -> Scene {
        let sandbox = Sandbox::new();
        sandbox.write("wf.toml", WORKFLOW);
        let added = sandbox.run(&["jobs", "add", "wf.toml", "backup", "--every", "1s"]);
        assert_eq!(
            added.status.code(),
            Some(0),
            "{}",
            common::text(&added.stderr)
        );
        Scene {
            sandbox,
            schedulers: Vec::new(),
        }
    }

    /// Starts `cairn scheduler` with its output in `NAME.out` and `NAME.err`; returns its
    /// index in `schedulers`.
    fn start_scheduler(&mut self, name: &str, extra: &[&str]) -> usize {
        let mut args = vec!["scheduler", "--state-dir", ".cairn", "--poll", "1s"];
        args.extend_from_slice(extra);
        let child = self
            .sandbox
            .spawn(&args, &format!("{name}.out"), &format!("{name}.err"));
        self.schedulers.push(child);
        self.schedulers.len() - 1
    }

    /// The process groups of the commands that logged a start.
    fn groups(&self) -> Vec<i64> {
        self.sandbox
            .read("log")
            .lines()
            .filter_map(|line| line.strip_prefix("start ")?.trim().parse().ok())
            .collect()
    }

    fn starts(&self) -> usize {
        self.groups().len()
    }

    /// Runs the first scheduler until the first run's command sleeps, then kills it with
    /// SIGKILL. Returns the stranded run's id and its command's process group (still
    /// running: a kill -9 cannot take it along).
    fn kill_9_mid_run(&mut self) -> (String, i64) {
        let first = self.start_scheduler("s1", &[]);
        wait_for("the first run's command to start", || {
            self.starts() == 1 && self.sandbox.path("first").exists()
        });
        let group = self.groups()[0];
        let run_id = self.sandbox.only_run_id();
        let scheduler = &mut self.schedulers[first];
        signal(i64::from(scheduler.id()), "KILL");
        wait_exit(scheduler);
        assert!(group_running(group), "a kill -9 leaves the command running");
        (run_id, group)
    }

    /// Sends SIGINT to scheduler `index` and waits for it to exit.
    fn stop(&mut self, index: usize) {
        let scheduler = &mut self.schedulers[index];
        signal(i64::from(scheduler.id()), "INT");
        let status = wait_exit(scheduler);
        assert!(
            matches!(status.code(), Some(0 | 4)),
            "the scheduler stops on SIGINT: {status:?}"
        );
    }

    fn status_of(&self, run_id: &str) -> String {
        self.sandbox
            .runs()
            .iter()
            .find(|run| run["run_id"] == run_id)
            .and_then(|run| run["status"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

/// Sends SIGKILL to a pid (or a group, negative), ignoring a target that is gone already.
fn kill_quietly(target: i64) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s KILL -- {target} 2>/dev/null"))
        .status();
}

/// Whether process group `group` still has a member that is not a zombie (the killed
/// scheduler's orphans are reaped by whatever adopted them, in its own time).
fn group_running(group: i64) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .any(|stat| {
            let Some(after_name) = stat.rfind(')').and_then(|at| stat.get(at + 1..)) else {
                return false;
            };
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            !matches!(fields.first(), Some(&"Z" | &"X"))
                && fields.get(2).and_then(|g| g.parse::<i64>().ok()) == Some(group)
        })
}

fn lines_with(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

#[test]
fn a_restarted_scheduler_names_the_run_a_kill_9_stranded_and_waits_for_its_commands() {
    let mut scene = Scene::new();
    let (run_id, group) = scene.kill_9_mid_run();

    let second = scene.start_scheduler("s2", &[]);
    wait_for("two refused ticks, or a second start", || {
        lines_with(&scene.sandbox.read("s2.out"), "job backup: not started: ") >= 2
            || scene.starts() > 1
    });
    let out = scene.sandbox.read("s2.out");
    let err = scene.sandbox.read("s2.err");
    assert_eq!(
        scene.starts(),
        1,
        "no second copy of the job's command starts beside the orphan: {out}\n{err}"
    );
    assert_lacks(&out, "started (workflow");
    assert_contains(
        &out,
        &format!("job backup: not started: run {run_id}, left running by a process"),
    );
    assert_contains(&out, &format!("task `copy`, process group {group}"));
    assert_contains(&out, "the job's next run waits until they end");
    assert_lacks(&out, "could not start a run");
    assert_lacks(&out, "failed");
    let warning = format!("warning: run {run_id} of job backup was left `running` by ");
    assert_eq!(lines_with(&err, &warning), 1, "{err}");
    assert_contains(&err, "the scheduler does not resume it");
    assert_contains(&err, &format!("cairn resume {run_id} --state-dir "));
    assert_contains(&err, &format!("cairn abandon {run_id} --state-dir "));

    // Once the orphan is gone the next tick starts a fresh run; the warning is not repeated.
    signal(-group, "KILL");
    wait_for("two fresh runs to complete", || {
        lines_with(&scene.sandbox.read("s2.out"), " completed") >= 2
    });
    let err = scene.sandbox.read("s2.err");
    assert_eq!(lines_with(&err, &warning), 1, "said once: {err}");
    assert_eq!(
        scene.status_of(&run_id),
        "running",
        "the stranded run is never resumed by the scheduler"
    );
    scene.stop(second);
}

#[test]
fn a_stranded_run_whose_commands_ended_is_named_once_and_the_job_runs_at_once() {
    let mut scene = Scene::new();
    let (run_id, group) = scene.kill_9_mid_run();
    signal(-group, "KILL");
    wait_for("the orphan to end", || !group_running(group));

    let second = scene.start_scheduler("s2", &[]);
    wait_for("two fresh runs to complete", || {
        lines_with(&scene.sandbox.read("s2.out"), " completed") >= 2
    });
    let out = scene.sandbox.read("s2.out");
    let err = scene.sandbox.read("s2.err");
    assert_lacks(&out, "not started");
    let warning = format!("warning: run {run_id} of job backup was left `running` by ");
    assert_eq!(lines_with(&err, &warning), 1, "said once: {err}");
    assert_contains(&err, &format!("cairn resume {run_id} --state-dir "));
    assert_contains(&err, &format!("cairn abandon {run_id} --state-dir "));
    assert_eq!(scene.status_of(&run_id), "running");
    scene.stop(second);
}

#[test]
fn with_json_the_stranded_run_and_each_refused_tick_are_json_lines() {
    let mut scene = Scene::new();
    let (run_id, group) = scene.kill_9_mid_run();

    let second = scene.start_scheduler("s2", &["--json"]);
    let events = |scene: &Scene, name: &str| -> Vec<serde_json::Value> {
        scene
            .sandbox
            .read("s2.out")
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["event"] == name)
            .collect()
    };
    wait_for("two refused ticks, or a second start", || {
        events(&scene, "run_not_started").len() >= 2 || scene.starts() > 1
    });
    assert_eq!(scene.starts(), 1, "{}", scene.sandbox.read("s2.out"));
    let stranded = events(&scene, "run_stranded");
    assert_eq!(stranded.len(), 1, "{stranded:?}");
    let event = &stranded[0];
    assert_eq!(event["job_id"], "backup");
    assert_eq!(event["run_id"], run_id.as_str());
    assert_eq!(event["commands_running"][0]["task"], "copy", "{event}");
    assert_eq!(event["commands_running"][0]["process_group"], group);
    let resume = event["resume_command"].as_str().unwrap_or_default();
    assert!(
        resume.starts_with(&format!("cairn resume {run_id} --state-dir ")),
        "{event}"
    );
    let abandon = event["abandon_command"].as_str().unwrap_or_default();
    assert!(
        abandon.starts_with(&format!("cairn abandon {run_id} --state-dir ")),
        "{event}"
    );
    let refused = &events(&scene, "run_not_started")[0];
    assert_eq!(refused["run_id"], run_id.as_str(), "{refused}");
    assert_lacks(&scene.sandbox.read("s2.err"), "warning: run");

    signal(-group, "KILL");
    wait_for("a fresh run to complete", || {
        !events(&scene, "run_finished").is_empty()
    });
    assert_eq!(events(&scene, "run_stranded").len(), 1);
    scene.stop(second);
}

/// A second scheduler on the same folder, while the first still drives the job's run, starts
/// nothing: no plan is made (no "started" line, no second command) and each refused tick
/// says which run is still going and who drives it.
#[test]
fn a_second_live_scheduler_starts_nothing_and_names_the_run_still_going() {
    let mut scene = Scene::new();
    let first = scene.start_scheduler("s1", &[]);
    wait_for("the first run's command to start", || {
        scene.starts() == 1 && scene.sandbox.path("first").exists()
    });
    let run_id = scene.sandbox.only_run_id();
    let second = scene.start_scheduler("s2", &[]);
    wait_for("two refused ticks, or a second start", || {
        lines_with(&scene.sandbox.read("s2.out"), "job backup: not started: ") >= 2
            || scene.starts() > 1
    });
    let out = scene.sandbox.read("s2.out");
    assert_eq!(scene.starts(), 1, "{out}");
    assert_lacks(&out, "started (workflow");
    assert_contains(
        &out,
        &format!("job backup: not started: run {run_id} of this job is still being driven by "),
    );
    assert_lacks(&scene.sandbox.read("s2.err"), "warning: run");
    assert_eq!(scene.sandbox.runs().len(), 1, "no second run was begun");
    scene.stop(second);
    scene.stop(first);
}

#[test]
fn a_stranded_run_resumed_by_hand_never_runs_beside_a_scheduled_run_of_its_job() {
    let mut scene = Scene::new();
    let (run_id, group) = scene.kill_9_mid_run();
    signal(-group, "KILL");
    wait_for("the orphan to end", || !group_running(group));

    // The scheduler drives a fresh run of the job: the printed `cairn resume` is refused.
    scene.sandbox.write("hold", "");
    let second = scene.start_scheduler("s2", &[]);
    wait_for("the scheduled run's command to start", || {
        scene.starts() == 2
    });
    let refused = scene
        .sandbox
        .run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stderr = common::text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(5), "{stderr}");
    assert_contains(&stderr, "is being driven right now");
    assert_eq!(scene.starts(), 2, "the stranded run's task did not start");
    assert_eq!(scene.status_of(&run_id), "running");
    std::fs::remove_file(scene.sandbox.path("hold")).unwrap();
    wait_for("the scheduled run to complete", || {
        lines_with(&scene.sandbox.read("s2.out"), " completed") >= 1
    });
    scene.stop(second);

    // The other way round: while `cairn resume` drives the stranded run, the job's ticks
    // start nothing.
    scene.sandbox.write("hold", "");
    let starts = scene.starts();
    let mut resume = scene.sandbox.spawn(
        &["resume", &run_id, "--state-dir", ".cairn"],
        "r.out",
        "r.err",
    );
    wait_for("the resumed run's command to start", || {
        scene.starts() == starts + 1
    });
    let third = scene.start_scheduler("s3", &[]);
    wait_for("a refused tick", || {
        scene.sandbox.read("s3.out").contains(&format!(
            "job backup: not started: run {run_id} of this job is still being driven by another cairn process (pid {})",
            resume.id()
        ))
    });
    assert_eq!(
        scene.starts(),
        starts + 1,
        "no scheduled run started beside it"
    );
    std::fs::remove_file(scene.sandbox.path("hold")).unwrap();
    let status = wait_exit(&mut resume);
    assert_eq!(status.code(), Some(0), "{}", scene.sandbox.read("r.err"));
    assert_eq!(scene.status_of(&run_id), "completed");
    wait_for("the job to run again once the resume ended", || {
        lines_with(&scene.sandbox.read("s3.out"), " completed") >= 1
    });
    scene.stop(third);
    assert_lacks(&scene.sandbox.read("s3.out"), " failed");
}

/// A one-shot job: `a` leaves a side effect, `b` waits for `release`.
const ONE_SHOT: &str = r#"
name = "migrate"

[[task]]
id = "a"
run = 'echo side >> effects'

[[task]]
id = "b"
run = 'echo "start $$" >> log; while [ ! -e release ]; do sleep 0.1; done'
depends_on = ["a"]
"#;

/// A one-shot job runs once. Its run stranded by a kill -9 is not retried as a fresh run
/// (which would redo `a`): the restarted scheduler waits for that run to be resumed or
/// abandoned; once a person resumed it to its end, the job is done and never runs again.
/// Before, the retry began a fresh run, and `a`'s side effect happened twice.
/// A sandbox holding `workflow` as `wf.toml` and the one-shot job `once` over it, due at once
/// (at a time that has passed).
fn one_shot_job(workflow: &str) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", workflow);
    let added = sandbox.run(&[
        "jobs",
        "add",
        "wf.toml",
        "once",
        "--at",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!(
        added.status.code(),
        Some(0),
        "{}",
        common::text(&added.stderr)
    );
    sandbox
}

/// Starts a scheduler on the sandbox's state folder, its output in `<name>.out` and `.err`.
fn spawn_scheduler(sandbox: &Sandbox, name: &str) -> Child {
    sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        &format!("{name}.out"),
        &format!("{name}.err"),
    )
}

#[test]
fn a_one_shot_jobs_stranded_run_is_never_redone_by_a_fresh_run() {
    let sandbox = one_shot_job(ONE_SHOT);
    let scheduler = |name: &str| spawn_scheduler(&sandbox, name);
    let mut first = scheduler("s1");
    wait_for("task b to start", || sandbox.read("log").contains("start "));
    kill_quietly(i64::from(first.id()));
    wait_exit(&mut first);
    let group: i64 = sandbox
        .read("log")
        .trim()
        .strip_prefix("start ")
        .and_then(|g| g.parse().ok())
        .expect("b's process group");
    kill_quietly(-group);
    wait_for("b's group to end", || !group_running(group));
    let run_id = sandbox.only_run_id();
    // A one-shot job cut short is retried a minute later; pausing and resuming it makes
    // it due at once.
    let due_now = || {
        for verb in ["pause", "resume"] {
            let done = sandbox.run(&["jobs", verb, "once", "--state-dir", ".cairn"]);
            assert_eq!(
                done.status.code(),
                Some(0),
                "{}",
                common::text(&done.stderr)
            );
        }
    };
    due_now();

    // Unfinished: no fresh run starts beside it.
    let mut second = scheduler("s2");
    wait_for("a refused tick", || {
        sandbox
            .read("s2.out")
            .contains("of this one-shot job is interrupted, not completed")
    });
    signal(i64::from(second.id()), "INT");
    wait_exit(&mut second);
    assert_contains(&sandbox.read("s2.out"), &format!("cairn resume {run_id}"));
    assert_eq!(sandbox.runs().len(), 1, "{:?}", sandbox.runs());
    assert_eq!(lines_with(&sandbox.read("effects"), "side"), 1);

    // A person finishes it; the job is then done, with no run of its own.
    sandbox.touch("release");
    let resumed = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{}",
        common::text(&resumed.stderr)
    );
    due_now();
    let mut third = scheduler("s3");
    wait_for("the job to be settled", || {
        sandbox.read("s3.out").contains("was completed by a resume")
    });
    signal(i64::from(third.id()), "INT");
    assert_eq!(wait_exit(&mut third).code(), Some(0));
    let jobs = sandbox.run(&["jobs", "list", "--state-dir", ".cairn", "--json"]);
    let listed = common::text(&jobs.stdout);
    assert_contains(&listed, "\"status\":\"completed\"");
    assert_eq!(sandbox.runs().len(), 1, "{:?}", sandbox.runs());
    assert_eq!(lines_with(&sandbox.read("effects"), "side"), 1);
    assert_lacks(&sandbox.read("s3.out"), "run_started");
}

/// A one-shot job whose run failed is not redone from scratch a minute later (its done
/// tasks would run again, every minute, until the breaker trips): the retry waits for the
/// failed run to be resumed or abandoned, as `cairn run` asks before passing one over.
#[test]
fn a_one_shot_jobs_failed_run_is_not_redone_from_scratch() {
    let sandbox = one_shot_job(
        "name = \"charge\"\n[[task]]\nid = \"charge\"\nrun = \"echo side >> effects\"\n[[task]]\nid = \"receipt\"\nrun = \"test -e fixed\"\nmax_attempts = 1\ndepends_on = [\"charge\"]\n",
    );
    let scheduler = |name: &str| spawn_scheduler(&sandbox, name);
    let mut first = scheduler("s1");
    wait_for("the run to fail", || {
        sandbox.read("s1.out").contains("failed")
    });
    // Due again at once, as a minute later.
    for verb in ["pause", "resume"] {
        let done = sandbox.run(&["jobs", verb, "once", "--state-dir", ".cairn"]);
        assert_eq!(
            done.status.code(),
            Some(0),
            "{}",
            common::text(&done.stderr)
        );
    }
    wait_for("a refused retry", || {
        sandbox
            .read("s1.out")
            .contains("of this one-shot job is failed, not completed")
    });
    signal(i64::from(first.id()), "INT");
    wait_exit(&mut first);
    assert_eq!(sandbox.runs().len(), 1, "{:?}", sandbox.runs());
    assert_eq!(lines_with(&sandbox.read("effects"), "side"), 1);
}
