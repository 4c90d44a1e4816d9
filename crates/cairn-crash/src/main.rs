//! The crash-test binary: `cairn-crash [options]` runs the harness (driven by
//! `cargo xtask crash-test`); `cairn-crash worker ...` is the process the harness kills.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use cairn_checkpoint::Durability;
use cairn_crash::kill::{self, KillOptions, KillTotals};
use cairn_crash::power_loss::{self, PowerLossOptions, PowerLossTotals};
use cairn_crash::worker::{self, Adapter, WorkerOptions};

const USAGE: &str = "\
usage: cairn-crash [options]            run the crash harness
       cairn-crash worker [options]     (internal) one worker process

options:
  --adapter file|sled|both   adapter(s) of the kill loop (default file; --ci: both)
  --durability sync|group|none   durability of the workers (default sync)
  --iterations N             SIGKILLs per adapter (default 100; --ci: 50)
  --tasks N                  tasks per generated DAG (default 200)
  --seed S                   seed of every choice (default: from the clock; printed)
  --power-states N           check at least N simulated power-loss states (default 10000)
  --kills-per-round N        kills before a round's worker may finish (default 12)
  --max-work-us N            longest body, in microseconds (default 3000)
  --work-dir PATH            where round folders go (default: a temporary folder)
  --no-planted-state         rounds plant no bad runs (isolates the adapter itself)
  --ci                       the short CI pass: 50 kills per adapter, both adapters,
                             every crash-point scenario, 10000 power-loss states
  --help                     this text
";

/// The longest body `--max-work-us` may ask for: a minute. Longer bodies would only make
/// the harness wait, and the kill delays follow the length of a whole run.
const MAX_WORK_US: u64 = 60_000_000;

/// What the command line asked for: a pass of the harness, or its usage.
#[derive(Debug)]
enum Request {
    Run(Box<Args>),
    Help,
}

#[derive(Debug)]
struct Args {
    adapters: Vec<Adapter>,
    durability: Durability,
    iterations: u64,
    tasks: usize,
    seed: u64,
    power_states: u64,
    kills_per_round: u64,
    max_work_us: u64,
    work_dir: Option<PathBuf>,
    ci: bool,
    plant: bool,
    argv: Vec<String>,
}

fn value<'a>(args: &'a [String], i: &mut usize, flag: &str) -> anyhow::Result<&'a str> {
    *i += 1;
    args.get(*i)
        .map(String::as_str)
        .ok_or_else(|| anyhow!("{flag} needs a value\n\n{USAGE}"))
}

fn number<T: std::str::FromStr>(text: &str, flag: &str) -> anyhow::Result<T> {
    text.parse()
        .map_err(|_| anyhow!("{flag} takes a number, not `{text}`"))
}

fn parse_args(args: &[String]) -> anyhow::Result<Request> {
    let mut parsed = Args {
        adapters: vec![Adapter::File],
        durability: Durability::Sync,
        iterations: 100,
        tasks: 200,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64 % 1_000_000_000)
            .unwrap_or(1),
        power_states: 10_000,
        kills_per_round: 12,
        max_work_us: 3_000,
        work_dir: None,
        ci: false,
        plant: true,
        argv: args.to_vec(),
    };
    let mut adapters_given = false;
    let mut iterations_given = false;
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        match flag {
            "--adapter" => {
                adapters_given = true;
                parsed.adapters = match value(args, &mut i, flag)? {
                    "both" => vec![Adapter::File, Adapter::Sled],
                    other => vec![Adapter::parse(other)?],
                };
            }
            "--durability" => {
                parsed.durability = worker::parse_durability(value(args, &mut i, flag)?)?
            }
            "--iterations" => {
                iterations_given = true;
                parsed.iterations = number(value(args, &mut i, flag)?, flag)?;
            }
            "--tasks" => parsed.tasks = number(value(args, &mut i, flag)?, flag)?,
            "--seed" => parsed.seed = number(value(args, &mut i, flag)?, flag)?,
            "--power-states" => parsed.power_states = number(value(args, &mut i, flag)?, flag)?,
            "--kills-per-round" => {
                parsed.kills_per_round = number(value(args, &mut i, flag)?, flag)?
            }
            "--max-work-us" => parsed.max_work_us = number(value(args, &mut i, flag)?, flag)?,
            "--work-dir" => parsed.work_dir = Some(PathBuf::from(value(args, &mut i, flag)?)),
            "--ci" => parsed.ci = true,
            "--no-planted-state" => parsed.plant = false,
            "--help" | "-h" => return Ok(Request::Help),
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
        i += 1;
    }
    if parsed.ci {
        if !adapters_given {
            parsed.adapters = vec![Adapter::File, Adapter::Sled];
        }
        if !iterations_given {
            parsed.iterations = 50;
        }
    }
    if parsed.kills_per_round == 0 {
        bail!("--kills-per-round must be at least 1");
    }
    check_worker_sizes(parsed.tasks, parsed.max_work_us)?;
    Ok(Request::Run(Box::new(parsed)))
}

