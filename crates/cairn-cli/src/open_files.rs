//! The open-file limit (`ulimit -n`) and how many tasks it lets run at once.
//!
//! Every running shell task holds about [`FILES_PER_TASK`] descriptors in cairn (two output
//! pipes, two output files, and briefly the spawn's own). A `--concurrency` above what the
//! limit allows would make cairn itself run out of descriptors, and healthy tasks would wait
//! for them or fail; so the concurrency is capped to what the limit allows, and the person
//! is told why and how to raise it. The limit is read from `/proc/self/limits` (Linux);
//! where that cannot be read, nothing is capped. `cairn scheduler` runs several runs at
//! once, each with its own `--concurrency`, so it shares the allowance out among them
//! ([`cap_concurrency_per_run`]).

/// Descriptors one running task holds in cairn, with the spawn's own counted.
pub const FILES_PER_TASK: usize = 6;

/// Descriptors kept free for everything else: the journal, locks, the runtime, telemetry.
pub const RESERVED_FILES: usize = 32;

/// The soft open-file limit in the text of `/proc/self/limits`, or `None` when the text
/// has no such line or the limit is `unlimited`.
///
/// # Examples
///
/// ```
/// use cairn_cli::open_files::soft_limit_in;
///
/// let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
///               Max open files            1024                 524288               files\n";
/// assert_eq!(soft_limit_in(limits), Some(1024));
/// assert_eq!(soft_limit_in("Max open files  unlimited  unlimited  files"), None);
/// assert_eq!(soft_limit_in(""), None);
/// ```
pub fn soft_limit_in(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many tasks may run at once with `limit` descriptors, `open` of them in use already:
/// at least one.
///
/// # Examples
///
/// ```
/// use cairn_cli::open_files::tasks_allowed;
///
/// assert_eq!(tasks_allowed(1024, 20), 162);
/// assert_eq!(tasks_allowed(64, 10), 3);
/// // A limit that leaves no room still lets one task run, one after another.
/// assert_eq!(tasks_allowed(16, 10), 1);
/// ```
pub fn tasks_allowed(limit: u64, open: usize) -> usize {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    (limit.saturating_sub(open).saturating_sub(RESERVED_FILES) / FILES_PER_TASK).max(1)
}

/// The concurrency to run with: `requested`, or less when this process's open-file limit
/// cannot take that many tasks, with a note saying so for the person (stderr). `tasks` is
/// the most that could ever run at once (a workflow's task count): no note when even
/// those fit.
pub fn cap_concurrency(requested: usize, tasks: usize) -> (usize, Option<String>) {
    let Some((limit, allowed)) = limit_and_tasks_allowed() else {
        return (requested, None);
    };
    if requested <= allowed {
        return (requested, None);
    }
    if tasks <= allowed {
        return (allowed, None);
    }
    (
        allowed,
        Some(format!(
            "note: running at most {allowed} task(s) at once, not {requested}: the open-file limit (ulimit -n {limit}) allows no more (each running task holds about {FILES_PER_TASK} files); raise it with `ulimit -n` to run more"
        )),
    )
}

/// This process's soft open-file limit and how many tasks it lets run at once; `None` when
/// the limit cannot be read or is `unlimited`.
fn limit_and_tasks_allowed() -> Option<(u64, usize)> {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| soft_limit_in(&text))?;
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
    Some((limit, tasks_allowed(limit, open)))
}

/// How many tasks each of `runs` runs going on at once may run, when `allowed` tasks may run
/// in all: an equal share, at least one.
///
/// # Examples
///
/// ```
/// use cairn_cli::open_files::tasks_per_run;
///
/// assert_eq!(tasks_per_run(162, 4), 40);
/// // A limit that leaves no room still lets each run run one task at a time.
/// assert_eq!(tasks_per_run(3, 4), 1);
/// assert_eq!(tasks_per_run(10, 0), 10);
/// ```
pub fn tasks_per_run(allowed: usize, runs: usize) -> usize {
    (allowed / runs.max(1)).max(1)
}

/// The concurrency of each scheduled run, when up to `runs` runs go on at once (`cairn
/// scheduler --max-running-jobs`), each running up to `requested` tasks: `requested`, or
/// less when the open-file limit cannot take `runs` times that many tasks, with a note
/// saying so (stderr).
pub fn cap_concurrency_per_run(requested: usize, runs: usize) -> (usize, Option<String>) {
    let Some((limit, allowed)) = limit_and_tasks_allowed() else {
        return (requested, None);
    };
    let per_run = tasks_per_run(allowed, runs);
    if requested <= per_run {
        return (requested, None);
    }
    (
        per_run,
        Some(format!(
            "note: each run runs at most {per_run} task(s) at once, not {requested}: the open-file limit (ulimit -n {limit}) allows about {allowed} running task(s) in all (each holds about {FILES_PER_TASK} files), shared by up to {runs} runs at once (--max-running-jobs); raise it with `ulimit -n`, or lower --max-running-jobs, to run more"
        )),
    )
}
