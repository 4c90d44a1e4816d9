//! Real process kills: start the worker, SIGKILL it after a seeded random delay, start it
//! again, until its run completes; then verify. Every few interruptions are a graceful stop
//! instead (SIGTERM: the worker's drive stops with no grace and releases what it cut off),
//! so the release path is checked under the same random timing. Also the forced crash-point
//! scenarios and the planted bad state.

use std::fs::{self, File};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cairn_checkpoint::{AuditAction, AuditRecord, RunId, RunMeta};
use cairn_checkpoint_file::QUEUE_FILE_FORMAT_VERSION;
use cairn_checkpoint_sled::{SledFactory, layout};
use cairn_queue::{Queue, Timestamp};

use crate::crash_point::{self, CrashAt, Point};
use crate::dag;
use crate::error::{Error, Result};
use crate::rng::SplitMix;
use crate::verify::{self, Findings};
use crate::worker::{self, Adapter, WorkerOptions};

/// How the kill loop runs.
#[derive(Debug, Clone)]
pub struct KillOptions {
    /// The worker binary (normally this very executable).
    pub exe: PathBuf,
    /// Where round folders are made (a round's folder is removed when it passes).
    pub work_dir: PathBuf,
    /// The worker settings of the first round; later rounds change the seed.
    pub worker: WorkerOptions,
    /// Kills to perform in total.
    pub kills: u64,
    /// Kills per round at most; then the round's worker runs to the end undisturbed.
    pub kills_per_round: u64,
    /// The seed of every choice (round seeds, delays).
    pub seed: u64,
    /// Whether rounds plant bad runs for the worker to quarantine (on by default; off
    /// isolates the adapter's own crash behaviour from the planting).
    pub plant: bool,
}

/// Totals of the kill loop and the scenarios.
#[derive(Debug, Clone, Default)]
pub struct KillTotals {
    /// SIGKILLs sent, plus forced aborts at crash points.
    pub kills: u64,
    /// Graceful stops (SIGTERM) that ended with the run left resumable.
    pub stops: u64,
    /// Worker starts.
    pub starts: u64,
    /// Rounds (one run each) and scenarios completed.
    pub rounds: u64,
    /// What the verifier found, summed.
    pub findings: Findings,
}

/// How one worker start ended.
enum Ending {
    Exited(ExitStatus),
    Killed,
    /// SIGTERM stopped it and it left the run resumable.
    Stopped,
    /// SIGTERM did not make it exit in time (it was then killed): a violation.
    StopIgnored,
}

/// How the harness interrupts a worker once its delay has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interrupt {
    Kill,
    Stop,
}

