//! The pipeline graph, its compilation onto timely, and `explain`.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::sync::{Arc, Mutex, MutexGuard};

use timely::dataflow::Scope;
use weir_engine::{Cluster, Failure, Metrics, Progress, RunSummary};
use weir_operators::{Time, VecStream};

use crate::error::{BoxError, PlanError, RunError};
use crate::{Data, Stream};

/// Identifies a stage of a pipeline.
pub(crate) type NodeId = usize;

/// A stage's timely stream: each record with its event time (0 until
/// `event_time` assigns one), batched in vectors, timestamped by watermark.
pub(crate) type Timed<'s, T> = VecStream<'s, (Time, T)>;

/// Builds a stage's timely stream on one worker.
pub(crate) type Builder<T> =
    Arc<dyn for<'s> Fn(&mut Ctx<'s>) -> Result<Timed<'s, T>, BoxError> + Send + Sync>;

/// Builds a sink on one worker.
type SinkBuilder = Arc<dyn for<'s> Fn(&mut Ctx<'s>) -> Result<(), BoxError> + Send + Sync>;

/// Wraps a closure as a [`Builder`], fixing its higher-ranked signature.
pub(crate) fn builder<T, F>(f: F) -> Builder<T>
where
    F: for<'s> Fn(&mut Ctx<'s>) -> Result<Timed<'s, T>, BoxError> + Send + Sync + 'static,
{
    Arc::new(f)
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: &'static str,
    pub(crate) label: String,
    pub(crate) inputs: Vec<NodeId>,
    pub(crate) consumers: usize,
}

/// A check run by `validate`, for mistakes that show only once the whole
/// pipeline is described (a window never aggregated).
type Check = Arc<dyn Fn() -> Option<PlanError> + Send + Sync>;

struct Graph {
    name: String,
    nodes: Vec<Node>,
    sinks: Vec<SinkBuilder>,
    errors: Vec<PlanError>,
    checks: Vec<Check>,
}

