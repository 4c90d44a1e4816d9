//! The `executor` bench: end-to-end tasks per second through `cairn-executor` on the file
//! adapter, with no-op handlers.
//!
//! Workload: one run of N independent no-op tasks (default 100,000) in one phase, driven by a
//! fresh executor over a fresh `FileFactory` in a temporary directory, for each durability
//! (Sync, Group) and concurrency (1, 16, 256). Each task costs three durable transitions
//! (enqueued, started, completed); the rate is N divided by the wall time of `Executor::run`,
//! which includes beginning the run, enqueueing the tasks and finalizing it. A first set of
//! rows runs the same workload on the noop adapter, to show the executor's own ceiling.
//!
//! Group durability defaults to `max_delay` 0 (`--group-delay-us` changes it). The executor
//! is a single appender that already folds a whole cycle (every ready completion and every
//! new start) into one append, so a leader that sleeps waiting for company only adds
//! latency per cycle; with 0 the adapter still coalesces appends that arrive while a sync is
//! in progress. Pass `--group-delay-us 200` to measure the cost of waiting.
//!
//! Telemetry: the same group/256 run is repeated with telemetry off and on, back to back, 22
//! times, "off" first in every other pair and "on" first in the others (the disk's speed
//! drifts over seconds and single runs scatter by up to about 20%, so each pair is compared on
//! its own and the order alternates). The second run of a pair tends to be faster than the
//! first whichever side it is, so the pairs fall into two halves by order; the overhead is
//! the mean of the two halves' medians (11 pairs each), which cancels that position effect
//! instead of letting whichever half has more pairs pull the median its way. All file pairs
//! run one after another, then all noop pairs, each after one untimed run of its own kind.
//! "On" is exactly the layers
//! `cairn_telemetry::init` installs under its fmt layer (`cairn_telemetry::export_layers`:
//! the trace layer with the `RUST_LOG` or default filter, OpenTelemetry traces with the run
//! links, and the metrics layer) over the pipelines `cairn_telemetry::providers` builds: the
//! tracer provider hands every ended span, and the layers every executor attempt, to a
//! `cairn_telemetry::span_queue::SpanQueue` (configured as `init` configures it), whose export
//! thread passes the batches to
//! an exporter that only counts them, and the meter provider aggregates every measurement for
//! a `PeriodicReader` whose exporter discards the result. After each "on" run the providers
//! are shut down (outside the timed window) and the bench fails unless every task span and
//! the run span reached the exporter and `cairn.task.outcomes` counted every task, so nothing
//! is sampled or dropped away. The overhead is also shown on the noop adapter, where the
//! executor's own CPU cost is all there is, as the worst case.
//!
//! The file adapter runs with its defaults, compaction included (a snapshot of the whole run
//! every 10,000 records, which at 100,000 tasks is a large part of the cost);
//! `--compact-after-records N` changes that threshold to show how much.
//! Its files go in a temporary directory inside `--dir`, which is refused on tmpfs or ramfs
//! (see `disk`).
//!
//! `--telemetry-side on|off` (a profiling aid, not part of the default bench) runs only one
//! side of the telemetry comparison, once, on the noop adapter at the largest
//! `--concurrency`, and prints its rate: profiling both sides under callgrind and dividing
//! the difference by `--tasks` gives telemetry's cost per task without disk or timing noise.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_checkpoint::{CheckpointerFactory, Durability, NoopFactory};
use cairn_checkpoint_file::FileFactory;
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    handler_fn,
};
use cairn_queue::{Handoff, TaskSpec};

use crate::cli::{self, OptionReader};
use crate::disk;

struct Options {
    tasks: usize,
    concurrencies: Vec<usize>,
    group_delay: Duration,
    compact_after_records: Option<u64>,
    dir: PathBuf,
    /// `Some(on)`: run only that side of the telemetry comparison (`--telemetry-side`).
    telemetry_side: Option<bool>,
    /// Whether `--telemetry-side` runs on the file adapter (group durability) instead of the
    /// noop adapter (`--side-adapter file`).
    side_on_file: bool,
}

