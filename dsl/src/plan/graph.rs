//! The pipeline graph: stages with their output ports, checks, `explain`,
//! and `run`.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use weir_engine::{
    Cluster, Metrics, MetricsServer, Progress, RunSummary, StageOf, Stages, Stopped, log_stages,
};
use weir_operators::Time;

use super::compile::{Ctx, NodeBuild};
use super::stop::StopState;
use crate::checkpoint::{Checkpointing, Hooks, Run};
use crate::error::{PlanError, RunError};
use crate::sources::AtEnd;

/// How long a process other than the committing one waits at the job's end
/// for the final checkpoint before its sources' readers are told the job
/// did not complete.
const FINAL_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Identifies a stage of a pipeline.
pub(crate) type NodeId = usize;

/// One output of a stage: port 0 is its main output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Port {
    pub(crate) node: NodeId,
    pub(crate) port: usize,
}

impl Port {
    /// The main output of `node`.
    pub(crate) fn main(node: NodeId) -> Port {
        Port { node, port: 0 }
    }
}

#[derive(Clone)]
struct Node {
    kind: &'static str,
    label: String,
    inputs: Vec<Port>,
    /// Names of the output ports; the main one (0) is unnamed.
    outputs: Vec<&'static str>,
    consumers: usize,
    build: Option<NodeBuild>,
    /// Why the stage cannot take part in checkpoints, if it cannot: what
    /// it would need.
    blocker: Option<String>,
    /// A source's hook, called once a checkpoint is complete.
    committed: Option<CommitHook>,
    /// A queue sink's publisher of its staged output.
    publisher: Option<SharedPublisher>,
}

/// A queue sink's [`Publisher`](crate::sinks::Publisher), shared by the
/// pipeline's runs (used on process 0's commit thread).
pub(crate) type SharedPublisher = Arc<Mutex<Box<dyn crate::sinks::Publisher>>>;

/// A source's [`Source::checkpoint_committed`](crate::sources::Source::checkpoint_committed),
/// erased.
pub(crate) type CommitHook =
    Arc<dyn Fn(&[(usize, u64)]) -> Result<(), crate::BoxError> + Send + Sync>;

struct Graph {
    name: String,
    nodes: Vec<Node>,
    /// Outputs that must be read by a later stage, and what reads them.
    must_read: Vec<(Port, &'static str)>,
    errors: Vec<PlanError>,
    checkpointing: Option<Checkpointing>,
    /// See [`Pipeline::update_interval`].
    update_interval: Duration,
}

/// The default [`Pipeline::update_interval`].
pub(crate) const UPDATE_INTERVAL: Duration = Duration::from_secs(1);

impl Graph {
    /// The sources with no stage that reads timely times downstream (the
    /// updating ones: `count`, `fold`, `join`, `reduce_updates`, which take
    /// times as versions): without event time they may send their batches
    /// at increasing times, for flow control.
    fn paceable_sources(&self) -> std::collections::HashSet<NodeId> {
        const UPDATING: [&str; 4] = ["count", "fold", "join", "reduce_updates"];
        let mut consumers: Vec<Vec<NodeId>> = vec![Vec::new(); self.nodes.len()];
        for (id, n) in self.nodes.iter().enumerate() {
            for i in &n.inputs {
                consumers[i.node].push(id);
            }
        }
        (0..self.nodes.len())
            .filter(|&n| self.nodes[n].kind == "source")
            .filter(|&source| {
                let mut seen = vec![false; self.nodes.len()];
                let mut todo = vec![source];
                while let Some(n) = todo.pop() {
                    if std::mem::replace(&mut seen[n], true) {
                        continue;
                    }
                    if UPDATING.contains(&self.nodes[n].kind) {
                        return false;
                    }
                    todo.extend(&consumers[n]);
                }
                true
            })
            .collect()
    }

