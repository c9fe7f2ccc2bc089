//! Compiling a pipeline on one worker: [`Ctx`] builds each node once, on
//! first use, and keeps the stream of each of its ports.

use std::any::Any;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use timely::dataflow::operators::{Concatenate, Probe};
use timely::dataflow::{ProbeHandle, Scope};
use weir_engine::{Failure, Metrics};
use weir_operators::checkpoint::{Control, SourceCuts, announce, commit};
use weir_operators::source::{Align, Pacing};
use weir_operators::{
    Checkpoints, GroupStates, KeyGroups, PartitionCut, Start, Stateful, Time, VecStream,
};

use crate::checkpoint::{Committer, Run, part_file};
use crate::sources::AtEnd;

use super::erased::Erased;
use super::{NodeId, Port};
use crate::Data;
use crate::error::BoxError;

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

/// Batches a source without event time may send beyond its sinks'
/// progress: 256 (about 260 000 records) cost a pass-through job on 2
/// workers nothing measurable, where 64 cost it a fifth of its throughput.
const PACED_BATCHES_AHEAD: usize = 256;

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
    /// With checkpoints: this worker's part in them.
    pub(crate) checkpoints: Option<WorkerCheckpoints<'s>>,
    /// What sources' readers leave for the job's end.
    pub(crate) at_end: AtEnd,
    /// How the run stops on request.
    pub(crate) stop: Option<Arc<super::stop::StopState>>,
    /// Every source's cuts, for the stop watch.
    stop_cuts: Vec<VecStream<'s, PartitionCut>>,
    /// The sources that may pace their batches by time without event time
    /// (no updating stage downstream).
    pub(crate) paceable: Arc<std::collections::HashSet<NodeId>>,
    /// The tick of unbounded sources without event time feeding updating
    /// stages ([`Pipeline::update_interval`](crate::Pipeline::update_interval)).
    pub(crate) update_interval: std::time::Duration,
    /// With per-stage metrics: the stage of each operator, by id, noted as
    /// each stage is built.
    pub(crate) stage_of: Option<weir_engine::StageOf>,
}

/// One worker's part in the checkpoints of a run.
pub(crate) struct WorkerCheckpoints<'s> {
    pub(crate) run: Arc<Run>,
    /// The announced checkpoint times, once the sources are built.
    control: Option<Control<'s>>,
    /// Each source's cuts, until the control stream is built from them.
    cuts: Vec<(NodeId, VecStream<'s, PartitionCut>)>,
    /// What every part holds until its share of a checkpoint is saved.
    acks: Vec<VecStream<'s, ()>>,
    /// On worker 0: each staged output file of the job, and where it is
    /// published.
    pub(crate) targets: Vec<(String, PathBuf)>,
}

impl<'s> Ctx<'s> {
    pub(super) fn new(
        scope: Scope<'s, Time>,
        failure: Failure,
        metrics: Arc<Metrics>,
        builds: Arc<Vec<Option<NodeBuild>>>,
        sources_of: Arc<HashMap<NodeId, Vec<NodeId>>>,
        at_end: AtEnd,
    ) -> Self {
        Ctx {
            at_end,
            scope,
            failure,
            metrics,
            progress: HashMap::new(),
            sources_of,
            builds,
            built: HashMap::new(),
            checkpoints: None,
            stop: None,
            stop_cuts: Vec::new(),
            paceable: Arc::default(),
            update_interval: super::graph::UPDATE_INTERVAL,
            stage_of: None,
        }
    }

    /// The times source `node`, without event time, sends its batches at:
    /// paced by batches for flow control on several workers where no
    /// updating stage is downstream; at processing-time ticks where one is
    /// and the source may never end (so the stage emits as the input goes);
    /// otherwise all at time 0.
    pub(crate) fn pacing(&mut self, node: NodeId, bounded: bool) -> Pacing {
        let several = self.scope.peers() > 1;
        let (paceable, every) = (self.paceable.contains(&node), self.update_interval);
        let mut align = || Align {
            progress: self.progress_of(node),
            batches: PACED_BATCHES_AHEAD,
        };
        match (paceable, bounded) {
            (true, _) if several => Pacing::Batches(align()),
            (false, false) => Pacing::Ticks {
                every,
                align: several.then(align),
            },
            _ => Pacing::Unpaced,
        }
    }