/// Largest `--tasks` (and `--concurrency`): the most tasks a run holds under the executor's
/// default `QueueConfig`; a larger run would be refused only after building its plan.
const MAX_TASKS: usize = 1_000_000;
const TASKS_TAKE: &str = "a whole number from 1 to 1000000";
const CONCURRENCY_TAKES: &str = "a comma-separated list of whole numbers from 1 to 1000000";
/// Largest `--group-delay-us`: one second. A leader that waits longer for company would
/// measure its waiting, not the adapter, and a mistyped value would look like a hang.
const MAX_GROUP_DELAY_US: u64 = 1_000_000;
const GROUP_DELAY_TAKES: &str = "a whole number of microseconds from 0 to 1000000";
/// Largest `--compact-after-records`: more than a run of `MAX_TASKS` tasks ever writes, so
/// the top of the range means "never compact".
const MAX_COMPACT_AFTER_RECORDS: u64 = 1_000_000_000;
const COMPACT_TAKES: &str = "a whole number from 1 to 1000000000";

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        tasks: 100_000,
        concurrencies: vec![1, 16, 256],
        group_delay: Duration::ZERO,
        compact_after_records: None,
        dir: std::env::temp_dir(),
        telemetry_side: None,
        side_on_file: false,
    };
    let mut reader = OptionReader::new(
        "executor",
        args,
        "--tasks N, --concurrency 1,16,256, --group-delay-us N, --compact-after-records N, \
         --dir PATH, --telemetry-side on|off or --side-adapter file|noop",
    );
    while let Some(option) = reader.next_option()? {
        match option {
            "--tasks" => {
                let value = reader.value(option, TASKS_TAKE)?;
                options.tasks = cli::number_in(option, value, 1..=MAX_TASKS)?;
            }
            "--concurrency" => {
                let list = reader.value(option, CONCURRENCY_TAKES)?;
                options.concurrencies = cli::numbers_in(option, list, 1..=MAX_TASKS)?;
            }
            "--group-delay-us" => {
                let value = reader.value(option, GROUP_DELAY_TAKES)?;
                let us = cli::number_in(option, value, 0..=MAX_GROUP_DELAY_US)?;
                options.group_delay = Duration::from_micros(us);
            }
            "--compact-after-records" => {
                let value = reader.value(option, COMPACT_TAKES)?;
                options.compact_after_records = Some(cli::number_in(
                    option,
                    value,
                    1..=MAX_COMPACT_AFTER_RECORDS,
                )?);
            }
            "--dir" => options.dir = PathBuf::from(reader.value(option, "a directory on a disk")?),
            "--telemetry-side" => {
                options.telemetry_side = match reader.value(option, "`on` or `off`")? {
                    "on" => Some(true),
                    "off" => Some(false),
                    other => bail!("--telemetry-side takes `on` or `off`, got `{other}`"),
                };
            }
            "--side-adapter" => {
                options.side_on_file = match reader.value(option, "`file` or `noop`")? {
                    "file" => true,
                    "noop" => false,
                    other => bail!("--side-adapter takes `file` or `noop`, got `{other}`"),
                };
            }
            other => return Err(reader.unknown(other)),
        }
    }
    if reader.saw("--side-adapter") && options.telemetry_side.is_none() {
        bail!(
            "--side-adapter only applies with --telemetry-side on|off; add it or drop --side-adapter"
        );
    }
    // Only `--telemetry-side` on the noop adapter keeps nothing on disk.
    if options.telemetry_side.is_none() || options.side_on_file {
        disk::require_disk(&options.dir)?;
    }
    Ok(options)
}

