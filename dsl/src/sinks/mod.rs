//! Sinks: where results go.
//!
//! Built-in sinks: [`Stdout`] (JSON lines), [`StdoutLines`], [`JsonLinesFile`], [`CsvFile`] and [`TextFile`]
//! (one file written by one worker, or a directory with one part file per
//! worker), [`Collect`] (results back to the caller, for tests) and
//! [`ForEach`] (a callback), with the `kafka` feature `KafkaSink`, and with the `amqp` feature
//! `AmqpSink` (RabbitMQ).
//! Implement [`Sink`] for your own.

#[cfg(feature = "amqp")]
mod amqp;
mod collect;
mod files;
mod for_each;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(any(feature = "kafka", feature = "amqp"))]
mod staged;
mod stdout;

use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "amqp")]
pub use amqp::AmqpSink;
pub use collect::Collect;
pub use files::{CsvFile, JsonLinesFile, Lines, TextFile};
pub use for_each::ForEach;
#[cfg(feature = "kafka")]
pub use kafka::KafkaSink;
pub use stdout::{Stdout, StdoutLines};
pub use weir_operators::SinkWriter;

use timely::dataflow::operators::Exchange;
use weir_engine::CounterKind;
use weir_engine::checkpoint::{CheckpointStore, DirStore, FINAL};
use weir_operators::{SinkOp, Time};

use crate::error::SinkError;
use crate::plan::Pipeline;
use crate::{Data, Stream};

/// Where a sink's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Each worker writes the records it holds.
    EveryWorker,
    /// All records are routed to worker 0 (in process 0), which writes them.
    WorkerZero,
}

/// A destination for records of type `T`.
pub trait Sink<T>: Send + Sync + 'static {
    /// A short description for `explain`, metrics and errors, e.g. `jsonl(out.jsonl)`.
    fn describe(&self) -> String;

    /// Which workers write.
    fn placement(&self) -> Placement {
        Placement::EveryWorker
    }

    /// The writer of worker `ctx.worker()`. With [`Placement::WorkerZero`]
    /// it is called on worker 0 only.
    ///
    /// # Errors
    ///
    /// The destination cannot be created.
    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError>;

    /// For a sink that can take part in checkpoints: the file worker
    /// `worker` writes (`None` if it writes none). Its writer, opened with
    /// [`SinkContext::staging`], writes to a file in progress and moves it
    /// into the checkpoint on [`SinkWriter::checkpoint`]; the job publishes
    /// it into this file once the checkpoint is committed. By default a sink
    /// cannot, and a pipeline with checkpoints does not run with it.
    fn staged_output(&self, worker: usize) -> Option<PathBuf> {
        let _ = worker;
        None
    }

    /// Whether the sink can take part in checkpoints: its writers stage
    /// their output in each checkpoint (opened with
    /// [`SinkContext::staging`]), and it is published once the checkpoint
    /// is committed, into files (see
    /// [`staged_output`](Sink::staged_output)) or by the sink's
    /// [`publisher`](Sink::publisher).
    fn stages(&self) -> bool {
        self.staged_output(0).is_some()
    }

    /// For a sink that writes to a message queue and takes part in
    /// checkpoints: what publishes the output its writers stage in each
    /// checkpoint, once the checkpoint is committed (on process 0). `None`
    /// (the default) for sinks that publish into files or cannot stage.
    fn publisher(&self, ctx: &PublisherContext) -> Option<Box<dyn Publisher>> {
        let _ = ctx;
        None
    }
}

/// What a sink's [`Publisher`] is made with.
#[derive(Debug, Clone)]
pub struct PublisherContext {
    pub(crate) job: String,
    pub(crate) stage: usize,
    pub(crate) name: String,
}

impl PublisherContext {
    /// The job's name ([`Pipeline::name`](crate::Pipeline::name)).
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The sink's stage number in the plan (as `explain` shows it, `#n`):
    /// with the job's name it tells the sinks of a job apart, and stays the
    /// same across runs of the same plan.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// The sink's name, for error messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One checkpoint, as a [`Publisher`] sees it: the same for a checkpoint
/// and for every run restored from it, different for any other checkpoint
/// of any run of the job (a job that starts from the beginning starts a
/// new lineage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointId {
    /// The run the checkpoint belongs to (drawn when the job started from
    /// the beginning).
    pub lineage: u64,
    /// The checkpoint's number within it ([`u64::MAX`] for a job's end).
    pub id: u64,
}

