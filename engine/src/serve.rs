//! The live metrics endpoint of a running job: `GET /metrics` in the
//! OpenMetrics text format (which Prometheus scrapes), served by a small
//! HTTP server on a thread of its own, only at the address it is given.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
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
        let bind_error = |reason: String| EngineError::Config {
            field: "--metrics",
            expected: format!(
                "an address to serve the metrics at (host:port): cannot listen at `{addr}`: {reason}"
            ),
        };
        let server = tiny_http::Server::http(addr).map_err(|e| bind_error(e.to_string()))?;
        let local = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| bind_error("not an IP address".into()))?;
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let history = Arc::new(History::default());
        *metrics.history.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&history));
        let (stop_sampling, stopped) = std::sync::mpsc::channel();
        let sampling = (Arc::clone(&metrics), Arc::clone(&history));
        let sampler = std::thread::Builder::new()
            .name("weir-metrics-sampler".into())
            .spawn(move || sample(&sampling.0, &sampling.1, &stopped))
            .map_err(|e| bind_error(e.to_string()))?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collect {
            metrics: Arc::clone(&metrics),
            history: Arc::clone(&history),
        }));
        let thread = std::thread::Builder::new()
            .name("weir-metrics".into())
            .spawn(move || serve(&serving, &registry, &metrics, &history))
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

/// The dashboard's page, script and style, served from the binary.
const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Answers requests until the server is unblocked: `GET /metrics` the
/// metrics, `GET /` the dashboard (its script, style and `/api/state`),
/// anything else a 404 (or 405 for other methods): read-only.
fn serve(server: &tiny_http::Server, registry: &Registry, metrics: &Metrics, history: &History) {
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
            (tiny_http::Method::Get, "/") => respond(PAGE.into(), 200, "text/html; charset=utf-8"),
            (tiny_http::Method::Get, "/dashboard.js") => {
                respond(SCRIPT.into(), 200, "text/javascript; charset=utf-8")
            }
            (tiny_http::Method::Get, "/dashboard.css") => {
                respond(STYLE.into(), 200, "text/css; charset=utf-8")
            }
            (tiny_http::Method::Get, "/api/state") => respond(
                cluster_state(metrics, history).to_string(),
                200,
                "application/json",
            ),
            (tiny_http::Method::Get, _) => respond("not found\n".into(), 404, "text/plain"),
            _ => respond("read-only: GET only\n".into(), 405, "text/plain"),
        };
        // A client that went away is its own concern.
        let _ = request.respond(response);
    }
}

/// What this process's dashboard shows of it, as JSON (see
/// [`MetricsServer`]): what a process reports to process 0, which shows the
/// whole cluster. `null` while metrics are not served.
pub fn process_state(metrics: &Metrics) -> serde_json::Value {
    let history = metrics
        .history
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    match history {
        Some(history) => state(metrics, &history),
        None => serde_json::Value::Null,
    }
}

/// What the dashboard shows: this process's state, and on process 0 the
/// other processes' last reports added in (see [`merge`]).
fn cluster_state(metrics: &Metrics, history: &History) -> serde_json::Value {
    let local = state(metrics, history);
    let peers: Vec<(usize, serde_json::Value, f64)> = metrics
        .peers()
        .into_iter()
        .filter_map(|(p, text, age)| {
            let state = serde_json::from_str(&text).ok()?;
            Some((p, state, age.as_secs_f64()))
        })
        .collect();
    merge(local, metrics.process(), &peers)
}

