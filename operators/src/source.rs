//! The partitioned source operator.
//!
//! A source is split into partitions (a generator slice, a file byte range,
//! stdin); each worker reads the partitions assigned to it. The operator holds
//! one capability per partition and releases it when the partition is
//! exhausted, so a record's timestamp depends only on its own partition, never
//! on how partitions interleave (DESIGN.md, "Coming later").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Scope;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};
use weir_engine::{BoxError, Failure};

use crate::{Time, VecStream};

/// Records a partition hands over per read call, at most.
pub const BATCH: usize = 1024;

/// How long one activation of the source reads before yielding to the rest
/// of the dataflow.
const SLICE: Duration = Duration::from_millis(1);

/// Batches a paced partition (without event time) sends at one time.
const PACE_EVERY: u64 = 8;

/// How long an aligned source that is ahead waits before it looks again,
/// after it found itself ahead twice in a row.
const PAUSE: Duration = Duration::from_millis(1);

/// What a partition reader reports after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadStatus {
    /// Records may follow right away.
    More,
    /// Nothing is available now (an unbounded source waiting for input).
    Idle,
    /// The partition is exhausted.
    Done,
}

/// One partition of a source, read batch by batch on one worker.
pub trait PartitionReader<D>: 'static {
    /// Appends at most `max` records to `out` and says whether more may follow.
    ///
    /// # Errors
    ///
    /// A record that cannot be read; the error should name the source and
    /// where in it (file, line, offset). It stops the job.
    fn read(&mut self, out: &mut Vec<D>, max: usize) -> Result<ReadStatus, BoxError>;

    /// As [`read`](PartitionReader::read), but appends each record to `out`
    /// paired with its event time as `stamp` gives it, in the shape the
    /// source operator sends downstream. The default reads into `scratch`
    /// (left empty) and moves the records over; a reader of large records can
    /// push them into `out` as it makes them, saving a move of each.
    ///
    /// # Errors
    ///
    /// As [`read`](PartitionReader::read).
    fn read_timed(
        &mut self,
        out: &mut Vec<(Time, D)>,
        max: usize,
        stamp: &mut dyn FnMut(&D) -> Time,
        scratch: &mut Vec<D>,
    ) -> Result<ReadStatus, BoxError> {
        let status = self.read(scratch, max);
        out.extend(scratch.drain(..).map(|d| (stamp(&d), d)));
        status
    }

    /// Where this reader is, after the records it has returned: a position
    /// to resume from with [`seek`](PartitionReader::seek) on a reader of
    /// the same partition in a later run, opaque to anything else (files:
    /// the byte offset of the next line; generators: the records returned
    /// so far). `None` (the default): the reader cannot resume, as standard
    /// input cannot.
    fn position(&self) -> Option<u64> {
        None
    }

    /// Moves a reader just opened, before its first read, to `position`, a
    /// value [`position`](PartitionReader::position) gave for the same
    /// partition: it then returns the records after that point.
    ///
    /// # Errors
    ///
    /// The reader cannot resume (the default), or `position` is not one of
    /// its partition.
    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        Err(format!("this source cannot resume (asked to seek to {position})").into())
    }

    /// What the reader keeps beside its position, saved with it in each
    /// checkpoint's cut ([`PartitionCut::state`]): a queue source keeps the
    /// ids of the messages it returned and has not acknowledged yet, so
    /// that after a restore their redeliveries can be dropped. Empty (the
    /// default): nothing.
    fn state(&self) -> Vec<u8> {
        Vec::new()
    }

    /// The source will not read this partition for a while: it is ahead
    /// of what the job has finished (flow control) and waits. A queue
    /// reader can stop fetching meanwhile (Kafka pauses the partition, so
    /// its client does not fill its queue); [`resume`](PartitionReader::resume)
    /// comes before the next read. By default nothing.
    ///
    /// # Errors
    ///
    /// The broker refused: it stops the job.
    fn pause(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// The source reads this paused partition again. By default nothing.
    ///
    /// # Errors
    ///
    /// The broker refused: it stops the job.
    fn resume(&mut self) -> Result<(), BoxError> {
        Ok(())
    }

    /// The records returned up to `position` (a value
    /// [`position`](PartitionReader::position) gave) are safe: a checkpoint
    /// holding them is complete or, without checkpoints, every result
    /// stamped at or before their time has reached the sinks (see
    /// [`Release`]). A queue source acknowledges them to its broker here.
    /// Called with positions that only grow. By default nothing.
    ///
    /// # Errors
    ///
    /// The release failed (a broker error): it stops the job.
    fn release(&mut self, position: u64) -> Result<(), BoxError> {
        let _ = position;
        Ok(())
    }
}

/// When a source's partitions are told that the records they returned are
/// safe ([`PartitionReader::release`]), so that a queue can acknowledge
/// them.
#[derive(Clone)]
pub enum Release {
    /// Once a checkpoint holding them is complete: the function gives the
    /// time of the newest complete checkpoint (`Time::MAX` once the job's
    /// final one is), and a cut stamped before it is released.
    Checkpoints(Arc<dyn Fn() -> Option<Time> + Send + Sync>),
    /// Once every result stamped at or before their time has reached the
    /// sinks: the probe on the sinks' inputs has passed the stamp of their
    /// cut. Records still held in window state then are not covered: only
    /// checkpoints make a queue source lose nothing on a crash.
    Progress(timely::dataflow::ProbeHandle<Time>),
}