/// The DAG size and body length both the harness and the worker take.
fn check_worker_sizes(tasks: usize, max_work_us: u64) -> anyhow::Result<()> {
    if tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    if max_work_us > MAX_WORK_US {
        bail!("--max-work-us is at most {MAX_WORK_US} (a minute), not {max_work_us}");
    }
    Ok(())
}

fn parse_worker(args: &[String]) -> anyhow::Result<WorkerOptions> {
    let mut options = WorkerOptions {
        dir: PathBuf::new(),
        adapter: Adapter::File,
        durability: Durability::Sync,
        seed: 0,
        tasks: 200,
        max_work_us: 3_000,
        compact_every: 0,
    };
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let text = value(args, &mut i, flag)?;
        match flag {
            "--dir" => options.dir = PathBuf::from(text),
            "--adapter" => options.adapter = Adapter::parse(text)?,
            "--durability" => options.durability = worker::parse_durability(text)?,
            "--seed" => options.seed = number(text, flag)?,
            "--tasks" => options.tasks = number(text, flag)?,
            "--max-work-us" => options.max_work_us = number(text, flag)?,
            "--compact-every" => options.compact_every = number(text, flag)?,
            other => bail!("unknown worker option `{other}`"),
        }
        i += 1;
    }
    if options.dir.as_os_str().is_empty() {
        bail!("the worker needs --dir");
    }
    check_worker_sizes(options.tasks, options.max_work_us)?;
    Ok(options)
}

fn run_worker(args: &[String]) -> anyhow::Result<ExitCode> {
    let options = parse_worker(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    Ok(match runtime.block_on(worker::run(&options))? {
        worker::WorkerEnd::Completed => ExitCode::SUCCESS,
        worker::WorkerEnd::Stopped => ExitCode::from(worker::STOPPED_EXIT_CODE),
        worker::WorkerEnd::Other => ExitCode::from(3),
    })
}

/// Creates `--work-dir` if needed and checks that files can be made in it, so that a folder
/// the harness cannot use is refused before any work, not reported as violations (and as
/// the place failing folders were kept).
fn prepare_work_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .and_then(|()| tempfile::tempfile_in(dir).map(drop))
        .with_context(|| format!("--work-dir {} cannot be used", dir.display()))
}