/// What the dashboard shows, as JSON: the job, its plan (stages with their
/// queueing figures, edges, whether records crossed workers on each), the
/// last ten minutes of throughput and event-time lag, and the counters.
fn state(metrics: &Metrics, history: &History) -> serde_json::Value {
    let summary = metrics.counts();
    let (stages, edges) = match metrics.stages() {
        Some(stages) => {
            let current = stages.snapshot();
            let figures = history.queue_figures(Instant::now(), &current);
            let list: Vec<serde_json::Value> = stages
                .names()
                .iter()
                .zip(current.iter().zip(&figures))
                .enumerate()
                .map(|(id, (name, (now, q)))| {
                    let total = now.total();
                    serde_json::json!({
                        "id": id,
                        "name": name,
                        "records_in": total.records_in,
                        "records_out": total.records_out,
                        "arrival_rate": q.arrival_rate,
                        "service_rate": q.service_rate,
                        "utilization": q.utilization,
                        "backlog": q.backlog,
                        "waiting_seconds": q.waiting,
                        "sent_away": now.sent_away,
                        "taken_from_afar": now.taken_from_afar,
                    })
                })
                .collect();
            let edges: Vec<serde_json::Value> = stages
                .edges()
                .into_iter()
                .map(|(from, to, exchange)| {
                    serde_json::json!({ "from": from, "to": to, "exchange": exchange })
                })
                .collect();
            (list, edges)
        }
        None => (Vec::new(), Vec::new()),
    };
    let series: Vec<serde_json::Value> = history
        .series()
        .into_iter()
        .map(|(t, rate, lag)| serde_json::json!({ "t": t, "throughput": rate, "lag": lag }))
        .collect();
    let total = |list: &[(String, u64)]| list.iter().map(|(_, n)| n).sum::<u64>();
    let now = unix_ms();
    let watermarks: Vec<serde_json::Value> = metrics
        .watermarks()
        .into_iter()
        .map(|(source, partition, w)| {
            serde_json::json!({
                "source": source,
                "partition": partition,
                "watermark_ms": w,
                "lag_seconds": now.saturating_sub(w) as f64 / 1000.0,
            })
        })
        .collect();
    let usage = Usage::now();
    serde_json::json!({
        "job": summary.job,
        "uptime_seconds": summary.elapsed.as_secs_f64(),
        "stages": stages,
        "edges": edges,
        "series": series,
        "watermarks": watermarks,
        "latencies": metrics
            .result_latencies()
            .into_iter()
            .map(|(sink, l)| serde_json::json!({
                "sink": sink,
                "count": l.snapshot().1,
                "p50_seconds": l.quantile(0.5),
                "p99_seconds": l.quantile(0.99),
            }))
            .collect::<Vec<_>>(),
        "gauges": metrics
            .gauges()
            .into_iter()
            .map(|g| serde_json::json!({
                "name": g.name,
                "labels": g.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
                "value": g.value.load(std::sync::atomic::Ordering::Relaxed),
            }))
            .collect::<Vec<_>>(),
        "counters": {
            "read": summary.events(),
            "written": total(&summary.sinks),
            "late": total(&summary.late),
            "skipped": total(&summary.skipped),
            "dead_letters": total(&summary.dead_letters),
            "checkpoints": summary.checkpoints.as_ref().map_or(0, |c| c.taken),
        },
        "process": {
            "resident_bytes": usage.resident_bytes,
            "cpu_seconds": usage.cpu_seconds,
        },
    })
}