impl CheckpointId {
    /// The checkpoint as one non-negative 62-bit number (a hash of lineage
    /// and id), for a queue that can keep a number with the output it
    /// commits, such as a Kafka consumer group's offset.
    ///
    /// ```
    /// use weir::sinks::CheckpointId;
    ///
    /// let a = CheckpointId { lineage: 7, id: 1_000 };
    /// assert_eq!(a.marker(), CheckpointId { lineage: 7, id: 1_000 }.marker());
    /// assert_ne!(a.marker(), CheckpointId { lineage: 8, id: 1_000 }.marker());
    /// assert_ne!(a.marker(), CheckpointId { lineage: 7, id: 1_001 }.marker());
    /// assert!(a.marker() < 1 << 62);
    /// ```
    pub fn marker(&self) -> u64 {
        fnv1a(&[&self.lineage.to_le_bytes(), &self.id.to_le_bytes()]) >> 2
    }
}

/// The 64-bit FNV-1a hash of `parts`, one after the other: stable across
/// builds and platforms (unlike `std`'s hashers).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Publishes what a queue sink staged in each committed checkpoint (see
/// [`Sink::publisher`]), so that what a job writes to a queue agrees with
/// its checkpoints: output goes out only once the checkpoint holding the
/// state that produced it is committed, and a restore publishes the
/// restored checkpoint's output if a crash came before it was.
///
/// Called on process 0, on the thread that commits checkpoints, in
/// checkpoint order. A failure stops the job, like a checkpoint that
/// cannot be committed.
pub trait Publisher: Send + 'static {
    /// Publishes the output staged in checkpoint `at`: `parts` holds what
    /// each worker's writer staged (in worker order; the bytes are the
    /// writer's own format).
    ///
    /// # Errors
    ///
    /// The queue refused the output or did not confirm it in time.
    fn publish(&mut self, at: CheckpointId, parts: &[Vec<u8>]) -> Result<(), crate::BoxError>;

    /// After a restore, for the restored checkpoint whose publishing the
    /// job had not noted as complete (it crashed in between): whether the
    /// queue already has its output. `true` skips publishing it again
    /// (exactly once); the default, `false`, publishes it again (at least
    /// once).
    ///
    /// # Errors
    ///
    /// The queue cannot be asked.
    fn published(&mut self, at: CheckpointId) -> Result<bool, crate::BoxError> {
        let _ = at;
        Ok(false)
    }
}

/// Where a sink's writer stages its output when the job takes checkpoints:
/// a file in progress, moved into a checkpoint when it is taken.
#[derive(Debug, Clone)]
pub struct Staging {
    store: DirStore,
    file: String,
    /// Whether the output file already holds the job's output (a restored
    /// job): headers are not written again.
    pub append: bool,
}

impl Staging {
    pub(crate) fn new(store: DirStore, file: String, append: bool) -> Self {
        Staging {
            store,
            file,
            append,
        }
    }

    /// The file being written, until the next checkpoint takes it.
    pub fn in_progress(&self) -> PathBuf {
        self.store.in_progress_dir().join(&self.file)
    }

    /// Where the output written until the checkpoint at `at` (`None`: the
    /// job's end) is staged.
    ///
    /// # Errors
    ///
    /// The checkpoint's directory cannot be created.
    pub fn staged_path(&self, at: Option<Time>) -> Result<PathBuf, crate::BoxError> {
        Ok(self.store.file_path(at.unwrap_or(FINAL), &self.file)?)
    }
}

/// A sink chosen at run time, e.g. from a command-line flag.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// fn output<T: Data>(path: Option<&str>) -> Box<dyn Sink<T>> {
///     match path {
///         Some(p) => Box::new(JsonLinesFile::to(p)),
///         None => Box::new(Stdout::jsonl()),
///     }
/// }
/// let job = Pipeline::new("p").source(Iter::new(vec![1])).sink(output(None));
/// assert!(job.explain().contains("sink stdout(jsonl)"));
/// ```
impl<T: 'static> Sink<T> for Box<dyn Sink<T>> {
    fn describe(&self) -> String {
        (**self).describe()
    }

    fn placement(&self) -> Placement {
        (**self).placement()
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        (**self).open(ctx)
    }

    fn staged_output(&self, worker: usize) -> Option<PathBuf> {
        (**self).staged_output(worker)
    }

    fn stages(&self) -> bool {
        (**self).stages()
    }

    fn publisher(&self, ctx: &PublisherContext) -> Option<Box<dyn Publisher>> {
        (**self).publisher(ctx)
    }
}

