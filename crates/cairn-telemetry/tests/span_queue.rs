//! `SpanQueue`, the span processor `init` exports through: batching, flushing, a full queue,
//! failing and panicking exporters, shutdown, and the resource reaching the exporter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_telemetry::span_queue::{SpanQueue, SpanQueueConfig};
use opentelemetry::trace::{Tracer as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter, SpanProcessor as _,
};

fn provider(queue: &SpanQueue) -> SdkTracerProvider {
    cairn_telemetry::link::tracer_provider_builder()
        .with_span_processor(queue.clone())
        .build()
}

fn end_spans(provider: &SdkTracerProvider, count: usize) {
    let tracer = provider.tracer("span-queue-test");
    for n in 0..count {
        tracer.in_span(format!("span {n}"), |_| {});
    }
}

#[test]
fn a_flush_exports_every_span_queued_before_it_in_order() {
    let exporter = InMemorySpanExporter::default();
    let config = SpanQueueConfig::default()
        .with_scheduled_delay(Duration::from_secs(3600))
        .with_max_export_batch_size(4);
    let queue = SpanQueue::new(exporter.clone(), config).expect("queue");
    let provider = provider(&queue);
    end_spans(&provider, 10);
    provider.force_flush().expect("flush");
    let names: Vec<String> = exporter
        .get_finished_spans()
        .expect("spans")
        .iter()
        .map(|span| span.name.to_string())
        .collect();
    let expected: Vec<String> = (0..10).map(|n| format!("span {n}")).collect();
    assert_eq!(names, expected);
    assert_eq!(queue.dropped_spans(), 0);
    provider.shutdown().expect("shutdown");
}

/// Counts the batches it gets and their sizes.
#[derive(Debug, Clone, Default)]
struct BatchLog {
    batches: Arc<Mutex<Vec<usize>>>,
    resource: Arc<Mutex<Option<Resource>>>,
    shutdowns: Arc<AtomicUsize>,
}

impl BatchLog {
    /// Polls (for at most 5 s) until `count` spans were exported, without a flush.
    fn wait_for_exported(&self, count: usize) {
        let exported = (0..500).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            self.batches.lock().unwrap().iter().sum::<usize>() == count
        });
        assert!(
            exported,
            "batches so far: {:?}",
            self.batches.lock().unwrap()
        );
    }
}

impl SpanExporter for BatchLog {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.batches.lock().unwrap().push(batch.len());
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        self.shutdowns.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        *self.resource.lock().unwrap() = Some(resource.clone());
    }
}

#[test]
fn a_full_batch_is_exported_without_a_flush_and_batches_never_exceed_the_limit() {
    let exporter = BatchLog::default();
    let config = SpanQueueConfig::default()
        .with_scheduled_delay(Duration::from_secs(3600))
        .with_max_export_batch_size(8);
    let queue = SpanQueue::new(exporter.clone(), config).expect("queue");
    let provider = provider(&queue);
    end_spans(&provider, 8);
    // The thread is woken by the eighth span; poll (bounded) for its export.
    exporter.wait_for_exported(8);
    end_spans(&provider, 21);
    provider.force_flush().expect("flush");
    let batches = exporter.batches.lock().unwrap().clone();
    assert_eq!(batches.iter().sum::<usize>(), 29, "{batches:?}");
    assert!(
        batches.iter().all(|&size| (1..=8).contains(&size)),
        "{batches:?}"
    );
    provider.shutdown().expect("shutdown");
}

#[test]
fn the_scheduled_delay_exports_a_partial_batch() {
    let exporter = BatchLog::default();
    let config = SpanQueueConfig::default().with_scheduled_delay(Duration::from_millis(20));
    let queue = SpanQueue::new(exporter.clone(), config).expect("queue");
    let provider = provider(&queue);
    end_spans(&provider, 3);
    exporter.wait_for_exported(3);
    provider.shutdown().expect("shutdown");
}