/// How a source assigns event time and watermarks: each partition's
/// watermark is `max event time seen − bound`; a partition that has had no
/// records for `idle_timeout` advances its watermark at the pace of
/// processing time, so that an idle partition does not hold the job back.
pub struct EventTime<F> {
    /// Extracts a record's event time, in milliseconds since the epoch.
    pub extract: F,
    /// The bound on out-of-orderness, in milliseconds.
    pub bound: u64,
    /// How long a partition may be idle before its watermark advances by
    /// processing time; `None` never.
    pub idle_timeout: Option<Duration>,
    /// Records per batch at most: a partition's watermark moves after each
    /// batch, so this is how often it can move.
    pub batch: usize,
    /// Flow control against the job's progress; `None` reads freely.
    pub align: Option<Align>,
    /// Checkpoints of the source's positions, and where it resumes from.
    pub checkpoints: SourceCheckpoints,
    /// When partitions are told their records are safe; `None`: never
    /// (sources that need not know, such as files).
    pub release: Option<Release>,
}

/// Where one partition of a source stood when its watermark moved: the
/// records it had sent until then went out at times up to the watermark it
/// moved from, the rest at or after the one it moved to. Sent on the
/// source's cuts output stamped at the watermark it moved from, so the last
/// cut of a partition stamped before a checkpoint time `T` is where it
/// resumes from after a restore at `T` (see [`crate::checkpoint`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct PartitionCut {
    /// The partition's id ([`SourceCheckpoints::ids`]).
    pub partition: usize,
    /// Its reader's position ([`PartitionReader::position`]); `None` if it
    /// cannot resume.
    pub position: Option<u64>,
    /// The greatest event time it had read (its watermark's source).
    pub max_seen: Option<Time>,
    /// Whether it was exhausted.
    pub done: bool,
    /// Its reader's state beside the position
    /// ([`PartitionReader::state`]); empty for most sources.
    pub state: Vec<u8>,
}

/// A source's part in checkpoints: the ids of its partitions, and where it
/// resumes from.
#[derive(Default)]
pub struct SourceCheckpoints {
    /// The id of each reader's partition, the same on any number of workers
    /// (so that a restore on another number finds each partition's cut);
    /// empty: its index among the readers.
    pub ids: Vec<usize>,
    /// Resume at these cuts (by partition id, those of other partitions are
    /// ignored), taken at this checkpoint time: each partition seeks to its
    /// position and keeps its highest event time, so its watermark and the
    /// times its records go out at are those of the first run; an exhausted
    /// one is not read again.
    pub resume: Option<(Time, Vec<PartitionCut>)>,
}

/// Flow control of a source by the job's progress: the source sends at
/// most `batches` batches ahead of what the job has finished. It remembers
/// the times of the batches it sent last, and reads no further while the
/// probe's frontier (over every worker and process) is still before the
/// time of the batch sent `batches` batches ago. A worker whose input is
/// ahead in event time thus waits for the others (Flink's watermark
/// alignment) instead of filling exchange queues and window state with
/// records the job cannot finish yet, and does so without a drift in
/// milliseconds that would suit one input's density of event time and not
/// another's. A source never waits for itself: the probe's frontier is at
/// most its own least watermark, and it waits only for times it has
/// passed.
#[derive(Clone)]
pub struct Align {
    /// Where the job's progress is read: a probe on the inputs of the sinks
    /// downstream of the source.
    pub progress: timely::dataflow::ProbeHandle<Time>,
    /// Batches a source may send beyond the job's progress.
    pub batches: usize,
}

/// Where the readers of a source set aside the records they could not
/// read and did not stop for (a dead-letter policy): shared by the readers
/// of one source on one worker, emptied by the source operator after each
/// read call of a partition, so every rejected record goes out on the
/// rejected stream with the number of the partition that read it, at the
/// time that partition's records of the same read went out at.
pub struct Rejects<R>(Arc<Mutex<Vec<R>>>);

impl<R> Rejects<R> {
    /// An empty set.
    pub fn new() -> Self {
        Rejects(Arc::default())
    }

    /// Sets `record` aside.
    pub fn push(&self, record: R) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    /// Moves what was set aside into `out`.
    fn drain_into(&self, out: &mut Vec<R>) {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        out.append(&mut held);
    }
}

impl<R> Default for Rejects<R> {
    fn default() -> Self {
        Rejects::new()
    }
}

impl<R> Clone for Rejects<R> {
    fn clone(&self) -> Self {
        Rejects(Arc::clone(&self.0))
    }
}

/// What a source operator reports to and listens to beside its data: the
/// counter of records it read, the failure slot its readers' errors go to,
/// where they set aside what they reject, and when to stop early.
pub struct SourceRun<R> {
    /// The number of records read is added here.
    pub counter: Arc<AtomicU64>,
    /// Reader errors are raised here, and release every capability.
    pub failure: Failure,
    /// What the readers set aside (see [`Rejects`]).
    pub rejects: Rejects<R>,
    /// Once a stop is requested here, every partition ends where it is (as
    /// if exhausted), so the job drains what was read and completes.
    pub stop: Option<weir_engine::StopHandle>,
    /// Without event time: the times its batches go out at ([`Pacing`]).
    pub pacing: Pacing,
    /// With event time, the watermark gauges of its partitions, in reader
    /// order (see [`Metrics::watermark`](weir_engine::Metrics::watermark)):
    /// each partition stores every watermark it moves to, and
    /// [`NO_WATERMARK`](weir_engine::NO_WATERMARK) when it ends. Empty: not
    /// reported.
    pub watermarks: Vec<Arc<AtomicU64>>,
}

