//! Per-stage figures of a running job, from timely's own event log.
//!
//! timely logs, on each worker, the operators it builds (`Operates`), the
//! channels between them (`Channels`), every batch pushed into and pulled
//! out of a channel with its record count (`Messages`), and when each
//! operator is scheduled and for how long (`Schedule`). [`log_stages`]
//! registers a logger on a worker that folds those events into
//! [`Stages`]: per stage of the plan (the operators its build created, see
//! [`StageOf`]) and per worker, the records that came in from other stages,
//! the records it sent on, its busy time, and the records sent to it and
//! not yet taken by it (its backlog). Messages between two operators of one
//! stage are its own business and not counted. The logger runs only when
//! metrics are served: without `--metrics` nothing is logged.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};
use timely::worker::Worker;

/// The counters of one stage on one worker, on a cache line pair of their
/// own (workers publish to their own counters, never to a line another
/// worker writes).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Counters {
    /// Records that came in from other stages (pulled from its input channels).
    records_in: AtomicU64,
    /// Records it sent to other stages.
    records_out: AtomicU64,
    /// Nanoseconds its operators were scheduled.
    busy_ns: AtomicU64,
    /// Records sent to it by workers of this process (counted where sent).
    sent_to: AtomicU64,
    /// Records it took from workers of this process (counted where taken).
    taken: AtomicU64,
    /// Records sent to it on workers of other processes (counted where sent).
    sent_away: AtomicU64,
    /// Records it took from workers of other processes.
    taken_from_afar: AtomicU64,
}

/// The per-stage counters of a job's workers in one process.
///
/// # Examples
///
/// ```
/// use weir_engine::Stages;
///
/// let stages = Stages::new(vec!["#0 source".into(), "#1 sink".into()], 0, 2);
/// assert_eq!(stages.names(), ["#0 source", "#1 sink"]);
/// let now = stages.snapshot();
/// assert_eq!(now.len(), 2);
/// assert_eq!(now[1].total().records_in, 0);
/// ```
#[derive(Debug)]
pub struct Stages {
    names: Vec<String>,
    /// The global index of this process's first worker.
    first: usize,
    workers: usize,
    /// `workers × stages` counters, worker-major.
    counters: Vec<Counters>,
    /// The plan's edges, `(from stage, to stage)`.
    edges: Vec<(usize, usize)>,
    /// Per `from × stages + to`: whether records went between workers
    /// from an operator of stage `from` to one of stage `to`.
    exchanged: Vec<std::sync::atomic::AtomicBool>,
}

/// One stage's figures at one moment, on one worker or summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageFigures {
    /// Records that came in from other stages.
    pub records_in: u64,
    /// Records sent on to other stages.
    pub records_out: u64,
    /// Time its operators were scheduled.
    pub busy: Duration,
}

/// A stage's figures at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageSnapshot {
    /// Figures per worker of this process, in worker order.
    pub workers: Vec<StageFigures>,
    /// Records sent to the stage by workers of this process and not yet
    /// taken by it: waiting in its input channels.
    pub backlog: u64,
    /// Records this process sent to the stage on other processes.
    pub sent_away: u64,
    /// Records the stage took here from other processes.
    pub taken_from_afar: u64,
}

impl StageSnapshot {
    /// The figures summed over the workers of this process.
    pub fn total(&self) -> StageFigures {
        self.workers
            .iter()
            .fold(StageFigures::default(), |sum, w| StageFigures {
                records_in: sum.records_in + w.records_in,
                records_out: sum.records_out + w.records_out,
                busy: sum.busy + w.busy,
            })
    }
}

impl Stages {
    /// Zeroed counters for the stages `names` (in plan order: stage `i` is
    /// node `i` of the plan) on the `workers` workers of this process, the
    /// first of which is worker `first` of the cluster.
    pub fn new(names: Vec<String>, first: usize, workers: usize) -> Self {
        let counters = (0..names.len() * workers)
            .map(|_| Counters::default())
            .collect();
        let n = names.len();
        Stages {
            names,
            first,
            workers,
            counters,
            edges: Vec::new(),
            exchanged: (0..n * n).map(|_| Default::default()).collect(),
        }
    }

