//! Sources: where records come from.
//!
//! Every source is split into partitions, and each worker reads the
//! partitions assigned to it; the source operator holds one capability per
//! partition. Built-in sources: [`Generator`], [`Iter`], [`Csv`],
//! [`JsonLines`], [`TextLines`], [`Stdin`], with the `nexmark` feature
//! `Nexmark`, with the `kafka` feature `Kafka`, and with the `amqp` feature
//! `Amqp` (RabbitMQ). Implement [`Source`] for your own.

#[cfg(feature = "amqp")]
mod amqp;
mod bad;
#[cfg(any(feature = "kafka", feature = "amqp"))]
mod decode;
mod files;
mod generator;
mod iter;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nexmark")]
mod nexmark;
mod stdin;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

#[cfg(feature = "amqp")]
pub use amqp::{Amqp, AmqpRecord};
#[cfg(feature = "amqp")]
pub(crate) use amqp::{AmqpClient, within as within_amqp};
pub use bad::{BadRecords, DeadLetter, OnError, Origin};
pub use files::{Csv, JsonLines, TextLines};
#[cfg(feature = "cli")]
pub(crate) use files::{CsvDecode, CsvRows, LineSource, list_files, read_header};
pub use generator::Generator;
pub use iter::Iter;
#[cfg(feature = "kafka")]
pub(crate) use kafka::KafkaClient;
#[cfg(feature = "kafka")]
pub use kafka::{Kafka, KafkaRecord, KafkaStart};
#[cfg(feature = "nexmark")]
pub use nexmark::{
    Auction, Bid, Event, EventGenerator, EventType, NEXMARK_BASE_TIME, Nexmark, NexmarkConfig,
    Person, Text,
};
pub use stdin::Stdin;
#[cfg(feature = "cli")]
pub(crate) use stdin::{LineError, ParsedStdin};
pub use weir_operators::{PartitionReader, ReadStatus};

use weir_engine::{CounterKind, Metrics};
use weir_operators::Time;
use weir_operators::source::{
    EventTime, Pacing, Rejects, Release, SourceCheckpoints, SourceRun, partitioned_source_with_cuts,
};

use crate::error::{PlanError, SourceError};
use crate::plan::{Builder, Pipeline, Port, builder};
use crate::stream::single_output;
use crate::{BoxError, Data, Stream};

/// A source of records of type `Item`.
///
/// `open` runs on every worker when the pipeline is compiled and returns the
/// partitions that worker reads. Partitions must be assigned so that, over
/// all workers, every record is read exactly once.
pub trait Source: Send + Sync + 'static {
    /// The records this source produces.
    type Item: Data;

    /// A short description for `explain` and error messages, e.g. `csv(events.csv)`.
    fn describe(&self) -> String;

    /// The partitions worker `ctx.worker()` of `ctx.peers()` reads.
    ///
    /// # Errors
    ///
    /// The input cannot be found or opened.
    fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<Self::Item>>>, SourceError>;

    /// Whether the source can take part in checkpoints: its readers report
    /// a [`position`](PartitionReader::position) and can
    /// [`seek`](PartitionReader::seek) back to it in a later run, and its
    /// partitions are numbered the same on any number of workers, partition
    /// `i` of `n` going to worker `i % peers` (the `k`-th reader `open`
    /// returns on worker `w` is partition `w + k * peers`). By default it
    /// cannot, and a pipeline with checkpoints does not run with it.
    fn resumable(&self) -> bool {
        false
    }

    /// Called once a checkpoint of the job is complete (on the process
    /// that commits checkpoints, off the workers' threads) with where each
    /// partition of this source stood in it: `(partition, position)`, the
    /// position as the partition's reader gave it. A queue source commits
    /// them to its broker here (Kafka: offsets to the consumer group), so
    /// that the broker's tools show the job's progress. By default nothing.
    ///
    /// # Errors
    ///
    /// The positions cannot be committed: a warning, not a job failure (the
    /// job's own positions are in its checkpoints).
    fn checkpoint_committed(&self, positions: &[(usize, u64)]) -> Result<(), BoxError> {
        let _ = positions;
        Ok(())
    }

    /// Whether every partition of the source ends by itself (a file, a
    /// vector, a generator of `n` records, a queue read to the end it had
    /// at the start) rather than possibly never (standard input, a queue
    /// followed as it grows). Without event time this decides when updating
    /// stages downstream (`count`, `fold`, `join`, `reduce_updates`) emit:
    /// over a bounded source, once, with each key's final result, when the
    /// input ends; over an unbounded one, once per
    /// [`update_interval`](crate::Pipeline::update_interval) of processing
    /// time while it runs. By default false: results come out as the input
    /// goes.
    fn bounded(&self) -> bool {
        false
    }

    /// Whether its readers acknowledge what they read
    /// ([`PartitionReader::release`]): a queue source that deletes a
    /// message from its broker only once the job is done with it. The
    /// readers are then told, with event time, once a checkpoint covering
    /// their records is complete or, without checkpoints, once every
    /// result stamped at their time has reached the sinks; without event
    /// time, as soon as the records are sent on. By default false.
    fn acknowledges(&self) -> bool {
        false
    }
}

