//! Jobs at once: a long run holds one place (`max_running_jobs`) and delays neither the other
//! jobs' runs nor their ticks; a job whose run goes on is never started a second time; with
//! one place, jobs run one after another as before; an error lets the runs going on end (the
//! runner is told) before it is returned.
//!
//! Runs block on a gate the test opens, so nothing here depends on how fast anything is: the
//! timeouts only turn a hang (the behaviour before, where a blocked run held up every job)
//! into a failure.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{
    Error, JobRunner, ManualClock, RunFailed, RunRequest, RunSucceeded, Scheduler, SchedulerConfig,
    TickFailed, TickReport,
};
use common::{HookedStore, NEW_YEAR_2026, StoreHooks, every_minute, id};
use tokio::sync::{mpsc, watch};

/// How long a test waits for something that must happen before it calls it a hang.
const HANG: Duration = Duration::from_secs(60);

/// A runner whose runs of the `blocked` jobs wait until the test opens the gate. Every run
/// says `start <job>` and `end <job>`, in the log and on a channel.
#[derive(Debug)]
struct Gated {
    blocked: HashSet<JobId>,
    /// Jobs whose runs fail (so that their recording shows as an error count).
    failing: HashSet<JobId>,
    gate: watch::Sender<bool>,
    log: Mutex<Vec<String>>,
    events: mpsc::UnboundedSender<String>,
    /// Moves the clock by a minute after each run of this job, so it is due again at once.
    advances: Option<(JobId, ManualClock)>,
    /// What `scheduler_failed` was told.
    failures: Mutex<Vec<String>>,
}

impl Gated {
    fn new(blocked: &[&str], failing: &[&str]) -> (Arc<Gated>, mpsc::UnboundedReceiver<String>) {
        let (events, received) = mpsc::unbounded_channel();
        let runner = Gated {
            blocked: blocked.iter().map(|job| id(job)).collect(),
            failing: failing.iter().map(|job| id(job)).collect(),
            gate: watch::channel(false).0,
            log: Mutex::default(),
            events,
            advances: None,
            failures: Mutex::default(),
        };
        (Arc::new(runner), received)
    }

    fn say(&self, event: String) {
        self.log.lock().unwrap().push(event.clone());
        let _ = self.events.send(event);
    }

    fn open(&self) {
        self.gate.send_replace(true);
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn count(&self, event: &str) -> usize {
        self.log().iter().filter(|e| *e == event).count()
    }
}

#[async_trait]
impl JobRunner for Gated {
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        let job = &request.job_id;
        self.say(format!("start {job}"));
        if self.blocked.contains(job) {
            let mut gate = self.gate.subscribe();
            gate.wait_for(|open| *open).await.expect("the gate is kept");
        }
        if let Some((advanced, clock)) = &self.advances
            && advanced == job
        {
            clock.advance(Duration::from_secs(60));
        }
        self.say(format!("end {job}"));
        if self.failing.contains(job) {
            Err(RunFailed::new("dependency down"))
        } else {
            Ok(RunSucceeded::default())
        }
    }

    fn scheduler_failed(&self, error: &Error) {
        self.failures.lock().unwrap().push(error.to_string());
        // As a runner ends its runs on a shutdown.
        self.open();
    }
}

/// A scheduler over `store` with `places` jobs at once, and its clock.
fn scheduler(
    store: Arc<dyn JobStore>,
    runner: Arc<Gated>,
    clock: &ManualClock,
    places: usize,
) -> Scheduler {
    Scheduler::with_config(
        store,
        runner,
        Arc::new(clock.clone()),
        SchedulerConfig {
            max_running_jobs: places,
            ..SchedulerConfig::default()
        },
    )
}

/// Adds the every-minute jobs `jobs` and moves the clock to their first tick.
async fn add_due(scheduler: &Scheduler, clock: &ManualClock, jobs: &[&str]) {
    for job in jobs {
        scheduler.jobs().add(every_minute(job)).await.unwrap();
    }
    clock.advance(Duration::from_secs(60));
}

/// Waits for the runner to say `event`.
async fn until(events: &mut mpsc::UnboundedReceiver<String>, event: &str) {
    tokio::time::timeout(HANG, async {
        while events.recv().await.expect("the runner is alive") != event {}
    })
    .await
    .unwrap_or_else(|_| panic!("`{event}` never came"));
}