    /// The same stages, with the plan's edges `(from stage, to stage)`.
    pub fn with_edges(mut self, edges: Vec<(usize, usize)>) -> Self {
        self.edges = edges;
        self
    }

    /// The plan's edges with, for each, whether records went between
    /// workers on the way so far (an exchange): on the edge itself, inside
    /// the stage it leads to, or from a stage further up through stages
    /// without operators of their own (`event_time` is part of its
    /// source's operator): `(from, to, exchanged)`.
    pub fn edges(&self) -> Vec<(usize, usize, bool)> {
        let n = self.names.len();
        let crossed = |a: usize, b: usize| {
            self.exchanged
                .get(a * n + b)
                .is_some_and(|x| x.load(Ordering::Relaxed))
        };
        let direct = |a: usize, b: usize| self.edges.contains(&(a, b));
        self.edges
            .iter()
            .map(|&(from, to)| {
                let through = (0..n).any(|x| x != to && !direct(x, to) && crossed(x, to));
                (from, to, crossed(from, to) || crossed(to, to) || through)
            })
            .collect()
    }

    /// The global index of this process's first worker.
    pub fn first_worker(&self) -> usize {
        self.first
    }

    /// The stage names, in plan order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The counters of `stage` on local worker `worker`, if both exist.
    fn at(&self, worker: usize, stage: usize) -> Option<&Counters> {
        (stage < self.names.len())
            .then(|| self.counters.get(worker * self.names.len() + stage))
            .flatten()
    }

    /// Every stage's figures now, in plan order.
    pub fn snapshot(&self) -> Vec<StageSnapshot> {
        (0..self.names.len())
            .map(|stage| {
                let counters: Vec<&Counters> = (0..self.workers)
                    .filter_map(|w| self.at(w, stage))
                    .collect();
                // A record is counted sent on one worker and taken on
                // another: only the sums make a backlog. Taken is read
                // first, so a record in between is not counted taken
                // without being counted sent.
                let taken: u64 = counters
                    .iter()
                    .map(|c| c.taken.load(Ordering::Relaxed))
                    .sum();
                let sent: u64 = counters
                    .iter()
                    .map(|c| c.sent_to.load(Ordering::Relaxed))
                    .sum();
                StageSnapshot {
                    workers: counters
                        .iter()
                        .map(|c| StageFigures {
                            records_in: c.records_in.load(Ordering::Relaxed),
                            records_out: c.records_out.load(Ordering::Relaxed),
                            busy: Duration::from_nanos(c.busy_ns.load(Ordering::Relaxed)),
                        })
                        .collect(),
                    backlog: sent.saturating_sub(taken),
                    sent_away: counters
                        .iter()
                        .map(|c| c.sent_away.load(Ordering::Relaxed))
                        .sum(),
                    taken_from_afar: counters
                        .iter()
                        .map(|c| c.taken_from_afar.load(Ordering::Relaxed))
                        .sum(),
                }
            })
            .collect()
    }
}

/// The queueing figures of one stage over a span of time: records arriving
/// per second (λ), records it handles per second of being busy on all its
/// workers (μ), utilisation ρ = λ / μ (the share of its workers' time it is
/// busy), the backlog L waiting in its input channels, and the waiting
/// time W = L / λ (Little's law).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueFigures {
    /// λ, records per second.
    pub arrival_rate: f64,
    /// μ, records per second.
    pub service_rate: f64,
    /// ρ = λ / μ.
    pub utilization: f64,
    /// L, records.
    pub backlog: u64,
    /// W = L / λ, seconds.
    pub waiting: f64,
}