/// The times a source without event time sends its batches at (every record
/// still carries event time 0).
#[derive(Default)]
pub enum Pacing {
    /// Every batch at time 0: the stages downstream see the whole input as
    /// one version (an updating aggregation gives each key one result, once
    /// the input ends).
    #[default]
    Unpaced,
    /// Flow control by batches: each partition sends every 8 batches at a
    /// time one past its previous ones, so the job's progress can be seen,
    /// and the source sends at most `batches` batches beyond it, as an
    /// aligned source with event time does. For jobs whose stages read no
    /// time (no updating aggregation or join downstream): those would see
    /// the batches as versions.
    Batches(Align),
    /// Processing-time ticks, for an input that may never end feeding
    /// stages that take times as versions (updating aggregations and
    /// joins): each partition sends at the current tick (milliseconds since
    /// the Unix epoch, rounded down to a multiple of `every`), and moves to
    /// it whenever it is read, with records or without, so those stages
    /// emit what changed once per tick while the input goes on. With
    /// `align`, the source also sends at most `align.batches` batches
    /// beyond the job's progress (a tick's batches count as one time).
    Ticks {
        /// The tick.
        every: Duration,
        /// Flow control, as for [`Pacing::Batches`].
        align: Option<Align>,
    },
}

impl Pacing {
    /// The flow control of this pacing, if any.
    fn align(&self) -> Option<&Align> {
        match self {
            Pacing::Unpaced => None,
            Pacing::Batches(align) => Some(align),
            Pacing::Ticks { align, .. } => align.as_ref(),
        }
    }
}

/// The processing-time tick of `every` that holds now: milliseconds since the
/// Unix epoch, rounded down to a multiple of `every` (at least 1 ms).
fn current_tick(every: Duration) -> Time {
    let every = (every.as_millis() as u64).max(1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    now / every * every
}

/// The streams of a source operator.
pub struct SourceStreams<'scope, D, R> {
    /// Its records, as `(event time, record)`.
    pub records: VecStream<'scope, (Time, D)>,
    /// Its cuts (see [`PartitionCut`]).
    pub cuts: VecStream<'scope, PartitionCut>,
    /// What its readers set aside ([`Rejects`]), as `(partition, record)`.
    pub rejected: VecStream<'scope, (usize, R)>,
}

/// The watermark of one partition.
struct Clock {
    /// The highest event time seen.
    max_seen: Option<u64>,
    /// When the partition last produced a record, or last advanced while idle.
    last_activity: Instant,
}

struct Partition<D> {
    /// Its id ([`SourceCheckpoints::ids`]).
    id: usize,
    reader: Box<dyn PartitionReader<D>>,
    capability: Capability<Time>,
    /// Its capability on the cuts output, at the same time.
    cut_capability: Capability<Time>,
    /// Its capability on the rejected output, at the same time.
    reject_capability: Capability<Time>,
    clock: Clock,
    /// With a [`Release`]: the cuts sent and not yet released, as (stamp,
    /// position), oldest first; `None` without.
    unreleased: Option<Unreleased>,
    /// Batches sent (for pacing without event time).
    batches: u64,
    /// Whether its reader is paused (see [`PartitionReader::pause`]).
    paused: bool,
    /// Its watermark gauge, if reported ([`SourceRun::watermarks`]).
    watermark: Option<Arc<AtomicU64>>,
}

/// The cuts output of a source.
type CutsOut<'a> = OutputBuilderSession<'a, Time, CapacityContainerBuilder<Vec<PartitionCut>>>;

impl<D: 'static> Partition<D> {
    /// Where the partition stands now.
    fn cut(&self, done: bool) -> PartitionCut {
        PartitionCut {
            partition: self.id,
            position: self.reader.position(),
            max_seen: self.clock.max_seen,
            done,
            state: self.reader.state(),
        }
    }

    /// Sends the partition's cut, stamped at its watermark, and notes its
    /// position for a release if the source releases.
    fn send_cut(&mut self, done: bool, cuts: &mut CutsOut<'_>) {
        let cut = self.cut(done);
        if let (Some(unreleased), Some(position)) = (&mut self.unreleased, cut.position) {
            unreleased.push_back((*self.cut_capability.time(), position));
        }
        cuts.session(&self.cut_capability).give(cut);
    }

    /// Moves the watermark to `to`, sending the cut there, stamped at the
    /// watermark it moves from.
    fn advance(&mut self, to: Time, cuts: &mut CutsOut<'_>) {
        if to <= *self.capability.time() {
            return;
        }
        self.send_cut(false, cuts);
        self.downgrade(to);
    }

    /// Moves the partition's capabilities on every output to `to`.
    fn downgrade(&mut self, to: Time) {
        if let Some(gauge) = &self.watermark {
            gauge.store(to, Ordering::Relaxed);
        }
        self.capability.downgrade(&to);
        self.cut_capability.downgrade(&to);
        self.reject_capability.downgrade(&to);
    }

    /// Releases the newest position noted at a stamp `safe` says is safe.
    fn release(&mut self, safe: &dyn Fn(Time) -> bool) -> Result<(), BoxError> {
        match &mut self.unreleased {
            Some(unreleased) => release_noted(&mut *self.reader, unreleased, safe),
            None => Ok(()),
        }
    }
}

/// Releases, in `reader`, the newest of the `unreleased` (stamp, position)
/// pairs whose stamp `safe` says is safe, forgetting it and those before.
fn release_noted<D: 'static>(
    reader: &mut dyn PartitionReader<D>,
    unreleased: &mut Unreleased,
    safe: &dyn Fn(Time) -> bool,
) -> Result<(), BoxError> {
    let mut newest = None;
    while let Some(&(stamp, position)) = unreleased.front() {
        if !safe(stamp) {
            break;
        }
        newest = Some(position);
        unreleased.pop_front();
    }
    match newest {
        Some(position) => reader.release(position),
        None => Ok(()),
    }
}