/// Work the readers of sources leave for the end of the job, each called
/// with whether the job completed (see [`SourceContext::at_end`]).
pub(crate) type AtEnd = Arc<Mutex<Vec<Box<dyn FnOnce(bool) + Send>>>>;

/// What a source knows when it opens on one worker.
pub struct SourceContext {
    worker: usize,
    peers: usize,
    name: String,
    metrics: Arc<Metrics>,
    restored: HashMap<usize, Vec<u8>>,
    at_end: AtEnd,
    bad: BadRecords,
}

impl SourceContext {
    pub(crate) fn new(
        ctx: &crate::plan::Ctx<'_>,
        name: &str,
        restored: HashMap<usize, Vec<u8>>,
        bad: BadRecords,
    ) -> Self {
        SourceContext {
            worker: ctx.scope.index(),
            peers: ctx.scope.peers(),
            name: name.to_string(),
            metrics: Arc::clone(&ctx.metrics),
            restored,
            at_end: Arc::clone(&ctx.at_end),
            bad,
        }
    }

    /// While the job's metrics are served (`--metrics`), a gauge named
    /// `name` with this source's name and `labels` as labels, for the
    /// reader to keep up to date (Kafka's consumer lag, RabbitMQ's
    /// unacknowledged deliveries); `None` otherwise, so that a reader
    /// measures nothing nobody reads.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: Vec<(&'static str, String)>,
    ) -> Option<Arc<AtomicU64>> {
        if !self.metrics.is_served() {
            return None;
        }
        let mut all = vec![("source", self.name.clone())];
        all.extend(labels);
        Some(self.metrics.gauge(name, help, all))
    }

    /// What the readers do with a record they cannot read, as the source's
    /// [`OnError`] policy says: each reader keeps a clone and hands it every
    /// such record ([`BadRecords::reject`]), which stops the job, skips the
    /// record or sends it to the dead letters.
    pub fn bad_records(&self) -> BadRecords {
        self.bad.clone()
    }

    /// What every partition of the source kept beside its position
    /// ([`PartitionReader::state`]) in the checkpoint the job restores from,
    /// by partition (those that kept something); nothing without one. All
    /// partitions' states are here, not only this worker's: a queue source
    /// whose redeliveries may come to any partition looks in them all.
    pub fn restored_states(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.restored
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(p, s)| (*p, s.as_slice()))
    }

    /// Runs `f` once the job has ended, in this process, after its workers
    /// have stopped, with whether the job completed: it succeeded and,
    /// with checkpoints, its final checkpoint is committed (waited for a
    /// while on processes other than the one that commits it). A queue
    /// reader hands over its connection here, to acknowledge its last
    /// messages only if the job completed.
    pub fn at_end(&self, f: impl FnOnce(bool) + Send + 'static) {
        self.at_end
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(f));
    }

    /// Global index of this worker.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Number of workers in the cluster.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// The source's name, for error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Announces `units` of work this worker's partitions will do, for the
    /// progress bar (events, or bytes for files).
    pub fn expect_work(&self, units: u64) {
        self.metrics.expect_work(units);
    }

    /// A context for worker `worker` of `peers`, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(worker: usize, peers: usize, metrics: Arc<Metrics>) -> Self {
        SourceContext {
            worker,
            peers,
            name: "test".into(),
            metrics,
            restored: HashMap::new(),
            at_end: AtEnd::default(),
            bad: BadRecords::for_test(),
        }
    }

    /// The counter to add finished work units to.
    pub fn work_done(&self) -> Arc<AtomicU64> {
        self.metrics.work_done()
    }
}

