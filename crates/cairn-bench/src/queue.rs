//! The `queue` bench: in-memory cost of a queue transition as the queue grows.
//!
//! Two DAG shapes are drained at 10^3 … 10^6 tasks: `wide` (one root, every other task
//! depends on it) and `chain` (each task depends on the one before). Draining means enqueue
//! every task, then repeatedly take `next_runnable`, `start` and `complete` each task, so a
//! task costs three transitions. The outbox is emptied every few thousand events, as a host
//! writing a journal would (`events` then `clear_events`, as the executor does), so memory
//! stays flat. Timing covers the whole drain. The rows are measured in interleaved rounds (see
//! `measure`), so that the host's slow phases reach small and large queues alike.
//!
//! A transition's cost is the bench thread's CPU time, not wall time (see `DrainTime`); the
//! table shows both, and throughput is given in wall-clock time.
//!
//! Tasks get distinct inputs with the dedup guard on, as `TaskSpec::new` has it by default
//! (and as the executor enqueues a handler's follow-up tasks); `--no-dedup` opts every task
//! out of the guard, as the executor enqueues a workflow's own planned tasks, and shows what
//! the guard's lookups cost at each size. The summary line is the default's.
//!
//! The last line is the summary the issue asks for, using the worse shape for each number.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use cairn_queue::{EnqueuedBy, Handoff, Outcome, Queue, QueueConfig, TaskSpec, Timestamp};

use crate::cli::{self, OptionReader};

/// Transitions per task: enqueue, start, complete.
const TRANSITIONS_PER_TASK: u64 = 3;

/// How often the bench empties the outbox, in operations.
const OUTBOX_BATCH: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Wide,
    Chain,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide",
            Shape::Chain => "chain",
        }
    }
}

/// How long one drain took, by the bench thread's CPU clock and by the wall clock.
///
/// The cost of a transition is the CPU time it takes. On this two-core machine, wall time
/// also counts the slices in which the scheduler runs another process instead: a 10^3 drain
/// (a quarter of a millisecond) mostly fits between two preemptions, so its median is not
/// preempted, while every 10^6 drain (a third of a second) is preempted throughout. Beside
/// two busy-looping `yes` processes, which touch almost no memory, the wall-clock ratio read
/// 1.87 and 1.98 with unchanged 10^3 rows: it measured the scheduler's share, not the queue.
/// CPU time still includes what sharing the caches with a neighbour costs.
#[derive(Debug, Clone, Copy)]
struct DrainTime {
    cpu: Duration,
    wall: Duration,
}