    /// The sources upstream of `node`, each once.
    fn sources_of(&self, node: NodeId) -> Vec<NodeId> {
        let mut seen = vec![false; self.nodes.len()];
        let mut todo = vec![node];
        let mut sources = Vec::new();
        while let Some(n) = todo.pop() {
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            if self.nodes[n].kind == "source" {
                sources.push(n);
            }
            todo.extend(self.nodes[n].inputs.iter().map(|p| p.node));
        }
        sources
    }
}

/// A dataflow pipeline: sources, transformations and sinks, described as a
/// value and compiled onto timely on every worker when it runs.
///
/// Stages are added through [`Pipeline::source`] and the methods of
/// [`Stream`](crate::Stream); [`Stream::sink`](crate::Stream::sink) ends a stream and hands back the pipeline.
/// Mistakes are collected as they are made and reported by
/// [`run`](Pipeline::run) (and [`validate`](Pipeline::validate)), naming the
/// stage.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let out = Collect::new();
/// let job = Pipeline::new("squares")
///     .source(Generator::new(100, |i| i))
///     .map(|x: u64| x * x)
///     .filter(|x| x % 2 == 0)
///     .sink(out.clone());
/// job.run(Cluster::threads(2).quiet(true)).unwrap();
/// let mut got = out.take();
/// got.sort();
/// assert_eq!(got.len(), 50);
/// assert_eq!(got[..3], [0, 4, 16]);
/// ```
#[derive(Clone)]
pub struct Pipeline {
    graph: Arc<Mutex<Graph>>,
}

impl Pipeline {
    /// An empty pipeline called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Pipeline {
            graph: Arc::new(Mutex::new(Graph {
                name: name.into(),
                nodes: Vec::new(),
                must_read: Vec::new(),
                errors: Vec::new(),
                checkpointing: None,
                update_interval: UPDATE_INTERVAL,
            })),
        }
    }

    /// The pipeline's name.
    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn same(&self, other: &Pipeline) -> bool {
        Arc::ptr_eq(&self.graph, &other.graph)
    }

    /// Adds a stage with one output reading `inputs`, and returns its id.
    pub(crate) fn add_node(&self, kind: &'static str, label: String, inputs: &[Port]) -> NodeId {
        self.add_node_with_outputs(kind, label, inputs, &[""])
    }

    /// Adds a stage with the named output ports (the first is the main one,
    /// unnamed) reading `inputs`, and returns its id.
    pub(crate) fn add_node_with_outputs(
        &self,
        kind: &'static str,
        label: String,
        inputs: &[Port],
        outputs: &[&'static str],
    ) -> NodeId {
        let mut g = self.lock();
        for i in inputs {
            g.nodes[i.node].consumers += 1;
        }
        g.nodes.push(Node {
            kind,
            label,
            inputs: inputs.to_vec(),
            outputs: outputs.to_vec(),
            consumers: 0,
            build: None,
            blocker: None,
            committed: None,
            publisher: None,
        });
        g.nodes.len() - 1
    }

    /// Notes that output `port` must be read by a later stage (`what`
    /// says why), or the plan is not valid.
    pub(crate) fn must_read(&self, port: Port, what: &'static str) {
        let mut g = self.lock();
        if !g.must_read.iter().any(|(p, _)| *p == port) {
            g.must_read.push((port, what));
        }
    }

    /// Takes checkpoints as `checkpointing` says: the job's state, its
    /// sources' positions and its output, committed together about every
    /// interval; a run restores the newest complete checkpoint of the job in
    /// the directory, so a job killed at any moment and run again (on any
    /// number of workers and processes) writes exactly the output of a run
    /// without failure. Every source needs event time and must be able to
    /// resume ([`Source::resumable`](crate::Source::resumable)); every sink
    /// must stage its output ([`Sink::staged_output`](crate::Sink::staged_output):
    /// the file sinks do), which becomes visible when the checkpoint that
    /// covers it completes. Windows, interval joins and folds keep state
    /// that is checkpointed; `count`, `join` and `reduce` (differential
    /// dataflow) do not yet. [`run`](Pipeline::run) reports a [`PlanError`]
    /// naming a stage that cannot take part.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::prelude::*;
    /// use weir::Checkpointing;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let out = dir.path().join("counts.jsonl");
    /// let job = Pipeline::new("counts")
    ///     .source(Generator::new(10_000, |i| i))
    ///     .event_time(|i: &u64| *i, Watermark::ascending())
    ///     .key_by(|i| i % 3)
    ///     .window(Tumbling::of(Duration::from_secs(1)))
    ///     .count()
    ///     .sink(JsonLinesFile::to(&out))
    ///     .checkpoint(Checkpointing::to(dir.path().join("checkpoints")));
    /// job.run(Cluster::threads(2).quiet(true)).unwrap();
    /// assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 30);
    ///
    /// // Standard input cannot be read again after a restart.
    /// let err = Pipeline::new("stdin")
    ///     .source(Stdin::lines())
    ///     .sink(JsonLinesFile::to(&out))
    ///     .checkpoint(Checkpointing::to(dir.path().join("other")))
    ///     .validate()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("stdin"), "{err}");
    /// ```
    pub fn checkpoint(&self, checkpointing: Checkpointing) -> Pipeline {
        self.lock().checkpointing = Some(checkpointing);
        self.clone()
    }

    /// How often updating stages (`count`, `fold`, `join`,
    /// `reduce_updates`) emit what changed when they read a source without
    /// event time that may never end (standard input, a queue followed as
    /// it grows; see [`Source::bounded`](crate::sources::Source::bounded)):
    /// such a source sends its records at processing-time ticks of this
    /// length, and the stage emits once per tick, as Kafka Streams does at
    /// each commit interval. Default 1 s. Over a bounded source each key
    /// gets one final result when the input ends; with event time, results
    /// follow the watermark.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::prelude::*;
    ///
    /// // Over a bounded source, one final count per key whatever the interval.
    /// let out = Collect::new();
    /// Pipeline::new("counts")
    ///     .update_interval(Duration::from_millis(200))
    ///     .source(Iter::new(["a", "b", "a"].map(String::from)))
    ///     .key_by(|w: &String| w.clone())
    ///     .count()
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(2).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     Update { key: "a".to_string(), value: 2, diff: 1 },
    ///     Update { key: "b".to_string(), value: 1, diff: 1 },
    /// ]);
    /// ```
    pub fn update_interval(&self, every: Duration) -> Pipeline {
        self.lock().update_interval = every.max(Duration::from_millis(1));
        self.clone()
    }

    /// The checkpoint setting, if the pipeline takes checkpoints.
    pub fn checkpointing(&self) -> Option<Checkpointing> {
        self.lock().checkpointing.clone()
    }

    /// Sets the hook source `node` has called once a checkpoint is
    /// complete.
    pub(crate) fn set_commit_hook(&self, node: NodeId, hook: CommitHook) {
        self.lock().nodes[node].committed = Some(hook);
    }

    /// Sets the publisher of queue sink `node`'s staged output.
    pub(crate) fn set_publisher(&self, node: NodeId, publisher: Box<dyn crate::sinks::Publisher>) {
        self.lock().nodes[node].publisher = Some(Arc::new(Mutex::new(publisher)));
    }

    /// Notes why stage `node` cannot take part in checkpoints (`None`: it
    /// can).
    pub(crate) fn set_blocker(&self, node: NodeId, blocker: Option<String>) {
        self.lock().nodes[node].blocker = blocker;
    }

    /// Sets how `node` is built on a worker.
    pub(crate) fn set_build(&self, node: NodeId, build: NodeBuild) {
        self.lock().nodes[node].build = Some(build);
    }

    /// Adds a stage reading `left` of this pipeline and `right` of `other`.
    /// Streams of two pipelines cannot be combined: then the stage reads
    /// `left` only and the pipeline records [`PlanError::ForeignStream`],
    /// without touching `right`, which is a node id of another graph.
    pub(crate) fn add_combining_node(
        &self,
        kind: &'static str,
        label: String,
        left: Port,
        other: &Pipeline,
        right: Port,
    ) -> NodeId {
        if self.same(other) {
            return self.add_node(kind, label, &[left, right]);
        }
        let node = self.add_node(kind, label, &[left]);
        self.record_error(PlanError::ForeignStream {
            stage: self.describe(node),
            left: self.name(),
            right: other.name(),
        });
        node
    }

    pub(crate) fn set_label(&self, id: NodeId, label: String) {
        self.lock().nodes[id].label = label;
    }

    pub(crate) fn record_error(&self, error: PlanError) {
        self.lock().errors.push(error);
    }

    pub(crate) fn describe(&self, id: NodeId) -> String {
        describe(&self.lock().nodes, id)
    }

    /// Checks the pipeline without running it.
    ///
    /// # Errors
    ///
    /// The first [`PlanError`]: a stage with a bad parameter, streams of
    /// different pipelines combined, a stage whose output goes nowhere, or no
    /// sink at all.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let p = Pipeline::new("nothing");
    /// let _ = p.source(Iter::new(vec![1])).map(|x: i32| x + 1);
    /// let err = p.validate().unwrap_err();
    /// assert!(matches!(err, PlanError::NoSink { .. }));
    /// ```
    pub fn validate(&self) -> Result<(), PlanError> {
        let g = self.lock();
        if let Some(e) = g.errors.first() {
            return Err(e.clone());
        }
        if let Some(id) = (0..g.nodes.len()).find(|&i| g.nodes[i].build.is_none()) {
            let stage = describe(&g.nodes, id);
            return Err(match g.nodes[id].kind {
                "window" => PlanError::InvalidParameter {
                    stage,
                    field: "aggregate".into(),
                    expected: "an aggregation after `.window(..)` (count, sum, aggregate, ...)"
                        .into(),
                },
                _ => PlanError::InvalidParameter {
                    stage,
                    field: "build".into(),
                    expected: "a stage weir knows how to build (this is a bug of weir)".into(),
                },
            });
        }
        if !g.nodes.iter().any(|n| n.kind == "sink") {
            return Err(PlanError::NoSink {
                pipeline: g.name.clone(),
            });
        }
        let dangling = |n: &Node| n.consumers == 0 && n.kind != "sink";
        if let Some(id) = (0..g.nodes.len()).find(|&i| dangling(&g.nodes[i])) {
            return Err(PlanError::Dangling {
                stage: describe(&g.nodes, id),
            });
        }
        for (port, what) in &g.must_read {
            if !g.nodes.iter().any(|n| n.inputs.contains(port)) {
                return Err(PlanError::Dangling {
                    stage: format!("{} ({what})", port_text(&g.nodes, *port)),
                });
            }
        }
        if g.checkpointing.is_some() {
            for (id, n) in g.nodes.iter().enumerate() {
                if let Some(blocker) = &n.blocker {
                    return Err(PlanError::InvalidParameter {
                        stage: describe(&g.nodes, id),
                        field: "checkpoint".into(),
                        expected: blocker.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The plan as text: one line per stage, with the stages it reads.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let job = Pipeline::new("p")
    ///     .source(Generator::new(10, |i| i))
    ///     .map(|x: u64| x + 1)
    ///     .sink(Stdout::jsonl());
    /// let text = job.explain();
    /// assert!(text.contains("#0 source generator(10 events)"));
    /// assert!(text.contains("#1 map <- #0"));
    /// assert!(text.contains("#2 sink stdout(jsonl) <- #1"));
    /// ```
    pub fn explain(&self) -> String {
        let g = self.lock();
        let mut out = format!("pipeline `{}`\n", g.name);
        for (id, n) in g.nodes.iter().enumerate() {
            let _ = write!(out, "  #{id} {}", n.kind);
            if !n.label.is_empty() {
                let _ = write!(out, " {}", n.label);
            }
            if !n.inputs.is_empty() {
                let inputs: Vec<String> =
                    n.inputs.iter().map(|i| port_text(&g.nodes, *i)).collect();
                let _ = write!(out, " <- {}", inputs.join(", "));
            }
            out.push('\n');
        }
        out
    }

    /// The plan as a Mermaid flowchart.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let job = Pipeline::new("p").source(Iter::new(vec![1])).sink(Stdout::jsonl());
    /// let m = job.explain_mermaid();
    /// assert!(m.starts_with("flowchart LR"));
    /// assert!(m.contains("n0 --> n1"));
    /// ```
    pub fn explain_mermaid(&self) -> String {
        let g = self.lock();
        let mut out = String::from("flowchart LR\n");
        for (id, n) in g.nodes.iter().enumerate() {
            let text = node_text(n).replace('"', "'");
            let _ = writeln!(out, "  n{id}[\"{text}\"]");
        }
        for (id, n) in g.nodes.iter().enumerate() {
            for i in &n.inputs {
                let _ = writeln!(
                    out,
                    "  n{} --> n{id}{}",
                    i.node,
                    edge_label(&g.nodes, *i, "|", "|")
                );
            }
        }
        out
    }

    /// The plan as a Graphviz DOT digraph.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let job = Pipeline::new("p").source(Iter::new(vec![1])).sink(Stdout::jsonl());
    /// let dot = job.explain_dot();
    /// assert!(dot.starts_with("digraph \"p\""));
    /// assert!(dot.contains("n0 -> n1;"));
    /// ```
    pub fn explain_dot(&self) -> String {
        let g = self.lock();
        let mut out = format!(
            "digraph \"{}\" {{\n  rankdir=LR;\n",
            g.name.replace('"', "'")
        );
        for (id, n) in g.nodes.iter().enumerate() {
            let text = node_text(n).replace('"', "'");
            let _ = writeln!(out, "  n{id} [label=\"{text}\", shape=box];");
        }
        for (id, n) in g.nodes.iter().enumerate() {
            for i in &n.inputs {
                let label = edge_label(&g.nodes, *i, " [label=\"", "\"]");
                let _ = writeln!(out, "  n{} -> n{id}{label};", i.node);
            }
        }
        out.push_str("}\n");
        out
    }

    /// Compiles the pipeline on every worker of `cluster` and runs it until
    /// every source has ended and every sink has flushed.
    ///
    /// Prints a run summary (events read per source, records written per
    /// sink, elapsed time, events/s) on stderr unless the cluster is quiet,
    /// and a progress bar while bounded sources run if stderr is a terminal.
    ///
    /// # Errors
    ///
    /// [`RunError::Plan`] before anything runs if the pipeline is not valid
    /// (see [`validate`](Pipeline::validate)); [`RunError::Engine`] if the
    /// cluster cannot start or a worker fails, for example on a row that
    /// does not parse (see [`RunError::source_error`]).
    pub fn run(&self, cluster: Cluster) -> Result<RunSummary, RunError> {
        self.validate()?;
        let update_interval = self.lock().update_interval;
        let (name, builds, sinks, sources_of, sources, checkpointing, stages, hooks, paced) = {
            let g = self.lock();
            let paced = Arc::new(g.paceable_sources());
            let hooks = Hooks {
                committed: (0..g.nodes.len())
                    .filter_map(|i| Some((i, g.nodes[i].committed.clone()?)))
                    .collect(),
                publishers: (0..g.nodes.len())
                    .filter_map(|i| Some((i, g.nodes[i].publisher.clone()?)))
                    .collect(),
            };
            let sources: Vec<NodeId> = (0..g.nodes.len())
                .filter(|&i| g.nodes[i].kind == "source")
                .collect();
            let stages: Vec<String> = (0..g.nodes.len())
                .map(|i| {
                    let n = &g.nodes[i];
                    let inputs: Vec<String> =
                        n.inputs.iter().map(|p| port_text(&g.nodes, *p)).collect();
                    format!("#{i} {} <- {}", node_text(n), inputs.join(", "))
                })
                .collect();
            let builds: Vec<Option<NodeBuild>> = g.nodes.iter().map(|n| n.build.clone()).collect();
            let sinks: Vec<NodeId> = (0..g.nodes.len())
                .filter(|&i| g.nodes[i].kind == "sink")
                .collect();
            let sources_of = sinks.iter().map(|&s| (s, g.sources_of(s))).collect();
            (
                g.name.clone(),
                Arc::new(builds),
                sinks,
                Arc::new(sources_of),
                sources,
                g.checkpointing.clone(),
                stages,
                hooks,
                paced,
            )
        };
        let metrics = Arc::new(Metrics::new(name.clone()));
        // Served until the run returns; the address goes to stderr (port 0
        // picks one), quiet or not.
        let endpoint = match cluster.metrics_addr() {
            Some(addr) => {
                let server = MetricsServer::start(addr, Arc::clone(&metrics))?;
                eprintln!("weir: metrics at http://{}/metrics", server.local_addr());
                Some(server)
            }
            None => None,
        };
        metrics.set_process(cluster.process());
        let local_workers = cluster.workers();
        // With the endpoint, per-stage figures from timely's event log:
        // stage `i` is node `i`, the plan's edges between them.
        let stage_figures = endpoint.as_ref().map(|_| {
            let g = self.lock();
            let names = g.nodes.iter().enumerate();
            let names = names
                .map(|(i, n)| format!("#{i} {}", node_text(n)))
                .collect();
            let edges = (0..g.nodes.len())
                .flat_map(|i| g.nodes[i].inputs.iter().map(move |p| (p.node, i)))
                .collect();
            let first = cluster.process() * local_workers;
            let stages = Arc::new(Stages::new(names, first, local_workers).with_edges(edges));
            metrics.set_stages(Arc::clone(&stages));
            stages
        });
        let stop = Arc::new(StopState::new(
            cluster.stop_handles()?,
            checkpointing.is_none(),
        ));
        let checkpoints = match &checkpointing {
            Some(c) => Some(Arc::new(
                Run::open(c, &name, stages, &cluster, Arc::clone(&metrics), hooks)?
                    .with_stop(stop.process.clone()),
            )),
            None => None,
        };
        let stopping = Arc::clone(&stop);
        let progress = Progress::start(Arc::clone(&metrics), cluster.is_quiet());
        let shared = Arc::clone(&metrics);
        let at_end = AtEnd::default();
        let (ending, run) = (Arc::clone(&at_end), checkpoints.clone());
        let result = cluster.execute(move |worker, wctx| {
            let failure = wctx.failure().clone();
            let metrics = Arc::clone(&shared);
            let stage_of = stage_figures.as_ref().map(|stages| {
                let stage_of = StageOf::default();
                log_stages(worker, Arc::clone(stages), std::rc::Rc::clone(&stage_of));
                stage_of
            });
            worker.dataflow_named::<Time, _, _>(&name, |scope| {
                let mut ctx = Ctx::new(
                    scope,
                    failure,
                    metrics,
                    Arc::clone(&builds),
                    Arc::clone(&sources_of),
                    Arc::clone(&ending),
                );
                ctx.stop = Some(Arc::clone(&stopping));
                ctx.paceable = Arc::clone(&paced);
                ctx.update_interval = update_interval;
                ctx.stage_of = stage_of;
                if let Some(run) = &checkpoints {
                    ctx.start_checkpoints(Arc::clone(run), &sources)?;
                }
                sinks.iter().try_for_each(|&sink| ctx.build(sink))?;
                ctx.share_metrics(local_workers);
                ctx.watch_stop();
                ctx.finish_checkpoints()
            })
        });
        progress.finish();
        // A stop: with checkpoints the run ended at the checkpoint it
        // stopped at; without, it drained.
        let stopped = match (stop.process.is_requested(), &run, &result) {
            (true, Some(run), Ok(_)) => run
                .stopped()
                .or_else(|| run.stopped_watch()())
                .map(Stopped::AtCheckpoint),
            (true, None, Ok(_)) => Some(Stopped::Drained),
            _ => None,
        };
        let ends = std::mem::take(&mut *at_end.lock().unwrap_or_else(|p| p.into_inner()));
        if !ends.is_empty() {
            // What a job stopped at a checkpoint read after it is not done
            // with: its queue messages go back.
            let completed = result.is_ok()
                && !matches!(stopped, Some(Stopped::AtCheckpoint(_)))
                && run.as_ref().is_none_or(|run| run.await_final(FINAL_WAIT));
            for end in ends {
                end(completed);
            }
        }
        result?;
        if let Some(stopped) = stopped {
            metrics.set_stopped(stopped);
        }
        let summary = metrics.summary();
        if !cluster.is_quiet() {
            if cluster.processes() > 1 {
                eprint!(
                    "[process {} of {}] ",
                    cluster.process(),
                    cluster.processes()
                );
            }
            eprint!("{summary}");
        }
        match stopped {
            Some(Stopped::AtCheckpoint(at)) => {
                if cluster.is_quiet() {
                    eprintln!(
                        "weir: stopped at the checkpoint at {at}: run the job again to resume from there"
                    );
                }
                Ok(summary)
            }
            Some(_) => Err(RunError::Stopped {
                signal: stop.signal(),
                summary: Box::new(summary),
            }),
            None => Ok(summary),
        }
    }
}

fn node_text(n: &Node) -> String {
    if n.label.is_empty() {
        n.kind.to_string()
    } else {
        format!("{} {}", n.kind, n.label)
    }
}

fn describe(nodes: &[Node], id: NodeId) -> String {
    format!("#{id} `{}`", node_text(&nodes[id]))
}

/// `#id`, or `#id.name` for a port other than the main one.
fn port_text(nodes: &[Node], port: Port) -> String {
    match nodes[port.node].outputs.get(port.port) {
        Some(name) if !name.is_empty() => format!("#{}.{name}", port.node),
        _ => format!("#{}", port.node),
    }
}

/// The name of a port other than the main one, between `open` and `close`.
fn edge_label(nodes: &[Node], port: Port, open: &str, close: &str) -> String {
    match nodes[port.node].outputs.get(port.port) {
        Some(name) if !name.is_empty() => format!("{open}{name}{close}"),
        _ => String::new(),
    }
}