/// How long a worker may take to exit after SIGTERM: its drive stops with no grace, so this
/// is only the final append and the process exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn spawn(exe: &Path, options: &WorkerOptions, crash_at: Option<CrashAt>) -> Result<Child> {
    let log_path = options.dir.join("worker-stderr.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| Error::io("open worker log", &log_path, source))?;
    let mut command = Command::new(exe);
    command
        .args(options.to_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    match crash_at {
        Some(at) => command.env(
            crash_point::ENV_VAR,
            format!("{}:{}", at.point.name(), at.nth),
        ),
        None => command.env_remove(crash_point::ENV_VAR),
    };
    command
        .spawn()
        .map_err(|source| Error::io("start worker", exe, source))
}

/// Waits for `child`, interrupting it once `kill_after` has passed: with SIGKILL, or with
/// SIGTERM (`Interrupt::Stop`) and then a wait for it to exit.
fn wait_or_kill(child: &mut Child, kill_after: Option<Duration>, how: Interrupt) -> Result<Ending> {
    let started = Instant::now();
    loop {
        if let Some(status) = exited(child)? {
            return Ok(Ending::Exited(status));
        }
        if kill_after.is_some_and(|after| started.elapsed() >= after) {
            if how == Interrupt::Stop {
                return stop(child);
            }
            kill_now(child)?;
            return Ok(Ending::Killed);
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// The worker's exit status, if it has exited.
fn exited(child: &mut Child) -> Result<Option<ExitStatus>> {
    child
        .try_wait()
        .map_err(|e| Error::Worker(format!("wait failed: {e}")))
}

/// SIGKILL (`Child::kill` on Unix: no handler, no cleanup, no flush), then reap.
fn kill_now(child: &mut Child) -> Result<()> {
    child
        .kill()
        .map_err(|e| Error::Worker(format!("kill failed: {e}")))?;
    child
        .wait()
        .map_err(|e| Error::Worker(format!("wait failed: {e}")))?;
    Ok(())
}

/// Sends SIGTERM (through `kill(1)`: the workspace forbids the `unsafe` a direct call
/// needs) and waits for the worker to exit.
fn stop(child: &mut Child) -> Result<Ending> {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| Error::Worker(format!("cannot run kill(1): {e}")))?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if let Some(status) = exited(child)? {
            return Ok(match (status.code(), status.signal()) {
                (Some(code), _) if code == i32::from(worker::STOPPED_EXIT_CODE) => Ending::Stopped,
                // The signal came before the worker installed its handler: that is a kill.
                (_, Some(libc::SIGTERM)) => Ending::Killed,
                // It finished (or failed) before the stop took effect.
                _ => Ending::Exited(status),
            });
        }
        if !sent.success() || Instant::now() >= deadline {
            kill_now(child)?;
            return Ok(Ending::StopIgnored);
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Prints a violation of a round and keeps it with the findings (the caller counts it).
fn report_violation(worker: &WorkerOptions, findings: &mut Findings, problem: String) {
    eprintln!(
        "crash-test: VIOLATION (round seed {}, folder {}): {problem}",
        worker.seed,
        worker.dir.display()
    );
    findings.problems.push(problem);
}

fn log_tail(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("worker-stderr.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn fresh_dir(path: &Path) -> Result<()> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(|source| Error::io("clear round folder", path, source))?;
    }
    fs::create_dir_all(path).map_err(|source| Error::io("create round folder", path, source))
}

/// The two planted runs of a round: same workflow and scope, status `running`, so
/// `Start::Auto` finds them; one with a `queue.json` of an older format version, one whose
/// `queue.json` names another run.
///
/// # Errors
///
/// [`Error::Io`] when the round folder cannot be written, and [`Error::Encoding`] when the
/// planted snapshot cannot be encoded.
pub fn plant_bad_state(options: &WorkerOptions) -> Result<Vec<RunId>> {
    let runs = worker::file_root(&options.dir).join("runs");
    let empty =
        serde_json::to_value(Queue::new(worker::queue_config()).snapshot()).map_err(|err| {
            Error::Encoding {
                what: "empty snapshot",
                detail: err.to_string(),
            }
        })?;
    let mut planted = Vec::new();
    for (name, version, stored_id) in [
        // An older version this build does not read (a newer one is left in place, not
        // quarantined: `Error::NewerFormat`).
        ("planted-version", 0, None),
        (
            "planted-foreign",
            QUEUE_FILE_FORMAT_VERSION,
            Some("someone-else"),
        ),
    ] {
        let run_id = RunId::new(format!("{name}-{}", options.seed))?;
        let dir = runs.join(run_id.as_str());
        fs::create_dir_all(&dir).map_err(|source| Error::io("plant run", &dir, source))?;
        let meta = RunMeta::new(
            run_id.clone(),
            dag::WORKFLOW,
            options.scope(),
            "planted",
            Timestamp(1),
        );
        let queue = serde_json::json!({
            "format_version": version,
            "run_id": stored_id.unwrap_or(run_id.as_str()),
            "covers_seq": 0,
            "snapshot": empty,
        });
        for (file, value) in [
            ("meta.json", serde_json::to_vec_pretty(&meta)),
            ("queue.json", serde_json::to_vec_pretty(&queue)),
        ] {
            let bytes = value.map_err(|err| Error::Encoding {
                what: "planted state",
                detail: err.to_string(),
            })?;
            let path = dir.join(file);
            fs::write(&path, bytes).map_err(|source| Error::io("plant file", &path, source))?;
        }
        planted.push(run_id);
    }
    Ok(planted)
}

/// The planted run of a sled round: metadata in the runs tree (same workflow and scope,
/// status `running`) with a snapshot of an older format version, so `Start::Auto` lists it
/// and `open` must quarantine it. A foreign run id cannot be planted where `Start::Auto`
/// sees it: the sled adapter's `list` skips metadata whose id does not match its key.
///
/// # Errors
///
/// [`Error::Sled`] when the sled database cannot be opened, [`Error::Worker`] when the planted
/// records cannot be written or flushed, and [`Error::Encoding`] when they cannot be encoded.
pub fn plant_bad_state_sled(options: &WorkerOptions) -> Result<Vec<RunId>> {
    let factory = SledFactory::builder()
        .path(worker::sled_path(&options.dir))
        .build()?;
    let db = factory.db();
    let run_id = RunId::new(format!("planted-version-{}", options.seed))?;
    let meta = RunMeta::new(
        run_id.clone(),
        dag::WORKFLOW,
        options.scope(),
        "planted",
        Timestamp(1),
    );
    let mut snapshot = serde_json::to_value(Queue::new(worker::queue_config()).snapshot())
        .map_err(|err| Error::Encoding {
            what: "planted snapshot",
            detail: err.to_string(),
        })?;
    // Older than this build reads (a newer one would be left in place, not quarantined).
    snapshot["format_version"] = serde_json::json!(0);
    let encode = |value: serde_json::Result<Vec<u8>>| {
        value.map_err(|err| Error::Encoding {
            what: "planted state",
            detail: err.to_string(),
        })
    };
    let meta_bytes = encode(serde_json::to_vec(&meta))?;
    let snapshot_bytes = encode(serde_json::to_vec(&snapshot))?;
    let sled_error =
        |err: &dyn std::fmt::Display| Error::Worker(format!("cannot plant state in sled: {err}"));
    db.open_tree(layout::RUNS_TREE)
        .and_then(|tree| tree.insert(run_id.as_str().as_bytes(), layout::seal(&meta_bytes)))
        .map_err(|e| sled_error(&e))?;
    db.open_tree(layout::SNAPSHOTS_TREE)
        .and_then(|tree| {
            tree.insert(
                run_id.as_str().as_bytes(),
                layout::seal_with_seq(1, &snapshot_bytes),
            )
        })
        .map_err(|e| sled_error(&e))?;
    db.flush().map_err(|e| sled_error(&e))?;
    Ok(vec![run_id])
}

/// Checks, through the port, that the planted sled runs left the runs tree and that their
/// quarantine was audited.
async fn check_quarantined_sled(options: &WorkerOptions, planted: &[RunId]) -> Result<Findings> {
    let mut found = Findings::default();
    let factory = worker::open_factory(options, None)?;
    for run_id in planted {
        if factory.load_meta(run_id).await?.is_some() {
            found.other += 1;
            found.problems.push(format!(
                "planted run {run_id} is still a run, not quarantined"
            ));
            continue;
        }
        let audited = factory
            .read_audit(run_id)
            .await?
            .iter()
            .any(|record| record.action == AuditAction::Quarantined);
        // The adapter stores the record before the move (write-ahead), so moved state without
        // its record is a defect, whatever the kill timing.
        if !audited {
            found.other += 1;
            found.problems.push(format!(
                "planted run {run_id} was moved to quarantine without its audit record"
            ));
        }
    }
    Ok(found)
}

/// Checks that every planted run was moved to quarantine (and logged there), not adopted.
pub fn check_quarantined(options: &WorkerOptions, planted: &[RunId]) -> Findings {
    let mut found = Findings::default();
    let root = worker::file_root(&options.dir);
    let moved: Vec<String> = fs::read_dir(root.join("quarantine"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let log = fs::read_to_string(root.join("quarantine.jsonl")).unwrap_or_default();
    let logged: Vec<AuditRecord> = log.lines().filter_map(audit_line).collect();
    for run_id in planted {
        let prefix = format!("{run_id}-");
        if root.join("runs").join(run_id.as_str()).exists() {
            found.other += 1;
            found.problems.push(format!(
                "planted run {run_id} is still in runs/, not quarantined"
            ));
        }
        if !moved.iter().any(|name| name.starts_with(&prefix)) {
            found.other += 1;
            found
                .problems
                .push(format!("planted run {run_id} has no folder in quarantine/"));
        }
        let in_log = logged
            .iter()
            .any(|r| r.run_id == *run_id && r.action == AuditAction::Quarantined);
        let folders: Vec<&String> = moved.iter().filter(|n| n.starts_with(&prefix)).collect();
        let in_folder = folders
            .iter()
            .any(|name| audits_quarantine(&root.join("quarantine").join(name)));
        // The adapter writes both records (in the run's folder and in quarantine.jsonl) and
        // syncs them before it moves the folder, so a quarantined folder without them is a
        // defect, whatever the kill timing.
        let recorded = in_log && in_folder;
        if !folders.is_empty() && !recorded {
            found.other += 1;
            found.problems.push(format!(
                "planted run {run_id} was quarantined without its records (in quarantine.jsonl: {in_log}, in its folder: {in_folder})"
            ));
        }
    }
    found
}

/// Whether a quarantined folder's own audit log records its quarantine.
fn audits_quarantine(folder: &Path) -> bool {
    fs::read_to_string(folder.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(audit_line)
        .any(|record| record.action == AuditAction::Quarantined)
}

/// One line of an audit log as the file adapter documents it (`<crc32c hex> <JSON>`, or
/// bare JSON from builds before checksums), read independently of the adapter's code; a
/// line failing its checksum counts as absent.
fn audit_line(line: &str) -> Option<AuditRecord> {
    let json = if line.starts_with('{') {
        line
    } else {
        let (crc, json) = line.split_once(' ')?;
        let crc = u32::from_str_radix(crc, 16).ok()?;
        (crc32c::crc32c(json.as_bytes()) == crc).then_some(json)?
    };
    serde_json::from_str(json).ok()
}

/// Reads back and verifies a finished worker folder (and its planted runs).
fn verify_dir(
    runtime: &tokio::runtime::Runtime,
    options: &WorkerOptions,
    planted: &[RunId],
) -> Result<Findings> {
    let evidence = runtime.block_on(verify::collect(options))?;
    let mut findings = verify::verify(&options.dag(), &evidence);
    match options.adapter {
        Adapter::File => findings.absorb(check_quarantined(options, planted)),
        Adapter::Sled => {
            findings.absorb(runtime.block_on(check_quarantined_sled(options, planted))?)
        }
    }
    Ok(findings)
}

/// The command that replays a failing run of the harness.
pub fn replay_command(options: &KillOptions) -> String {
    format!(
        "cargo xtask crash-test --adapter {} --durability {} --tasks {} --iterations {} --seed {}",
        options.worker.adapter.name(),
        worker::durability_name(options.worker.durability),
        options.worker.tasks,
        options.kills,
        options.seed
    )
}

/// One round: a fresh folder, planted bad state, kills until the run completes, verify.
fn round(
    options: &KillOptions,
    worker: &WorkerOptions,
    rng: &mut SplitMix,
    max_kills: u64,
    max_delay: Duration,
    runtime: &tokio::runtime::Runtime,
    totals: &mut KillTotals,
) -> Result<Option<Duration>> {
    fresh_dir(&worker.dir)?;
    let planted = match (options.plant, worker.adapter) {
        (false, _) => Vec::new(),
        (true, Adapter::File) => plant_bad_state(worker)?,
        (true, Adapter::Sled) => plant_bad_state_sled(worker)?,
    };
    let mut kills = 0;
    let mut last_start;
    loop {
        let kill_after = (kills < max_kills).then(|| {
            let micros = u64::try_from(max_delay.as_micros()).unwrap_or(u64::MAX);
            Duration::from_micros(rng.below(micros + 1))
        });
        // One interruption in three is a graceful stop.
        let how = if kill_after.is_some() && rng.below(3) == 0 {
            Interrupt::Stop
        } else {
            Interrupt::Kill
        };
        last_start = Instant::now();
        let mut child = spawn(&options.exe, worker, None)?;
        totals.starts += 1;
        match wait_or_kill(&mut child, kill_after, how)? {
            Ending::Killed => {
                kills += 1;
                totals.kills += 1;
            }
            Ending::Stopped => {
                kills += 1;
                totals.stops += 1;
            }
            Ending::StopIgnored => {
                let problem = format!(
                    "the worker did not exit within {STOP_TIMEOUT:?} of SIGTERM; its log ends:\n{}",
                    log_tail(&worker.dir)
                );
                totals.findings.other += 1;
                report_violation(worker, &mut totals.findings, problem);
                kills += 1;
            }
            Ending::Exited(status) if status.success() => break,
            Ending::Exited(status) => {
                // A worker that cannot resume (for example because the store no longer
                // opens) is a violation of the claim under test, not a harness error: count
                // it, keep the folder, and go on with the next round.
                let problem = format!(
                    "after {kills} kill(s) the worker could not finish the run: it exited with {status}; its log ends:\n{}",
                    log_tail(&worker.dir)
                );
                totals.findings.unrecoverable += 1;
                report_violation(worker, &mut totals.findings, problem);
                if kills == 0 {
                    // Failing without any kill means the worker cannot run at all; stop
                    // rather than loop.
                    return Err(Error::Worker(format!(
                        "the worker in {} failed before any kill",
                        worker.dir.display()
                    )));
                }
                return Ok(None);
            }
        }
    }
    // An undisturbed first start is a sample of how long a whole run takes.
    let whole_run = (kills == 0).then(|| last_start.elapsed());
    totals.rounds += 1;
    let findings = verify_dir(runtime, worker, &planted)?;
    if findings.violations() == 0 {
        let _ = fs::remove_dir_all(&worker.dir);
    } else {
        for problem in &findings.problems {
            eprintln!(
                "crash-test: VIOLATION (round seed {}, folder {}): {problem}",
                worker.seed,
                worker.dir.display()
            );
        }
    }
    totals.findings.absorb(findings);
    Ok(whole_run)
}

/// The kill loop: rounds of kills until `options.kills` kills were made.
///
/// # Errors
///
/// A worker that fails to start or exits with an unexpected status, or a store that cannot
/// be read back. Violations are not errors: they are counted in the totals.
pub fn run_kills(options: &KillOptions, totals: &mut KillTotals) -> Result<()> {
    let runtime = verification_runtime()?;
    let mut rng = SplitMix::new(options.seed);
    // Calibrate: undisturbed runs say how long a whole run takes, so kill delays land
    // anywhere from the first instant to the very end.
    let mut round_index = 0u64;
    let mut next_worker = |rng: &mut SplitMix| {
        let mut worker = options.worker.clone();
        worker.seed = rng.next_u64() % 1_000_000_000;
        worker.dir = options
            .work_dir
            .join(format!("{}-round-{round_index}", worker.adapter.name()));
        if worker.adapter == Adapter::File && round_index % 2 == 1 && worker.compact_every == 0 {
            // Every other round compacts often, so kills also land around snapshots.
            worker.compact_every = 24;
        }
        round_index += 1;
        worker
    };
    let calibration = next_worker(&mut rng);
    let mut whole_run = round(
        options,
        &calibration,
        &mut rng,
        0,
        Duration::ZERO,
        &runtime,
        totals,
    )?
    .unwrap_or(Duration::from_millis(500));
    let first_kill = totals.kills;
    while totals.kills - first_kill < options.kills {
        let worker = next_worker(&mut rng);
        let made = totals.kills - first_kill;
        let budget = (options.kills - made).min(options.kills_per_round);
        let max_delay = whole_run.mul_f64(1.2).max(Duration::from_millis(20));
        let sample = round(
            options, &worker, &mut rng, budget, max_delay, &runtime, totals,
        )?;
        if let Some(sample) = sample {
            // Follow the machine's speed (other load comes and goes), so delays keep
            // spanning a whole run rather than the one measured at the start.
            whole_run = whole_run.mul_f64(0.7) + sample.mul_f64(0.3);
        }
    }
    Ok(())
}

/// One forced crash-point scenario: the starts' crash points in order (the last start runs
/// unarmed to the end), and the compaction threshold.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// A name for reports.
    pub name: &'static str,
    /// The armed points of the starts before the final, unarmed one.
    pub starts: Vec<CrashAt>,
    /// File adapter compaction threshold (0: default).
    pub compact_every: u64,
}

/// Tasks of every scenario's DAG.
pub const SCENARIO_TASKS: usize = 200;

/// The scenarios: each named point, hit deterministically, in its own run.
pub fn scenarios() -> Vec<Scenario> {
    let at = |point, nth| CrashAt { point, nth };
    vec![
        Scenario {
            name: "journal append written, not fsynced",
            starts: vec![at(Point::JournalAppendBeforeFsync, 40)],
            compact_every: 0,
        },
        Scenario {
            name: "snapshot written, not renamed",
            starts: vec![at(Point::SnapshotBeforeRename, 1)],
            compact_every: 16,
        },
        Scenario {
            name: "snapshot renamed, directory not fsynced",
            starts: vec![at(Point::SnapshotAfterRename, 2)],
            compact_every: 16,
        },
        Scenario {
            name: "compaction: snapshot installed, rewritten journal not renamed",
            starts: vec![at(Point::JournalRewriteBeforeRename, 2)],
            compact_every: 16,
        },
        Scenario {
            name: "compaction: rewritten journal renamed, directory not fsynced",
            starts: vec![at(Point::JournalRewriteAfterRename, 2)],
            compact_every: 16,
        },
        Scenario {
            name: "recovery: torn tail, crash at its truncate",
            starts: vec![
                at(Point::JournalTornWrite, 30),
                at(Point::JournalTruncate, 1),
            ],
            compact_every: 0,
        },
        Scenario {
            name: "recovery: crash at the first journal read",
            starts: vec![
                at(Point::JournalAppendBeforeFsync, 15),
                at(Point::RecoveryRead, 1),
            ],
            compact_every: 0,
        },
    ]
}

/// Runs every crash-point scenario on the file adapter.
///
/// # Errors
///
/// A worker that did not abort where it was told to, or did not complete afterwards.
pub fn run_scenarios(options: &KillOptions, totals: &mut KillTotals) -> Result<()> {
    let runtime = verification_runtime()?;
    for (index, scenario) in scenarios().into_iter().enumerate() {
        let mut worker = options.worker.clone();
        worker.adapter = Adapter::File;
        // The points' hit counts are chosen for this size, so they are reached whatever
        // --tasks says.
        worker.tasks = SCENARIO_TASKS;
        worker.seed = options.seed.wrapping_add(index as u64 + 1) % 1_000_000_000;
        worker.compact_every = scenario.compact_every;
        worker.dir = options.work_dir.join(format!("scenario-{index}"));
        fresh_dir(&worker.dir)?;
        let planted = plant_bad_state(&worker)?;
        for at in &scenario.starts {
            let mut child = spawn(&options.exe, &worker, Some(*at))?;
            totals.starts += 1;
            match wait_or_kill(&mut child, None, Interrupt::Kill)? {
                Ending::Exited(status) if status.signal() == Some(libc::SIGABRT) => {
                    totals.kills += 1;
                }
                Ending::Exited(status) => {
                    return Err(Error::Worker(format!(
                        "scenario `{}`: the worker was to abort at {}:{} but exited with {status} (seed {}); log:\n{}",
                        scenario.name,
                        at.point.name(),
                        at.nth,
                        worker.seed,
                        log_tail(&worker.dir)
                    )));
                }
                Ending::Killed | Ending::Stopped | Ending::StopIgnored => unreachable_kill()?,
            }
        }
        let mut child = spawn(&options.exe, &worker, None)?;
        totals.starts += 1;
        match wait_or_kill(&mut child, None, Interrupt::Kill)? {
            Ending::Exited(status) if status.success() => {}
            Ending::Exited(status) => {
                return Err(Error::Worker(format!(
                    "scenario `{}`: the final worker exited with {status} (seed {}); log:\n{}",
                    scenario.name,
                    worker.seed,
                    log_tail(&worker.dir)
                )));
            }
            Ending::Killed | Ending::Stopped | Ending::StopIgnored => unreachable_kill()?,
        }
        totals.rounds += 1;
        let findings = verify_dir(&runtime, &worker, &planted)?;
        if findings.violations() == 0 {
            let _ = fs::remove_dir_all(&worker.dir);
        } else {
            for problem in &findings.problems {
                eprintln!(
                    "crash-test: VIOLATION (scenario `{}`, seed {}): {problem}",
                    scenario.name, worker.seed
                );
            }
        }
        totals.findings.absorb(findings);
    }
    Ok(())
}

/// `wait_or_kill` without a deadline never kills; this keeps that a typed error, not a panic.
fn unreachable_kill() -> Result<()> {
    Err(Error::Worker(
        "a worker without a kill deadline was reported killed".to_owned(),
    ))
}

fn verification_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::io("start tokio runtime", Path::new("."), source))
}
