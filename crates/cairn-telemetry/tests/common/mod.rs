//! A real OTLP/HTTP receiver on 127.0.0.1 for the export tests: it accepts `POST /v1/traces`
//! and `POST /v1/metrics` with protobuf bodies, answers 200 and keeps the decoded requests.
//! It only binds loopback, every loop is bounded by a deadline, and it stops when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

/// The receiver gives up on its own after this long, so a broken test cannot hang forever.
const LIFETIME: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(20);

/// One HTTP request the receiver accepted.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) content_type: Option<String>,
    pub(crate) body: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Received>>,
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
}

pub(crate) struct OtlpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl OtlpReceiver {
    pub(crate) fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        let accept = thread::spawn(move || accept_loop(listener, accept_shared));
        OtlpReceiver {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// The base URL, as for OTEL_EXPORTER_OTLP_ENDPOINT.
    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn requests(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub(crate) fn errors(&self) -> Vec<String> {
        self.shared.errors.lock().unwrap().clone()
    }

    /// Waits (bounded) until a request to `path` has arrived.
    pub(crate) fn wait_for_path(&self, path: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.requests().iter().any(|r| r.path == path) {
                return true;
            }
            thread::sleep(POLL);
        }
        false
    }

    pub(crate) fn trace_requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/v1/traces")
            .map(|r| {
                ExportTraceServiceRequest::decode(r.body.as_slice()).expect("valid trace protobuf")
            })
            .collect()
    }

    pub(crate) fn metric_requests(&self) -> Vec<ExportMetricsServiceRequest> {
        self.requests()
            .iter()
            .filter(|r| r.path == "/v1/metrics")
            .map(|r| {
                ExportMetricsServiceRequest::decode(r.body.as_slice())
                    .expect("valid metrics protobuf")
            })
            .collect()
    }

    /// Every span name and span event name received, in arrival order.
    pub(crate) fn span_and_event_names(&self) -> (Vec<String>, Vec<String>) {
        let mut spans = Vec::new();
        let mut events = Vec::new();
        for request in self.trace_requests() {
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        spans.push(span.name.clone());
                        events.extend(span.events.iter().map(|e| e.name.clone()));
                    }
                }
            }
        }
        (spans, events)
    }

    /// Every metric name received.
    pub(crate) fn metric_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for request in self.metric_requests() {
            for resource in request.resource_metrics {
                for scope in resource.scope_metrics {
                    names.extend(scope.metrics.iter().map(|m| m.name.clone()));
                }
            }
        }
        names
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let deadline = Instant::now() + LIFETIME;
    let mut connections = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                let conn_shared = Arc::clone(&shared);
                connections.push(thread::spawn(move || serve(stream, conn_shared, deadline)));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => {
                shared.errors.lock().unwrap().push(format!("accept: {e}"));
                thread::sleep(POLL);
            }
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

/// Serves keep-alive requests on one connection until the client closes it, the receiver
/// stops, or the deadline passes.
fn serve(stream: TcpStream, shared: Arc<Shared>, deadline: Instant) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    while !shared.stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match read_request(&mut reader, &shared, deadline) {
            Ok(Some(request)) => {
                shared.requests.lock().unwrap().push(request);
                let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                if writer
                    .write_all(reply.as_bytes())
                    .and_then(|()| writer.flush())
                    .is_err()
                {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                shared.errors.lock().unwrap().push(e);
                return;
            }
        }
    }
}

/// Reads one line, waiting out read timeouts while the receiver runs. `Ok(None)` on EOF.
fn read_line(
    reader: &mut BufReader<TcpStream>,
    shared: &Shared,
    deadline: Instant,
) -> Result<Option<String>, String> {
    let mut line = String::new();
    loop {
        match reader.read_line(&mut line) {
            Ok(0) if line.is_empty() => return Ok(None),
            Ok(_) if line.ends_with('\n') => return Ok(Some(line)),
            Ok(0) => return Err(format!("connection closed mid-line: {line:?}")),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                    return Ok(None);
                }
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

fn read_request(
    reader: &mut BufReader<TcpStream>,
    shared: &Shared,
    deadline: Instant,
) -> Result<Option<Received>, String> {
    let Some(request_line) = read_line(reader, shared, deadline)? else {
        return Ok(None);
    };
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut content_length = None;
    let mut content_type = None;
    loop {
        let line = read_line(reader, shared, deadline)?.ok_or("EOF in headers")?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header {line:?}"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                content_length = Some(value.parse::<usize>().map_err(|e| format!("length: {e}"))?)
            }
            "content-type" => content_type = Some(value.to_owned()),
            "transfer-encoding" => return Err(format!("unsupported transfer-encoding {value}")),
            _ => {}
        }
    }
    let mut body = vec![0; content_length.unwrap_or(0)];
    let mut filled = 0;
    while filled < body.len() {
        match reader.read(&mut body[filled..]) {
            Ok(0) => return Err("EOF in body".to_owned()),
            Ok(n) => filled += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() >= deadline {
                    return Err("deadline in body".to_owned());
                }
            }
            Err(e) => return Err(format!("body: {e}")),
        }
    }
    Ok(Some(Received {
        method,
        path,
        content_type,
        body,
    }))
}

/// Asserts that a child run of one test of this same binary (`--exact NAME`) passed and ran
/// exactly that test: a renamed test would otherwise "pass" by running nothing. `case` says
/// which case failed, or is empty.
pub(crate) fn assert_child_passed(output: &Output, case: &str) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed{case}: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