/// The state of the whole cluster, as process 0 sees it: its own `local`
/// state with each peer process's last reported state (`(process, state,
/// seconds since it came)`) added in. Stages are the same plan on every
/// process: their records, rates and backlogs add up (ρ = Σλ / Σμ, W =
/// ΣL / Σλ); counters add up; watermarks are listed with their process;
/// the throughput series add up second by second from the newest; the
/// lag series take the greatest.
fn merge(
    mut local: serde_json::Value,
    process: usize,
    peers: &[(usize, serde_json::Value, f64)],
) -> serde_json::Value {
    let usage = |p: usize, state: &serde_json::Value, age: f64| {
        serde_json::json!({
            "process": p,
            "resident_bytes": state["process"]["resident_bytes"],
            "cpu_seconds": state["process"]["cpu_seconds"],
            "age_seconds": age,
        })
    };
    let mut processes = vec![usage(process, &local, 0.0)];
    for list in ["watermarks", "latencies"] {
        if let Some(items) = local[list].as_array_mut().filter(|_| !peers.is_empty()) {
            for item in items {
                item["process"] = process.into();
            }
        }
    }
    for (p, peer, age) in peers {
        processes.push(usage(*p, peer, *age));
        if let (Some(mine), Some(theirs)) =
            (local["stages"].as_array_mut(), peer["stages"].as_array())
        {
            for (m, t) in mine.iter_mut().zip(theirs) {
                for field in [
                    "records_in",
                    "records_out",
                    "arrival_rate",
                    "service_rate",
                    "backlog",
                    "sent_away",
                    "taken_from_afar",
                ] {
                    let sum = m[field].as_f64().unwrap_or(0.0) + t[field].as_f64().unwrap_or(0.0);
                    m[field] = sum.into();
                }
            }
        }
        if let (Some(mine), Some(theirs)) =
            (local["edges"].as_array_mut(), peer["edges"].as_array())
        {
            for (m, t) in mine.iter_mut().zip(theirs) {
                let crossed = m["exchange"].as_bool().unwrap_or(false)
                    || t["exchange"].as_bool().unwrap_or(false);
                m["exchange"] = crossed.into();
            }
        }
        if let (Some(mine), Some(theirs)) =
            (local["series"].as_array_mut(), peer["series"].as_array())
        {
            for (m, t) in mine.iter_mut().rev().zip(theirs.iter().rev()) {
                let sum = m["throughput"].as_f64().unwrap_or(0.0)
                    + t["throughput"].as_f64().unwrap_or(0.0);
                m["throughput"] = sum.into();
                let lag = match (m["lag"].as_f64(), t["lag"].as_f64()) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                m["lag"] = lag.into();
            }
        }
        if let (Some(counters), Some(theirs)) = (
            local["counters"].as_object_mut(),
            peer["counters"].as_object(),
        ) {
            for (k, v) in counters.iter_mut() {
                let sum = v.as_u64().unwrap_or(0)
                    + theirs
                        .get(k)
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0);
                *v = sum.into();
            }
        }
        if let Some(theirs) = peer["latencies"].as_array() {
            let theirs: Vec<serde_json::Value> = theirs
                .iter()
                .cloned()
                .map(|mut l| {
                    l["process"] = (*p).into();
                    l
                })
                .collect();
            if let Some(mine) = local["latencies"].as_array_mut() {
                mine.extend(theirs);
            }
        }
        if let Some(theirs) = peer["watermarks"].as_array() {
            let theirs: Vec<serde_json::Value> = theirs
                .iter()
                .cloned()
                .map(|mut m| {
                    m["process"] = (*p).into();
                    m
                })
                .collect();
            if let Some(marks) = local["watermarks"].as_array_mut() {
                marks.extend(theirs);
            }
        }
    }
    if peers.is_empty() {
        local["processes"] = processes.into();
        return local;
    }
    // Over the cluster, what one process sent to a stage on another and
    // the stage did not take yet is waiting too.
    if let Some(stages) = local["stages"].as_array_mut() {
        for s in stages {
            let away = s["sent_away"].as_f64().unwrap_or(0.0)
                - s["taken_from_afar"].as_f64().unwrap_or(0.0);
            let backlog = s["backlog"].as_f64().unwrap_or(0.0) + away.max(0.0);
            s["backlog"] = backlog.into();
            let (lambda, mu) = (
                s["arrival_rate"].as_f64().unwrap_or(0.0),
                s["service_rate"].as_f64().unwrap_or(0.0),
            );
            s["utilization"] = (if mu > 0.0 { lambda / mu } else { 0.0 }).into();
            s["waiting_seconds"] = (if lambda > 0.0 { backlog / lambda } else { 0.0 }).into();
        }
    }
    local["processes"] = processes.into();
    local
}

/// A response with `body` and its content type, and headers that keep a
/// browser to this server: nothing from another origin may load.
fn respond(
    body: String,
    status: u16,
    content_type: &str,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    for (name, value) in [
        ("Content-Type", content_type),
        ("Content-Security-Policy", "default-src 'self'"),
        ("X-Content-Type-Options", "nosniff"),
        ("Cache-Control", "no-store"),
    ] {
        if let Ok(header) = tiny_http::Header::from_bytes(name, value) {
            response = response.with_header(header);
        }
    }
    response
}

/// How far back the rates look.
const RATE_WINDOW: Duration = Duration::from_secs(5);

