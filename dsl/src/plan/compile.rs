//! Compiling a pipeline on one worker: [`Ctx`] builds each node once, on
//! first use, and keeps the stream of each of its ports.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use timely::dataflow::operators::Probe;
use timely::dataflow::{ProbeHandle, Scope};
use weir_engine::{Failure, Metrics};
use weir_operators::{Time, VecStream};

use super::erased::Erased;
use super::{NodeId, Port};
use crate::error::BoxError;
use crate::Data;

/// A stage's timely stream: each record with its event time (0 until
/// `event_time` assigns one), batched in vectors, timestamped by watermark.
pub(crate) type Timed<'s, T> = VecStream<'s, (Time, T)>;

/// Builds one stream on one worker.
pub(crate) type Builder<T> =
    Arc<dyn for<'s> Fn(&mut Ctx<'s>) -> Result<Timed<'s, T>, BoxError> + Send + Sync>;

/// Builds a node on one worker: its operators, and a stream for each of its
/// ports, given to [`Ctx::provide`].
pub(crate) type NodeBuild = Arc<dyn for<'s> Fn(&mut Ctx<'s>) -> Result<(), BoxError> + Send + Sync>;

/// Wraps a closure as a [`Builder`], fixing its higher-ranked signature.
pub(crate) fn builder<T, F>(f: F) -> Builder<T>
where
    F: for<'s> Fn(&mut Ctx<'s>) -> Result<Timed<'s, T>, BoxError> + Send + Sync + 'static,
{
    Arc::new(f)
}

/// Per-worker compilation state: the scope, the worker's failure slot and
/// metrics, the build of every node, and the stream already built for each
/// port, so that a node read by several consumers is built once.
pub struct Ctx<'s> {
    pub(crate) scope: Scope<'s, Time>,
    pub(crate) failure: Failure,
    pub(crate) metrics: Arc<Metrics>,
    /// Per source: the job's progress downstream of it, a probe on the
    /// inputs of the sinks it reaches (for the source's flow control).
    progress: HashMap<NodeId, ProbeHandle<Time>>,
    /// Per sink: the sources upstream of it.
    sources_of: Arc<HashMap<NodeId, Vec<NodeId>>>,
    builds: Arc<Vec<Option<NodeBuild>>>,
    built: HashMap<Port, Box<dyn Any>>,
}

impl<'s> Ctx<'s> {
    pub(super) fn new(
        scope: Scope<'s, Time>,
        failure: Failure,
        metrics: Arc<Metrics>,
        builds: Arc<Vec<Option<NodeBuild>>>,
        sources_of: Arc<HashMap<NodeId, Vec<NodeId>>>,
    ) -> Self {
        Ctx {
            scope,
            failure,
            metrics,
            progress: HashMap::new(),
            sources_of,
            builds,
            built: HashMap::new(),
        }
    }

    /// Builds node `node` (a sink, or a node none of whose ports was asked
    /// for yet).
    pub(super) fn build(&mut self, node: NodeId) -> Result<(), BoxError> {
        let build = self
            .builds
            .get(node)
            .cloned()
            .flatten()
            .ok_or_else(|| format!("stage #{node} has nothing to build it"))?;
        build(self)
    }

    /// The job's progress downstream of source `source` (its sinks' inputs).
    pub(crate) fn progress_of(&mut self, source: NodeId) -> ProbeHandle<Time> {
        self.progress.entry(source).or_default().clone()
    }

    /// Attaches `stream`, the input of sink `sink`, to the progress probe of
    /// every source upstream of it. On one worker sources are not aligned,
    /// so nothing is attached.
    pub(crate) fn probe_sink_input<T: Data>(
        &mut self,
        sink: NodeId,
        mut stream: Timed<'s, T>,
    ) -> Timed<'s, T> {
        if self.scope.peers() == 1 {
            return stream;
        }
        let sources = Arc::clone(&self.sources_of);
        for &source in sources.get(&sink).into_iter().flatten() {
            stream = stream.probe_with(&self.progress_of(source));
        }
        stream
    }

    /// Records `stream` as the stream of `port` (called by node builds).
    pub(crate) fn provide<T: Data>(&mut self, port: Port, stream: Timed<'s, T>) {
        self.built.insert(port, Box::new(Erased::new(stream)));
    }

    /// The stream of `port`, building its node on first use.
    ///
    /// # Errors
    ///
    /// The node's build error, or an error if the node does not provide the
    /// port with records of type `T` (a bug of weir, reported, not a panic).
    pub(crate) fn port<T: Data>(&mut self, port: Port) -> Result<Timed<'s, T>, BoxError> {
        if !self.built.contains_key(&port) {
            self.build(port.node)?;
        }
        let built = self
            .built
            .get(&port)
            .ok_or_else(|| format!("stage #{} does not provide output {}", port.node, port.port))?;
        let erased = built.downcast_ref::<Erased<T>>().ok_or_else(|| {
            format!(
                "stage #{} output {} holds records of another type",
                port.node, port.port
            )
        })?;
        Ok(erased.get())
    }
}