impl QueueFigures {
    /// The figures of a stage between `before` and `now`, `span` apart.
    /// Its arrivals are the records that came in from other stages, or, for
    /// a stage nothing comes into (a source), the records it sent on.
    pub fn between(before: &StageSnapshot, now: &StageSnapshot, span: Duration) -> QueueFigures {
        let (b, n) = (before.total(), now.total());
        let arrivals = match n.records_in {
            0 => n.records_out.saturating_sub(b.records_out),
            _ => n.records_in.saturating_sub(b.records_in),
        } as f64;
        let busy = n.busy.saturating_sub(b.busy).as_secs_f64();
        let workers = now.workers.len().max(1) as f64;
        let span = span.as_secs_f64();
        let arrival_rate = if span > 0.0 { arrivals / span } else { 0.0 };
        let service_rate = if busy > 0.0 {
            arrivals / busy * workers
        } else {
            0.0
        };
        let utilization = if span > 0.0 {
            busy / (span * workers)
        } else {
            0.0
        };
        let waiting = if arrival_rate > 0.0 {
            now.backlog as f64 / arrival_rate
        } else {
            0.0
        };
        QueueFigures {
            arrival_rate,
            service_rate,
            utilization,
            backlog: now.backlog,
            waiting,
        }
    }
}

/// Which stage each timely operator of one worker belongs to, by operator
/// id: filled by the plan's compilation as it builds each stage (the
/// operators whose ids a stage's build allocated), read by the logger.
pub type StageOf = Rc<RefCell<Vec<Option<usize>>>>;

/// What the logger of one worker knows of the dataflow.
struct Log {
    stages: Arc<Stages>,
    stage_of: StageOf,
    worker: usize,
    /// Global worker indices of this process: `first..first + workers`.
    local: std::ops::Range<usize>,
    /// Operator id by address.
    ids: HashMap<Vec<usize>, usize>,
    /// Operator ids that are children of a dataflow (address of length 2):
    /// the ones whose busy time is counted (a nested operator's time is
    /// inside its region's).
    top: Vec<bool>,
    /// Per channel id: the addresses of its source and target operators
    /// (timely logs operators once their dataflow is built, after its
    /// channels), then, from its first message, their stages.
    channels: Vec<Option<Channel>>,
    /// Per operator id: when its current schedule started.
    started: Vec<Option<Duration>>,
    /// The stage pairs this worker has seen records cross workers on.
    exchanged: Vec<bool>,
    /// Per stage: what this worker counted since it last published (the
    /// shared counters are added to at most every [`PUBLISH_EVERY`], and
    /// when the logger closes).
    pending: Vec<Pending>,
    /// When (in the worker's log time) it last published.
    published_at: Duration,
}

/// How often a worker's logger adds what it counted to the shared counters
/// at most: timely hands the logger a batch of events at every step of the
/// worker, often a few events at a time, and the sampler reads the counters
/// once a second.
const PUBLISH_EVERY: Duration = Duration::from_millis(10);

impl Drop for Log {
    /// What was counted since the last publish is not lost.
    fn drop(&mut self) {
        self.publish();
    }
}

/// Counts not yet added to a stage's [`Counters`].
#[derive(Debug, Clone, Copy, Default)]
struct Pending {
    records_in: u64,
    records_out: u64,
    busy_ns: u64,
    sent_to: u64,
    taken: u64,
    sent_away: u64,
    taken_from_afar: u64,
}

impl Log {
    /// Adds what this worker counted to its shared counters.
    fn publish(&mut self) {
        for (stage, p) in self.pending.iter_mut().enumerate() {
            let Some(c) = self.stages.at(self.worker, stage) else {
                continue;
            };
            for (counter, n) in [
                (&c.records_in, p.records_in),
                (&c.records_out, p.records_out),
                (&c.busy_ns, p.busy_ns),
                (&c.sent_to, p.sent_to),
                (&c.taken, p.taken),
                (&c.sent_away, p.sent_away),
                (&c.taken_from_afar, p.taken_from_afar),
            ] {
                if n > 0 {
                    counter.fetch_add(n, Ordering::Relaxed);
                }
            }
            *p = Pending::default();
        }
    }

    fn stage(&self, op: Option<usize>) -> Option<usize> {
        self.stage_of.borrow().get(op?).copied().flatten()
    }

