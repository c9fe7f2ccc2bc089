use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CounterKind {
    /// Events read by a source.
    Source,
    /// Records written by a sink.
    Sink,
    /// Late records of a window stage (dropped, or sent to its late-data stream).
    Late,
    /// Records a source could not read and skipped.
    Skipped,
    /// Records a source could not read and sent to its dead letters.
    DeadLettered,
}

/// Counters of one job in one process, shared by its workers.
///
/// Operators take a counter once, at build time, and add to it once per batch.
///
/// # Examples
///
/// ```
/// use weir_engine::{CounterKind, Metrics};
///
/// let metrics = Metrics::new("job");
/// metrics.counter(CounterKind::Source, "numbers").fetch_add(5, std::sync::atomic::Ordering::Relaxed);
/// metrics.counter(CounterKind::Source, "numbers").fetch_add(2, std::sync::atomic::Ordering::Relaxed);
/// let summary = metrics.summary();
/// assert_eq!(summary.sources, vec![("numbers".to_string(), 7)]);
/// ```
#[derive(Debug)]
pub struct Metrics {
    job: String,
    started: Instant,
    counters: Mutex<Vec<(CounterKind, String, Arc<AtomicU64>)>>,
    expected: AtomicU64,
    done: Arc<AtomicU64>,
    checkpoints: Mutex<Option<CheckpointStats>>,
    stopped: Mutex<Option<Stopped>>,
    /// `(source, partition, watermark)`, [`NO_WATERMARK`] until it has one.
    watermarks: Mutex<Vec<(String, usize, Arc<AtomicU64>)>>,
    /// Per-stage figures, when they are kept (see [`Metrics::set_stages`]).
    stages: Mutex<Option<Arc<crate::Stages>>>,
    /// The index of this process in its cluster.
    process: std::sync::atomic::AtomicUsize,
    /// The last state each other process reported, and when it came (see
    /// [`Metrics::set_peer`]).
    peers: Mutex<std::collections::BTreeMap<usize, (String, Instant)>>,
    /// While metrics are served: the sampled history of the figures.
    pub(crate) history: Mutex<Option<Arc<crate::serve::History>>>,
    /// Gauges that connectors keep (see [`Metrics::gauge`]).
    gauges: Mutex<Vec<Gauge>>,
    /// When the job's watermark moved to each value, oldest first (see
    /// [`Metrics::note_watermark`]).
    timeline: Mutex<std::collections::VecDeque<(u64, Instant)>>,
    /// Per sink: how long results took from the watermark passing their
    /// time to the sink.
    latencies: Mutex<Vec<(String, Arc<Latencies>)>>,
}