/// One source as its builds need it: the source, its node, and its error
/// policy (set at most once, read when the source is built). Cheap to
/// clone; it holds no build, so a build may hold it without a cycle.
pub(crate) struct SourceParts<T> {
    /// The source.
    pub(crate) source: Arc<dyn Source<Item = T>>,
    /// The source's node.
    pub(crate) node: usize,
    /// What its readers do with records they cannot read.
    policy: Arc<OnceLock<OnError>>,
}

impl<T> Clone for SourceParts<T> {
    fn clone(&self) -> Self {
        SourceParts {
            source: Arc::clone(&self.source),
            node: self.node,
            policy: Arc::clone(&self.policy),
        }
    }
}

impl<T> SourceParts<T> {
    /// Sets the error policy; false if another one was set before.
    pub(crate) fn set_policy(&self, policy: OnError) -> bool {
        *self.policy.get_or_init(|| policy) == policy
    }

    /// The error policy.
    fn policy(&self) -> OnError {
        self.policy.get().copied().unwrap_or_default()
    }
}

/// The settings of one source its stream can still change: its event time
/// (empty until `event_time` is called on its stream, then the build of the
/// source with event time) and its error policy. The source node reads them
/// when it is built, so the source is one operator however many streams
/// read it.
pub(crate) struct EventTimeSlot<T> {
    /// The source, its node and its policy.
    pub(crate) parts: SourceParts<T>,
    /// The source operator with event time and watermarks, set at most once
    /// by `Stream::event_time` right after the source (it holds the parts,
    /// not the slot: no cycle).
    build: Arc<OnceLock<Builder<T>>>,
}

impl<T> EventTimeSlot<T> {
    /// Sets the timed build; false if event time was already assigned.
    pub(crate) fn assign(&self, build: Builder<T>) -> bool {
        self.build.set(build).is_ok()
    }
}

/// The source operator of `parts`' source on this worker: its partitions,
/// with event time and per-partition watermarks if `time` is given. With
/// the dead-letter policy it also provides the source's dead letters, as
/// its second output.
pub(crate) fn open_source<'s, T, F>(
    ctx: &mut crate::plan::Ctx<'s>,
    parts: &SourceParts<T>,
    time: Option<EventTime<F>>,
) -> Result<crate::plan::Timed<'s, T>, crate::BoxError>
where
    T: Data,
    F: Fn(&T) -> u64 + 'static,
{
    let (source, node) = (&*parts.source, parts.node);
    let name = source.describe();
    let policy = parts.policy();
    let counter = match policy {
        OnError::Fail => None,
        OnError::Skip => Some(ctx.metrics.counter(CounterKind::Skipped, &name)),
        OnError::DeadLetter => Some(ctx.metrics.counter(CounterKind::DeadLettered, &name)),
    };
    let rejects = Rejects::new();
    let bad = BadRecords::new(policy, &name, rejects.clone(), counter);
    let resume = match (ctx.checkpoints.as_ref(), time.is_some()) {
        (Some(c), true) => c.run.cuts(node)?,
        _ => None,
    };
    let restored = resume
        .iter()
        .flat_map(|(_, cuts)| cuts)
        .map(|cut| (cut.partition, cut.state.clone()))
        .collect();
    let sctx = SourceContext::new(ctx, &name, restored, bad);
    let readers = source.open(&sctx)?;
    let counter = ctx.metrics.counter(CounterKind::Source, &name);
    let mut time = time;
    // Partition `k` of this worker is the source's `worker + k * peers`
    // (see `Source::resumable`): its id in cuts and dead letters.
    let (worker, peers) = (ctx.scope.index(), ctx.scope.peers());
    let timed = time.is_some();
    if let Some(et) = time.as_mut() {
        et.checkpoints = SourceCheckpoints {
            ids: (0..readers.len()).map(|k| worker + k * peers).collect(),
            resume,
        };
        if source.acknowledges() {
            et.release = Some(match ctx.checkpoints.as_ref() {
                Some(c) => Release::Checkpoints(c.run.completed_watch()),
                None => Release::Progress(ctx.progress_of(node)),
            });
        }
    }
    let pacing = match timed {
        false => ctx.pacing(node, source.bounded()),
        true => Pacing::Unpaced,
    };
    let run = SourceRun {
        counter,
        failure: ctx.failure.clone(),
        rejects,
        stop: ctx.source_stop(),
        pacing,
        watermarks: match timed {
            true => (0..readers.len())
                .map(|k| ctx.metrics.watermark(&name, worker + k * peers))
                .collect(),
            false => Vec::new(),
        },
    };
    let streams = partitioned_source_with_cuts(ctx.scope, &name, readers, time, run);
    ctx.add_cuts(node, streams.cuts);
    if policy == OnError::DeadLetter {
        use timely::dataflow::operators::vec::Map;
        let letters = streams
            .rejected
            .map(move |(id, mut letter): (usize, DeadLetter)| {
                // Without event time the operator numbers partitions per
                // worker.
                letter.partition = if timed { id } else { worker + id * peers };
                (0, letter)
            });
        ctx.provide(dead_letters_port(node), letters);
    }
    Ok(streams.records)
}

