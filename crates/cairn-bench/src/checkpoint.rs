//! The `checkpoint` bench: durable transitions per second through the storage port, against
//! two baselines (a naive whole-file rewrite and SQLite) and the disk's raw fdatasync rate,
//! both appending (the summary's reference) and in place (`RawWrite`).
//!
//! Workload at size N: the run first holds N enqueued tasks (one bulk append, untimed). Then the
//! timed window starts and completes tasks, one transition per append call, up to a cap (so the
//! slow baselines finish): the rate is transitions in the window divided by its wall time. With W
//! concurrent writers, writer w handles the tasks whose index is w mod W, all on one run, so their
//! appends can share a group fsync.
//!
//! Every run writes in a temporary directory inside `--dir`, removed afterwards, error or not;
//! `--dir` on tmpfs or ramfs is refused (see `disk`), since fdatasync there reaches no disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use cairn_checkpoint::{
    Checkpointer, CheckpointerFactory, Durability, NoopFactory, RunId, RunMeta,
};
use cairn_checkpoint_file::FileFactory;
use cairn_checkpoint_sled::SledFactory;
use cairn_queue::{EnqueuedBy, Event, Handoff, Queue, QueueConfig, TaskSpec, Timestamp};

use crate::cli::{self, OptionReader};
use crate::disk;

/// Most timed transitions for an adapter that syncs; keeps the bench to minutes, not hours.
const DURABLE_CAP: usize = 20_000;
/// Most timed transitions for the naive baseline, which rewrites the whole state each time.
const NAIVE_CAP: usize = 300;

/// Largest `--sizes` entry: the most tasks a run holds under `QueueConfig::default()`.
const MAX_SIZE: usize = 1_000_000;
const SIZES_TAKE: &str = "a comma-separated list of whole numbers from 1 to 1000000";
/// Largest `--reopen-events`: three events (enqueued, started, completed) per task of the
/// largest run.
const MAX_REOPEN_EVENTS: usize = 3 * MAX_SIZE;
const REOPEN_EVENTS_TAKE: &str = "a whole number from 1 to 3000000";

/// Every row of the table, in order.
const KINDS: [Kind; 10] = [
    Kind::FileSync,
    Kind::FileGroup(1),
    Kind::FileGroup(8),
    Kind::FileGroup(64),
    Kind::Sled,
    Kind::SledGroup(1),
    Kind::SledGroup(8),
    Kind::Noop,
    Kind::Naive,
    Kind::Sqlite,
];

struct Options {
    sizes: Vec<usize>,
    reopen_events: usize,
    dir: PathBuf,
    /// Row labels to run (all when empty), for profiling one adapter; the rows left out
    /// read 0 in the summary.
    only: Vec<String>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        sizes: vec![1_000, 10_000, 100_000],
        reopen_events: 1_000_000,
        dir: std::env::temp_dir(),
        only: Vec::new(),
    };
    let mut reader = OptionReader::new(
        "checkpoint",
        args,
        "--sizes LIST, --reopen-events N, --dir DIR or --only LABELS",
    );
    while let Some(option) = reader.next_option()? {
        match option {
            "--sizes" => {
                let list = reader.value(option, SIZES_TAKE)?;
                options.sizes = cli::numbers_in(option, list, 1..=MAX_SIZE)?;
            }
            "--reopen-events" => {
                let value = reader.value(option, REOPEN_EVENTS_TAKE)?;
                options.reopen_events = cli::number_in(option, value, 1..=MAX_REOPEN_EVENTS)?;
            }
            "--dir" => options.dir = PathBuf::from(reader.value(option, "a directory on a disk")?),
            "--only" => {
                let list = reader.value(option, "row labels like 'file/sync,file/group x64'")?;
                options.only = list.split(',').map(|s| s.trim().to_owned()).collect();
                let labels: Vec<String> = KINDS.iter().map(|kind| kind.label()).collect();
                if let Some(unknown) = options.only.iter().find(|label| !labels.contains(label)) {
                    bail!(
                        "--only got an unknown row label `{unknown}`; the labels are {}",
                        labels.join(", ")
                    );
                }
            }
            other => return Err(reader.unknown(other)),
        }
    }
    disk::require_disk(&options.dir)?;
    Ok(options)
}