/// The CPU time this thread has used so far.
fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    // The kernel keeps both fields non-negative; a clock that broke that reads as zero.
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(now.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

/// One measured size of one shape.
struct Row {
    shape: Shape,
    exponent: u32,
    reps: usize,
    /// Median CPU time of a drain: the cost.
    cpu: Duration,
    /// Median wall time of a drain: the throughput.
    wall: Duration,
}

impl Row {
    fn transitions(&self) -> f64 {
        (10u64.pow(self.exponent) * TRANSITIONS_PER_TASK) as f64
    }

    fn ns_per_transition(&self) -> f64 {
        self.cpu.as_nanos() as f64 / self.transitions()
    }

    fn wall_ns_per_transition(&self) -> f64 {
        self.wall.as_nanos() as f64 / self.transitions()
    }

    fn transitions_per_sec(&self) -> f64 {
        self.transitions() / self.wall.as_secs_f64()
    }
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut max_exponent = 6u32;
    let mut dedup = true;
    let mut options = OptionReader::new("queue", args, "--max-exp 3..6 or --no-dedup");
    while let Some(option) = options.next_option()? {
        match option {
            "--max-exp" => {
                let value = options.value(option, "a whole number from 3 to 6")?;
                max_exponent = cli::number_in(option, value, 3..=6)?;
            }
            "--no-dedup" => dedup = false,
            other => return Err(options.unknown(other)),
        }
    }

    // Grow the allocator's heap to the largest size first. A fresh process's heap hands
    // small queues fresh pages on every repetition (glibc trims the heap after each drop), so
    // without this the first rows would time page faults that later rows do not pay.
    for shape in [Shape::Wide, Shape::Chain] {
        drain(shape, 10usize.pow(max_exponent), dedup)?;
    }
    let rows = measure(max_exponent, dedup)?;

    println!(
        "dedup guard {}",
        if dedup { "on" } else { "off (--no-dedup)" }
    );
    println!("cost is CPU time (median of the thread's CPU clock); transitions/s is wall time");
    println!(
        "{:<6} {:>6} {:>5} {:>12} {:>15} {:>12} {:>15}",
        "shape", "tasks", "reps", "cpu ms", "ns/transition", "wall ns/tr", "transitions/s"
    );
    for row in &rows {
        println!(
            "{:<6} {:>6} {:>5} {:>12.3} {:>15.1} {:>12.1} {:>15.0}",
            row.shape.name(),
            format!("10^{}", row.exponent),
            row.reps,
            row.cpu.as_secs_f64() * 1e3,
            row.ns_per_transition(),
            row.wall_ns_per_transition(),
            row.transitions_per_sec(),
        );
    }

    // For each shape: throughput at the largest size and cost growth from 10^3 to it.
    let mut summary: Vec<(Shape, f64, f64, f64)> = Vec::new();
    for shape in [Shape::Wide, Shape::Chain] {
        let of = |exponent: u32| {
            rows.iter()
                .find(|row| row.shape == shape && row.exponent == exponent)
                .context("missing bench row")
        };
        let (small, large) = (of(3)?, of(max_exponent)?);
        summary.push((
            shape,
            large.transitions_per_sec(),
            large.ns_per_transition() / small.ns_per_transition(),
            large.wall_ns_per_transition() / small.wall_ns_per_transition(),
        ));
    }
    let slowest = summary
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .context("no shapes measured")?;
    let steepest = summary
        .iter()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .context("no shapes measured")?;
    for (shape, throughput, ratio, wall_ratio) in &summary {
        println!(
            "{}: {:.0} transitions/s at 10^{max_exponent}; cost ratio 10^{max_exponent}/10^3 = {:.2} (wall clock {:.2})",
            shape.name(),
            throughput,
            ratio,
            wall_ratio
        );
    }
    println!(
        "worse shape: {} for throughput, {} for cost ratio",
        slowest.0.name(),
        steepest.0.name()
    );
    println!(
        "queue: {} transitions/s at 10^{max_exponent} tasks; cost ratio 10^{max_exponent}/10^3 = {:.2}",
        slowest.1.round() as u64,
        steepest.2
    );
    Ok(())
}

/// Rounds in which every row is measured; each row's repetitions are spread over them.
const ROUNDS: usize = 5;

/// Timed repetitions per round at 10^`exponent` tasks: more where a drain is short and noisy.
fn reps_per_round(exponent: u32) -> usize {
    match exponent {
        3 => 11,
        4 => 5,
        5 => 2,
        _ => 1,
    }
}

/// Times every shape and size, interleaved, and returns one row (the median) for each.
///
/// This virtual machine's host has slow phases lasting seconds, in which every drain takes
/// 1.5 to 2 times as long. Timing one row after another let a phase land on the 10^6 rows
/// alone (a ratio of 1.7 to 2.1) or on the 10^3 rows alone (0.9), so the ratio measured the
/// host. Here each round drains every row once more, the sizes in alternating order, so a
/// slow phase reaches the rows alike, and every row's median is taken over all its rounds.
fn measure(max_exponent: u32, dedup: bool) -> anyhow::Result<Vec<Row>> {
    let shapes = [Shape::Wide, Shape::Chain];
    let exponents: Vec<u32> = (3..=max_exponent).collect();
    let mut times: Vec<Vec<DrainTime>> = vec![Vec::new(); shapes.len() * exponents.len()];
    for round in 0..ROUNDS {
        for (s, &shape) in shapes.iter().enumerate() {
            let mut order: Vec<usize> = (0..exponents.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for e in order {
                let exponent = exponents[e];
                let tasks = 10usize.pow(exponent);
                // Warm-up at the same shape and size: code paths and caches as this row
                // needs them, not as the row before left them.
                drain(shape, tasks, dedup)?;
                for _ in 0..reps_per_round(exponent) {
                    times[s * exponents.len() + e].push(drain(shape, tasks, dedup)?);
                }
            }
        }
    }
    let mut rows = Vec::new();
    for (s, &shape) in shapes.iter().enumerate() {
        for (e, &exponent) in exponents.iter().enumerate() {
            let row_times = &times[s * exponents.len() + e];
            // Each clock's median on its own: the two need not come from the same drain.
            let median_of = |clock: fn(&DrainTime) -> Duration| {
                let mut sorted: Vec<Duration> = row_times.iter().map(clock).collect();
                sorted.sort_unstable();
                median(&sorted)
            };
            rows.push(Row {
                shape,
                exponent,
                reps: row_times.len(),
                cpu: median_of(|time| time.cpu),
                wall: median_of(|time| time.wall),
            });
        }
    }
    Ok(rows)
}

/// The middle time of `sorted` (ascending), or the mean of the middle two when the count is
/// even, so a row's median is not its upper-middle repetition.
fn median(sorted: &[Duration]) -> Duration {
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => Duration::ZERO,
        len if len % 2 == 0 => (sorted[middle - 1] + sorted[middle]) / 2,
        _ => sorted[middle],
    }
}

/// Builds and drains one DAG of `tasks` tasks, returning the time it took.
fn drain(shape: Shape, tasks: usize, dedup: bool) -> anyhow::Result<DrainTime> {
    let now = Timestamp(0);
    let mut queue = Queue::new(QueueConfig {
        max_tasks: tasks,
        ..QueueConfig::default()
    });
    let mut since_flush = 0usize;
    let started = Instant::now();
    let cpu_started = thread_cpu_time();

    let mut previous = None;
    for n in 0..tasks {
        // Distinct inputs keep the dedup guard working, without collapsing tasks.
        let spec = TaskSpec::new("step").inputs(serde_json::Value::from(n));
        let spec = if dedup { spec } else { spec.without_dedup() };
        let spec = match (shape, previous) {
            (_, None) => spec,
            (Shape::Wide, Some(_)) => spec.depends_on([cairn_queue::TaskId(0)]),
            (Shape::Chain, Some(before)) => spec.depends_on([before]),
        };
        previous = Some(queue.enqueue(spec, EnqueuedBy::Root, now)?.id);
        since_flush += 1;
        if since_flush >= OUTBOX_BATCH {
            queue.clear_events();
            since_flush = 0;
        }
    }
    loop {
        let ready = queue.next_runnable(now);
        if ready.is_empty() {
            break;
        }
        for id in ready {
            queue.start(id, now)?;
            queue.complete(id, Handoff::default(), now)?;
            since_flush += 2;
            if since_flush >= OUTBOX_BATCH {
                queue.clear_events();
                since_flush = 0;
            }
        }
    }
    queue.clear_events();
    let elapsed = DrainTime {
        cpu: thread_cpu_time().saturating_sub(cpu_started),
        wall: started.elapsed(),
    };
    ensure!(
        queue.outcome() == Some(Outcome::Completed),
        "the {} DAG of {tasks} tasks did not drain cleanly",
        shape.name()
    );
    // Freeing a million tasks is not a transition; keep it out of the timing.
    drop(queue);
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{median, thread_cpu_time};

    /// The cost column reads this clock: it must move with the thread's own work.
    #[test]
    fn the_thread_cpu_clock_advances_while_the_thread_works() {
        let before = thread_cpu_time();
        let mut spins = 0u64;
        // Work until the clock moves (or a generous bound): a broken clock never moves.
        while thread_cpu_time() == before && spins < 1_000_000 {
            spins = std::hint::black_box(spins + 1);
        }
        assert!(
            thread_cpu_time() > before,
            "the CPU clock did not move in {spins} reads"
        );
    }

    /// The 10^5 row has ten repetitions: its median must not be the sixth-fastest alone.
    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let ms = |list: &[u64]| {
            list.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(median(&ms(&[1, 2, 3, 5])), Duration::from_micros(2500));
        assert_eq!(median(&ms(&[1, 2, 9])), Duration::from_millis(2));
        assert_eq!(median(&[]), Duration::ZERO);
    }
}