/// The port of a source's dead letters.
pub(crate) fn dead_letters_port(node: usize) -> Port {
    Port { node, port: 1 }
}

/// Why a source cannot take part in checkpoints: it cannot resume, or (a
/// source that can) it has no event time yet.
pub(crate) fn source_blocker(resumable: bool) -> String {
    if resumable {
        "event time on the source (`.event_time(..)` right after it): checkpoints are taken at watermarks".into()
    } else {
        "a source that can resume from a position after a restart (this one cannot, as standard input cannot: read a file instead)".into()
    }
}

impl Pipeline {
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
    pub fn source<S: Source>(&self, source: S) -> Stream<S::Item> {
        let name = source.describe();
        let node = self.add_node_with_outputs("source", name.clone(), &[], &["", "dead_letters"]);
        let parts = SourceParts {
            source: Arc::new(source) as Arc<dyn Source<Item = S::Item>>,
            node,
            policy: Arc::default(),
        };
        let slot = Arc::new(EventTimeSlot {
            parts: parts.clone(),
            build: Arc::default(),
        });
        let timed = Arc::clone(&slot.build);
        let build = builder(move |ctx| match timed.get() {
            Some(with_time) => with_time(ctx),
            None => open_source::<S::Item, fn(&S::Item) -> u64>(ctx, &parts, None),
        });
        self.set_build(node, single_output(node, build));
        self.set_blocker(node, Some(source_blocker(slot.parts.source.resumable())));
        let hook = Arc::clone(&slot.parts.source);
        self.set_commit_hook(
            node,
            Arc::new(move |positions| hook.checkpoint_committed(positions)),
        );
        let mut stream = Stream::of(self.clone(), Port::main(node), false);
        stream.source = Some(slot);
        stream
    }
}