/// The events of the workload at size n: n enqueues (the setup), then start/complete pairs.
struct Workload {
    enqueues: Vec<Event>,
    /// `pairs[i]` = (started, completed) of task i.
    pairs: Vec<(Event, Event)>,
}

fn workload(n: usize) -> anyhow::Result<Workload> {
    let mut queue = Queue::new(QueueConfig {
        max_tasks: n.max(1),
        ..QueueConfig::default()
    });
    let now = Timestamp(1);
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let spec = TaskSpec::new("bench").inputs(serde_json::json!(i));
        ids.push(queue.enqueue(spec, EnqueuedBy::Root, now)?.id);
    }
    let enqueues = queue.take_events();
    let mut pairs = Vec::with_capacity(n);
    for id in ids {
        queue.start(id, now)?;
        queue.complete(id, Handoff::default(), now)?;
        let mut events = queue.take_events();
        let completed = events.pop().context("complete produced no event")?;
        let started = events.pop().context("start produced no event")?;
        pairs.push((started, completed));
    }
    Ok(Workload { enqueues, pairs })
}

/// Something that makes one transition durable per call.
#[async_trait]
trait Sink: Send + Sync {
    async fn transition(&self, event: &Event) -> anyhow::Result<()>;
}

struct PortSink(Box<dyn Checkpointer>);

#[async_trait]
impl Sink for PortSink {
    async fn transition(&self, event: &Event) -> anyhow::Result<()> {
        self.0.append(std::slice::from_ref(event)).await?;
        Ok(())
    }
}

/// The design cairn replaces: rewrite the whole queue state atomically on every transition.
struct NaiveSink {
    dir: PathBuf,
    queue: std::sync::Mutex<Queue>,
}

impl NaiveSink {
    fn write_state(&self, queue: &Queue) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(&queue.snapshot())?;
        let tmp = self.dir.join("queue.json.tmp");
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
        std::fs::rename(&tmp, self.dir.join("queue.json"))?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

#[async_trait]
impl Sink for NaiveSink {
    async fn transition(&self, event: &Event) -> anyhow::Result<()> {
        let mut queue = self
            .queue
            .lock()
            .map_err(|_| anyhow::anyhow!("naive sink lock poisoned"))?;
        queue.apply(event)?;
        self.write_state(&queue)
    }
}

/// SQLite in WAL mode with synchronous=FULL, one row per task, one transaction per transition.
struct SqliteSink {
    conn: std::sync::Mutex<rusqlite::Connection>,
}

impl SqliteSink {
    fn open(path: &Path, enqueues: &[Event]) -> anyhow::Result<SqliteSink> {
        let mut conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,
             attempts INTEGER NOT NULL, inputs TEXT NOT NULL, handoff TEXT)",
        )?;
        let tx = conn.transaction()?;
        for event in enqueues {
            if let Event::Enqueued {
                id, kind, inputs, ..
            } = event
            {
                tx.execute(
                    "INSERT INTO tasks (id, kind, status, attempts, inputs) VALUES (?1, ?2, 'pending', 0, ?3)",
                    rusqlite::params![id.0 as i64, kind, inputs.to_string()],
                )?;
            }
        }
        tx.commit()?;
        Ok(SqliteSink {
            conn: std::sync::Mutex::new(conn),
        })
    }
}

#[async_trait]
impl Sink for SqliteSink {
    async fn transition(&self, event: &Event) -> anyhow::Result<()> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| anyhow::anyhow!("sqlite sink lock poisoned"))?;
        match event {
            Event::Started { id, attempt, .. } => conn.execute(
                "UPDATE tasks SET status = 'running', attempts = ?2 WHERE id = ?1",
                rusqlite::params![id.0 as i64, attempt],
            )?,
            Event::Completed { id, handoff, .. } => conn.execute(
                "UPDATE tasks SET status = 'done', handoff = ?2 WHERE id = ?1",
                rusqlite::params![id.0 as i64, serde_json::to_string(handoff)?],
            )?,
            other => bail!("sqlite sink got an unexpected event {other:?}"),
        };
        Ok(())
    }
}