/// Yields to the other tasks until `done` holds (bounded by a count, not by time).
async fn yield_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..10_000 {
        if done().await {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{what} never happened");
}

/// Ticks on another task (the test's task stays free to watch it).
fn spawn_tick(scheduler: &Scheduler) -> tokio::task::JoinHandle<Result<TickReport, TickFailed>> {
    let scheduler = scheduler.clone();
    tokio::spawn(async move { scheduler.tick().await })
}

async fn joined(
    tick: tokio::task::JoinHandle<Result<TickReport, TickFailed>>,
) -> Result<TickReport, TickFailed> {
    tokio::time::timeout(HANG, tick)
        .await
        .expect("the tick never ended")
        .expect("the tick did not panic")
}

fn ran(report: &TickReport) -> Vec<(String, Timestamp)> {
    report
        .runs
        .iter()
        .map(|run| (run.job_id.to_string(), run.scheduled_for))
        .collect()
}

const MINUTE: u64 = 60_000;

#[tokio::test]
async fn a_quick_job_runs_and_is_recorded_while_a_long_run_goes_on() {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let (runner, mut events) = Gated::new(&["a-long"], &["b-quick"]);
    let scheduler = scheduler(Arc::new(MemoryJobStore::new()), runner.clone(), &clock, 2);
    add_due(&scheduler, &clock, &["a-long", "b-quick"]).await;
    let tick = spawn_tick(&scheduler);
    until(&mut events, "start a-long").await;
    until(&mut events, "end b-quick").await;
    // B's outcome is recorded while A's run still goes on.
    yield_until("b-quick's failure recorded", async || {
        scheduler
            .jobs()
            .show(&id("b-quick"))
            .await
            .unwrap()
            .consecutive_errors
            == 1
    })
    .await;
    assert_eq!(runner.count("end a-long"), 0, "{:?}", runner.log());
    assert!(!tick.is_finished());

    runner.open();
    let report = joined(tick).await.unwrap();
    let due = Timestamp(NEW_YEAR_2026.0 + MINUTE);
    // In listing order, whichever ended first.
    assert_eq!(
        ran(&report),
        [("a-long".to_owned(), due), ("b-quick".to_owned(), due)]
    );
    assert!(report.runs[0].outcome.is_ok());
    let long = scheduler.jobs().show(&id("a-long")).await.unwrap();
    assert_eq!(long.consecutive_errors, 0);
}

#[tokio::test]
async fn with_one_place_a_quick_job_waits_for_the_long_run_to_end() {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let (runner, mut events) = Gated::new(&["a-long"], &[]);
    let scheduler = scheduler(Arc::new(MemoryJobStore::new()), runner.clone(), &clock, 1);
    add_due(&scheduler, &clock, &["a-long", "b-quick"]).await;
    let tick = spawn_tick(&scheduler);
    until(&mut events, "start a-long").await;
    // However long the tick task is let run, B does not start while A's run goes on.
    for _ in 0..1_000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(runner.log(), ["start a-long"]);

    runner.open();
    let report = joined(tick).await.unwrap();
    assert_eq!(report.runs.len(), 2, "{report:?}");
    assert_eq!(
        runner.log(),
        ["start a-long", "end a-long", "start b-quick", "end b-quick"]
    );
}

#[tokio::test]
async fn a_job_whose_run_goes_on_is_not_started_again_and_its_tick_is_caught_up_after() {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let (runner, mut events) = Gated::new(&["a-long"], &[]);
    let scheduler = scheduler(Arc::new(MemoryJobStore::new()), runner.clone(), &clock, 4);
    add_due(&scheduler, &clock, &["a-long", "b-quick"]).await;
    let first = spawn_tick(&scheduler);
    until(&mut events, "start a-long").await;
    until(&mut events, "end b-quick").await;

    // Both jobs are due again; A's run still goes on, so only B starts, and this tick does
    // not wait for A's run.
    clock.advance(Duration::from_secs(60));
    let second = tokio::time::timeout(HANG, scheduler.tick())
        .await
        .expect("the second tick waited for the first one's run")
        .unwrap();
    let again = Timestamp(NEW_YEAR_2026.0 + 2 * MINUTE);
    assert_eq!(ran(&second), [("b-quick".to_owned(), again)]);
    assert_eq!(runner.count("start a-long"), 1, "{:?}", runner.log());

    runner.open();
    let first = joined(first).await.unwrap();
    assert_eq!(first.runs.len(), 2, "{first:?}");
    // A's tick that came while it ran is run now, as a missed tick is after downtime.
    let third = scheduler.tick().await.unwrap();
    assert_eq!(ran(&third), [("a-long".to_owned(), again)]);
    assert_eq!(runner.count("start a-long"), 2);
}

#[tokio::test]
async fn run_until_keeps_running_a_frequent_job_while_a_long_run_goes_on() {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let runner = Arc::new(Gated {
        blocked: [id("a-long")].into_iter().collect(),
        failing: HashSet::new(),
        gate: watch::channel(false).0,
        log: Mutex::default(),
        events: events_tx,
        advances: Some((id("b-quick"), clock.clone())),
        failures: Mutex::default(),
    });
    let scheduler = scheduler(Arc::new(MemoryJobStore::new()), runner.clone(), &clock, 4);
    add_due(&scheduler, &clock, &["a-long", "b-quick"]).await;
    // Each run of B moves the clock a minute on, so B (and A) are due again at each look.
    let stop = async {
        for _ in 0..3 {
            until(&mut events, "end b-quick").await;
        }
    };
    tokio::time::timeout(HANG, scheduler.run_until(stop))
        .await
        .expect("run_until never saw three runs of b-quick")
        .unwrap();
    assert!(runner.count("end b-quick") >= 3, "{:?}", runner.log());
    // A was due at every look too, but its run went on: it was started once.
    assert_eq!(runner.count("start a-long"), 1, "{:?}", runner.log());
    assert_eq!(runner.count("end a-long"), 0);
}

/// Fails every put of job `b-quick` after its claim: the recording of its run's outcome.
#[derive(Debug, Default)]
struct RecordOfBFails {
    puts: AtomicU32,
}

#[async_trait]
impl StoreHooks for RecordOfBFails {
    async fn before_put(
        &self,
        _inner: &MemoryJobStore,
        job: &JobId,
        expected: Option<u64>,
    ) -> cairn_checkpoint::Result<()> {
        // The add writes with no expected version; the claim is the first write after it.
        if job.as_str() == "b-quick"
            && expected.is_some()
            && self.puts.fetch_add(1, Ordering::SeqCst) >= 1
        {
            return Err(cairn_checkpoint::Error::Injected { op: "put" });
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_job_store_failure_lets_the_runs_going_on_end_and_record_before_it_is_returned() {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let (runner, _events) = Gated::new(&["a-long"], &["a-long"]);
    let store = Arc::new(HookedStore::<RecordOfBFails>::default());
    let scheduler = scheduler(store.clone(), runner.clone(), &clock, 4);
    add_due(&scheduler, &clock, &["a-long", "b-quick"]).await;
    let TickFailed {
        report,
        error: failed,
        later,
    } = joined(spawn_tick(&scheduler)).await.unwrap_err();
    assert!(later.is_empty(), "{later:?}");
    // The error names the job whose record failed, not only the store.
    assert!(
        matches!(
            &failed,
            Error::Store {
                job: Some(job),
                source: cairn_checkpoint::Error::Injected { .. }
            } if *job == id("b-quick")
        ),
        "{failed:?}"
    );
    assert!(failed.to_string().contains("(job b-quick)"), "{failed}");
    // The runner was told while A's run went on (it opened the gate then), and A's run
    // ended and was recorded before the error was returned.
    assert_eq!(runner.failures.lock().unwrap().len(), 1);
    assert_eq!(runner.count("end a-long"), 1, "{:?}", runner.log());
    let long = scheduler.jobs().show(&id("a-long")).await.unwrap();
    assert_eq!(long.consecutive_errors, 1, "{long:?}");
    // Neither run is lost with the error: A's, recorded, and B's, which ran though its
    // outcome could not be recorded (the error names B), in listing order.
    let runs: Vec<(&str, bool)> = report
        .runs
        .iter()
        .map(|run| (run.job_id.as_str(), run.outcome.is_ok()))
        .collect();
    assert_eq!(runs, [("a-long", false), ("b-quick", true)], "{report:?}");
}