#[test]
fn the_provider_resource_reaches_the_exporter_and_shutdown_reaches_it_once() {
    let exporter = BatchLog::default();
    let queue = SpanQueue::new(exporter.clone(), SpanQueueConfig::default()).expect("queue");
    let provider = cairn_telemetry::link::tracer_provider_builder()
        .with_resource(Resource::builder().with_service_name("queue-test").build())
        .with_span_processor(queue.clone())
        .build();
    end_spans(&provider, 1);
    provider.force_flush().expect("flush");
    let resource = exporter
        .resource
        .lock()
        .unwrap()
        .clone()
        .expect("resource set");
    assert_eq!(
        resource.get(&opentelemetry::Key::new("service.name")),
        Some(opentelemetry::Value::from("queue-test"))
    );
    provider.shutdown().expect("shutdown");
    assert_eq!(exporter.shutdowns.load(Ordering::SeqCst), 1);
    // A second shutdown is refused, not repeated.
    assert!(matches!(
        queue.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert_eq!(exporter.shutdowns.load(Ordering::SeqCst), 1);
}

#[test]
fn shutdown_exports_what_is_queued_and_later_spans_are_dropped_and_counted() {
    let exporter = BatchLog::default();
    let config = SpanQueueConfig::default().with_scheduled_delay(Duration::from_secs(3600));
    let queue = SpanQueue::new(exporter.clone(), config).expect("queue");
    let provider = provider(&queue);
    end_spans(&provider, 5);
    queue.shutdown().expect("shutdown");
    assert_eq!(*exporter.batches.lock().unwrap(), [5]);
    assert_eq!(exporter.shutdowns.load(Ordering::SeqCst), 1);
    // Ended after the shutdown (the provider itself is still up).
    let tracer = provider.tracer("late");
    tracer.in_span("late", |_| {});
    assert_eq!(queue.dropped_spans(), 1);
    assert!(matches!(
        queue.force_flush(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
}

/// Blocks every export until released, so the queue fills up behind it.
#[derive(Debug, Clone, Default)]
struct Gate {
    open: Arc<(Mutex<bool>, std::sync::Condvar)>,
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for Gate {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let (open, changed) = &*self.open;
        let mut open = open.lock().unwrap();
        while !*open {
            open = changed.wait(open).unwrap();
        }
        self.exported.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_full_queue_drops_new_spans_and_counts_them_instead_of_blocking() {
    let exporter = Gate::default();
    let config = SpanQueueConfig::default()
        .with_max_queue_size(4)
        .with_max_export_batch_size(1)
        .with_scheduled_delay(Duration::from_secs(3600));
    let queue = SpanQueue::new(exporter.clone(), config).expect("queue");
    let provider = provider(&queue);
    // The first span wakes the thread, which takes it and blocks in the export; wait until it
    // has been taken so the queue's four places are free again.
    end_spans(&provider, 1);
    std::thread::sleep(Duration::from_millis(100));
    end_spans(&provider, 10);
    let dropped = queue.dropped_spans();
    assert!(
        (6..=7).contains(&dropped),
        "four (or five, if the first was not taken yet) fit; dropped {dropped}"
    );
    {
        let (open, changed) = &*exporter.open;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }
    provider.force_flush().expect("flush");
    assert_eq!(
        exporter.exported.load(Ordering::SeqCst) as u64 + dropped,
        11,
        "every span is either exported or counted as dropped"
    );
    provider.shutdown().expect("shutdown");
}

/// Fails its first export, or panics in it.
#[derive(Debug, Clone)]
struct Faulty {
    panic: bool,
    calls: Arc<AtomicUsize>,
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for Faulty {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            if self.panic {
                panic!("exporter bug");
            }
            return Err(OTelSdkError::InternalFailure("collector down".to_owned()));
        }
        self.exported.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

fn faulty_export(panic: bool) {
    let exporter = Faulty {
        panic,
        calls: Arc::default(),
        exported: Arc::default(),
    };
    let config = SpanQueueConfig::default().with_scheduled_delay(Duration::from_secs(3600));
    let queue = SpanQueue::new(exporter.clone(), config).expect("queue");
    let provider = provider(&queue);
    end_spans(&provider, 2);
    let error = provider
        .force_flush()
        .expect_err("the failed export is reported");
    let expected = if panic { "panicked" } else { "collector down" };
    assert!(error.to_string().contains(expected), "{error}");
    assert_eq!(queue.failed_exports(), 1);
    // The queue keeps working, and the failure is reported once.
    end_spans(&provider, 3);
    provider.force_flush().expect("the next flush succeeds");
    assert_eq!(exporter.exported.load(Ordering::SeqCst), 3);
    provider.shutdown().expect("shutdown");
}

#[test]
fn a_failed_export_is_counted_and_reported_by_the_next_flush() {
    faulty_export(false);
}

#[test]
fn a_panicking_exporter_fails_that_export_and_the_queue_goes_on() {
    faulty_export(true);
}

/// Its first export never finishes (a future that is never woken); later ones succeed.
#[derive(Debug, Clone, Default)]
struct Hanging {
    calls: Arc<AtomicUsize>,
    exported: Arc<AtomicUsize>,
}

impl SpanExporter for Hanging {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        self.exported.fetch_add(batch.len(), Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn an_export_that_outlives_its_timeout_is_abandoned_and_counted() {
    let exporter = Hanging::default();
    let config = SpanQueueConfig::default()
        .with_scheduled_delay(Duration::from_secs(3600))
        .with_export_timeout(Duration::from_millis(200));
    let queue = SpanQueue::new(exporter.clone(), config).expect("queue");
    let provider = provider(&queue);
    end_spans(&provider, 2);
    let error = provider
        .force_flush()
        .expect_err("the abandoned export is reported");
    assert!(error.to_string().contains("200ms"), "{error}");
    assert_eq!(queue.failed_exports(), 1);
    // The thread is free again: the next spans go out.
    end_spans(&provider, 3);
    provider.force_flush().expect("the next flush succeeds");
    assert_eq!(exporter.exported.load(Ordering::SeqCst), 3);
    assert_eq!(exporter.calls.load(Ordering::SeqCst), 2);
    provider.shutdown().expect("shutdown");
}

/// Fails every export while `down` is set.
#[derive(Debug, Clone, Default)]
struct Switchable {
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl SpanExporter for Switchable {
    async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
        if self.down.load(Ordering::SeqCst) {
            Err(OTelSdkError::InternalFailure("collector down".to_owned()))
        } else {
            Ok(())
        }
    }
}

/// Records the queue's own log lines, as `level message fields`.
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={value:?}", field.name()));
            }
        }
        if event.metadata().target() != cairn_telemetry::span_queue::LOG_TARGET {
            return;
        }
        let mut text = Text(event.metadata().level().to_string());
        event.record(&mut text);
        self.0.lock().unwrap().push(text.0);
    }
}

#[test]
fn a_failure_streak_logs_its_first_failure_and_its_recovery_only() {
    if std::env::var(CHILD).as_deref() != Ok("logs") {
        in_child(
            "a_failure_streak_logs_its_first_failure_and_its_recovery_only",
            "logs",
            &[],
        );
        return;
    }
    use tracing_subscriber::layer::SubscriberExt as _;
    let lines = LogLines::default();
    // The export thread logs through the global subscriber; this is a child process.
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(lines.clone()))
        .expect("the child's only subscriber");
    let exporter = Switchable::default();
    exporter.down.store(true, Ordering::SeqCst);
    let config = SpanQueueConfig::default().with_scheduled_delay(Duration::from_secs(3600));
    let queue = SpanQueue::new(exporter.clone(), config).expect("queue");
    let provider = provider(&queue);
    for _ in 0..3 {
        end_spans(&provider, 2);
        provider.force_flush().expect_err("the collector is down");
    }
    assert_eq!(queue.failed_exports(), 3);
    exporter.down.store(false, Ordering::SeqCst);
    end_spans(&provider, 1);
    provider.force_flush().expect("the collector is back");
    end_spans(&provider, 1);
    provider.force_flush().expect("still fine");
    provider.shutdown().expect("shutdown");
    let lines = lines.0.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with("WARN message=span export failed")
            && lines[0].contains("collector down")
            && lines[0].contains("spans=2"),
        "{lines:#?}"
    );
    assert!(
        lines[1].starts_with("WARN message=span export works again after 3 failed export(s)"),
        "{lines:#?}"
    );
}

#[test]
fn unsampled_spans_are_not_queued() {
    let exporter = InMemorySpanExporter::default();
    let queue = SpanQueue::new(exporter.clone(), SpanQueueConfig::default()).expect("queue");
    let provider = cairn_telemetry::link::tracer_provider_builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
        .with_span_processor(queue.clone())
        .build();
    end_spans(&provider, 3);
    provider.force_flush().expect("flush");
    assert!(exporter.get_finished_spans().expect("spans").is_empty());
    assert_eq!(queue.dropped_spans(), 0);
    provider.shutdown().expect("shutdown");
}

#[test]
fn config_clamps_sizes() {
    let config = SpanQueueConfig::default()
        .with_max_queue_size(0)
        .with_max_export_batch_size(10);
    assert_eq!(
        (config.max_queue_size(), config.max_export_batch_size()),
        (1, 1)
    );
}

/// Set in the child processes of `config_reads_the_sdk_variables`.
const CHILD: &str = "CAIRN_SPAN_QUEUE_TEST_CHILD";

/// Runs this test binary's `test` with `CHILD` set to `case` and `vars` set (the workspace
/// forbids `unsafe`, so the variables cannot be set in this process; and a child is the only
/// place where a test may install a global subscriber).
fn in_child(test: &str, case: &str, vars: &[(&str, &str)]) {
    let mut command = std::process::Command::new(std::env::current_exe().expect("test binary"));
    command
        .args([test, "--exact", "--nocapture"])
        .env(CHILD, case);
    for (name, value) in vars {
        command.env(name, value);
    }
    let output = command.output().expect("child runs");
    assert!(
        output.status.success(),
        "case {case}: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "case {case} ran nothing"
    );
}

#[test]
fn config_reads_the_sdk_variables() {
    match std::env::var(CHILD).as_deref() {
        Ok("valid") => {
            let config = SpanQueueConfig::from_env().expect("valid");
            assert_eq!(config.scheduled_delay(), Duration::from_millis(250));
            assert_eq!(config.max_queue_size(), 100);
            assert_eq!(config.max_export_batch_size(), 100, "clamped to the queue");
            assert_eq!(config.export_timeout(), Duration::from_millis(1500));
        }
        Ok("invalid") => {
            let error = SpanQueueConfig::from_env().expect_err("invalid");
            assert!(
                matches!(
                    &error,
                    cairn_telemetry::Error::InvalidEnv { name: "OTEL_BSP_MAX_QUEUE_SIZE", value, .. }
                        if value == "lots"
                ),
                "{error}"
            );
            assert!(
                error
                    .to_string()
                    .contains("OTEL_BSP_MAX_QUEUE_SIZE=\"lots\""),
                "{error}"
            );
        }
        Ok("zero") => {
            assert!(matches!(
                SpanQueueConfig::from_env(),
                Err(cairn_telemetry::Error::InvalidEnv {
                    name: "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                    ..
                })
            ));
        }
        Ok("zero timeout") => {
            let error = SpanQueueConfig::from_env().expect_err("a zero timeout is refused");
            assert!(
                error
                    .to_string()
                    .contains("OTEL_BSP_EXPORT_TIMEOUT=\"0\" is not valid: expected a whole number of milliseconds above zero"),
                "{error}"
            );
        }
        _ => {
            let test = "config_reads_the_sdk_variables";
            in_child(
                test,
                "valid",
                &[
                    ("OTEL_BSP_SCHEDULE_DELAY", "250"),
                    ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
                    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1000"),
                    ("OTEL_BSP_EXPORT_TIMEOUT", "1500"),
                ],
            );
            in_child(test, "invalid", &[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")]);
            in_child(test, "zero", &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0")]);
            in_child(test, "zero timeout", &[("OTEL_BSP_EXPORT_TIMEOUT", "0")]);
        }
    }
}