/// The upper bounds, in seconds, of the buckets of [`Latencies`].
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A histogram of latencies: counts per bucket of [`LATENCY_BUCKETS`] (and
/// one above), their sum and count.
#[derive(Debug, Default)]
pub struct Latencies {
    buckets: [AtomicU64; 17],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Latencies {
    /// Notes `n` results that took `took`.
    pub fn record(&self, took: Duration, n: u64) {
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[bucket].fetch_add(n, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns
            .fetch_add(ns.saturating_mul(n), Ordering::Relaxed);
        self.count.fetch_add(n, Ordering::Relaxed);
    }

    /// `(sum in seconds, count, count per bucket upper bound)`, the last
    /// bucket's bound `f64::MAX` (no bound). Counts per bucket, not
    /// cumulative: the text encoder adds them up.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS
            .iter()
            .copied()
            // The last bucket's bound: f64::MAX, which the encoder writes
            // as `+Inf`.
            .chain(std::iter::once(f64::MAX))
            .zip(&self.buckets)
            .map(|(bound, c)| (bound, c.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }

    /// The `q`-quantile (0 to 1), as the upper bound of the bucket it falls
    /// in (an estimate no better than the buckets); `None` before any.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let l = weir_engine::Latencies::default();
    /// l.record(Duration::from_millis(3), 99);
    /// l.record(Duration::from_millis(300), 1);
    /// assert_eq!(l.quantile(0.5), Some(0.005));
    /// assert_eq!(l.quantile(0.999), Some(0.5));
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let (_, count, buckets) = self.snapshot();
        if count == 0 {
            return None;
        }
        let rank = (q * count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        buckets
            .iter()
            .find(|(_, c)| {
                seen += c;
                seen >= rank
            })
            .map(|(bound, _)| *bound)
    }
}

/// A gauge a connector keeps: its metric name, help and labels, and its
/// value.
#[derive(Debug, Clone)]
pub struct Gauge {
    /// The metric's name, e.g. `weir_kafka_consumer_lag_records`.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// Its labels, e.g. `[("source", ...), ("partition", "2")]`.
    pub labels: Vec<(&'static str, String)>,
    /// Its value now.
    pub value: Arc<AtomicU64>,
}

/// The value of a watermark gauge whose partition has no watermark: none
/// yet, or it ended.
pub const NO_WATERMARK: u64 = u64::MAX;

/// How a job asked to stop (SIGINT, SIGTERM, a
/// [`StopHandle`](crate::StopHandle)) stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// At the checkpoint at this time, committed after the request: a run
    /// of the job resumes from there, nothing lost or repeated.
    AtCheckpoint(u64),
    /// Its sources stopped reading and what they had read went through to
    /// the sinks: the output is that of the input read until then, partial.
    Drained,
}

/// What a job with checkpoints did about them in this process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckpointStats {
    /// Checkpoints committed (by this process).
    pub taken: u64,
    /// The last one committed: its checkpoint time, its size in bytes, and
    /// how long committing it took (sealing its files, the manifest,
    /// publishing its output).
    pub last: Option<(u64, u64, Duration)>,
    /// The checkpoint the job was restored from, described.
    pub restored: Option<String>,
}

impl Metrics {
    /// Fresh counters for `job`, with the clock started now.
    pub fn new(job: impl Into<String>) -> Self {
        Metrics {
            job: job.into(),
            started: Instant::now(),
            counters: Mutex::new(Vec::new()),
            expected: AtomicU64::new(0),
            done: Arc::new(AtomicU64::new(0)),
            checkpoints: Mutex::new(None),
            stopped: Mutex::new(None),
            watermarks: Mutex::new(Vec::new()),
            stages: Mutex::new(None),
            process: Default::default(),
            peers: Mutex::new(Default::default()),
            history: Mutex::new(None),
            gauges: Mutex::new(Vec::new()),
            timeline: Mutex::new(Default::default()),
            latencies: Mutex::new(Vec::new()),
        }
    }

    /// Notes that the job takes checkpoints, restored from `restored` (a
    /// description) if it was.
    pub fn checkpointing(&self, restored: Option<String>) {
        let mut c = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        c.get_or_insert_with(Default::default).restored = restored;
    }

    /// Notes that the job stopped on request, and how.
    pub fn set_stopped(&self, stopped: Stopped) {
        *self.stopped.lock().unwrap_or_else(|p| p.into_inner()) = Some(stopped);
    }

    /// Notes a committed checkpoint: its time, size and commit duration.
    pub fn checkpoint_committed(&self, time: u64, bytes: u64, took: Duration) {
        let mut c = self.checkpoints.lock().unwrap_or_else(|p| p.into_inner());
        let stats = c.get_or_insert_with(Default::default);
        stats.taken += 1;
        stats.last = Some((time, bytes, took));
    }

    /// The counter of `kind` named `name`, created at zero the first time.
    pub fn counter(&self, kind: CounterKind, name: &str) -> Arc<AtomicU64> {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, c)) = counters.iter().find(|(k, n, _)| *k == kind && n == name) {
            return Arc::clone(c);
        }
        let c = Arc::new(AtomicU64::new(0));
        counters.push((kind, name.to_string(), Arc::clone(&c)));
        c
    }

    /// Keeps per-stage figures in `stages` (filled by [`log_stages`](crate::log_stages)
    /// on each worker): the metrics endpoint and the run summary show them.
    pub fn set_stages(&self, stages: Arc<crate::Stages>) {
        *self.stages.lock().unwrap_or_else(|p| p.into_inner()) = Some(stages);
    }

    /// Whether the job's metrics are served (`--metrics`): connectors keep
    /// gauges that cost something to measure (a broker round trip) only
    /// then.
    pub fn is_served(&self) -> bool {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The gauge `name` with `labels` (created at zero the first time),
    /// which a connector keeps up to date: Kafka's consumer lag per
    /// partition, RabbitMQ's unacknowledged deliveries per consumer. The
    /// endpoint shows it as a gauge with its labels.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
    ) -> Arc<AtomicU64> {
        let mut gauges = self.gauges.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = gauges.iter().find(|g| g.name == name && g.labels == labels) {
            return Arc::clone(&g.value);
        }
        let value = Arc::new(AtomicU64::new(0));
        gauges.push(Gauge {
            name,
            help,
            labels,
            value: Arc::clone(&value),
        });
        value
    }

    /// Every connector gauge, as it is now.
    pub fn gauges(&self) -> Vec<Gauge> {
        self.gauges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Notes that the job's watermark (the least of every source
    /// partition's, over the cluster) has moved to `watermark` now
    /// (`u64::MAX` once the sources are done). Kept for a minute or 100 000
    /// moves, whichever is less.
    pub fn note_watermark(&self, watermark: u64) {
        let mut line = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
        if line.back().is_some_and(|(w, _)| *w >= watermark) {
            return;
        }
        let now = Instant::now();
        line.push_back((watermark, now));
        while line.len() > 100_000
            || line
                .front()
                .is_some_and(|(_, at)| now.duration_since(*at) > Duration::from_secs(60))
        {
            line.pop_front();
        }
    }

    /// When the job's watermark first passed `time` (moved beyond it), if
    /// it has, as far as the last minute tells.
    pub fn watermark_passed(&self, time: u64) -> Option<Instant> {
        let line = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
        let first = line.partition_point(|(w, _)| *w <= time);
        line.get(first).map(|(_, at)| *at)
    }

    /// The latencies of the results reaching sink `sink`: from the
    /// watermark passing a result's time (for a window's results, the
    /// window's end: when it fired) to the sink.
    pub fn result_latency(&self, sink: &str) -> Arc<Latencies> {
        let mut all = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, l)) = all.iter().find(|(s, _)| s == sink) {
            return Arc::clone(l);
        }
        let l = Arc::new(Latencies::default());
        all.push((sink.to_string(), Arc::clone(&l)));
        l
    }

    /// Every sink's result latencies.
    pub fn result_latencies(&self) -> Vec<(String, Arc<Latencies>)> {
        self.latencies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Notes which process of its cluster this is.
    pub fn set_process(&self, process: usize) {
        self.process.store(process, Ordering::Relaxed);
    }

    /// The index of this process in its cluster.
    pub fn process(&self) -> usize {
        self.process.load(Ordering::Relaxed)
    }

    /// Keeps `state`, what process `process` reported of itself (the JSON of
    /// its [`process_state`](crate::process_state)): process 0's dashboard
    /// shows the cluster as the sum of its own state and its peers'.
    pub fn set_peer(&self, process: usize, state: &str) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.insert(process, (state.to_string(), Instant::now()));
    }

    /// The other processes' last reports: `(process, state, its age)`.
    pub fn peers(&self) -> Vec<(usize, String, Duration)> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .iter()
            .map(|(p, (state, at))| (*p, state.clone(), at.elapsed()))
            .collect()
    }

    /// The per-stage figures, if kept.
    pub fn stages(&self) -> Option<Arc<crate::Stages>> {
        self.stages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The watermark gauge of partition `partition` of source `source`
    /// (milliseconds since the Unix epoch, [`NO_WATERMARK`] while it has
    /// none), created the first time: its source operator stores each
    /// watermark it moves to.
    pub fn watermark(&self, source: &str, partition: usize) -> Arc<AtomicU64> {
        let mut marks = self.watermarks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, _, w)) = marks
            .iter()
            .find(|(s, p, _)| *p == partition && s == source)
        {
            return Arc::clone(w);
        }
        let w = Arc::new(AtomicU64::new(NO_WATERMARK));
        marks.push((source.to_string(), partition, Arc::clone(&w)));
        w
    }

    /// The watermarks of the source partitions of this process that have
    /// one, as `(source, partition, milliseconds since the Unix epoch)`.
    pub fn watermarks(&self) -> Vec<(String, usize, u64)> {
        let marks = self.watermarks.lock().unwrap_or_else(|p| p.into_inner());
        let mut now: Vec<_> = marks
            .iter()
            .map(|(s, p, w)| (s.clone(), *p, w.load(Ordering::Relaxed)))
            .filter(|(_, _, w)| *w != NO_WATERMARK)
            .collect();
        now.sort();
        now
    }

    /// Announces `units` more of work for bounded sources of this process (events
    /// for a generator, bytes for files); the progress bar measures the
    /// [`work_done`](Metrics::work_done) counter against the sum.
    pub fn expect_work(&self, units: u64) {
        self.expected.fetch_add(units, Ordering::Relaxed);
    }

    /// The counter bounded sources add their finished work units to.
    pub fn work_done(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.done)
    }

    /// Work done and work announced by bounded sources so far, as
    /// `(done, expected)`: equal once every bounded source has finished.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.expected.load(Ordering::Relaxed),
        )
    }

    /// The figures so far, with the per-stage table if stages are kept
    /// (queueing figures over the whole run so far).
    pub fn summary(&self) -> RunSummary {
        let mut summary = self.counts();
        summary.stages = self.stages().map_or_else(Vec::new, |stages| {
            let elapsed = self.started.elapsed();
            stages
                .names()
                .iter()
                .zip(stages.snapshot())
                .filter(|(_, now)| now.total() != crate::StageFigures::default())
                .map(|(name, now)| {
                    let from = crate::StageSnapshot {
                        workers: vec![Default::default(); now.workers.len()],
                        ..Default::default()
                    };
                    (
                        name.clone(),
                        crate::QueueFigures::between(&from, &now, elapsed),
                    )
                })
                .collect()
        });
        summary
    }

    /// The figures so far without the per-stage table: what the metrics
    /// endpoint reads at each scrape and sample (it has the stages' own
    /// figures).
    pub fn counts(&self) -> RunSummary {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let pick = |kind| {
            counters
                .iter()
                .filter(|(k, _, _)| *k == kind)
                .map(|(_, n, c)| (n.clone(), c.load(Ordering::Relaxed)))
                .collect()
        };
        RunSummary {
            job: self.job.clone(),
            elapsed: self.started.elapsed(),
            sources: pick(CounterKind::Source),
            sinks: pick(CounterKind::Sink),
            late: {
                let mut late: Vec<(String, u64)> = pick(CounterKind::Late);
                late.sort_by_key(|(name, _)| plan_order(name));
                late
            },
            stopped: *self.stopped.lock().unwrap_or_else(|p| p.into_inner()),
            skipped: pick(CounterKind::Skipped),
            dead_letters: pick(CounterKind::DeadLettered),
            checkpoints: self
                .checkpoints
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            stages: Vec::new(),
        }
    }
}

