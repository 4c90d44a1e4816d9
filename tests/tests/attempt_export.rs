//! The executor's task attempts through cairn's layers as `init` composes them
//! (`export_layers`), where each attempt reaches the exporter through the attempt hook
//! instead of a tracing span: every attempt is exported once when the filter passes task
//! spans and never when it drops them, counted once either way, and a fmt layer beside the
//! export layers still sees each attempt as a span. Through `layers::layer` (what
//! `TestTelemetry::new` composes), what a handler does inside its attempt lands on the
//! attempt's span: its events, the spans it opens, the current OpenTelemetry context. On a
//! multi-thread runtime, attempts that move between workers keep their own events.

use std::sync::{Arc, Mutex};

use cairn_checkpoint::MemoryFactory;
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, TaskSpec};
use cairn_telemetry::names;
use cairn_telemetry::testing::{TestTelemetry, in_child_with_filter};
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{KeyValue, Value};
use tracing::instrument::WithSubscriber as _;
use tracing_subscriber::Layer as _;

/// A fmt layer's output, kept for the test to read.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `export_layers` under `filter` over in-memory exporters, with a fmt layer at `info`
/// writing into `logs` beside them when given (as `init` puts one).
fn export_layers(filter: &str, logs: Option<&Lines>) -> TestTelemetry {
    let config = cairn_telemetry::Config::new("attempt-export-test")
        .with_export(cairn_telemetry::Export::Off)
        .with_default_filter(filter);
    compose(config, logs)
}

/// `config`'s export layers over in-memory exporters, with a fmt layer at `info` writing
/// into `logs` beside them when given.
fn compose(config: cairn_telemetry::Config, logs: Option<&Lines>) -> TestTelemetry {
    let logs = logs.cloned();
    TestTelemetry::composed(move |providers| {
        let export = cairn_telemetry::export_layers(&config, providers).expect("layers");
        // Boxed rather than an `Option` layer: a `None` layer reports a maximum level of
        // `OFF`, which would turn every span off.
        match logs {
            Some(logs) => export
                .and_then(
                    tracing_subscriber::fmt::layer()
                        .with_writer(move || logs.clone())
                        .with_ansi(false)
                        .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
                )
                .boxed(),
            None => export.boxed(),
        }
    })
}

/// Three `work` tasks that log and complete, and one `flaky` task that fails retryably once:
/// five attempts.
async fn run_five_attempts() {
    let registry = Registry::new()
        .with(
            "work",
            handler_fn(|_ctx| async {
                tracing::info!("working");
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }),
        )
        .with(
            "flaky",
            handler_fn(|ctx| async move {
                match ctx.attempt() {
                    1 => Err(TaskFailure::retryable("flaky", "try again")),
                    _ => Ok(Finish::Complete(Handoff::default())),
                }
            }),
        );
    let mut phase = Phase::new("main");
    for i in 0..3 {
        phase.task(TaskSpec::new("work").inputs(i.into()), []);
    }
    phase.task(TaskSpec::new("flaky"), []);
    run_to_completion(registry, phase).await;
}

/// Runs `phase` fresh on the memory adapter and checks that it completes.
async fn run_to_completion(registry: Registry, phase: Phase) {
    let executor = Executor::new(
        Arc::new(MemoryFactory::new()),
        registry,
        ExecutorConfig::default(),
    )
    .unwrap();
    let report = executor
        .run(
            RunPlan::new("export", "test").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
}

fn run_under(telemetry: &TestTelemetry) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(run_five_attempts().with_subscriber(telemetry.dispatch()));
}

fn outcome_count(telemetry: &TestTelemetry, outcome: &str, kind: &str) -> Option<u64> {
    telemetry.counter(
        names::METRIC_TASK_OUTCOMES,
        &[
            KeyValue::new("outcome", outcome.to_owned()),
            KeyValue::new("kind", kind.to_owned()),
        ],
    )
}

