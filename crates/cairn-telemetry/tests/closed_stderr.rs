//! A process whose stderr reader went away (`cairn run ... 2>&1 | head`, a log pipe whose
//! collector restarted) exits as it would have: the guard's shutdown warning is lost, never
//! turned into a panic at the end of `main`. The case runs in a child process of this test
//! binary whose stderr is a pipe with its read end closed, so every write to it fails with
//! `EPIPE`.

mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cairn_telemetry::emit::{self, RunFinished, RunOutcomeName};
use cairn_telemetry::{Config, Export, OtlpProtocol, names};

/// Set in the child process to select its role.
const CHILD_ROLE: &str = "CAIRN_TELEMETRY_CLOSED_STDERR_CHILD";

/// Only a guard against a hang: the child is done in well under a second.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Runs the test `name` in a child whose stderr reader is gone, and checks that it passed.
fn run_with_stderr_closed(name: &str) {
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        // Without capture, the test's own writes to stderr reach the closed pipe.
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD_ROLE, "child")
        .env_remove("RUST_LOG")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_EXPORTER_OTLP_TIMEOUT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child test");
    // The read end goes away: the child's writes to stderr fail from now on.
    drop(child.stderr.take());
    let (done, output) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = output
        .recv_timeout(HANG_GUARD)
        .expect("the child hung")
        .expect("run the child test");
    common::assert_child_passed(&output, " with its stderr closed");
}

/// Waits until this process's stderr has no reader (the parent dropped it right after the
/// spawn), so the case really writes to a closed pipe.
fn wait_for_stderr_to_close() {
    for _ in 0..1_000 {
        if std::io::stderr().write_all(b"\n").is_err() {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("stderr still has a reader");
}

fn a_run() {
    let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
        run_id = "run-e", workflow = "w", scope = "s", resumed = false);
    run.in_scope(|| {
        emit::begin_degraded("run-e", "disk full");
        emit::run_finished(&RunFinished {
            run_id: "run-e",
            outcome: RunOutcomeName::Complete,
            resumed: false,
            duration_ms: 5,
            tasks_done: 1,
            tasks_failed: 0,
            tasks_skipped: 0,
            tasks_blocked: 0,
        });
    });
}

#[test]
fn dropping_the_guard_with_stderr_closed_loses_the_warning_without_a_panic() {
    const NAME: &str = "dropping_the_guard_with_stderr_closed_loses_the_warning_without_a_panic";
    if std::env::var_os(CHILD_ROLE).is_none() {
        return run_with_stderr_closed(NAME);
    }
    wait_for_stderr_to_close();
    // A port nobody listens on: the final export fails, and the guard says so on stderr.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let config = Config::new("cairn-closed-stderr-test")
        .with_default_filter("off")
        .with_export_filter(cairn_telemetry::DEFAULT_FILTER)
        .with_export(Export::Otlp {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: Some(endpoint),
        })
        .with_shutdown_timeout(Duration::from_millis(500));
    let guard = cairn_telemetry::init(config).expect("init");
    a_run();
    drop(guard);
}