/// A sink shown under another name (in `explain`, the run summary and
/// errors): the spec names its sinks as the user wrote them.
#[cfg(feature = "cli")]
pub(crate) struct Described<S> {
    pub(crate) sink: S,
    pub(crate) name: String,
}

#[cfg(feature = "cli")]
impl<T: 'static, S: Sink<T>> Sink<T> for Described<S> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn placement(&self) -> Placement {
        self.sink.placement()
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        self.sink.open(ctx)
    }

    fn staged_output(&self, worker: usize) -> Option<PathBuf> {
        self.sink.staged_output(worker)
    }

    fn stages(&self) -> bool {
        self.sink.stages()
    }

    fn publisher(&self, ctx: &PublisherContext) -> Option<Box<dyn Publisher>> {
        self.sink.publisher(ctx)
    }
}

/// What a sink knows when it opens on one worker.
pub struct SinkContext {
    worker: usize,
    peers: usize,
    name: String,
    staging: Option<Staging>,
}

impl SinkContext {
    /// Global index of this worker.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Number of workers in the cluster.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// The sink's name, for error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// With checkpoints: where the writer stages its output (see
    /// [`Sink::staged_output`]).
    pub fn staging(&self) -> Option<&Staging> {
        self.staging.as_ref()
    }
}

/// Hands a sink's writer its records without their event times (in the
/// sink operator itself, rather than through a map operator before it).
struct WithoutTime<T> {
    inner: Box<dyn SinkWriter<T>>,
    buffer: Vec<T>,
    /// What the inner writer counted of the last batch.
    written: u64,
}

impl<T: 'static> SinkWriter<(Time, T)> for WithoutTime<T> {
    fn write(&mut self, batch: &mut Vec<(Time, T)>) -> Result<(), crate::BoxError> {
        let n = batch.len();
        let result = self.inner.write_timed(batch, &mut self.buffer);
        self.written = self.inner.records_written(n);
        batch.clear();
        result
    }

    fn records_written(&self, _batch_len: usize) -> u64 {
        self.written
    }

    fn close(&mut self) -> Result<(), crate::BoxError> {
        self.inner.close()
    }

    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), crate::BoxError> {
        self.inner.checkpoint(at)
    }
}

/// A writer that only reads its records. [`ByRef`] makes it a [`SinkWriter`]
/// that writes each batch where it is, with or without event times.
pub(crate) trait WriteRefs<T>: 'static {
    /// Writes `records`, in order.
    fn write_refs<'a>(
        &mut self,
        records: impl Iterator<Item = &'a T>,
    ) -> Result<(), crate::BoxError>
    where
        T: 'a;

    /// Flushes and closes, once no more records will come.
    fn close(&mut self) -> Result<(), crate::BoxError> {
        Ok(())
    }

    /// As [`SinkWriter::checkpoint`].
    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), crate::BoxError> {
        let _ = at;
        Err("this sink cannot stage its output for checkpoints".into())
    }
}

/// The [`SinkWriter`] of a [`WriteRefs`] writer.
pub(crate) struct ByRef<W>(pub(crate) W);

impl<T: 'static, W: WriteRefs<T>> SinkWriter<T> for ByRef<W> {
    fn write(&mut self, batch: &mut Vec<T>) -> Result<(), crate::BoxError> {
        let written = self.0.write_refs(batch.iter());
        batch.clear();
        written
    }

    fn write_timed(
        &mut self,
        batch: &mut Vec<(Time, T)>,
        _scratch: &mut Vec<T>,
    ) -> Result<(), crate::BoxError> {
        let written = self.0.write_refs(batch.iter().map(|(_, record)| record));
        batch.clear();
        written
    }

    fn close(&mut self) -> Result<(), crate::BoxError> {
        self.0.close()
    }

    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), crate::BoxError> {
        self.0.checkpoint(at)
    }
}