/// Runs the timed window: up to `cap` transitions, split over `writers` concurrent writers.
async fn timed_window(
    sink: Arc<dyn Sink>,
    workload: &Arc<Workload>,
    writers: usize,
    cap: usize,
) -> anyhow::Result<(usize, Duration)> {
    let tasks = (cap / 2).min(workload.pairs.len()).max(1);
    let started = Instant::now();
    let mut handles = Vec::with_capacity(writers);
    for w in 0..writers {
        let sink = Arc::clone(&sink);
        let workload = Arc::clone(workload);
        handles.push(tokio::spawn(async move {
            let mut i = w;
            while i < tasks {
                let (start, complete) = &workload.pairs[i];
                sink.transition(start).await?;
                sink.transition(complete).await?;
                i += writers;
            }
            anyhow::Ok(())
        }));
    }
    for handle in handles {
        handle.await??;
    }
    Ok((tasks * 2, started.elapsed()))
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    FileSync,
    FileGroup(usize),
    /// sled with `Durability::Sync`; its label stays `sled`, as in earlier sessions' tables.
    Sled,
    SledGroup(usize),
    Noop,
    Naive,
    Sqlite,
}

impl Kind {
    fn label(self) -> String {
        match self {
            Kind::FileSync => "file/sync".into(),
            Kind::FileGroup(w) => format!("file/group x{w}"),
            Kind::Sled => "sled".into(),
            Kind::SledGroup(w) => format!("sled/group x{w}"),
            Kind::Noop => "noop".into(),
            Kind::Naive => "naive".into(),
            Kind::Sqlite => "sqlite".into(),
        }
    }
}

fn meta(n: usize) -> anyhow::Result<RunMeta> {
    Ok(RunMeta::new(
        RunId::new(format!("bench-{n}"))?,
        "bench",
        "bench",
        "",
        cairn_checkpoint::wall_clock_now(),
    ))
}

fn group() -> Durability {
    Durability::Group {
        max_delay: Duration::from_micros(200),
    }
}

async fn measure(kind: Kind, workload: &Arc<Workload>, root: &Path) -> anyhow::Result<f64> {
    let n = workload.pairs.len();
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-")
        .tempdir_in(root)?;
    let (sink, writers, cap): (Arc<dyn Sink>, usize, usize) = match kind {
        Kind::FileSync | Kind::FileGroup(_) | Kind::Sled | Kind::SledGroup(_) | Kind::Noop => {
            let (factory, writers): (Arc<dyn CheckpointerFactory>, usize) = match kind {
                Kind::FileSync => (
                    Arc::new(
                        FileFactory::builder(dir.path())
                            .durability(Durability::Sync)
                            .build()?,
                    ),
                    1,
                ),
                Kind::FileGroup(w) => (
                    Arc::new(
                        FileFactory::builder(dir.path())
                            .durability(group())
                            .build()?,
                    ),
                    w,
                ),
                Kind::Sled => (
                    Arc::new(
                        SledFactory::builder()
                            .path(dir.path().join("sled"))
                            .durability(Durability::Sync)
                            .build()?,
                    ),
                    1,
                ),
                Kind::SledGroup(w) => (
                    Arc::new(
                        SledFactory::builder()
                            .path(dir.path().join("sled"))
                            .durability(group())
                            .build()?,
                    ),
                    w,
                ),
                _ => (Arc::new(NoopFactory), 1),
            };
            let checkpointer = factory.begin(meta(n)?).await?;
            checkpointer.append(&workload.enqueues).await?;
            let cap = if kind == Kind::Noop {
                2 * n
            } else {
                DURABLE_CAP
            };
            (Arc::new(PortSink(checkpointer)), writers, cap)
        }
        Kind::Naive => {
            let queue = Queue::replay(
                None,
                workload.enqueues.iter(),
                QueueConfig {
                    max_tasks: n,
                    ..QueueConfig::default()
                },
            )?;
            let sink = NaiveSink {
                dir: dir.path().to_path_buf(),
                queue: std::sync::Mutex::new(queue),
            };
            {
                let queue = sink
                    .queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("lock poisoned"))?;
                sink.write_state(&queue)?;
            }
            (Arc::new(sink), 1, NAIVE_CAP)
        }
        Kind::Sqlite => (
            Arc::new(SqliteSink::open(
                &dir.path().join("bench.db"),
                &workload.enqueues,
            )?),
            1,
            DURABLE_CAP,
        ),
    };
    let (count, elapsed) = timed_window(sink, workload, writers, cap).await?;
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// How the raw baseline writes its 64-byte records before each fdatasync.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RawWrite {
    /// At the end of the file, which grows: each fdatasync also commits the new size.
    Append,
    /// Over zeros written and synced beforehand, as the file adapter writes its journal:
    /// each fdatasync flushes data only.
    InPlace,
}