/// A dataflow pipeline: sources, transformations and sinks, described as a
/// value and compiled onto timely on every worker when it runs.
///
/// Stages are added through [`Pipeline::source`] and the methods of
/// [`Stream`]; [`Stream::sink`] ends a stream and hands back the pipeline.
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
                sinks: Vec::new(),
                errors: Vec::new(),
                checks: Vec::new(),
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

    /// Adds a stage reading `inputs`, and returns its id.
    pub(crate) fn add_node(&self, kind: &'static str, label: String, inputs: &[NodeId]) -> NodeId {
        let mut g = self.lock();
        for &i in inputs {
            g.nodes[i].consumers += 1;
        }
        g.nodes.push(Node {
            kind,
            label,
            inputs: inputs.to_vec(),
            consumers: 0,
        });
        g.nodes.len() - 1
    }

    /// Adds a stage reading `left` of this pipeline and `right` of `other`.
    /// Streams of two pipelines cannot be combined: then the stage reads
    /// `left` only and the pipeline records [`PlanError::ForeignStream`],
    /// without touching `right`, which is a node id of another graph.
    pub(crate) fn add_combining_node(
        &self,
        kind: &'static str,
        label: String,
        left: NodeId,
        other: &Pipeline,
        right: NodeId,
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

    pub(crate) fn add_sink(&self, sink: SinkBuilder) {
        self.lock().sinks.push(sink);
    }

    pub(crate) fn record_error(&self, error: PlanError) {
        self.lock().errors.push(error);
    }

    pub(crate) fn add_check(&self, check: Check) {
        self.lock().checks.push(check);
    }

    pub(crate) fn describe(&self, id: NodeId) -> String {
        describe(&self.lock().nodes, id)
    }

    /// Starts a stream from `source`.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let p = Pipeline::new("p");
    /// let numbers = p.source(Iter::new(vec![1, 2, 3]));
    /// let out = Collect::new();
    /// numbers.sink(out.clone()).run(Cluster::threads(1).quiet(true)).unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![1, 2, 3]);
    /// ```
    pub fn source<S: crate::Source>(&self, source: S) -> Stream<S::Item> {
        crate::sources::install(self, source)
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
        if let Some(e) = g.checks.iter().find_map(|check| check()) {
            return Err(e);
        }
        if g.sinks.is_empty() {
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
                let inputs: Vec<String> = n.inputs.iter().map(|i| format!("#{i}")).collect();
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
                let _ = writeln!(out, "  n{i} --> n{id}");
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
                let _ = writeln!(out, "  n{i} -> n{id};");
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
        let (name, sinks) = {
            let g = self.lock();
            (g.name.clone(), g.sinks.clone())
        };
        let metrics = Arc::new(Metrics::new(name.clone()));
        let progress = Progress::start(Arc::clone(&metrics), cluster.is_quiet());
        let shared = Arc::clone(&metrics);
        let result = cluster.execute(move |worker, wctx| {
            let failure = wctx.failure().clone();
            let metrics = Arc::clone(&shared);
            worker.dataflow_named::<Time, _, _>(&name, |scope| {
                let mut ctx = Ctx::new(scope, failure, metrics);
                sinks.iter().try_for_each(|sink| sink(&mut ctx))
            })
        });
        progress.finish();
        result?;
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
        Ok(summary)
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

/// Per-worker compilation state: the scope, the worker's failure slot and
/// metrics, and the timely stream already built for each stage, so that a
/// stage read by several consumers is built once.
pub struct Ctx<'s> {
    pub(crate) scope: Scope<'s, Time>,
    pub(crate) failure: Failure,
    pub(crate) metrics: Arc<Metrics>,
    built: HashMap<NodeId, Box<dyn Any>>,
    _scope: PhantomData<&'s ()>,
}

impl<'s> Ctx<'s> {
    fn new(scope: Scope<'s, Time>, failure: Failure, metrics: Arc<Metrics>) -> Self {
        Ctx {
            scope,
            failure,
            metrics,
            built: HashMap::new(),
            _scope: PhantomData,
        }
    }

    /// Records `stream` as the built stream of stage `node` (a second output
    /// of an operator built for another stage).
    pub(crate) fn provide<T: Data>(&mut self, node: NodeId, stream: Timed<'s, T>) {
        self.built.insert(node, Box::new(Erased::new(stream)));
    }

    /// The stream recorded for `node` by [`provide`](Ctx::provide), if any.
    pub(crate) fn provided<T: Data>(&self, node: NodeId) -> Option<Timed<'s, T>> {
        let erased = self.built.get(&node)?.downcast_ref::<Erased<T>>()?;
        Some(erased.get())
    }

    /// The timely stream of stage `node`, built by `build` on first use.
    pub(crate) fn stream<T: Data>(
        &mut self,
        node: NodeId,
        build: &Builder<T>,
    ) -> Result<Timed<'s, T>, BoxError> {
        if let Some(built) = self.built.get(&node) {
            let erased = built
                .downcast_ref::<Erased<T>>()
                .expect("a stage id always maps to streams of one type");
            return Ok(erased.get());
        }
        let built = build(self)?;
        self.built
            .insert(node, Box::new(Erased::new(built.clone())));
        Ok(built)
    }
}

/// A timely stream with its scope lifetime erased, so that it can be kept in
/// the type-indexed map of [`Ctx`].
///
/// Sound because an `Erased` lives only inside the `Ctx<'s>` that made it
/// (the map is private, and the `Ctx` is dropped inside the dataflow closure,
/// while `'s` holds), and is only turned back into a stream of that same
/// `'s` by [`Ctx::stream`].
struct Erased<T: 'static>(Timed<'static, T>);

impl<T: Clone + 'static> Erased<T> {
    fn new(stream: Timed<'_, T>) -> Self {
        let stream = ManuallyDrop::new(stream);
        // SAFETY: only the lifetime changes (same type, same layout), and the
        // original is not dropped; see above for why the erased lifetime is
        // never outlived.
        Erased(unsafe {
            std::ptr::read(&*stream as *const Timed<'_, T> as *const Timed<'static, T>)
        })
    }

    fn get<'s>(&self) -> Timed<'s, T> {
        // `'static` outlives `'s`: shortening is a covariant coercion.
        let s: &Timed<'s, T> = &self.0;
        s.clone()
    }
}