/// A writer for workers that receive no records of a [`Placement::WorkerZero`] sink.
/// With checkpoints, where this worker's writer of `sink` (stage `node`)
/// stages its output. Worker 0 also notes every worker's staged file and
/// its output file for the committer, and empties the output files the
/// restored checkpoint (if any) has no output in.
fn staging_of<T: 'static>(
    ctx: &mut crate::plan::Ctx<'_>,
    sink: &dyn Sink<T>,
    node: usize,
) -> Result<Option<Staging>, crate::BoxError> {
    let Some(c) = ctx.checkpoints.as_mut() else {
        return Ok(None);
    };
    let run = Arc::clone(&c.run);
    let (worker, peers) = (ctx.scope.index(), ctx.scope.peers());
    if worker == 0 {
        for w in 0..peers {
            let Some(target) = sink.staged_output(w) else {
                continue;
            };
            if run.committed_len(&target).is_none() {
                if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                std::fs::File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            }
            c.targets
                .push((crate::checkpoint::part_file("sink", node, w), target));
        }
    }
    let append = sink
        .staged_output(worker)
        .and_then(|t| run.committed_len(&t))
        .is_some_and(|len| len > 0);
    let file = crate::checkpoint::part_file("sink", node, worker);
    Ok(Some(Staging::new(run.store.clone(), file, append)))
}

struct Nowhere;

impl<T> SinkWriter<T> for Nowhere {
    fn write(&mut self, batch: &mut Vec<T>) -> Result<(), crate::BoxError> {
        batch.clear();
        Ok(())
    }

    fn checkpoint(&mut self, _at: Option<Time>) -> Result<(), crate::BoxError> {
        Ok(())
    }
}

impl<T: Data> Stream<T> {
    /// Ends the stream in `sink` and returns the pipeline, ready to run.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let job = Pipeline::new("p").source(Iter::new(vec![1])).sink(Stdout::jsonl());
    /// assert!(job.validate().is_ok());
    /// ```
    ///
    /// No stage can follow a sink: `sink` consumes the stream.
    ///
    /// ```compile_fail,E0599
    /// use weir::prelude::*;
    ///
    /// let job = Pipeline::new("p").source(Iter::new(vec![1])).sink(Stdout::jsonl());
    /// job.map(|x: i32| x + 1);
    /// ```
    pub fn sink<S: Sink<T>>(self, sink: S) -> Pipeline {
        let name = sink.describe();
        let node = self.pipeline.add_node("sink", name.clone(), &[self.at]);
        let up = self.upstream();
        let timed = self.timed;
        let stages = sink.stages();
        let publisher = sink.publisher(&PublisherContext {
            job: self.pipeline.name(),
            stage: node,
            name: name.clone(),
        });
        if let Some(publisher) = publisher {
            self.pipeline.set_publisher(node, publisher);
        }
        let sink = Arc::new(sink);
        self.pipeline.set_build(
            node,
            Arc::new(move |ctx| {
                let mut s = up.build(ctx)?;
                let worker = ctx.scope.index();
                let sctx = SinkContext {
                    worker,
                    peers: ctx.scope.peers(),
                    name: name.clone(),
                    staging: staging_of(ctx, &*sink, node)?,
                };
                let writer: Box<dyn SinkWriter<T>> = match sink.placement() {
                    Placement::EveryWorker => sink.open(&sctx)?,
                    Placement::WorkerZero => {
                        // With one worker in all there is nothing to route.
                        if ctx.scope.peers() > 1 {
                            s = s.exchange(|_| 0);
                        }
                        if worker == 0 {
                            sink.open(&sctx)?
                        } else {
                            Box::new(Nowhere)
                        }
                    }
                };
                let s = ctx.probe_sink_input(node, s);
                let s = match timed {
                    true => ctx.measure_latency(&name, s),
                    false => s,
                };
                let counter = ctx.metrics.counter(CounterKind::Sink, &name);
                let writer = WithoutTime {
                    inner: writer,
                    buffer: Vec::new(),
                    written: 0,
                };
                match ctx.control() {
                    Some(control) => {
                        let failure = ctx.failure.clone();
                        let acks = s.sink_staged(control, &name, writer, counter, failure);
                        ctx.add_ack(acks);
                    }
                    None => s.sink_into(&name, writer, counter, ctx.failure.clone()),
                }
                Ok(())
            }),
        );
        if !stages {
            let blocker = "a sink that stages its output until the checkpoint covering it completes (the file sinks `JsonLinesFile`, `CsvFile` and `TextFile`, `KafkaSink` and `AmqpSink` do)".to_string();
            self.pipeline.set_blocker(node, Some(blocker));
        }
        self.pipeline
    }
}