    fn event(&mut self, at: Duration, event: &TimelyEvent) {
        match event {
            TimelyEvent::Operates(op) => {
                self.ids.insert(op.addr.clone(), op.id);
                grow(&mut self.top, op.id, false);
                self.top[op.id] = op.addr.len() == 2;
            }
            TimelyEvent::Channels(ch) => {
                let end = |index: usize| {
                    let mut addr = ch.scope_addr.clone();
                    addr.push(index);
                    addr
                };
                grow(&mut self.channels, ch.id, None);
                self.channels[ch.id] = Some(Channel::Addresses(end(ch.source.0), end(ch.target.0)));
            }
            TimelyEvent::Schedule(s) => {
                grow(&mut self.started, s.id, None);
                match s.start_stop {
                    StartStop::Start => self.started[s.id] = Some(at),
                    StartStop::Stop => {
                        let Some(start) = self.started[s.id].take() else {
                            return;
                        };
                        if !self.top.get(s.id).copied().unwrap_or(false) {
                            return;
                        }
                        if let Some(p) = self
                            .stage(Some(s.id))
                            .and_then(|st| self.pending.get_mut(st))
                        {
                            p.busy_ns += at.saturating_sub(start).as_nanos() as u64;
                        }
                    }
                }
            }
            TimelyEvent::Messages(m) => {
                let (from, to) = match self.channels.get(m.channel) {
                    Some(Some(Channel::Stages(from, to))) => (*from, *to),
                    Some(Some(Channel::Addresses(from, to))) => {
                        let from = self.stage(self.ids.get(from).copied());
                        let to = self.stage(self.ids.get(to).copied());
                        self.channels[m.channel] = Some(Channel::Stages(from, to));
                        (from, to)
                    }
                    _ => return,
                };
                // Only records from one stage to another: not within a
                // stage, nor to or from weir's own operators (stop watch,
                // checkpoints), which belong to no stage.
                let (Some(from), Some(to)) = (from, to) else {
                    return;
                };
                if m.is_send && m.source != m.target {
                    let pair = from * self.stages.names.len() + to;
                    grow(&mut self.exchanged, pair, false);
                    if !std::mem::replace(&mut self.exchanged[pair], true)
                        && let Some(x) = self.stages.exchanged.get(pair)
                    {
                        x.store(true, Ordering::Relaxed);
                    }
                }
                if from == to {
                    return;
                }
                let n = m.record_count.max(0) as u64;
                let local = self
                    .local
                    .contains(if m.is_send { &m.target } else { &m.source });
                if m.is_send {
                    if let Some(p) = self.pending.get_mut(from) {
                        p.records_out += n;
                    }
                    if let Some(p) = self.pending.get_mut(to) {
                        match local {
                            true => p.sent_to += n,
                            false => p.sent_away += n,
                        }
                    }
                } else if let Some(p) = self.pending.get_mut(to) {
                    p.records_in += n;
                    match local {
                        true => p.taken += n,
                        false => p.taken_from_afar += n,
                    }
                }
            }
            _ => {}
        }
    }
}

/// A channel between two operators, by address until its stages are known.
#[derive(Clone)]
enum Channel {
    Addresses(Vec<usize>, Vec<usize>),
    Stages(Option<usize>, Option<usize>),
}

/// Makes `v[i]` exist, filling with `fill`.
fn grow<T: Clone>(v: &mut Vec<T>, i: usize, fill: T) {
    if v.len() <= i {
        v.resize(i + 1, fill);
    }
}

/// Registers, on `worker`, the logger that keeps `stages` up to date;
/// `stage_of` says which stage each operator belongs to. Call before
/// building the dataflow: what is built before it is not seen.
pub fn log_stages(worker: &mut Worker, stages: Arc<Stages>, stage_of: StageOf) {
    let local = stages.first..stages.first + stages.workers;
    let mut log = Log {
        worker: worker.index().saturating_sub(stages.first),
        pending: vec![Pending::default(); stages.names.len()],
        exchanged: Vec::new(),
        stages,
        stage_of,
        local,
        ids: HashMap::new(),
        top: Vec::new(),
        channels: Vec::new(),
        started: Vec::new(),
        published_at: Duration::ZERO,
    };
    if let Some(mut registry) = worker.log_register() {
        registry.insert::<TimelyEventBuilder, _>("timely", move |time, data| match data {
            Some(events) => {
                for (at, event) in events.iter() {
                    log.event(*at, event);
                }
                if time.saturating_sub(log.published_at) >= PUBLISH_EVERY {
                    log.publish();
                    log.published_at = *time;
                }
            }
            None => log.publish(),
        });
    }
}