/// Creates a source operator reading `readers`, one capability each, without
/// event time: every record has event time 0 and the capabilities stay at 0
/// until their partition is exhausted. See [`partitioned_source_with_time`].
///
/// # Examples
///
/// ```
/// use std::sync::{atomic::AtomicU64, Arc};
/// use timely::dataflow::operators::capture::{Capture, Extract};
/// use weir_engine::{BoxError, Failure};
/// use weir_operators::{partitioned_source, PartitionReader, ReadStatus};
///
/// struct Count(u64, u64);
/// impl PartitionReader<u64> for Count {
///     fn read(&mut self, out: &mut Vec<u64>, max: usize) -> Result<ReadStatus, BoxError> {
///         while self.0 < self.1 && max > 0 && out.len() < max {
///             out.push(self.0);
///             self.0 += 1;
///         }
///         Ok(if self.0 == self.1 { ReadStatus::Done } else { ReadStatus::More })
///     }
/// }
///
/// let counter = Arc::new(AtomicU64::new(0));
/// let seen = counter.clone();
/// let captured = timely::example(move |scope| {
///     let readers: Vec<Box<dyn PartitionReader<u64>>> =
///         vec![Box::new(Count(0, 3000)), Box::new(Count(5000, 5010))];
///     partitioned_source(scope, "numbers", readers, counter, Failure::default()).capture()
/// });
/// let mut all: Vec<(u64, u64)> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
/// all.sort();
/// assert_eq!(all.len(), 3010);
/// assert_eq!(all[2999..3001], [(0, 2999), (0, 5000)]);
/// assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 3010);
/// ```
pub fn partitioned_source<'scope, D: ExchangeData>(
    scope: Scope<'scope, Time>,
    name: &str,
    readers: Vec<Box<dyn PartitionReader<D>>>,
    counter: Arc<AtomicU64>,
    failure: Failure,
) -> VecStream<'scope, (Time, D)> {
    partitioned_source_with_time::<D, fn(&D) -> Time>(scope, name, readers, None, counter, failure)
}

/// Creates a source operator reading `readers`, one capability each; each
/// record travels as `(event time, record)`.
///
/// With `event_time`, each partition keeps its own watermark (see
/// [`EventTime`]); a batch is sent at a capability equal to its partition's
/// watermark as of the start of the batch, and the capability then moves up
/// to the new watermark. The timely frontier downstream is thus the minimum
/// watermark over all partitions of all workers. An exhausted partition
/// drops its capability (its watermark becomes +∞). Reader errors are raised
/// on `failure` and release every capability of the operator; the number of
/// records read is added to `counter`.
///
/// # Examples
///
/// ```
/// use std::sync::{atomic::AtomicU64, Arc};
/// use timely::dataflow::operators::capture::{Capture, Extract};
/// use weir_engine::{BoxError, Failure};
/// use weir_operators::source::{partitioned_source_with_time, EventTime};
/// use weir_operators::{PartitionReader, ReadStatus};
///
/// /// Event times 1000, 2000, ..., 6000, `max` at a time.
/// struct Ticks(u64);
/// impl PartitionReader<u64> for Ticks {
///     fn read(&mut self, out: &mut Vec<u64>, max: usize) -> Result<ReadStatus, BoxError> {
///         for _ in 0..max.min(6 - self.0 as usize) { self.0 += 1; out.push(self.0 * 1000); }
///         Ok(if self.0 == 6 { ReadStatus::Done } else { ReadStatus::More })
///     }
/// }
///
/// let captured = timely::example(move |scope| {
///     let time = EventTime {
///         extract: |t: &u64| *t, bound: 500, idle_timeout: None, batch: 2,
///         align: None, checkpoints: Default::default(), release: None,
///     };
///     let readers: Vec<Box<dyn PartitionReader<u64>>> = vec![Box::new(Ticks(0))];
///     partitioned_source_with_time(scope, "ticks", readers, Some(time),
///         Arc::new(AtomicU64::new(0)), Failure::default()).capture()
/// });
/// // The first read is one record, at watermark 0; then batches of 2 go out
/// // at the watermark as of their start: 1000-500, 3000-500, 5000-500.
/// let times: Vec<u64> = captured.extract().into_iter().map(|(t, _)| t).collect();
/// assert_eq!(times, vec![0, 500, 2500, 4500]);
/// ```
pub fn partitioned_source_with_time<'scope, D, F>(
    scope: Scope<'scope, Time>,
    name: &str,
    readers: Vec<Box<dyn PartitionReader<D>>>,
    event_time: Option<EventTime<F>>,
    counter: Arc<AtomicU64>,
    failure: Failure,
) -> VecStream<'scope, (Time, D)>
where
    D: ExchangeData,
    F: Fn(&D) -> Time + 'static,
{
    let run = SourceRun::<()> {
        counter,
        failure,
        rejects: Rejects::new(),
        stop: None,
        pacing: Pacing::Unpaced,
        watermarks: Vec::new(),
    };
    partitioned_source_with_cuts(scope, name, readers, event_time, run).records
}