fn run_harness(args: &Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    eprintln!(
        "crash-test: seed {} (replay: cargo xtask crash-test {})",
        args.seed,
        replay_args(args)
    );
    let scratch;
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => {
            scratch = tempfile::Builder::new()
                .prefix("cairn-crash-")
                .tempdir()
                .context("cannot create a temporary folder")?;
            scratch.path().to_path_buf()
        }
    };
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut totals = KillTotals::default();
    // Stages that stopped with an error; each counts as a violation, and the summary line is
    // still printed last.
    let mut errors = 0u64;
    for (index, adapter) in args.adapters.iter().enumerate() {
        let options = KillOptions {
            exe: exe.clone(),
            work_dir: work_dir.clone(),
            worker: WorkerOptions {
                dir: work_dir.clone(),
                adapter: *adapter,
                durability: args.durability,
                seed: args.seed,
                tasks: args.tasks,
                max_work_us: args.max_work_us,
                compact_every: 0,
            },
            kills: args.iterations,
            kills_per_round: args.kills_per_round,
            seed: args.seed.wrapping_add(index as u64 * 7919),
            plant: args.plant,
        };
        let before = totals.kills;
        let phase = Instant::now();
        if let Err(err) = kill::run_kills(&options, &mut totals) {
            errors += 1;
            eprintln!(
                "crash-test: ERROR: the kill loop on {} stopped: {err}",
                adapter.name()
            );
        }
        eprintln!(
            "crash-test: {}: {} kills in {:.1}s",
            adapter.name(),
            totals.kills - before,
            phase.elapsed().as_secs_f64()
        );
        if *adapter == Adapter::File {
            let phase = Instant::now();
            let before = totals.kills;
            if let Err(err) = kill::run_scenarios(&options, &mut totals) {
                errors += 1;
                eprintln!("crash-test: ERROR: the crash-point scenarios stopped: {err}");
            }
            eprintln!(
                "crash-test: file: {} forced crash points in {} scenarios in {:.1}s",
                totals.kills - before,
                kill::scenarios().len(),
                phase.elapsed().as_secs_f64()
            );
        }
    }
    let phase = Instant::now();
    let power = if args.power_states > 0 {
        power_loss::run(&PowerLossOptions {
            seed: args.seed,
            states: args.power_states,
            tasks: 40,
        })
        .unwrap_or_else(|err| {
            errors += 1;
            eprintln!("crash-test: ERROR: the power-loss simulation stopped: {err}");
            PowerLossTotals::default()
        })
    } else {
        PowerLossTotals::default()
    };
    eprintln!(
        "crash-test: power loss: {} states from {} workloads ({} of them page subsets of the last write, {} with unsynced size changes kept; {} torn tails cut, {} before begin, {} stopped with Corruption, each a violation) in {:.1}s",
        power.states,
        power.workloads,
        power.page_subset_states,
        power.resized_states,
        power.torn_tails_cut,
        power.before_begin,
        power.corruption_stops,
        phase.elapsed().as_secs_f64()
    );
    for problem in &power.problems {
        eprintln!("crash-test: POWER-LOSS VIOLATION: {problem}");
    }
    let found = &totals.findings;
    let not_in_flight = found.unexplained_re_executions;
    let in_flight = if not_in_flight == 0 {
        "all in-flight".to_owned()
    } else {
        format!("{not_in_flight} NOT in-flight")
    };
    // Violations the line has no slot of their own for (spawned twice, wrong status, failed
    // quarantine, unexplained re-runs, unrecoverable rounds, stopped stages) are counted
    // with the power-loss violations.
    let violations = power.violations
        + found.spawned_twice
        + found.other
        + found.unrecoverable
        + not_in_flight
        + errors;
    let failed = found.violations() + power.violations + errors > 0;
    if found.torn_ledger_lines > 0 {
        eprintln!(
            "crash-test: {} ledger line(s) were cut short by a kill (bodies killed mid-write)",
            found.torn_ledger_lines
        );
    }
    eprintln!(
        "crash-test: {} graceful stops (SIGTERM, no grace: the attempts they cut off were released and ran again at the same attempt number)",
        totals.stops
    );
    eprintln!(
        "crash-test: {} worker starts, {} runs verified, {} tasks checked, in {:.1}s",
        totals.starts,
        totals.rounds,
        found.tasks,
        started.elapsed().as_secs_f64()
    );
    if failed {
        eprintln!(
            "crash-test: FAILED with seed {}; replay: cargo xtask crash-test {}",
            args.seed,
            replay_args(args)
        );
        if let Some(dir) = &args.work_dir {
            eprintln!(
                "crash-test: failing folders are kept under {}",
                dir.display()
            );
        }
    }
    println!(
        "crash-test: {} kills, {} resumes, {} lost, {} duplicate completions, {} re-executions ({in_flight}); {} power-loss states, {violations} violations",
        totals.kills,
        found.resumes,
        found.lost,
        found.duplicate_completions,
        found.re_executions,
        power.states,
    );
    Ok(!failed)
}

fn replay_args(args: &Args) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut skip = false;
    for arg in &args.argv {
        if skip {
            skip = false;
            continue;
        }
        if arg == "--seed" {
            skip = true;
            continue;
        }
        out.push(arg.clone());
    }
    out.push("--seed".to_owned());
    out.push(args.seed.to_string());
    out.join(" ")
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("worker") {
        return match run_worker(&argv[1..]) {
            Ok(code) => code,
            Err(err) => {
                eprintln!("cairn-crash worker: {err:#}");
                ExitCode::from(2)
            }
        };
    }
    let args = match parse_args(&argv) {
        Ok(Request::Run(args)) => args,
        Ok(Request::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("{err:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(dir) = &args.work_dir
        && let Err(err) = prepare_work_dir(dir)
    {
        eprintln!("{err:#}");
        return ExitCode::from(2);
    }
    match run_harness(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("crash-test: error: {err:#}");
            eprintln!(
                "crash-test: FAILED with seed {}; replay: cargo xtask crash-test {}",
                args.seed,
                replay_args(&args)
            );
            ExitCode::FAILURE
        }
    }
}