/// Bytes of zeros the in-place baseline writes first; its records wrap around inside them.
const RAW_PREALLOCATED: u64 = 16 << 20;

/// 64-byte records written the `how` way, each followed by fdatasync, in a loop for one
/// second: the disk's rate for synced writes. `Append` is the row the summary has always
/// used; `InPlace` is the fair ceiling for the file adapter, which overwrites preallocated
/// zeros and so can beat `Append`.
fn raw_fdatasync_rate(root: &Path, how: RawWrite) -> anyhow::Result<f64> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-raw-")
        .tempdir_in(root)?;
    let mut file = raw_file(&dir.path().join("raw"), how)?;
    let started = Instant::now();
    let count = write_synced(&mut file, how, || {
        started.elapsed() < Duration::from_secs(1)
    })?;
    Ok(count as f64 / started.elapsed().as_secs_f64())
}

/// The raw baseline's file, preallocated and synced (untimed) for `RawWrite::InPlace`.
fn raw_file(path: &Path, how: RawWrite) -> anyhow::Result<std::fs::File> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .append(how == RawWrite::Append)
        .open(path)?;
    if how == RawWrite::InPlace {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..RAW_PREALLOCATED / (1 << 20) {
            file.write_all(&zeros)?;
        }
        file.sync_all()?;
        std::fs::File::open(path.parent().context("the raw file has a folder")?)?.sync_all()?;
    }
    Ok(file)
}

/// Writes 64-byte records with an fdatasync after each while `go_on` says so; returns how many.
fn write_synced(
    file: &mut std::fs::File,
    how: RawWrite,
    mut go_on: impl FnMut() -> bool,
) -> anyhow::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let record = [0x5au8; 64];
    let mut count = 0u64;
    while go_on() {
        if how == RawWrite::InPlace {
            let at = (count * record.len() as u64) % RAW_PREALLOCATED;
            file.seek(SeekFrom::Start(at))?;
        }
        file.write_all(&record)?;
        file.sync_data()?;
        count += 1;
    }
    Ok(count)
}

/// Builds a run of `events` journal events on the file adapter, then times open + replay.
async fn reopen_ms(events: usize, root: &Path) -> anyhow::Result<f64> {
    let tasks = events.div_ceil(3);
    let workload = workload(tasks)?;
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-reopen-")
        .tempdir_in(root)?;
    let factory = FileFactory::builder(dir.path())
        .durability(Durability::None)
        .build()?;
    let id = meta(events)?.run_id;
    {
        let checkpointer = factory.begin(meta(events)?).await?;
        let mut batch: Vec<Event> = Vec::with_capacity(10_000);
        let stream = workload
            .enqueues
            .iter()
            .cloned()
            .chain(
                workload
                    .pairs
                    .iter()
                    .flat_map(|(s, c)| [s.clone(), c.clone()]),
            )
            .take(events);
        for event in stream {
            batch.push(event);
            if batch.len() == 10_000 {
                checkpointer.append(&batch).await?;
                batch.clear();
            }
        }
        checkpointer.append(&batch).await?;
    }
    let started = Instant::now();
    let opened = factory
        .open(&id)
        .await?
        .context("the reopened run is missing")?;
    let recovered = opened.recovered;
    let queue = Queue::replay(
        recovered.snapshot,
        recovered.events.iter(),
        QueueConfig {
            max_tasks: tasks,
            ..QueueConfig::default()
        },
    )?;
    let elapsed = started.elapsed();
    if queue.len() != tasks {
        bail!("reopen rebuilt {} tasks, expected {tasks}", queue.len());
    }
    Ok(elapsed.as_secs_f64() * 1000.0)
}