/// As [`partitioned_source_with_time`], and the source's cuts: whenever a
/// partition's watermark moves, and when it ends, where it stood
/// ([`PartitionCut`]), stamped at the watermark it moved from; and what its
/// readers set aside in `run.rejects`, stamped as the records of the same
/// read. The frontiers of all three streams are the source's.
pub fn partitioned_source_with_cuts<'scope, D, F, R>(
    scope: Scope<'scope, Time>,
    name: &str,
    readers: Vec<Box<dyn PartitionReader<D>>>,
    event_time: Option<EventTime<F>>,
    run: SourceRun<R>,
) -> SourceStreams<'scope, D, R>
where
    D: ExchangeData,
    F: Fn(&D) -> Time + 'static,
    R: ExchangeData,
{
    let SourceRun {
        counter,
        failure,
        rejects,
        stop,
        pacing,
        watermarks,
    } = run;
    // Paced (without event time) or aligned (with): how far ahead of the
    // job's progress the source may go.
    let pacing = match event_time {
        Some(_) => Pacing::Unpaced,
        None => pacing,
    };
    let align = event_time
        .as_ref()
        .and_then(|et| et.align.clone())
        .or_else(|| pacing.align().cloned());
    let batches_paced = matches!(pacing, Pacing::Batches(_));
    let ticks = match pacing {
        Pacing::Ticks { every, .. } => Some(every),
        _ => None,
    };
    let mut event_time = event_time;
    let checkpoints = event_time
        .as_mut()
        .map(|et| std::mem::take(&mut et.checkpoints))
        .unwrap_or_default();
    let mut builder = OperatorBuilder::new(name.to_owned(), scope);
    let address = builder.operator_info().address;
    let (data, data_stream) = builder.new_output::<Vec<(Time, D)>>();
    let (cuts, cuts_stream) = builder.new_output::<Vec<PartitionCut>>();
    let (rejected, rejected_stream) = builder.new_output::<Vec<(usize, R)>>();
    let mut data = OutputBuilder::<_, CapacityContainerBuilder<Vec<(Time, D)>>>::from(data);
    let mut cuts = OutputBuilder::<_, CapacityContainerBuilder<Vec<PartitionCut>>>::from(cuts);
    let mut rejected =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<(usize, R)>>>::from(rejected);
    builder.build(move |initial| {
        let activator = scope.activator_for(address);
        let now = Instant::now();
        // One capability per output: the data's, the cuts', the rejected's.
        let caps = initial
            .first()
            .zip(initial.get(1))
            .zip(initial.get(2))
            .map(|((d, c), r)| (d, c, r));
        let SourceCheckpoints { ids, resume } = checkpoints;
        // A queue (a source whose records are released) notes its cuts
        // until they are released, and redelivers what it had not
        // acknowledged to any of its partitions.
        let releases = event_time.as_ref().is_some_and(|et| et.release.is_some());
        let mut partitions: Vec<Partition<D>> = readers
            .into_iter()
            .enumerate()
            .zip(std::iter::repeat(caps))
            .filter_map(|((index, reader), caps)| {
                let (capability, cut_capability, reject_capability) = caps?;
                Some(Partition {
                    id: ids.get(index).copied().unwrap_or(index),
                    reader,
                    capability: capability.clone(),
                    cut_capability: cut_capability.clone(),
                    reject_capability: reject_capability.clone(),
                    clock: Clock {
                        max_seen: None,
                        last_activity: now,
                    },
                    unreleased: releases.then(Unreleased::default),
                    batches: 0,
                    paused: false,
                    watermark: watermarks.get(index).cloned(),
                })
            })
            .collect();
        drop(initial);
        if let Some((at, saved)) = resume {
            let bound = event_time.as_ref().map_or(0, |et| et.bound);
            if let Err(e) = resume_at(&mut partitions, at, &saved, bound, releases) {
                failure.raise(e);
                partitions.clear();
            }
        }
        let batch = event_time.as_ref().map_or(BATCH, |et| et.batch.max(1));
        let mut buffer: Vec<D> = Vec::with_capacity(batch);
        let mut stamped: Vec<(Time, D)> = Vec::with_capacity(batch);
        let mut set_aside: Vec<R> = Vec::new();
        // Where the search for the next partition starts, so that partitions
        // at the same watermark take turns.
        let mut cursor = 0;
        let mut idle: Vec<bool> = Vec::new();
        // With alignment: the times of the last batches sent, and whether
        // the last activation found the source too far ahead.
        let mut sent: std::collections::VecDeque<Time> = Default::default();
        let mut waited = false;
        let release = event_time.as_ref().and_then(|et| et.release.clone());
        // Exhausted partitions whose last records are not released yet.
        let mut finishing: Vec<(Box<dyn PartitionReader<D>>, Unreleased)> = Vec::new();
        move |_frontiers| {
            let mut output = data.activate();
            let mut cuts = cuts.activate();
            let mut rejected = rejected.activate();
            if stop.as_ref().is_some_and(|s| s.is_requested()) {
                // Every partition ends where it is, as an exhausted one
                // does; those with unreleased cuts finish releasing.
                for mut partition in partitions.drain(..) {
                    partition.send_cut(true, &mut cuts);
                    if let Some(unreleased) = partition.unreleased.filter(|u| !u.is_empty()) {
                        finishing.push((partition.reader, unreleased));
                    }
                }
            }
            if let Some(release) = &release
                && let Err(e) = release_safe(release, &mut partitions, &mut finishing)
            {
                failure.raise(e);
                partitions.clear();
                finishing.clear();
                return;
            }
            // The partition with the least watermark reads next (taking
            // turns on ties), one batch at a time, until the time slice is up
            // or none has records ready: partitions advance together in
            // event time, so the global watermark follows the input and
            // windows fire as it is read.
            let start = Instant::now();
            // The tick of this activation (a clock read per activation,
            // not per batch).
            let tick = ticks.map(current_tick);
            idle.clear();
            idle.resize(partitions.len(), false);
            while let Some(i) = next_partition(&partitions, &idle, cursor) {
                if let Some(align) = align.as_ref() {
                    let oldest = (sent.len() >= align.batches)
                        .then(|| sent.front())
                        .flatten();
                    // A partition at or below the job's frontier is what
                    // holds the job back (an idle partition that others on
                    // this worker ran ahead of while it had nothing, such as
                    // a queue that had not yet delivered): it is read, or
                    // the source would wait for itself.
                    let holds_back = !align.progress.less_than(partitions[i].capability.time());
                    if !holds_back && oldest.is_some_and(|t| align.progress.less_than(t)) {
                        // The first time, the next step may well catch up
                        // (this worker's own records in flight); after
                        // that, others are behind: look again a little later
                        // (records arriving wake the worker sooner).
                        if waited {
                            // Ahead twice in a row: the readers may stop
                            // fetching until the job catches up.
                            let paused =
                                partitions
                                    .iter_mut()
                                    .filter(|p| !p.paused)
                                    .try_for_each(|p| {
                                        p.paused = true;
                                        p.reader.pause()
                                    });
                            if let Err(e) = paused {
                                failure.raise(e);
                                partitions.clear();
                                return;
                            }
                            activator.activate_after(PAUSE);
                        } else {
                            activator.activate();
                        }
                        waited = true;
                        return;
                    }
                    waited = false;
                }
                let partition = &mut partitions[i];
                if let Some(now) = tick {
                    // Read or not, the partition moves to the tick of now,
                    // so what it sent at earlier ticks can complete.
                    if now > *partition.capability.time() {
                        partition.downgrade(now);
                    }
                }
                if partition.paused {
                    partition.paused = false;
                    if let Err(e) = partition.reader.resume() {
                        failure.raise(e);
                        partitions.clear();
                        return;
                    }
                }
                // With event time, a partition's first read is one record:
                // it sets the partition's watermark before more of its
                // records are read.
                let max = match (&event_time, partition.clock.max_seen) {
                    (Some(_), None) => 1,
                    _ => batch,
                };
                // Records are stamped as they are made (an indirect call
                // each): setting the times in a second pass over the batch
                // measured slower (Nexmark q0: 12.8 against 14.0 M events/s).
                let mut seen = partition.clock.max_seen;
                let read = match &event_time {
                    None => partition
                        .reader
                        .read_timed(&mut stamped, max, &mut |_| 0, &mut buffer),
                    Some(et) => {
                        let mut stamp = |d: &D| {
                            let ts = (et.extract)(d);
                            seen = Some(seen.map_or(ts, |m| m.max(ts)));
                            ts
                        };
                        partition
                            .reader
                            .read_timed(&mut stamped, max, &mut stamp, &mut buffer)
                    }
                };
                let status = match read {
                    Ok(status) => status,
                    Err(e) => {
                        failure.raise(e);
                        partitions.clear();
                        return;
                    }
                };
                rejects.drain_into(&mut set_aside);
                if !set_aside.is_empty() {
                    let id = partition.id;
                    rejected
                        .session(&partition.reject_capability)
                        .give_iterator(set_aside.drain(..).map(|r| (id, r)));
                }
                if !stamped.is_empty() {
                    counter.fetch_add(stamped.len() as u64, Ordering::Relaxed);
                    if event_time.is_some() {
                        partition.clock.max_seen = seen;
                        partition.clock.last_activity = Instant::now();
                    }
                    output
                        .session(&partition.capability)
                        .give_container(&mut stamped);
                    stamped.clear();
                    if event_time.is_none() {
                        // Without event time nothing is ever waited for:
                        // what was sent is released.
                        let released = match partition.reader.position() {
                            Some(position) => partition.reader.release(position),
                            None => Ok(()),
                        };
                        if let Err(e) = released {
                            failure.raise(e);
                            partitions.clear();
                            return;
                        }
                    }
                    if let Some(align) = align.as_ref() {
                        if sent.len() >= align.batches {
                            sent.pop_front();
                        }
                        sent.push_back(*partition.capability.time());
                    }
                    if let (Some(et), Some(max)) = (&event_time, partition.clock.max_seen) {
                        partition.advance(max.saturating_sub(et.bound), &mut cuts);
                    }
                    if batches_paced {
                        // Every PACE_EVERY batches, the next go out one time
                        // later (a new time per batch costs progress
                        // messages enough to slow a pass-through job).
                        partition.batches += 1;
                        if partition.batches.is_multiple_of(PACE_EVERY) {
                            let next = partition.capability.time().saturating_add(1);
                            partition.downgrade(next);
                        }
                    }
                }
                cursor = i + 1;
                match status {
                    // Dropping the partition releases its capability.
                    ReadStatus::Done => {
                        partition.send_cut(true, &mut cuts);
                        if let Some(gauge) = &partition.watermark {
                            gauge.store(weir_engine::NO_WATERMARK, Ordering::Relaxed);
                        }
                        let done = partitions.swap_remove(i);
                        idle.swap_remove(i);
                        if let Some(unreleased) = done.unreleased.filter(|u| !u.is_empty()) {
                            finishing.push((done.reader, unreleased));
                        }
                    }
                    ReadStatus::More => {}
                    ReadStatus::Idle => {
                        if let Some(timeout) = event_time.as_ref().and_then(|et| et.idle_timeout) {
                            advance_idle(partition, timeout, &mut cuts);
                        }
                        idle[i] = true;
                    }
                }
                if start.elapsed() >= SLICE {
                    activator.activate();
                    return;
                }
            }
            if !partitions.is_empty() || !finishing.is_empty() {
                activator.activate_after(Duration::from_millis(2));
            }
        }
    });
    SourceStreams {
        records: data_stream,
        cuts: cuts_stream,
        rejected: rejected_stream,
    }
}