/// What a job did in this process: events read per source, records written
/// per sink, and the elapsed time. Its `Display` is the summary weir prints on
/// stderr when a job ends.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The job name.
    pub job: String,
    /// Wall-clock time from the start of the run.
    pub elapsed: Duration,
    /// `(source name, events read)`.
    pub sources: Vec<(String, u64)>,
    /// `(sink name, records written)`.
    pub sinks: Vec<(String, u64)>,
    /// `(window stage, late records)`.
    pub late: Vec<(String, u64)>,
    /// `(source name, records it could not read and skipped)`, for the
    /// sources that skip them.
    pub skipped: Vec<(String, u64)>,
    /// `(source name, records it could not read and sent to its dead
    /// letters)`, for the sources that do.
    pub dead_letters: Vec<(String, u64)>,
    /// With checkpoints: what was taken and restored.
    pub checkpoints: Option<CheckpointStats>,
    /// If the job was asked to stop before its end: how it stopped.
    pub stopped: Option<Stopped>,
    /// With per-stage figures (metrics served): each stage that did
    /// anything, with its queueing figures over the whole run.
    pub stages: Vec<(String, crate::QueueFigures)>,
}

impl RunSummary {
    /// Events read by all sources.
    pub fn events(&self) -> u64 {
        self.sources.iter().map(|(_, n)| n).sum()
    }