impl<T: Data> Stream<T> {
    /// Sets what the source of this stream does with a record it cannot
    /// read (a line that does not parse, a message that does not decode):
    /// stop the job ([`OnError::Fail`], the default), leave it out
    /// ([`OnError::Skip`]) or send it to the source's dead letters
    /// ([`OnError::DeadLetter`], which [`dead_letters`](Stream::dead_letters)
    /// also sets, and whose stream must then be read). The run summary
    /// counts what is skipped or dead-lettered. Called on the source's
    /// stream (before or after `event_time`).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    /// use weir::sources::OnError;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("n.jsonl");
    /// std::fs::write(&path, "1\n2\nthree\n4\n").unwrap();
    /// let out = Collect::new();
    /// let summary = Pipeline::new("numbers")
    ///     .source(JsonLines::<u64>::new(&path))
    ///     .on_error(OnError::Skip)
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(1).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![1, 2, 4]);
    /// assert_eq!(summary.skipped[0].1, 1);
    /// ```
    pub fn on_error(self, policy: OnError) -> Stream<T> {
        let Some(slot) = &self.source else {
            self.pipeline.record_error(PlanError::InvalidParameter {
                stage: self.pipeline.describe(self.at.node),
                field: "on_error".into(),
                expected:
                    "an error policy set on a source's stream (`pipeline.source(..).on_error(..)`)"
                        .into(),
            });
            return self;
        };
        let parts = &slot.parts;
        if !parts.set_policy(policy) {
            self.pipeline.record_error(PlanError::InvalidParameter {
                stage: self.pipeline.describe(parts.node),
                field: "on_error".into(),
                expected: format!(
                    "one error policy per source; it already has `{}`",
                    parts.policy().name()
                ),
            });
        }
        if policy == OnError::DeadLetter {
            self.pipeline
                .must_read(dead_letters_port(parts.node), "the source's dead letters");
        }
        self
    }

    /// The dead letters of this stream's source: each record it could not
    /// read, with where it was and why ([`DeadLetter`]), instead of an
    /// error that stops the job. Sets the source's policy to
    /// [`OnError::DeadLetter`]; the stream must be read, usually into a
    /// sink ([`JsonLinesFile`](crate::sinks::JsonLinesFile) writes one JSON
    /// object per line). With checkpoints the dead letters are written
    /// exactly once, as any output.
    ///
    /// # Examples
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use weir::prelude::*;
    /// use weir::sources::Origin;
    ///
    /// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    /// struct Reading { sensor: String, value: f64 }
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("r.csv");
    /// std::fs::write(&path, "sensor,value\na,1.5\nb,oops\nc,2\n").unwrap();
    /// let p = Pipeline::new("readings");
    /// let readings = p.source(Csv::<Reading>::new(&path));
    /// let (good, bad) = (Collect::new(), Collect::new());
    /// readings.dead_letters().sink(bad.clone());
    /// let summary = readings.sink(good.clone()).run(Cluster::threads(2).quiet(true)).unwrap();
    /// assert_eq!(good.take().len(), 2);
    /// let bad = bad.take();
    /// assert_eq!(bad.len(), 1);
    /// assert_eq!(bad[0].raw, b"b,oops");
    /// assert!(matches!(bad[0].origin, Origin::File { line: 3, .. }), "{:?}", bad[0]);
    /// assert!(bad[0].reason.contains("value"), "{}", bad[0].reason);
    /// assert_eq!(summary.dead_letters[0].1, 1);
    /// ```
    pub fn dead_letters(&self) -> Stream<DeadLetter> {
        let node = match &self.source {
            Some(slot) => slot.parts.node,
            None => self.at.node,
        };
        let _ = self.clone().on_error(OnError::DeadLetter);
        Stream::of(self.pipeline.clone(), dead_letters_port(node), false)
    }
}

/// A source whose records are mapped by a function inside the source, so
/// that `event_time` can still follow it directly.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::prelude::*;
/// use weir::sources::Mapped;
///
/// // Lines like "1000 click" parsed into (time, what) before event time.
/// let lines = Iter::new(vec!["1000 a".to_string(), "12000 b".to_string()]);
/// let parsed = Mapped::new(lines, |l: String| {
///     let (t, what) = l.split_once(' ').unwrap();
///     (t.parse::<u64>().unwrap(), what.to_string())
/// });
/// let out = Collect::new();
/// Pipeline::new("p")
///     .source(parsed)
///     .event_time(|r: &(u64, String)| r.0, Watermark::ascending())
///     .key_by(|_| 0u8)
///     .window(Tumbling::of(Duration::from_secs(10)))
///     .count()
///     .sink(out.clone())
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap();
/// assert_eq!(out.take().len(), 2);
/// ```
pub struct Mapped<S, F> {
    inner: S,
    f: Arc<F>,
}

impl<S, F> Mapped<S, F> {
    /// Records of `inner`, mapped by `f`.
    pub fn new(inner: S, f: F) -> Self {
        Mapped {
            inner,
            f: Arc::new(f),
        }
    }
}