/// Each attempt is counted once, by kind and outcome, whatever the filter says, and nothing
/// else is counted.
fn assert_counted_once(telemetry: &TestTelemetry) {
    assert_eq!(outcome_count(telemetry, "complete", "work"), Some(3));
    assert_eq!(outcome_count(telemetry, "retry", "flaky"), Some(1));
    assert_eq!(outcome_count(telemetry, "complete", "flaky"), Some(1));
    assert_eq!(
        telemetry.counter_total(names::METRIC_TASK_OUTCOMES),
        5,
        "no attempt counted under another label"
    );
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[test]
fn attempts_through_export_layers_are_exported_once_as_children_of_the_run_span() {
    let default = cairn_telemetry::Config::new("x").default_filter;
    in_child_with_filter(
        "attempts_through_export_layers_are_exported_once_as_children_of_the_run_span",
        &default,
        |filter| {
            let telemetry = export_layers(filter, None);
            run_under(&telemetry);
            let runs = telemetry.spans_named(names::RUN_SPAN);
            assert_eq!(runs.len(), 1);
            let tasks = telemetry.spans_named(names::TASK_SPAN);
            assert_eq!(tasks.len(), 5, "one span per attempt");
            let mut outcomes: Vec<String> = Vec::new();
            for task in &tasks {
                assert_eq!(task.parent_span_id, runs[0].span_context.span_id());
                assert_eq!(
                    task.span_context.trace_id(),
                    runs[0].span_context.trace_id()
                );
                let fields = &task.attributes;
                assert_eq!(attr(fields, "level"), Some(&Value::from("INFO")));
                assert_eq!(attr(fields, "target"), Some(&Value::from("cairn")));
                assert!(
                    matches!(attr(fields, "task_id"), Some(Value::String(id)) if id.as_str().starts_with('t')),
                    "{fields:?}"
                );
                let kind = attr(fields, "kind").expect("kind").as_str().into_owned();
                let attempt = attr(fields, "attempt").expect("attempt").clone();
                let outcome = attr(fields, "outcome").expect("outcome").as_str();
                outcomes.push(format!("{kind} {attempt} {outcome}"));
                assert!(task.start_time <= task.end_time);
            }
            outcomes.sort();
            assert_eq!(
                outcomes,
                [
                    "flaky 1 retry",
                    "flaky 2 complete",
                    "work 1 complete",
                    "work 1 complete",
                    "work 1 complete"
                ]
            );
            assert_counted_once(&telemetry);
        },
    );
}

#[test]
fn a_failed_attempt_exports_task_failed_as_an_event_of_its_own_span() {
    let default = cairn_telemetry::Config::new("x").default_filter;
    in_child_with_filter(
        "a_failed_attempt_exports_task_failed_as_an_event_of_its_own_span",
        &default,
        |filter| {
            let telemetry = export_layers(filter, None);
            run_under(&telemetry);
            let tasks = telemetry.spans_named(names::TASK_SPAN);
            let with_failure: Vec<_> = tasks
                .iter()
                .filter(|task| {
                    task.events
                        .iter()
                        .any(|event| event.name == names::TASK_FAILED)
                })
                .collect();
            assert_eq!(with_failure.len(), 1, "only the flaky first attempt failed");
            let task = with_failure[0];
            assert_eq!(
                attr(&task.attributes, "outcome"),
                Some(&Value::from("retry"))
            );
            let event = task
                .events
                .iter()
                .find(|event| event.name == names::TASK_FAILED)
                .unwrap();
            let fields = &event.attributes;
            assert_eq!(attr(fields, "level"), Some(&Value::from("WARN")));
            assert_eq!(attr(fields, "kind"), Some(&Value::from("flaky")));
            assert_eq!(attr(fields, "attempt"), Some(&Value::I64(1)));
            assert_eq!(attr(fields, "error.kind"), Some(&Value::from("flaky")));
            assert_eq!(
                attr(fields, "error.message"),
                Some(&Value::from("try again"))
            );
            assert_eq!(attr(fields, "will_retry"), Some(&Value::Bool(true)));
            assert_eq!(
                attr(fields, "task_id"),
                attr(&task.attributes, "task_id"),
                "the event names its own attempt's task"
            );
            // Not the run span's, and not a detached span of its own.
            let runs = telemetry.spans_named(names::RUN_SPAN);
            assert!(
                !runs[0]
                    .events
                    .iter()
                    .any(|event| event.name == names::TASK_FAILED)
            );
            assert!(
                telemetry
                    .spans()
                    .iter()
                    .all(|span| !span.name.starts_with("event ")),
                "nothing detached"
            );
        },
    );
}

/// A plan task named `fetch-prices` (kind `flaky`: it fails once, then completes) beside an
/// unnamed `work` task, run under `telemetry`: the named task's two attempt spans and its
/// `task_failed` event carry `task_name`, the unnamed task's span has none.
fn assert_plan_names_reach_the_task_spans(telemetry: &TestTelemetry) {
    let registry = Registry::new()
        .with(
            "work",
            handler_fn(|_ctx| async { Ok::<_, TaskFailure>(Finish::Complete(Handoff::default())) }),
        )
        .with(
            "flaky",
            handler_fn(|ctx| async move {
                match ctx.attempt() {
                    1 => Err(TaskFailure::retryable("flaky", "try again")),
                    _ => Ok(Finish::Complete(Handoff::default())),
                }
            }),
        );
    let mut phase = Phase::new("main");
    phase.named_task("fetch-prices", TaskSpec::new("flaky"), []);
    phase.task(TaskSpec::new("work"), []);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(run_to_completion(registry, phase).with_subscriber(telemetry.dispatch()));

    let tasks = telemetry.spans_named(names::TASK_SPAN);
    assert_eq!(
        tasks.len(),
        3,
        "two attempts of the named task, one of the other"
    );
    let name = Value::from("fetch-prices");
    for task in &tasks {
        let kind = attr(&task.attributes, "kind").expect("kind").as_str();
        let task_name = attr(&task.attributes, "task_name");
        match kind.as_ref() {
            "flaky" => assert_eq!(task_name, Some(&name), "{:?}", task.attributes),
            _ => assert_eq!(task_name, None, "an unnamed task: {:?}", task.attributes),
        }
    }
    let failed: Vec<_> = tasks
        .iter()
        .flat_map(|task| task.events.iter())
        .filter(|event| event.name == names::TASK_FAILED)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(attr(&failed[0].attributes, "task_name"), Some(&name));
}

#[test]
fn a_named_plan_task_is_exported_with_its_task_name() {
    let default = cairn_telemetry::Config::new("x").default_filter;
    in_child_with_filter(
        "a_named_plan_task_is_exported_with_its_task_name",
        &default,
        |filter| assert_plan_names_reach_the_task_spans(&export_layers(filter, None)),
    );
}

#[test]
fn a_named_plan_task_is_exported_with_its_task_name_from_traced_task_spans() {
    let default = cairn_telemetry::Config::new("x").default_filter;
    in_child_with_filter(
        "a_named_plan_task_is_exported_with_its_task_name_from_traced_task_spans",
        &default,
        |filter| {
            let config = cairn_telemetry::Config::new("attempt-export-test")
                .with_export(cairn_telemetry::Export::Off)
                .with_default_filter(filter)
                .with_traced_task_spans(true);
            assert_plan_names_reach_the_task_spans(&compose(config, None));
        },
    );
}

#[test]
fn attempts_a_filter_drops_are_not_exported_but_still_counted_once() {
    in_child_with_filter(
        "attempts_a_filter_drops_are_not_exported_but_still_counted_once",
        "warn",
        |filter| {
            let telemetry = export_layers(filter, None);
            run_under(&telemetry);
            assert!(telemetry.spans_named(names::TASK_SPAN).is_empty());
            assert_counted_once(&telemetry);
        },
    );
}

#[test]
fn attempts_a_span_field_filter_passes_are_exported_once_with_their_events_and_counted_once() {
    // A span directive enables the events inside the spans it matches, which the filter only
    // learns from spans it sees: the attempts stay tracing spans, and the handlers' INFO
    // events, below the `warn` the rest of the filter allows, are their span events.
    in_child_with_filter(
        "attempts_a_span_field_filter_passes_are_exported_once_with_their_events_and_counted_once",
        "warn,[{kind}]=info",
        |filter| {
            let telemetry = export_layers(filter, None);
            run_under(&telemetry);
            let tasks = telemetry.spans_named(names::TASK_SPAN);
            assert_eq!(tasks.len(), 5);
            let working = tasks
                .iter()
                .filter(|task| task.events.iter().any(|event| event.name == "working"))
                .count();
            assert_eq!(working, 3, "each `work` attempt's event");
            assert_counted_once(&telemetry);
        },
    );
}

#[test]
fn attempts_behind_a_layer_that_hides_the_hook_are_still_exported_and_counted_once() {
    // `reload::Layer` does not forward downcasts, so the executor cannot find the hook: its
    // attempts must then take the traced path rather than vanish.
    let default = cairn_telemetry::Config::new("x").default_filter;
    in_child_with_filter(
        "attempts_behind_a_layer_that_hides_the_hook_are_still_exported_and_counted_once",
        &default,
        |filter| {
            let config = cairn_telemetry::Config::new("attempt-export-test")
                .with_export(cairn_telemetry::Export::Off)
                .with_default_filter(filter);
            let telemetry = TestTelemetry::composed(move |providers| {
                let export = cairn_telemetry::export_layers(&config, providers).expect("layers");
                tracing_subscriber::reload::Layer::new(export).0
            });
            run_under(&telemetry);
            assert_eq!(telemetry.spans_named(names::TASK_SPAN).len(), 5);
            assert_counted_once(&telemetry);
        },
    );
}

#[test]
fn a_fmt_layer_beside_the_export_layers_sees_each_attempt_as_a_span_exported_once() {
    let default = cairn_telemetry::Config::new("x").default_filter;
    in_child_with_filter(
        "a_fmt_layer_beside_the_export_layers_sees_each_attempt_as_a_span_exported_once",
        &default,
        |filter| {
            let logs = Lines::default();
            let telemetry = export_layers(filter, Some(&logs));
            run_under(&telemetry);
            assert_eq!(telemetry.spans_named(names::TASK_SPAN).len(), 5);
            assert_counted_once(&telemetry);
            let text = logs.text();
            let in_task = text
                .lines()
                .filter(|line| {
                    line.contains("orchestrator task{task_id=t") && line.contains("kind=work")
                })
                .filter(|line| line.ends_with("working"))
                .count();
            assert_eq!(in_task, 3, "{text}");
        },
    );
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn what_a_handler_does_inside_its_attempt_lands_on_the_attempt_span() {
    let telemetry = TestTelemetry::new();
    let _guard = telemetry.set_default();
    let seen = Arc::new(Mutex::new(None));
    let seen_in_handler = Arc::clone(&seen);
    let registry = Registry::new().with(
        "probe",
        handler_fn(move |_ctx| {
            let seen = Arc::clone(&seen_in_handler);
            async move {
                tracing::info!(step = 1i64, "fetched");
                tracing::info!(target: "cairn", "a cairn event inside an attempt");
                tracing::info!(target: "cairn", parent: None, "a root cairn event");
                let current = opentelemetry::Context::current();
                *seen.lock().unwrap() = Some(current.span().span_context().span_id());
                {
                    let child = tracing::info_span!("child step");
                    let _entered = child.enter();
                    tracing::info!("inside the child");
                }
                tracing::error!("went wrong");
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let mut phase = Phase::new("main");
    phase.task(TaskSpec::new("probe"), []);
    run_to_completion(registry, phase).await;

    let tasks = telemetry.spans_named(names::TASK_SPAN);
    assert_eq!(tasks.len(), 1);
    let task = &tasks[0];
    let events: Vec<&str> = task
        .events
        .iter()
        .map(|event| event.name.as_ref())
        .collect();
    assert_eq!(
        events,
        ["fetched", "a cairn event inside an attempt", "went wrong"],
        "the child span's event stays on the child"
    );
    let fetched = &task.events.events[0];
    assert_eq!(attr(&fetched.attributes, "step"), Some(&Value::I64(1)));
    assert_eq!(
        attr(&fetched.attributes, "level"),
        Some(&Value::from("INFO"))
    );
    assert!(
        matches!(task.status, Status::Error { .. }),
        "{:?}",
        task.status
    );
    assert_eq!(
        *seen.lock().unwrap(),
        Some(task.span_context.span_id()),
        "the attempt's context is the current one inside the handler"
    );
    let children = telemetry.spans_named("child step");
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].parent_span_id, task.span_context.span_id());
    assert_eq!(
        children[0].span_context.trace_id(),
        task.span_context.trace_id()
    );
    let child_events: Vec<&str> = children[0]
        .events
        .iter()
        .map(|event| event.name.as_ref())
        .collect();
    assert_eq!(child_events, ["inside the child"]);
    // A cairn event outside any span becomes a span named after the event's callsite
    // (`event <file>:<line>`); inside an attempt it is the attempt's span event instead,
    // unless it is an explicit root.
    let detached: Vec<Vec<String>> = telemetry
        .spans()
        .iter()
        .filter(|span| span.name.starts_with("event "))
        .map(|span| {
            span.events
                .iter()
                .map(|event| event.name.to_string())
                .collect()
        })
        .collect();
    assert_eq!(detached.len(), 1, "{detached:?}");
    assert!(
        detached[0][0].starts_with("event "),
        "the root event, named after its callsite: {detached:?}"
    );
}

#[test]
fn traced_task_spans_carry_the_task_span_into_work_a_handler_spawns() {
    let default = cairn_telemetry::Config::new("x").default_filter;
    in_child_with_filter(
        "traced_task_spans_carry_the_task_span_into_work_a_handler_spawns",
        &default,
        |filter| {
            let config = cairn_telemetry::Config::new("attempt-export-test")
                .with_export(cairn_telemetry::Export::Off)
                .with_default_filter(filter)
                .with_traced_task_spans(true);
            let telemetry = compose(config, None);
            let registry = Registry::new().with(
                "spawner",
                handler_fn(|_ctx| async {
                    use tracing::Instrument as _;
                    let work = async { tracing::info!("spawned work") }.in_current_span();
                    tokio::spawn(work).await.expect("the spawned work ends");
                    Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
                }),
            );
            let mut phase = Phase::new("main");
            phase.task(TaskSpec::new("spawner"), []);
            // The spawned work runs outside the attempt, under the thread's default subscriber
            // (a binary's global one): make it this test's.
            let _default = telemetry.set_default();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(run_to_completion(registry, phase).with_subscriber(telemetry.dispatch()));
            let tasks = telemetry.spans_named(names::TASK_SPAN);
            assert_eq!(tasks.len(), 1);
            let events: Vec<&str> = tasks[0]
                .events
                .iter()
                .map(|event| event.name.as_ref())
                .collect();
            assert_eq!(events, ["spawned work"]);
            assert_eq!(outcome_count(&telemetry, "complete", "spawner"), Some(1));
        },
    );
}

#[test]
fn attempts_that_move_between_worker_threads_keep_their_own_events() {
    // On a multi-thread runtime an attempt may be polled on one worker, park, and be polled
    // again on the other; each poll enters and leaves its span within the poll, so every event
    // must still land on its own attempt and each attempt be exported and counted once.
    let default = cairn_telemetry::Config::new("x").default_filter;
    in_child_with_filter(
        "attempts_that_move_between_worker_threads_keep_their_own_events",
        &default,
        |filter| {
            const TASKS: usize = 32;
            const HOPS: i64 = 4;
            let telemetry = export_layers(filter, None);
            let threads: Arc<Mutex<Vec<std::collections::HashSet<std::thread::ThreadId>>>> =
                Arc::default();
            let seen = Arc::clone(&threads);
            let registry = Registry::new().with(
                "hop",
                handler_fn(move |ctx| {
                    let seen = Arc::clone(&seen);
                    async move {
                        let mut polled_on = std::collections::HashSet::new();
                        for hop in 0..HOPS {
                            polled_on.insert(std::thread::current().id());
                            tracing::info!(task = %ctx.task_id(), hop, "hop");
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                        }
                        seen.lock().unwrap().push(polled_on);
                        Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
                    }
                }),
            );
            let mut phase = Phase::new("main");
            for i in 0..TASKS {
                phase.task(TaskSpec::new("hop").inputs(i.into()), []);
            }
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(run_to_completion(registry, phase).with_subscriber(telemetry.dispatch()));

            let moved = threads
                .lock()
                .unwrap()
                .iter()
                .filter(|set| set.len() > 1)
                .count();
            let tasks = telemetry.spans_named(names::TASK_SPAN);
            assert_eq!(tasks.len(), TASKS, "one span per attempt");
            let mut ids: Vec<String> = Vec::new();
            for task in &tasks {
                let id = attr(&task.attributes, "task_id")
                    .expect("task_id")
                    .as_str()
                    .into_owned();
                let hops: Vec<(String, Option<Value>)> = task
                    .events
                    .iter()
                    .map(|event| {
                        (
                            attr(&event.attributes, "task")
                                .map(|v| v.as_str().into_owned())
                                .unwrap_or_default(),
                            attr(&event.attributes, "hop").cloned(),
                        )
                    })
                    .collect();
                let expected: Vec<(String, Option<Value>)> = (0..HOPS)
                    .map(|hop| (id.clone(), Some(Value::I64(hop))))
                    .collect();
                assert_eq!(
                    hops, expected,
                    "attempt {id}'s events ({moved} attempts moved)"
                );
                ids.push(id);
            }
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), TASKS, "no attempt exported twice");
            assert_eq!(
                outcome_count(&telemetry, "complete", "hop"),
                Some(TASKS as u64)
            );
            assert_eq!(
                telemetry.counter_total(names::METRIC_TASK_OUTCOMES),
                TASKS as u64
            );
            // Report how much moving the run did; the assertions above hold either way.
            println!("{moved} of {TASKS} attempts were polled on more than one thread");
        },
    );
}

/// Logs, in order, an export's `opening` and `open` calls and the task spans opened.
#[derive(Clone, Default)]
struct CallLog(Arc<Mutex<Vec<&'static str>>>);

impl cairn_telemetry::attempt::AttemptExport for CallLog {
    fn claim(&self) {}

    fn opening(&self) {
        self.0.lock().unwrap().push("opening");
    }

    fn open(
        &self,
        _parent: &tracing::Span,
        _task_id: &str,
        _task_name: Option<&Arc<str>>,
        _kind: &Arc<str>,
        _attempt: u32,
    ) -> Option<Box<dyn cairn_telemetry::attempt::AttemptRecord>> {
        self.0.lock().unwrap().push("open");
        None
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CallLog {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attrs.metadata().name() == names::TASK_SPAN {
            self.0.lock().unwrap().push("span");
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_export_hears_of_each_attempt_before_its_span_opens_and_is_asked_for_it_after() {
    // `opening` lets an export forget what an earlier open on the thread left behind, so it
    // must come before the span (whose filter answers for this attempt) and `open` after.
    use tracing_subscriber::layer::SubscriberExt as _;
    let log = CallLog::default();
    let hook = cairn_telemetry::attempt::AttemptHook::new(Arc::new(log.clone()));
    let subscriber = tracing_subscriber::registry().with(log.clone()).with(hook);
    let registry = Registry::new().with(
        "step",
        handler_fn(|_ctx| async {
            tokio::task::yield_now().await;
            Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
        }),
    );
    let mut phase = Phase::new("main");
    for i in 0..2 {
        phase.task(TaskSpec::new("step").inputs(i.into()), []);
    }
    run_to_completion(registry, phase)
        .with_subscriber(subscriber)
        .await;
    assert_eq!(
        *log.0.lock().unwrap(),
        ["opening", "span", "open", "opening", "span", "open"],
        "once per attempt, not per poll"
    );
}