    /// Events read per second of elapsed time.
    pub fn events_per_sec(&self) -> f64 {
        self.events() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "weir: job `{}` done in {:.3} s, {} events, {:.0} events/s",
            self.job,
            self.elapsed.as_secs_f64(),
            self.events(),
            self.events_per_sec()
        )?;
        for (name, n) in &self.sources {
            writeln!(f, "  source {name}: {} read", counted(*n, "event"))?;
        }
        for (name, n) in &self.skipped {
            writeln!(f, "  source {name}: {} skipped", counted(*n, "bad record"))?;
        }
        for (name, n) in &self.dead_letters {
            writeln!(
                f,
                "  source {name}: {} sent to its dead letters",
                counted(*n, "bad record")
            )?;
        }
        for (name, n) in &self.sinks {
            writeln!(f, "  sink {name}: {} written", counted(*n, "record"))?;
        }
        for (name, n) in &self.late {
            writeln!(f, "  window {name}: {}", counted(*n, "late record"))?;
        }
        match self.stopped {
            Some(Stopped::AtCheckpoint(at)) => writeln!(
                f,
                "  stopped at the checkpoint at {at}: run the job again to resume from there"
            )?,
            Some(Stopped::Drained) => writeln!(
                f,
                "  stopped before the end of its input: the output holds the results of what was read until then, partial"
            )?,
            None => {}
        }
        if !self.stages.is_empty() {
            let width = self
                .stages
                .iter()
                .map(|(n, _)| n.chars().count())
                .max()
                .unwrap_or(0);
            writeln!(
                f,
                "  {:width$}  {:>12}  {:>12}  {:>5}  {:>8}  {:>9}",
                "stage", "λ (rec/s)", "μ (rec/s)", "ρ", "L (rec)", "W (ms)"
            )?;
            for (name, q) in &self.stages {
                writeln!(
                    f,
                    "  {name:width$}  {:>12.0}  {:>12.0}  {:>5.2}  {:>8}  {:>9.1}",
                    q.arrival_rate,
                    q.service_rate,
                    q.utilization,
                    q.backlog,
                    q.waiting * 1000.0
                )?;
            }
        }
        if let Some(c) = &self.checkpoints {
            if let Some(restored) = &c.restored {
                writeln!(f, "  restored from {restored}")?;
            }
            write!(f, "  checkpoints: {} committed", c.taken)?;
            if let Some((time, bytes, took)) = c.last {
                write!(
                    f,
                    "; the last at {time}, {bytes} bytes, committed in {:.1} ms",
                    took.as_secs_f64() * 1000.0
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// `n` and `what`, plural unless `n` is 1: "1 event", "2 events".
fn counted(n: u64, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}

/// The order stages are listed in: by their number in the plan (`#3 ...`),
/// names without one last, in the order they came.
fn plan_order(name: &str) -> u64 {
    name.strip_prefix('#')
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// A progress bar on stderr for bounded sources, drawn from a background
/// thread while the job runs. Shown only when stderr is a terminal and the
/// job is not quiet.
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing progress of `metrics`, unless `quiet` or stderr is not a terminal.
    pub fn start(metrics: Arc<Metrics>, quiet: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || draw(&metrics, &stop))
        });
        Progress { stop, thread }
    }

    /// Stops and clears the bar.
    pub fn finish(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

fn draw(metrics: &Metrics, stop: &AtomicBool) {
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {msg} [{bar:40}] {percent}% (eta {eta})",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    // The bar is made once the work is known: a bar of length 0 would
    // show 100 % first.
    let mut bar: Option<indicatif::ProgressBar> = None;
    while !stop.load(Ordering::Relaxed) {
        let expected = metrics.expected.load(Ordering::Relaxed);
        if expected > 0 {
            let bar = bar.get_or_insert_with(|| {
                let bar = indicatif::ProgressBar::new(expected).with_style(style.clone());
                bar.set_message(metrics.job.clone());
                bar
            });
            bar.set_length(expected);
            bar.set_position(metrics.done.load(Ordering::Relaxed).min(expected));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary says "1 record", not "1 records", and lists window
    /// stages in plan order whatever order they were built in.
    #[test]
    fn the_summary_counts_in_words_and_lists_stages_in_plan_order() {
        let m = Metrics::new("job");
        m.counter(CounterKind::Source, "csv(in.csv)")
            .store(1, Ordering::Relaxed);
        m.counter(CounterKind::Sink, "jsonl(out.jsonl)")
            .store(2, Ordering::Relaxed);
        m.counter(CounterKind::Late, "#5 tumbling(2000 ms)")
            .store(1, Ordering::Relaxed);
        m.counter(CounterKind::Late, "#3 sliding(10000 ms every 2000 ms)");
        let text = m.summary().to_string();
        assert!(
            text.contains("  source csv(in.csv): 1 event read\n"),
            "{text}"
        );
        assert!(
            text.contains("  sink jsonl(out.jsonl): 2 records written\n"),
            "{text}"
        );
        let three = text.find("window #3 sliding(10000 ms every 2000 ms): 0 late records");
        let five = text.find("window #5 tumbling(2000 ms): 1 late record\n");
        assert!(three.is_some() && five.is_some() && three < five, "{text}");
    }
}
