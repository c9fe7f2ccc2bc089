//! The partitioned source operator.
//!
//! A source is split into partitions (a generator slice, a file byte range,
//! stdin); each worker reads the partitions assigned to it. The operator holds
//! one capability per partition and releases it when the partition is
//! exhausted, so a record's timestamp depends only on its own partition, never
//! on how partitions interleave (DESIGN.md, "Coming later").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::Scope;
use timely::ExchangeData;
use weir_engine::{BoxError, Failure};

use crate::{Time, VecStream};

/// Records a partition hands over per read call, at most.
pub const BATCH: usize = 1024;

/// How long one activation of the source reads before yielding to the rest
/// of the dataflow.
const SLICE: Duration = Duration::from_millis(1);

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

/// The watermark of one partition.
struct Clock {
    /// The highest event time seen.
    max_seen: Option<u64>,
    /// When the partition last produced a record, or last advanced while idle.
    last_activity: Instant,
}

struct Partition<D> {
    reader: Box<dyn PartitionReader<D>>,
    capability: Capability<Time>,
    clock: Clock,
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
///     let time = EventTime { extract: |t: &u64| *t, bound: 500, idle_timeout: None, batch: 2, align: None };
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
    source(scope, name, move |capability, info| {
        let activator = scope.activator_for(info.address);
        let now = Instant::now();
        let mut partitions: Vec<Partition<D>> = readers
            .into_iter()
            .map(|reader| Partition {
                reader,
                capability: capability.clone(),
                clock: Clock {
                    max_seen: None,
                    last_activity: now,
                },
            })
            .collect();
        drop(capability);
        let batch = event_time.as_ref().map_or(BATCH, |et| et.batch.max(1));
        let mut buffer: Vec<D> = Vec::with_capacity(batch);
        let mut stamped: Vec<(Time, D)> = Vec::with_capacity(batch);
        // Where the search for the next partition starts, so that partitions
        // at the same watermark take turns.
        let mut cursor = 0;
        let mut idle: Vec<bool> = Vec::new();
        // With alignment: the times of the last batches sent, and whether
        // the last activation found the source too far ahead.
        let mut sent: std::collections::VecDeque<Time> = Default::default();
        let mut waited = false;
        move |output| {
            // The partition with the least watermark reads next (taking
            // turns on ties), one batch at a time, until the time slice is up
            // or none has records ready: partitions advance together in
            // event time, so the global watermark follows the input and
            // windows fire as it is read.
            let start = Instant::now();
            idle.clear();
            idle.resize(partitions.len(), false);
            while let Some(i) = next_partition(&partitions, &idle, cursor) {
                let partition = &mut partitions[i];
                if let Some(align) = event_time.as_ref().and_then(|et| et.align.as_ref()) {
                    let oldest = (sent.len() >= align.batches)
                        .then(|| sent.front())
                        .flatten();
                    if oldest.is_some_and(|t| align.progress.less_than(t)) {
                        // The first time, the next step may well catch up
                        // (this worker's own records in flight); after
                        // that, others are behind: look again a little later
                        // (records arriving wake the worker sooner).
                        if waited {
                            activator.activate_after(PAUSE);
                        } else {
                            activator.activate();
                        }
                        waited = true;
                        return;
                    }
                    waited = false;
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
                    if let Some(align) = event_time.as_ref().and_then(|et| et.align.as_ref()) {
                        if sent.len() >= align.batches {
                            sent.pop_front();
                        }
                        sent.push_back(*partition.capability.time());
                    }
                    if let (Some(et), Some(max)) = (&event_time, partition.clock.max_seen) {
                        let watermark = max.saturating_sub(et.bound);
                        if watermark > *partition.capability.time() {
                            partition.capability.downgrade(&watermark);
                        }
                    }
                }
                cursor = i + 1;
                match status {
                    // Dropping the partition releases its capability.
                    ReadStatus::Done => {
                        partitions.swap_remove(i);
                        idle.swap_remove(i);
                    }
                    ReadStatus::More => {}
                    ReadStatus::Idle => {
                        if let Some(timeout) = event_time.as_ref().and_then(|et| et.idle_timeout) {
                            advance_idle(partition, timeout);
                        }
                        idle[i] = true;
                    }
                }
                if start.elapsed() >= SLICE {
                    activator.activate();
                    return;
                }
            }
            if !partitions.is_empty() {
                activator.activate_after(Duration::from_millis(2));
            }
        }
    })
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
fn advance_idle<D>(partition: &mut Partition<D>, timeout: Duration) {
    let idle = partition.clock.last_activity.elapsed();
    if idle < timeout {
        return;
    }
    let step = idle.as_millis() as u64;
    let next = partition.capability.time().saturating_add(step);
    partition.capability.downgrade(&next);
    partition.clock.last_activity = Instant::now();
}