/// Tasks in the append-latency run: enough for a few compactions at the default thresholds.
const LATENCY_TASKS: usize = 100_000;

/// One writer on the file adapter (group durability, default compaction thresholds) drains
/// [`LATENCY_TASKS`] tasks, appending 32 enqueues, then their 64 starts and completions, and
/// so on; returns every append's latency, sorted. The slowest appends are the ones that meet
/// compaction's work on the commit path.
async fn append_latencies(root: &Path) -> anyhow::Result<Vec<Duration>> {
    const CHUNK: usize = 32;
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-latency-")
        .tempdir_in(root)?;
    let factory = FileFactory::builder(dir.path())
        .durability(group())
        .build()?;
    let checkpointer = factory.begin(meta(LATENCY_TASKS)?).await?;
    let mut queue = Queue::new(QueueConfig {
        max_tasks: LATENCY_TASKS,
        ..QueueConfig::default()
    });
    let now = Timestamp(1);
    let mut latencies = Vec::with_capacity(2 * LATENCY_TASKS / CHUNK + 2);
    for first in (0..LATENCY_TASKS).step_by(CHUNK) {
        for n in first..(first + CHUNK).min(LATENCY_TASKS) {
            let spec = TaskSpec::new("step")
                .inputs(serde_json::json!({ "n": n }))
                .without_dedup();
            queue.enqueue(spec, EnqueuedBy::Root, now)?;
        }
        let events = queue.take_events();
        let started = Instant::now();
        checkpointer.append(&events).await?;
        latencies.push(started.elapsed());
        for id in queue.next_runnable(now) {
            queue.start(id, now)?;
            queue.complete(id, Handoff::default(), now)?;
        }
        let events = queue.take_events();
        let started = Instant::now();
        checkpointer.append(&events).await?;
        latencies.push(started.elapsed());
    }
    drop(checkpointer);
    latencies.sort_unstable();
    Ok(latencies)
}