/// One measured configuration.
struct Row {
    durability: &'static str,
    concurrency: usize,
    seconds: f64,
    rate: f64,
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let options = parse(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot build the tokio runtime")?;
    let durabilities = [
        ("sync", Durability::Sync),
        (
            "group",
            Durability::Group {
                max_delay: options.group_delay,
            },
        ),
    ];
    if let Some(on) = options.telemetry_side {
        return runtime.block_on(telemetry_side(&options, on));
    }
    let mut rows = Vec::new();
    // The executor's own ceiling: the same runs through the noop adapter, which keeps nothing.
    for &concurrency in &options.concurrencies {
        let row = runtime.block_on(measure(&options, "noop", None, concurrency))?;
        println!(
            "  measured {:<5} concurrency {:>4}: {:>10.0} tasks/s ({:.2} s)",
            row.durability, row.concurrency, row.rate, row.seconds
        );
        rows.push(row);
    }
    for (name, durability) in durabilities {
        for &concurrency in &options.concurrencies {
            let row = runtime.block_on(measure(&options, name, Some(durability), concurrency))?;
            println!(
                "  measured {:<5} concurrency {:>4}: {:>10.0} tasks/s ({:.2} s)",
                row.durability, row.concurrency, row.rate, row.seconds
            );
            rows.push(row);
        }
    }

    println!();
    println!(
        "executor bench: {} no-op tasks, file adapter in {}",
        options.tasks,
        options.dir.display()
    );
    println!(
        "{:<12} {:>12} {:>12} {:>14} {:>18}",
        "durability", "concurrency", "seconds", "tasks/s", "transitions/s"
    );
    for row in &rows {
        println!(
            "{:<12} {:>12} {:>12.2} {:>14.0} {:>18.0}",
            row.durability,
            row.concurrency,
            row.seconds,
            row.rate,
            row.rate * 3.0
        );
    }
    let overhead = runtime.block_on(telemetry_overhead(&options))?;
    let find = |durability: &str, concurrency: usize| {
        rows.iter()
            .find(|r| r.durability == durability && r.concurrency == concurrency)
            .map(|r| format!("{:.0}", r.rate))
            .unwrap_or_else(|| "n/a".to_owned())
    };
    println!(
        "telemetry on, noop adapter (worst case): {:.1}% slower ({REPEATS} pairs, order-balanced; {:.0} vs {:.0} tasks/s, medians)",
        overhead.noop_percent, overhead.noop_on, overhead.noop_off
    );
    let pairs: Vec<String> = overhead
        .file_pairs
        .iter()
        .map(|percent| format!("{percent:.1}"))
        .collect();
    println!(
        "telemetry on, file/group/256: {:.0} vs {:.0} tasks/s off (medians of {REPEATS}); pairs: {}%; target: within 10%",
        overhead.file_on,
        overhead.file_off,
        pairs.join(" ")
    );
    let (off_first, on_first) = order_halves(&overhead.file_pairs);
    println!(
        "telemetry on, file/group/256, pairs by order: off first {off_first:.1}%, on first {on_first:.1}% (medians); the overhead is their mean"
    );
    println!("telemetry overhead: {:.1}%", overhead.file_percent);
    println!(
        "executor: {} tasks/s (file, group, concurrency 256); {} tasks/s (file, sync, concurrency 16)",
        find("group", 256),
        find("sync", 16)
    );
    Ok(())
}

/// How many times each side of the telemetry comparison runs.
const REPEATS: usize = 22;

struct Overhead {
    file_off: f64,
    file_on: f64,
    /// The mean of the medians of `file_pairs`' two halves by run order.
    file_percent: f64,
    /// Each back-to-back pair's overhead, in run order.
    file_pairs: Vec<f64>,
    noop_off: f64,
    noop_on: f64,
    noop_percent: f64,
}

/// A span exporter that keeps nothing but a count: the end of the SDK's pipeline without the
/// network.
#[derive(Debug, Clone, Default)]
struct CountingSpanExporter {
    spans: Arc<AtomicU64>,
}

impl opentelemetry_sdk::trace::SpanExporter for CountingSpanExporter {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// A metric exporter that remembers the last value of `cairn.task.outcomes` (summed over its
/// data points) and discards everything else.
#[derive(Debug, Clone, Default)]
struct CountingMetricExporter {
    task_outcomes: Arc<AtomicU64>,
}

impl opentelemetry_sdk::metrics::exporter::PushMetricExporter for CountingMetricExporter {
    async fn export(
        &self,
        metrics: &opentelemetry_sdk::metrics::data::ResourceMetrics,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        for metric in metrics.scope_metrics().flat_map(|scope| scope.metrics()) {
            if metric.name() != cairn_telemetry::names::METRIC_TASK_OUTCOMES {
                continue;
            }
            if let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() {
                let total = sum.data_points().map(|point| point.value()).sum();
                self.task_outcomes.store(total, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> opentelemetry_sdk::metrics::Temporality {
        opentelemetry_sdk::metrics::Temporality::Cumulative
    }
}

/// cairn-telemetry's layers over the pipelines `init` runs (span queue, periodic metric
/// reader), ending in exporters that count instead of sending.
struct TelemetrySink {
    dispatch: tracing::Dispatch,
    providers: cairn_telemetry::Providers,
    spans: CountingSpanExporter,
    metrics: CountingMetricExporter,
}

impl TelemetrySink {
    fn new() -> anyhow::Result<Self> {
        use tracing_subscriber::layer::SubscriberExt as _;
        let spans = CountingSpanExporter::default();
        let metrics = CountingMetricExporter::default();
        // The span queue `cairn_telemetry::init` builds, with its settings.
        let config = cairn_telemetry::span_queue::SpanQueueConfig::from_env()
            .context("invalid OTEL_BSP_* setting")?;
        let queue = cairn_telemetry::span_queue::SpanQueue::new(spans.clone(), config)
            .context("cannot start the span queue")?;
        let traces = cairn_telemetry::link::tracer_provider_builder()
            .with_span_processor(queue.clone())
            .build();
        // The interval `cairn_telemetry::Config` uses by default.
        let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(metrics.clone())
            .with_interval(Duration::from_secs(60))
            .build();
        let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .build();
        // Exactly the layers `init` installs under its fmt layer, with their filters
        // (`RUST_LOG`, else the default filter, on the trace half).
        let config =
            cairn_telemetry::Config::new("cairn-bench").with_export(cairn_telemetry::Export::Off);
        let providers = cairn_telemetry::Providers::new(traces, meters).with_span_queue(queue);
        let layers = cairn_telemetry::export_layers(&config, &providers)
            .context("cannot build cairn-telemetry's export layers")?;
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layers));
        Ok(TelemetrySink {
            dispatch,
            providers,
            spans,
            metrics,
        })
    }

    /// Flushes both pipelines and checks that every task span, the run span and every task's
    /// outcome measurement reached the exporters.
    fn finish(self, tasks: usize) -> anyhow::Result<()> {
        drop(self.dispatch);
        self.providers
            .shutdown()
            .context("cannot shut down the tracer and meter providers")?;
        let tasks = tasks as u64;
        let spans = self.spans.spans.load(Ordering::Relaxed);
        let outcomes = self.metrics.task_outcomes.load(Ordering::Relaxed);
        if spans != tasks + 1 || outcomes != tasks {
            bail!(
                "telemetry lost data: {spans} spans exported for {tasks} task spans and 1 run \
                 span, {outcomes} task outcomes counted for {tasks} tasks"
            );
        }
        Ok(())
    }
}

/// The median of `rates`: the mean of the two middle ones when there is an even number (the
/// 22 runs of each side), NaN when there are none.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    let middle = rates.len() / 2;
    match rates.len() {
        0 => f64::NAN,
        len if len % 2 == 0 => (rates[middle - 1] + rates[middle]) / 2.0,
        _ => rates[middle],
    }
}

async fn telemetry_overhead(options: &Options) -> anyhow::Result<Overhead> {
    use tracing::instrument::WithSubscriber as _;
    let group = Some(Durability::Group {
        max_delay: options.group_delay,
    });
    let mut sides: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    // Each adapter's pairs run one after another, after one untimed run of the same kind, so
    // every timed run follows a run on the same adapter. (With the two adapters' pairs
    // interleaved, the first file run of each pair followed noop runs and ran slower than
    // the second, whichever side it was: the pairs split into two clusters about 20 points
    // apart by which side went first, and the median landed anywhere between them.)
    for (side, durability) in sides.iter_mut().zip([group, None]) {
        let name = if durability.is_some() {
            "group"
        } else {
            "noop"
        };
        measure(options, name, durability, 256).await?;
        for pair in 0..REPEATS {
            // Every other pair runs "on" first: whichever run of a pair goes second follows
            // the first one's disk traffic, and alternating keeps that from favouring one side.
            let on_first = pair % 2 == 1;
            if !on_first {
                side.0
                    .push(measure(options, name, durability, 256).await?.rate);
            }
            let sink = TelemetrySink::new()?;
            let on = measure(options, name, durability, 256)
                .with_subscriber(sink.dispatch.clone())
                .await?;
            sink.finish(options.tasks)?;
            side.1.push(on.rate);
            if on_first {
                side.0
                    .push(measure(options, name, durability, 256).await?.rate);
            }
        }
    }
    // Each pair ran back to back, so its ratio is what drift (the disk's speed changes over
    // seconds) disturbs least.
    let pair_percents = |off: &[f64], on: &[f64]| -> Vec<f64> {
        off.iter()
            .zip(on)
            .map(|(off, on)| (1.0 - on / off) * 100.0)
            .collect()
    };
    let [(file_off, file_on), (noop_off, noop_on)] = sides;
    let file_pairs = pair_percents(&file_off, &file_on);
    let noop_pairs = pair_percents(&noop_off, &noop_on);
    Ok(Overhead {
        file_off: median(file_off),
        file_on: median(file_on),
        file_percent: order_balanced(&file_pairs),
        file_pairs,
        noop_off: median(noop_off),
        noop_on: median(noop_on),
        noop_percent: order_balanced(&noop_pairs),
    })
}

/// The median of the pairs that ran "off" first (even positions) and of those that ran "on"
/// first (odd positions).
fn order_halves(pairs: &[f64]) -> (f64, f64) {
    let half = |first: usize| median(pairs.iter().skip(first).step_by(2).copied().collect());
    (half(0), half(1))
}

/// The mean of [`order_halves`]: a position effect (the second run of a pair faster than the
/// first, whichever side it is) moves the two halves by the same amount in opposite
/// directions, so it cancels here.
fn order_balanced(pairs: &[f64]) -> f64 {
    let (off_first, on_first) = order_halves(pairs);
    (off_first + on_first) / 2.0
}

/// One side of the telemetry comparison, once (`--telemetry-side`), on the noop adapter or,
/// with `--side-adapter file`, the file adapter with group durability: a single run to profile.
async fn telemetry_side(options: &Options, on: bool) -> anyhow::Result<()> {
    use tracing::instrument::WithSubscriber as _;
    let concurrency = options.concurrencies.iter().copied().max().unwrap_or(256);
    let (name, durability) = if options.side_on_file {
        (
            "group",
            Some(Durability::Group {
                max_delay: options.group_delay,
            }),
        )
    } else {
        ("noop", None)
    };
    let row = if on {
        let sink = TelemetrySink::new()?;
        let row = measure(options, name, durability, concurrency)
            .with_subscriber(sink.dispatch.clone())
            .await?;
        sink.finish(options.tasks)?;
        row
    } else {
        measure(options, name, durability, concurrency).await?
    };
    println!(
        "telemetry {}, {name} adapter, concurrency {concurrency}: {:.0} tasks/s ({:.2} s)",
        if on { "on" } else { "off" },
        row.rate,
        row.seconds
    );
    Ok(())
}

async fn measure(
    options: &Options,
    durability_name: &'static str,
    durability: Option<Durability>,
    concurrency: usize,
) -> anyhow::Result<Row> {
    let dir = tempfile::Builder::new()
        .prefix("cairn-bench-executor-")
        .tempdir_in(&options.dir)
        .with_context(|| {
            format!(
                "cannot create a temporary directory in {}",
                options.dir.display()
            )
        })?;
    let config = ExecutorConfig::default().with_concurrency(concurrency);
    // `None` measures the noop adapter: the executor's cost without any storage.
    let factory: Arc<dyn CheckpointerFactory> = match durability {
        Some(durability) => {
            let mut builder = FileFactory::builder(dir.path())
                .durability(durability)
                .queue_config(config.queue.clone());
            if let Some(records) = options.compact_after_records {
                builder = builder.compact_after_records(records);
            }
            Arc::new(builder.build().context("cannot build the file factory")?)
        }
        None => Arc::new(NoopFactory),
    };
    let registry = Registry::new().with(
        "noop",
        handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    );
    let executor = Executor::new(factory, registry, config)?;
    let mut phase = Phase::new("bench");
    for i in 0..options.tasks {
        phase.task(TaskSpec::new("noop").inputs(serde_json::json!(i)), []);
    }
    let plan = RunPlan::new("bench", durability_name).phase(phase);

    let started = Instant::now();
    let report = executor
        .run(plan, Start::Fresh, RunSignals::default())
        .await
        .context("the bench run failed")?;
    let seconds = started.elapsed().as_secs_f64();
    if report.disposition != Disposition::Complete || report.counts.done != options.tasks {
        bail!(
            "the bench run did not complete every task: {} with {} done",
            report.disposition,
            report.counts.done
        );
    }
    Ok(Row {
        durability: durability_name,
        concurrency,
        seconds,
        rate: options.tasks as f64 / seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
    }
}