    /// The handle the sources end their partitions at when the run stops.
    pub(crate) fn source_stop(&self) -> Option<weir_engine::StopHandle> {
        self.stop.as_ref().map(|s| s.end_sources.clone())
    }

    /// With metrics served: this worker's part in watching the job's
    /// watermark and, on several processes, in reporting each process's
    /// state to process 0 (see [`super::share::watch`]).
    pub(super) fn share_metrics(&mut self, workers: usize) {
        if self.stage_of.is_none() {
            return;
        }
        let share = self.scope.peers() > workers;
        let cuts = self.stop_cuts.clone();
        super::share::watch(self.scope, cuts, Arc::clone(&self.metrics), workers, share);
    }

    /// With metrics served, notes how long the results reaching sink `name`
    /// took from the watermark passing their time (see
    /// [`Metrics::result_latency`](weir_engine::Metrics::result_latency)).
    pub(crate) fn measure_latency<T: Data>(
        &mut self,
        name: &str,
        stream: Timed<'s, T>,
    ) -> Timed<'s, T> {
        use timely::dataflow::operators::Inspect;
        if self.stage_of.is_none() {
            return stream;
        }
        let latencies = self.metrics.result_latency(name);
        let metrics = Arc::clone(&self.metrics);
        stream.inspect_core(move |event| {
            if let Ok((stamp, batch)) = event {
                let passed = stamp.least().and_then(|t| metrics.watermark_passed(*t));
                if let Some(at) = passed {
                    latencies.record(at.elapsed(), batch.len() as u64);
                }
            }
        })
    }

    /// Builds this worker's stop watch, once every source is built.
    pub(super) fn watch_stop(&mut self) {
        let Some(state) = self.stop.clone() else {
            return;
        };
        let stopped = self.checkpoints.as_ref().map(|c| c.run.stopped_watch());
        let cuts = std::mem::take(&mut self.stop_cuts);
        super::stop::watch(self.scope, cuts, state, stopped);
    }

    /// Starts this worker's part in the checkpoints of `run`: builds the
    /// job's `sources` (which send their cuts), the announcement of
    /// checkpoint times from their frontier, and one [`SourceCuts`] keeper
    /// per source.
    pub(super) fn start_checkpoints(
        &mut self,
        run: Arc<Run>,
        sources: &[NodeId],
    ) -> Result<(), BoxError> {
        self.checkpoints = Some(WorkerCheckpoints {
            run: Arc::clone(&run),
            control: None,
            cuts: Vec::new(),
            acks: Vec::new(),
            targets: Vec::new(),
        });
        for &source in sources {
            self.build(source)?;
        }
        let cuts = self
            .checkpoints
            .as_mut()
            .map(|c| std::mem::take(&mut c.cuts))
            .unwrap_or_default();
        let watched = self.scope.concatenate(cuts.iter().map(|(_, s)| s.clone()));
        let control = announce(watched, run.interval, run.restored_at());
        if let Some(c) = self.checkpoints.as_mut() {
            c.control = Some(control);
        }
        let (worker, peers) = (self.scope.index(), self.scope.peers());
        for (node, stream) in cuts {
            // A partition's cut goes with the worker that reads it.
            let owns = move |p: u32| p as usize % peers == worker;
            let start = self.checkpoint_start("cuts", node, owns)?;
            let keeper = SourceCuts::default();
            let (acks, _) =
                Stateful::unary_from(stream, "SourceCuts", keeper, Arc::default(), start);
            self.add_ack(acks);
        }
        Ok(())
    }

    /// Ends this worker's part in building checkpoints: commits them (on
    /// worker 0) once every part has saved its share.
    pub(super) fn finish_checkpoints(&mut self) -> Result<(), BoxError> {
        let Some(c) = self.checkpoints.take() else {
            return Ok(());
        };
        let control = c.control.ok_or("checkpoints: the sources were not built")?;
        let acks = self.scope.concatenate(c.acks);
        let mut committer = Committer::new(c.run, self.scope.peers(), c.targets);
        commit(
            acks,
            control,
            move |step| committer.step(step),
            self.failure.clone(),
        );
        Ok(())
    }

    /// The announced checkpoint times, with checkpoints on.
    pub(crate) fn control(&self) -> Option<Control<'s>> {
        self.checkpoints.as_ref().and_then(|c| c.control.clone())
    }

    /// Adds a stream a part holds at each checkpoint time until its share
    /// of that checkpoint is saved.
    pub(crate) fn add_ack(&mut self, acks: VecStream<'s, ()>) {
        if let Some(c) = self.checkpoints.as_mut() {
            c.acks.push(acks);
        }
    }

    /// Adds the acknowledgements of a part, if it takes checkpoints.
    pub(crate) fn add_acks(&mut self, acks: Option<VecStream<'s, ()>>) {
        if let Some(acks) = acks {
            self.add_ack(acks);
        }
    }

    /// Adds the cuts of source `node`.
    pub(crate) fn add_cuts(&mut self, node: NodeId, cuts: VecStream<'s, PartitionCut>) {
        if self.stop.is_some() {
            self.stop_cuts.push(cuts.clone());
        }
        if let Some(c) = self.checkpoints.as_mut() {
            c.cuts.push((node, cuts));
        }
    }

    /// How the stateful stage `node` starts: with checkpoints on, restored
    /// with the key groups of its kind of part (`state`, `cuts`) that
    /// `owns` says this worker owns, and saving its state at each
    /// checkpoint; otherwise fresh, taking none.
    pub(crate) fn checkpoint_start(
        &mut self,
        kind: &'static str,
        node: NodeId,
        owns: impl Fn(u32) -> bool,
    ) -> Result<Start<'s>, BoxError> {
        let Some(c) = self.checkpoints.as_ref() else {
            return Ok(Start::default());
        };
        let control = c
            .control
            .clone()
            .ok_or("checkpoints: the sources were not built")?;
        let run = Arc::clone(&c.run);
        let file = part_file(kind, node, self.scope.index());
        let failure = self.failure.clone();
        let saving = failure.clone();
        let restore = run.groups(kind, node, owns)?;
        let restored_at = run.restored_at();
        let save = move |at: Time, state: Result<GroupStates, BoxError>| {
            let saved = state.and_then(|states| run.save(at, &file, &states));
            if let Err(e) = saved {
                saving.raise(format!("checkpoint at {at}: saving {file}: {e}"));
            }
        };
        Ok(Start {
            restored_at,
            checkpoints: Some(Checkpoints {
                control,
                save: Box::new(save),
            }),
            restore,
            failure,
        })
    }

    /// How a keyed stateful stage `node` starts (see
    /// [`checkpoint_start`](Ctx::checkpoint_start)): its key groups go to
    /// workers as the keyed exchange sends them.
    pub(crate) fn keyed_start(&mut self, node: NodeId) -> Result<Start<'s>, BoxError> {
        self.keyed_start_as("state", node)
    }

    /// As [`keyed_start`](Ctx::keyed_start), for a part of kind `kind` of a
    /// stage of several keyed parts (a join's `left` and `right`).
    pub(crate) fn keyed_start_as(
        &mut self,
        kind: &'static str,
        node: NodeId,
    ) -> Result<Start<'s>, BoxError> {
        let (worker, peers) = (self.scope.index(), self.scope.peers());
        self.checkpoint_start(kind, node, move |g| {
            KeyGroups::worker_of(g, peers) == worker
        })
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
        let first = self.scope.worker().peek_identifier();
        let built = build(self);
        // The operators made since `first` are this stage's, but for those
        // of the stages its build built on the way (they claimed theirs
        // when their builds ended).
        if let Some(stage_of) = &self.stage_of {
            let end = self.scope.worker().peek_identifier();
            let mut owners = stage_of.borrow_mut();
            if owners.len() < end {
                owners.resize(end, None);
            }
            for owner in owners.iter_mut().take(end).skip(first) {
                owner.get_or_insert(node);
            }
        }
        built
    }

    /// The job's progress downstream of source `source` (its sinks' inputs).
    pub(crate) fn progress_of(&mut self, source: NodeId) -> ProbeHandle<Time> {
        self.progress.entry(source).or_default().clone()
    }

    /// Attaches `stream`, the input of sink `sink`, to the progress probe of
    /// every source upstream of it that follows it: on several workers
    /// every source (to align them), on one only those that asked for
    /// their progress (queue sources, to acknowledge what reached the
    /// sinks).
    pub(crate) fn probe_sink_input<T: Data>(
        &mut self,
        sink: NodeId,
        mut stream: Timed<'s, T>,
    ) -> Timed<'s, T> {
        let sources = Arc::clone(&self.sources_of);
        for &source in sources.get(&sink).into_iter().flatten() {
            if self.scope.peers() > 1 || self.progress.contains_key(&source) {
                stream = stream.probe_with(&self.progress_of(source));
            }
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