impl<S, U, F> Source for Mapped<S, F>
where
    S: Source,
    U: Data,
    F: Fn(S::Item) -> U + Send + Sync + 'static,
{
    type Item = U;

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn resumable(&self) -> bool {
        self.inner.resumable()
    }

    fn checkpoint_committed(&self, positions: &[(usize, u64)]) -> Result<(), BoxError> {
        self.inner.checkpoint_committed(positions)
    }

    fn acknowledges(&self) -> bool {
        self.inner.acknowledges()
    }

    fn bounded(&self) -> bool {
        self.inner.bounded()
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<U>>>, SourceError> {
        Ok(self
            .inner
            .open(ctx)?
            .into_iter()
            .map(|reader| {
                Box::new(MappedReader {
                    reader,
                    f: Arc::clone(&self.f),
                    scratch: Vec::new(),
                }) as Box<dyn PartitionReader<U>>
            })
            .collect())
    }
}

struct MappedReader<T, F> {
    reader: Box<dyn PartitionReader<T>>,
    f: Arc<F>,
    scratch: Vec<T>,
}

impl<T: 'static, U, F: Fn(T) -> U + 'static> PartitionReader<U> for MappedReader<T, F> {
    fn read(&mut self, out: &mut Vec<U>, max: usize) -> Result<ReadStatus, crate::BoxError> {
        let status = self.reader.read(&mut self.scratch, max)?;
        out.extend(self.scratch.drain(..).map(|x| (self.f)(x)));
        Ok(status)
    }

    fn position(&self) -> Option<u64> {
        self.reader.position()
    }

    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        self.reader.seek(position)
    }

    fn state(&self) -> Vec<u8> {
        self.reader.state()
    }

    fn release(&mut self, position: u64) -> Result<(), BoxError> {
        self.reader.release(position)
    }

    fn pause(&mut self) -> Result<(), BoxError> {
        self.reader.pause()
    }

    fn resume(&mut self) -> Result<(), BoxError> {
        self.reader.resume()
    }
}

/// How many records a reader that has returned `done` of its partition's
/// records (with `left` to go) skips to resume at `position` (records from
/// the partition's start): forward only, within the partition.
pub(crate) fn checked_skip(
    source: &str,
    position: u64,
    done: u64,
    left: u64,
) -> Result<u64, BoxError> {
    match position.checked_sub(done) {
        Some(skip) if skip <= left => Ok(skip),
        _ => Err(format!(
            "{source}: cannot resume at record {position} of a partition of {} records, having returned {done}",
            done + left
        )
        .into()),
    }
}

/// A reader that hands over its records one at a time. [`Each`] makes it a
/// [`PartitionReader`] whose `read` and `read_timed` both push each record
/// straight into the caller's vector, without a scratch vector between.
pub(crate) trait ReadEach<T>: 'static {
    /// Reads at most `max` records, handing each to `push`.
    fn read_each(&mut self, max: usize, push: impl FnMut(T)) -> Result<ReadStatus, BoxError>;

    /// See [`PartitionReader::position`].
    fn position(&self) -> Option<u64>;

    /// See [`PartitionReader::seek`].
    fn seek(&mut self, position: u64) -> Result<(), BoxError>;
}

/// The [`PartitionReader`] of a [`ReadEach`] reader.
pub(crate) struct Each<R>(pub(crate) R);

impl<T: 'static, R: ReadEach<T>> PartitionReader<T> for Each<R> {
    fn read(&mut self, out: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        out.reserve(max);
        self.0.read_each(max, |record| out.push(record))
    }

    fn read_timed(
        &mut self,
        out: &mut Vec<(Time, T)>,
        max: usize,
        stamp: &mut dyn FnMut(&T) -> Time,
        _scratch: &mut Vec<T>,
    ) -> Result<ReadStatus, BoxError> {
        out.reserve(max);
        self.0
            .read_each(max, |record| out.push((stamp(&record), record)))
    }

    fn position(&self) -> Option<u64> {
        self.0.position()
    }

    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        self.0.seek(position)
    }
}

#[cfg(test)]
mod resume {
    use std::fmt::Debug;
    use std::io::Write;

    use super::*;