/// The `p`th quantile (0 to 1) of sorted `latencies`, in milliseconds.
fn quantile_ms(latencies: &[Duration], p: f64) -> f64 {
    let at = ((latencies.len().saturating_sub(1)) as f64 * p).round() as usize;
    latencies
        .get(at)
        .map_or(f64::NAN, |latency| latency.as_secs_f64() * 1e3)
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!(
            "\ndurable transitions/s (timed window: up to {DURABLE_CAP} transitions, naive {NAIVE_CAP}; run holds N tasks)"
        );
        print!("{:<16}", "adapter");
        for n in &options.sizes {
            print!("{:>14}", format!("N={n}"));
        }
        println!();
        let mut table = Vec::new();
        // The disk's rate drifts with load, so raw is measured right before each file/sync cell.
        let mut raw_row = Vec::new();
        let mut raw_in_place_row = Vec::new();
        let kinds = KINDS
            .into_iter()
            .filter(|kind| options.only.is_empty() || options.only.contains(&kind.label()));
        for kind in kinds {
            print!("{:<16}", kind.label());
            let mut row = Vec::new();
            for &n in &options.sizes {
                let workload = Arc::new(workload(n)?);
                if kind == Kind::FileSync {
                    raw_row.push(raw_fdatasync_rate(&options.dir, RawWrite::Append)?);
                    raw_in_place_row.push(raw_fdatasync_rate(&options.dir, RawWrite::InPlace)?);
                }
                let rate = measure(kind, &workload, &options.dir).await?;
                print!("{rate:>14.0}");
                std::io::stdout().flush()?;
                row.push(rate);
            }
            println!();
            table.push((kind, row));
        }
        for (label, row) in [("raw fdatasync", &raw_row), ("raw in place", &raw_in_place_row)] {
            print!("{label:<16}");
            for raw in row {
                print!("{raw:>14.0}");
            }
            println!();
        }
        let reopen = reopen_ms(options.reopen_events, &options.dir).await?;
        println!("\nreopen (open + replay) of {} events: {reopen:.0} ms", options.reopen_events);
        let latencies = append_latencies(&options.dir).await?;
        println!(
            "append latency, one writer, file/group, {LATENCY_TASKS} tasks ({} appends, across compactions): p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.1} ms",
            latencies.len(),
            quantile_ms(&latencies, 0.5),
            quantile_ms(&latencies, 0.99),
            quantile_ms(&latencies, 0.999),
            quantile_ms(&latencies, 1.0)
        );

        // The summary uses the size closest to 10^4, where the naive comparison is specified.
        let col = options
            .sizes
            .iter()
            .enumerate()
            .min_by_key(|(_, n)| n.abs_diff(10_000))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let rate = |k: Kind| {
            table
                .iter()
                .find(|(kind, _)| *kind == k)
                .map(|(_, row)| row[col])
                .unwrap_or(0.0)
        };
        let raw = raw_row.get(col).copied().unwrap_or(f64::NAN);
        let file_sync = rate(Kind::FileSync);
        let naive = rate(Kind::Naive);
        println!(
            "\nat N={}: file/sync = {:.2}x raw fdatasync (target >= 0.8); file/group x64 = {:.0}/s (target >= 100000); file/sync = {:.1}x naive (target >= 10)",
            options.sizes[col],
            file_sync / raw,
            rate(Kind::FileGroup(64)),
            file_sync / naive
        );
        println!("reopen of {} events: {reopen:.0} ms (target < 1000)", options.reopen_events);
        println!(
            "checkpoint: file-sync {:.0}/s = {:.2}x raw fdatasync ({:.0}/s); file-group {:.0}/s; sled {:.0}/s; sqlite {:.0}/s; naive {:.0}/s; reopen {} events {:.0} ms",
            file_sync,
            file_sync / raw,
            raw,
            rate(Kind::FileGroup(64)),
            rate(Kind::Sled),
            rate(Kind::Sqlite),
            naive,
            event_count(options.reopen_events),
            reopen
        );
        anyhow::Ok(())
    })
}

/// An event count as the summary names it: a power of ten as `10^k` (the default reopen is
/// `10^6`, as the summary line has it), any other count in digits, so the summary
/// never names a size that was not measured.
fn event_count(events: usize) -> String {
    let mut rest = events;
    let mut exponent = 0;
    while rest >= 10 && rest.is_multiple_of(10) {
        rest /= 10;
        exponent += 1;
    }
    if rest == 1 && exponent > 0 {
        format!("10^{exponent}")
    } else {
        events.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{RAW_PREALLOCATED, RawWrite, event_count, raw_file, write_synced};

    /// `--reopen-events 2000` must not be summarised as a reopen of 10^6 events.
    #[test]
    fn the_summary_names_the_reopen_size_that_was_measured() {
        assert_eq!(event_count(1_000_000), "10^6");
        assert_eq!(event_count(1_000), "10^3");
        assert_eq!(event_count(2_000), "2000");
        assert_eq!(event_count(1), "1");
        assert_eq!(event_count(3_000_000), "3000000");
    }

    /// The in-place baseline overwrites its preallocated zeros and never grows the file, so
    /// its fdatasync has no size to commit; the append baseline grows by every record.
    #[test]
    fn the_in_place_baseline_never_grows_its_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        for (how, expected_len) in [
            (RawWrite::InPlace, RAW_PREALLOCATED),
            (RawWrite::Append, 100 * 64),
        ] {
            let path = dir.path().join(format!("{how:?}"));
            let mut file = raw_file(&path, how)?;
            let mut left = 100;
            let written = write_synced(&mut file, how, || {
                left -= 1;
                left >= 0
            })?;
            assert_eq!(written, 100);
            assert_eq!(file.metadata()?.len(), expected_len, "{how:?}");
        }
        Ok(())
    }
}