/// Cuts sent and not yet released, as (stamp, position), oldest first.
type Unreleased = std::collections::VecDeque<(Time, u64)>;

/// Releases what `release` says is safe now in every partition, and in the
/// exhausted ones still `finishing` (dropping those with nothing left).
fn release_safe<D: 'static>(
    release: &Release,
    partitions: &mut [Partition<D>],
    finishing: &mut Vec<(Box<dyn PartitionReader<D>>, Unreleased)>,
) -> Result<(), BoxError> {
    let complete;
    let safe: Box<dyn Fn(Time) -> bool + '_> = match release {
        Release::Checkpoints(completed) => {
            complete = completed();
            Box::new(|stamp| complete.is_some_and(|c| stamp < c))
        }
        Release::Progress(probe) => Box::new(|stamp| !probe.less_equal(&stamp)),
    };
    for partition in partitions.iter_mut() {
        partition.release(&*safe)?;
    }
    for (reader, unreleased) in finishing.iter_mut() {
        release_noted(&mut **reader, unreleased, &*safe)?;
    }
    finishing.retain(|(_, unreleased)| !unreleased.is_empty());
    Ok(())
}

/// The partition to read next: the one with the least watermark among those
/// not found idle in this activation, the first at or after `cursor` on a tie.
fn next_partition<D>(partitions: &[Partition<D>], idle: &[bool], cursor: usize) -> Option<usize> {
    let n = partitions.len();
    (0..n)
        .map(|k| (cursor + k) % n)
        .filter(|&i| !idle[i])
        .min_by_key(|&i| *partitions[i].capability.time())
}