    /// Reads `reader` to its end, at most `max` records a read.
    fn read_all<T: 'static>(reader: &mut dyn PartitionReader<T>, max: usize) -> Vec<T> {
        let mut out = Vec::new();
        while reader.read(&mut out, max).unwrap() != ReadStatus::Done {}
        out
    }

    /// For every partition of `source` on each of `peers` workers and cuts
    /// after 0, 1, 2, half, all but one and all of its records: a reader
    /// stopped at the cut tells its position, and a reader opened afresh
    /// and moved there returns exactly the records after the cut.
    fn resumes_where_it_stopped<S: Source>(source: &S, peers: usize)
    where
        S::Item: PartialEq + Debug,
    {
        let metrics = Arc::new(Metrics::new("t"));
        let mut records = 0;
        for worker in 0..peers {
            let ctx = SourceContext::for_test(worker, peers, Arc::clone(&metrics));
            let open = |p: usize| source.open(&ctx).unwrap().remove(p);
            for p in 0..source.open(&ctx).unwrap().len() {
                let all = read_all(&mut *open(p), 3);
                records += all.len();
                let n = all.len();
                let mut cuts = vec![0, 1, 2, n / 2, n.saturating_sub(1), n];
                cuts.retain(|&c| c <= n);
                cuts.dedup();
                for cut in cuts {
                    let mut first = open(p);
                    let mut head = Vec::new();
                    while head.len() < cut {
                        first.read(&mut head, 1).unwrap();
                    }
                    let position = first.position().expect("a resumable reader");
                    let mut second = open(p);
                    second.seek(position).unwrap();
                    head.extend(read_all(&mut *second, 2));
                    assert_eq!(
                        head,
                        all,
                        "{} worker {worker} partition {p} cut {cut} at {position}",
                        source.describe()
                    );
                }
            }
        }
        assert!(records > 0, "{}: no records", source.describe());
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Rec {
        id: u64,
        name: String,
    }

    /// Lines of varying length, so that splits cut lines anywhere.
    fn write_files(dir: &std::path::Path) {
        let name = |i: u64| "x".repeat((i * 7 % 13) as usize);
        let mut csv = std::fs::File::create(dir.join("r.csv")).unwrap();
        let mut jsonl = std::fs::File::create(dir.join("r.jsonl")).unwrap();
        let mut text = std::fs::File::create(dir.join("r.txt")).unwrap();
        writeln!(csv, "name,id").unwrap();
        for i in 0..200 {
            writeln!(csv, "{},{i}", name(i)).unwrap();
            if i % 17 == 0 {
                writeln!(jsonl).unwrap(); // a blank line is no record
            }
            writeln!(jsonl, r#"{{"id":{i},"name":"{}"}}"#, name(i)).unwrap();
            writeln!(text, "{i} {}", name(i)).unwrap();
        }
    }

    #[test]
    fn file_readers_resume_at_their_position() {
        let dir = tempfile::tempdir().unwrap();
        write_files(dir.path());
        for peers in [1, 2] {
            resumes_where_it_stopped(
                &Csv::<Rec>::new(dir.path().join("r.csv")).split_size(97),
                peers,
            );
            resumes_where_it_stopped(
                &JsonLines::<Rec>::new(dir.path().join("r.jsonl")).split_size(131),
                peers,
            );
            resumes_where_it_stopped(
                &TextLines::new(dir.path().join("r.txt")).split_size(64),
                peers,
            );
        }
    }

    #[test]
    fn generated_sources_resume_at_their_position() {
        for peers in [1, 3] {
            resumes_where_it_stopped(&Generator::new(100, |i| i * 3).partitions(4), peers);
            resumes_where_it_stopped(&Iter::new(0..50u32).partitions(3), peers);
            resumes_where_it_stopped(
                &Mapped::new(Generator::new(40, |i| i), |i: u64| i + 1),
                peers,
            );
            #[cfg(feature = "nexmark")]
            resumes_where_it_stopped(&Nexmark::bids(2_000).partitions(4), peers);
        }
    }

    #[test]
    fn a_position_outside_the_partition_is_an_error() {
        let metrics = Arc::new(Metrics::new("t"));
        let ctx = SourceContext::for_test(0, 1, metrics);
        let mut reader = Generator::new(10, |i| i)
            .partitions(1)
            .open(&ctx)
            .unwrap()
            .remove(0);
        let err = reader.seek(11).unwrap_err().to_string();
        assert!(
            err.contains("cannot resume at record 11 of a partition of 10"),
            "{err}"
        );
        reader.seek(4).unwrap();
        assert!(reader.seek(2).is_err(), "a reader only moves forward");
    }
}