/// One sample of the job's figures.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    /// Milliseconds since the Unix epoch.
    unix_ms: u64,
    /// Per-stage figures, if kept.
    stages: Vec<StageSnapshot>,
    /// Records read by all sources so far.
    read: u64,
    /// The greatest event-time lag of any source partition, in seconds.
    lag: Option<f64>,
}

impl Sample {
    fn of(metrics: &Metrics) -> Sample {
        let unix_ms = unix_ms();
        Sample {
            at: Instant::now(),
            unix_ms,
            stages: metrics.stages().map_or_else(Vec::new, |s| s.snapshot()),
            read: metrics.counts().events(),
            lag: metrics
                .watermarks()
                .iter()
                .map(|(_, _, w)| unix_ms.saturating_sub(*w) as f64 / 1000.0)
                .reduce(f64::max),
        }
    }
}

/// Milliseconds since the Unix epoch, now.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Samples of the job's figures, one a second, the last ten minutes.
#[derive(Debug, Default)]
pub(crate) struct History {
    samples: Mutex<VecDeque<Sample>>,
}

impl History {
    /// The newest sample at least [`RATE_WINDOW`] older than `now`, or the
    /// oldest one.
    fn before(&self, now: Instant) -> Option<Sample> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples
            .iter()
            .rev()
            .find(|s| now.duration_since(s.at) >= RATE_WINDOW)
            .or_else(|| samples.front())
            .cloned()
    }

    /// Each stage's queueing figures between the sample [`RATE_WINDOW`]
    /// before `now` and `current`, the stages' figures at `now`.
    fn queue_figures(&self, now: Instant, current: &[StageSnapshot]) -> Vec<QueueFigures> {
        let (then, before) = self
            .before(now)
            .filter(|s| s.stages.len() == current.len())
            .map_or_else(|| (now, current.to_vec()), |s| (s.at, s.stages));
        let span = now.duration_since(then);
        before
            .iter()
            .zip(current)
            .map(|(b, n)| QueueFigures::between(b, n, span))
            .collect()
    }

    /// Per second sampled: `(unix ms, records read per second, greatest
    /// event-time lag in seconds)`.
    fn series(&self) -> Vec<(u64, f64, Option<f64>)> {
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples
            .iter()
            .zip(samples.iter().skip(1))
            .map(|(a, b)| {
                let span = b.at.duration_since(a.at).as_secs_f64();
                let rate = match span > 0.0 {
                    true => b.read.saturating_sub(a.read) as f64 / span,
                    false => 0.0,
                };
                (b.unix_ms, rate, b.lag)
            })
            .collect()
    }
}

/// Samples the figures of `metrics` every second until `stop` is dropped.
fn sample(metrics: &Metrics, history: &History, stop: &std::sync::mpsc::Receiver<()>) {
    loop {
        let sample = Sample::of(metrics);
        {
            let mut samples = history.samples.lock().unwrap_or_else(|p| p.into_inner());
            if samples.len() >= 600 {
                samples.pop_front();
            }
            samples.push_back(sample);
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
    let figures: Vec<(String, QueueFigures)> = names
        .iter()
        .cloned()
        .zip(history.queue_figures(now.0, &now.1))
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
        labelled_gauges(
            e,
            name,
            help,
            "stage",
            figures.iter().map(|(n, q)| (n.clone(), pick(q))),
        )?;
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
        let s = self.metrics.counts();
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
        let latencies = self.metrics.result_latencies();
        if !latencies.is_empty() {
            let mut family = e.encode_descriptor(
                "weir_result_latency_seconds",
                "Time from the watermark passing a result's time (a window's end: when it fired) to the sink",
                None,
                MetricType::Histogram,
            )?;
            for (sink, l) in &latencies {
                let (sum, count, buckets) = l.snapshot();
                let labels = [("sink", sink.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }
        let gauges = self.metrics.gauges();
        let mut names: Vec<(&str, &str)> = gauges.iter().map(|g| (g.name, g.help)).collect();
        names.sort();
        names.dedup();
        for (name, help) in names {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for g in gauges.iter().filter(|g| g.name == name) {
                let labels: Vec<(&str, &str)> =
                    g.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                let value = g.value.load(std::sync::atomic::Ordering::Relaxed) as f64;
                ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
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
