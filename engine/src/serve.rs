//! The live metrics endpoint of a running job: `GET /metrics` in the
//! OpenMetrics text format (which Prometheus scrapes), served by a small
//! HTTP server on a thread of its own, only at the address it is given.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::process::Usage;

use crate::error::EngineError;
use crate::metrics::Metrics;

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running metrics endpoint; dropping it stops the server.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// use std::sync::Arc;
/// use weir_engine::{CounterKind, Metrics, MetricsServer};
///
/// let metrics = Arc::new(Metrics::new("job"));
/// metrics.counter(CounterKind::Source, "numbers").fetch_add(7, std::sync::atomic::Ordering::Relaxed);
/// let server = MetricsServer::start("127.0.0.1:0", Arc::clone(&metrics)).unwrap();
/// let mut http = std::net::TcpStream::connect(server.local_addr()).unwrap();
/// http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
/// let mut reply = String::new();
/// http.read_to_string(&mut reply).unwrap();
/// assert!(reply.contains("weir_source_records_total{source=\"numbers\"} 7"), "{reply}");
/// assert!(reply.trim_end().ends_with("# EOF"));
/// ```
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl MetricsServer {
    /// Serves `metrics` at `addr` (`host:port`; port 0 picks a free one)
    /// until dropped.
    ///
    /// # Errors
    ///
    /// [`EngineError::Config`] naming `--metrics` and the address if it
    /// cannot be listened at.
    pub fn start(addr: &str, metrics: Arc<Metrics>) -> Result<MetricsServer, EngineError> {
        let bind_error = |reason: String| {
            EngineError::Config {
            field: "--metrics",
            expected: format!(
                "an address to serve the metrics at (host:port): cannot listen at `{addr}`: {reason}"
            ),
        }
        };
        let server = tiny_http::Server::http(addr).map_err(|e| bind_error(e.to_string()))?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| bind_error("not an IP address".into()))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collect(metrics)));
        let thread = std::thread::Builder::new()
            .name("weir-metrics".into())
            .spawn(move || serve(&serving, &registry))
            .map_err(|e| bind_error(e.to_string()))?;
        Ok(MetricsServer {
            server,
            addr: local,
            thread: Some(thread),
        })
    }

    /// The address the endpoint listens at.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers requests until the server is unblocked: `GET /metrics` gets the
/// metrics, anything else a 404 (or 405 for other methods): read-only.
fn serve(server: &tiny_http::Server, registry: &Registry) {
    for request in server.incoming_requests() {
        let response = match (request.method(), request.url()) {
            (tiny_http::Method::Get, "/metrics") => {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, registry) {
                    Ok(()) => respond(text, 200, OPENMETRICS),
                    Err(e) => respond(
                        format!("cannot encode the metrics: {e}\n"),
                        500,
                        "text/plain",
                    ),
                }
            }
            (tiny_http::Method::Get, _) => respond("not found\n".into(), 404, "text/plain"),
            _ => respond("read-only: GET only\n".into(), 405, "text/plain"),
        };
        // A client that went away is its own concern.
        let _ = request.respond(response);
    }
}

fn respond(
    body: String,
    status: u16,
    content_type: &str,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(header) = tiny_http::Header::from_bytes("Content-Type", content_type) {
        response = response.with_header(header);
    }
    response
}

/// Reads a job's [`Metrics`] at each scrape.
#[derive(Debug)]
struct Collect(Arc<Metrics>);

/// A family of counters, one per `(label value, count)`.
fn counters(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: &[(String, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (value, n) in values {
        let labels = [(label, value.as_str())];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(family)
}

/// One counter without labels.
fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: f64,
) -> Result<(), std::fmt::Error> {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(family)
}

impl Collector for Collect {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        let s = self.0.summary();
        gauge(
            e,
            "weir_uptime_seconds",
            "Seconds since the job started in this process",
            s.elapsed.as_secs_f64(),
        )?;
        counters(
            e,
            "weir_source_records",
            "Records read by a source",
            "source",
            &s.sources,
        )?;
        counters(
            e,
            "weir_sink_records",
            "Records written by a sink",
            "sink",
            &s.sinks,
        )?;
        counters(
            e,
            "weir_late_records",
            "Late records of a window stage (dropped, or sent to its late stream)",
            "stage",
            &s.late,
        )?;
        counters(
            e,
            "weir_skipped_records",
            "Records a source could not read and skipped",
            "source",
            &s.skipped,
        )?;
        counters(
            e,
            "weir_dead_letters",
            "Records a source could not read and sent to its dead letters",
            "source",
            &s.dead_letters,
        )?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let watermarks = self.0.watermarks();
        for (name, help, of) in [
            (
                "weir_watermark_seconds",
                "The watermark of a source partition, in seconds since the Unix epoch",
                None,
            ),
            (
                "weir_watermark_lag_seconds",
                "Processing time minus the watermark of a source partition (event-time lag)",
                Some(now),
            ),
        ] {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (source, partition, watermark) in &watermarks {
                let partition = partition.to_string();
                let labels = [
                    ("source", source.as_str()),
                    ("partition", partition.as_str()),
                ];
                let seconds = match of {
                    None => *watermark as f64 / 1000.0,
                    Some(now) => now.saturating_sub(*watermark) as f64 / 1000.0,
                };
                ConstGauge::new(seconds).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(c) = &s.checkpoints {
            counter(
                e,
                "weir_checkpoints",
                "Checkpoints committed by this process",
                c.taken as f64,
            )?;
            if let Some((_, bytes, took)) = c.last {
                gauge(
                    e,
                    "weir_checkpoint_last_size_bytes",
                    "Size of the last checkpoint committed",
                    bytes as f64,
                )?;
                gauge(
                    e,
                    "weir_checkpoint_last_duration_seconds",
                    "How long committing the last checkpoint took",
                    took.as_secs_f64(),
                )?;
            }
        }
        let process = Usage::now();
        if let Some(rss) = process.resident_bytes {
            gauge(
                e,
                "process_resident_memory_bytes",
                "Resident memory of this process",
                rss as f64,
            )?;
        }
        if let Some(cpu) = process.cpu_seconds {
            counter(
                e,
                "process_cpu_seconds",
                "CPU time of this process, user and system",
                cpu,
            )?;
        }
        Ok(())
    }
}
