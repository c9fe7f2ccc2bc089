//! The live metrics endpoint of a running job: `GET /metrics` in the
//! OpenMetrics text format (which Prometheus scrapes), served by a small
//! HTTP server on a thread of its own, only at the address it is given.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::process::Usage;
use crate::stages::{QueueFigures, StageFigures, StageSnapshot};

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
    /// Dropped to stop the sampler.
    stop_sampling: Option<std::sync::mpsc::Sender<()>>,
    sampler: Option<JoinHandle<()>>,
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
        let history = Arc::new(History::default());
        let (stop_sampling, stopped) = std::sync::mpsc::channel();
        let sampling = (Arc::clone(&metrics), Arc::clone(&history));
        let sampler = std::thread::Builder::new()
            .name("weir-metrics-sampler".into())
            .spawn(move || sample(&sampling.0, &sampling.1, &stopped))
            .map_err(|e| bind_error(e.to_string()))?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collect { metrics, history }));
        let thread = std::thread::Builder::new()
            .name("weir-metrics".into())
            .spawn(move || serve(&serving, &registry))
            .map_err(|e| bind_error(e.to_string()))?;
        Ok(MetricsServer {
            server,
            addr: local,
            thread: Some(thread),
            stop_sampling: Some(stop_sampling),
            sampler: Some(sampler),
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
        drop(self.stop_sampling.take());
        for thread in [self.thread.take(), self.sampler.take()]
            .into_iter()
            .flatten()
        {
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

/// How far back the rates look.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Samples of the per-stage figures, one a second, the last ten minutes.
#[derive(Debug, Default)]
struct History {
    samples: Mutex<VecDeque<(Instant, Vec<StageSnapshot>)>>,
}

impl History {
    /// The newest sample at least [`RATE_WINDOW`] older than `now`, or the
    /// oldest one.
    fn before(&self, now: Instant) -> Option<(Instant, Vec<StageSnapshot>)> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples
            .iter()
            .rev()
            .find(|(at, _)| now.duration_since(*at) >= RATE_WINDOW)
            .or_else(|| samples.front())
            .cloned()
    }
}

/// Samples the stage figures of `metrics` every second until `stop` is
/// dropped.
fn sample(metrics: &Metrics, history: &History, stop: &std::sync::mpsc::Receiver<()>) {
    loop {
        if let Some(stages) = metrics.stages() {
            let mut samples = history.samples.lock().unwrap_or_else(|p| p.into_inner());
            if samples.len() >= 600 {
                samples.pop_front();
            }
            samples.push_back((Instant::now(), stages.snapshot()));
        }
        match stop.recv_timeout(Duration::from_secs(1)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

/// Reads a job's [`Metrics`] at each scrape.
#[derive(Debug)]
struct Collect {
    metrics: Arc<Metrics>,
    history: Arc<History>,
}

/// A family of gauges with one label.
fn labelled_gauges(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (String, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (value, v) in values {
        let labels = [(label, value.as_str())];
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The per-stage families: counters per stage and worker, queueing
/// figures per stage over the last [`RATE_WINDOW`].
fn stage_families(
    e: &mut DescriptorEncoder<'_>,
    stages: &crate::Stages,
    history: &History,
) -> Result<(), std::fmt::Error> {
    let first_worker = stages.first_worker();
    let now = (Instant::now(), stages.snapshot());
    let names = stages.names();
    for (name, help, pick) in [
        (
            "weir_stage_records_in",
            "Records a stage took from its input channels (from other stages)",
            (|f: &StageFigures| f.records_in as f64) as fn(&StageFigures) -> f64,
        ),
        (
            "weir_stage_records_out",
            "Records a stage sent to other stages",
            |f: &StageFigures| f.records_out as f64,
        ),
        (
            "weir_stage_busy_seconds",
            "Time the operators of a stage were scheduled",
            |f: &StageFigures| f.busy.as_secs_f64(),
        ),
    ] {
        let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (stage, snapshot) in names.iter().zip(&now.1) {
            for (w, figures) in snapshot.workers.iter().enumerate() {
                let worker = (first_worker + w).to_string();
                let labels = [("stage", stage.as_str()), ("worker", worker.as_str())];
                ConstCounter::new(pick(figures)).encode(family.encode_family(&labels)?)?;
            }
        }
    }
    let (then, before) = history.before(now.0).unwrap_or_else(|| now.clone());
    let span = now.0.duration_since(then);
    let figures: Vec<(String, QueueFigures)> = names
        .iter()
        .zip(before.iter().zip(&now.1))
        .map(|(name, (b, n))| (name.clone(), QueueFigures::between(b, n, span)))
        .collect();
    for (name, help, pick) in [
        (
            "weir_stage_arrival_rate",
            "λ: records per second arriving at a stage (a source: records it reads), over the last 5 s",
            (|q: &QueueFigures| q.arrival_rate) as fn(&QueueFigures) -> f64,
        ),
        (
            "weir_stage_service_rate",
            "μ: records per second a stage handles while busy, on all its workers, over the last 5 s",
            |q: &QueueFigures| q.service_rate,
        ),
        (
            "weir_stage_utilization",
            "ρ = λ/μ: the share of its workers' time a stage is busy, over the last 5 s",
            |q: &QueueFigures| q.utilization,
        ),
        (
            "weir_stage_backlog_records",
            "L: records waiting in the input channels of a stage (sent within this process)",
            |q: &QueueFigures| q.backlog as f64,
        ),
        (
            "weir_stage_waiting_seconds",
            "W = L/λ: how long a record waits for a stage (Little's law)",
            |q: &QueueFigures| q.waiting,
        ),
    ] {
        labelled_gauges(e, name, help, "stage", figures.iter().map(|(n, q)| (n.clone(), pick(q))))?;
    }
    Ok(())
}

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
        let s = self.metrics.summary();
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
        let watermarks = self.metrics.watermarks();
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
        if let Some(stages) = self.metrics.stages() {
            stage_families(e, &stages, &self.history)?;
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