/// Moves the watermark of a partition idle for longer than `timeout` ahead
/// by the processing time elapsed since it last moved.
fn advance_idle<D: 'static>(
    partition: &mut Partition<D>,
    timeout: Duration,
    cuts: &mut CutsOut<'_>,
) {
    let idle = partition.clock.last_activity.elapsed();
    if idle < timeout {
        return;
    }
    let step = idle.as_millis() as u64;
    let next = partition.capability.time().saturating_add(step);
    partition.advance(next, cuts);
    partition.clock.last_activity = Instant::now();
}

/// Moves each partition to its cut in `cuts` (taken at checkpoint time
/// `at`): exhausted ones are dropped, the others seek to their positions,
/// keep their highest event time and start at their watermark then.
///
/// Partitions of a `shared` queue start again at `at` itself, exhausted or
/// not and without a highest event time: what the queue redelivers after
/// their cuts (all of it at or after `at`) may come to any of them, and
/// must not be late in one whose watermark had gone further.
fn resume_at<D: 'static>(
    partitions: &mut Vec<Partition<D>>,
    at: Time,
    cuts: &[PartitionCut],
    bound: u64,
    shared: bool,
) -> Result<(), BoxError> {
    let mut kept = Vec::with_capacity(partitions.len());
    for mut p in partitions.drain(..) {
        let cut = cuts.iter().find(|c| c.partition == p.id).ok_or_else(|| {
            format!(
                "the checkpoint at {at} has no cut of partition {} (did the input change?)",
                p.id
            )
        })?;
        if cut.done && !shared {
            continue;
        }
        let position = cut.position.ok_or_else(|| {
            format!(
                "partition {} cannot resume: its reader has no position",
                p.id
            )
        })?;
        p.reader.seek(position)?;
        p.clock.max_seen = cut.max_seen.filter(|_| !shared);
        let watermark = p
            .clock
            .max_seen
            .map_or(at, |m| m.saturating_sub(bound).max(at));
        p.downgrade(watermark);
        kept.push(p);
    }
    *partitions = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use timely::dataflow::operators::capture::{Capture, Extract};

    use super::*;

    /// Partition `p` of 4: the values `p, p + 4, ..` below `end`. A stalling
    /// partition has nothing ready (`Idle`) on every other read, so the
    /// others are read past it.
    struct Values {
        next: u64,
        first: u64,
        end: u64,
        stalls: Option<u32>,
    }

    impl PartitionReader<u64> for Values {
        fn read(&mut self, out: &mut Vec<u64>, max: usize) -> Result<ReadStatus, BoxError> {
            if let Some(n) = self.stalls.as_mut() {
                *n += 1;
                if *n % 2 != 0 {
                    return Ok(ReadStatus::Idle);
                }
            }
            for _ in 0..max {
                if self.next >= self.end {
                    break;
                }
                out.push(self.next);
                self.next += 4;
            }
            Ok(if self.next >= self.end {
                ReadStatus::Done
            } else {
                ReadStatus::More
            })
        }

        fn position(&self) -> Option<u64> {
            Some((self.next - self.first) / 4)
        }

        fn seek(&mut self, position: u64) -> Result<(), BoxError> {
            self.next = self.first + 4 * position;
            Ok(())
        }
    }

    /// A value's event time: ascending, out of order by up to 30 ms; the
    /// values of partition 3 are sparse in time, so that it runs ahead of
    /// the others by several checkpoint times in one batch and ends first.
    fn event_time(v: &u64) -> Time {
        if v % 4 == 3 {
            v * 5
        } else {
            v * 3 + (v % 7) * 5
        }
    }

    type Sent = Vec<(Time, u64)>;

    /// Runs the 4-partition source (partition 3 ends early, partition 2
    /// stalls), resuming at `resume` if given; returns every `(time, value)`
    /// sent and every cut, with their times, each sorted.
    fn run(resume: Option<(Time, Vec<PartitionCut>)>) -> (Sent, Vec<(Time, PartitionCut)>) {
        let (sent, cuts) = timely::example(move |scope| {
            let readers: Vec<Box<dyn PartitionReader<u64>>> = (0..4u64)
                .map(|p| {
                    let end = if p == 3 { 400 } else { 1_200 };
                    let stalls = (p == 2).then_some(0);
                    let values = Values {
                        next: p,
                        first: p,
                        end,
                        stalls,
                    };
                    Box::new(values) as Box<dyn PartitionReader<u64>>
                })
                .collect();
            let time = EventTime {
                extract: event_time,
                bound: 40,
                idle_timeout: None,
                batch: 10,
                align: None,
                checkpoints: SourceCheckpoints {
                    ids: vec![10, 11, 12, 13],
                    resume,
                },
                release: None,
            };
            let run = SourceRun::<()> {
                counter: Arc::default(),
                failure: Failure::default(),
                rejects: Rejects::new(),
                stop: None,
                pacing: Pacing::Unpaced,
                watermarks: Vec::new(),
            };
            let streams = partitioned_source_with_cuts(scope, "values", readers, Some(time), run);
            (streams.records.capture(), streams.cuts.capture())
        });
        let mut sent: Sent = sent
            .extract()
            .into_iter()
            .flat_map(|(t, batch)| batch.into_iter().map(move |(_, v)| (t, v)))
            .collect();
        sent.sort();
        let mut cuts: Vec<(Time, PartitionCut)> = cuts
            .extract()
            .into_iter()
            .flat_map(|(t, batch)| batch.into_iter().map(move |c| (t, c)))
            .collect();
        cuts.sort_by_key(|(t, c)| (*t, c.partition));
        (sent, cuts)
    }

    /// For checkpoint times `T` every 50 ms, a source resumed at the last
    /// cut of each partition stamped before `T` (what
    /// [`SourceCuts`](crate::checkpoint::SourceCuts) keeps) sends exactly
    /// what the first run sent at or after `T`, at the same times.
    #[test]
    fn a_source_resumed_at_its_cuts_sends_what_followed_them() {
        let (all, cuts) = run(None);
        assert_eq!(all.len(), 3 * 300 + 100);
        let end = all.last().map_or(0, |(t, _)| *t);
        let mut after_an_end = false;
        for at in (50..end).step_by(50) {
            let mut last = std::collections::BTreeMap::new();
            for (t, cut) in cuts.iter().filter(|(t, _)| *t < at) {
                last.insert(cut.partition, (*t, cut.clone()));
            }
            assert_eq!(last.len(), 4, "every partition moved before {at}");
            after_an_end |= last.values().any(|(_, c)| c.done);
            let resume: Vec<PartitionCut> = last.into_values().map(|(_, c)| c).collect();
            let expected: Sent = all.iter().filter(|(t, _)| *t >= at).cloned().collect();
            let (got, _) = run(Some((at, resume)));
            assert_eq!(got, expected, "resumed at {at}");
        }
        assert!(after_an_end, "no checkpoint after partition 3 ended");
    }

    /// Odd values set aside as rejected by a reader of 0..100 whose event
    /// time is the value.
    struct Picky {
        next: u64,
        rejects: Rejects<u64>,
    }

    impl PartitionReader<u64> for Picky {
        fn read(&mut self, out: &mut Vec<u64>, max: usize) -> Result<ReadStatus, BoxError> {
            for _ in 0..max {
                if self.next >= 100 {
                    break;
                }
                match self.next % 2 {
                    0 => out.push(self.next),
                    _ => self.rejects.push(self.next),
                }
                self.next += 1;
            }
            Ok(match self.next >= 100 {
                true => ReadStatus::Done,
                false => ReadStatus::More,
            })
        }
    }

    /// Rejected records go out with their partition's id, each at the time
    /// the records of its read went out at, and none is lost.
    #[test]
    fn rejected_records_go_out_with_their_partition_at_its_time() {
        let (records, rejected) = timely::example(|scope| {
            let rejects = Rejects::new();
            let readers: Vec<Box<dyn PartitionReader<u64>>> = vec![Box::new(Picky {
                next: 0,
                rejects: rejects.clone(),
            })];
            let time = EventTime {
                extract: |v: &u64| *v,
                bound: 0,
                idle_timeout: None,
                batch: 10,
                align: None,
                checkpoints: SourceCheckpoints {
                    ids: vec![7],
                    resume: None,
                },
                release: None,
            };
            let run = SourceRun {
                counter: Arc::default(),
                failure: Failure::default(),
                rejects,
                stop: None,
                pacing: Pacing::Unpaced,
                watermarks: Vec::new(),
            };
            let streams = partitioned_source_with_cuts(scope, "picky", readers, Some(time), run);
            (streams.records.capture(), streams.rejected.capture())
        });
        let records: Vec<(Time, u64)> = records
            .extract()
            .into_iter()
            .flat_map(|(t, b)| b.into_iter().map(move |(_, v)| (t, v)))
            .collect();
        let rejected: Vec<(Time, (usize, u64))> = rejected
            .extract()
            .into_iter()
            .flat_map(|(t, b)| b.into_iter().map(move |r| (t, r)))
            .collect();
        assert_eq!(records.len(), 50);
        assert_eq!(rejected.len(), 50);
        for (t, (partition, v)) in rejected {
            assert_eq!(partition, 7);
            // Reads after the first are of values 10k+1 ..= 10k+10: the
            // even value after (before, for the last) is of the same read.
            let same_read = if v == 99 { 98 } else { v + 1 };
            let (sent_at, _) = records.iter().find(|(_, r)| *r == same_read).unwrap();
            assert_eq!(t, *sent_at, "value {v}");
        }
    }
}
