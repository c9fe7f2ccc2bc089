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

use crate::lifecycle::CheckpointTimes;
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
    /// Checkpoints of the source's positions, and where it resumes from.
    pub checkpoints: SourceCheckpoints,
}

/// Where one partition of a source stood when its watermark passed a
/// checkpoint time: the records it had sent until then went out at times
/// before it, the rest at or after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionCut {
    /// The partition's index among the readers the source was opened with.
    pub partition: usize,
    /// Its reader's position ([`PartitionReader::position`]); `None` if it
    /// cannot resume.
    pub position: Option<u64>,
    /// The greatest event time it had read (its watermark's source).
    pub max_seen: Option<Time>,
    /// Whether it was exhausted.
    pub done: bool,
}

/// Receives a checkpoint time and the cut of every partition of a source.
pub type SaveCuts = Box<dyn FnMut(Time, Vec<PartitionCut>)>;

/// Where a partition stood over a move of its watermark: from (excluded),
/// to the last checkpoint time reached (included), and its cut there.
type Crossing = (Time, Time, PartitionCut);

/// A source's positions at checkpoint times, and the checkpoint it resumes
/// from. Checkpoint times are the multiples of `interval` milliseconds of
/// event time, as for [`Checkpoints`](crate::lifecycle::Checkpoints): when
/// the source's least watermark reaches one, the cut of every partition at
/// that time goes to `save`. When the watermark jumps over several
/// multiples, the cut is saved at the last of them.
#[derive(Default)]
pub struct SourceCheckpoints {
    /// Milliseconds of event time between checkpoint times (at least 1), and
    /// what receives each checkpoint time with the cut of every partition;
    /// `None` takes no checkpoints.
    pub every: Option<(Time, SaveCuts)>,
    /// Resume at these cuts, saved at this checkpoint time: each partition
    /// seeks to its position and keeps its watermark; an exhausted one is
    /// not read again.
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

/// The watermark of one partition.
struct Clock {
    /// The highest event time seen.
    max_seen: Option<u64>,
    /// When the partition last produced a record, or last advanced while idle.
    last_activity: Instant,
}

struct Partition<D> {
    /// Its index among the readers the source was opened with.
    index: usize,
    reader: Box<dyn PartitionReader<D>>,
    capability: Capability<Time>,
    clock: Clock,
    /// With checkpoints: `(from, to, cut)` for each move of the watermark
    /// over checkpoint times, from `from` (excluded) to the last checkpoint
    /// time `to` it reached; `cut` is where the partition stood, for every
    /// checkpoint time in between.
    crossed: Vec<Crossing>,
}

impl<D: 'static> Partition<D> {
    /// Where the partition stands now.
    fn cut(&self, done: bool) -> PartitionCut {
        PartitionCut {
            partition: self.index,
            position: self.reader.position(),
            max_seen: self.clock.max_seen,
            done,
        }
    }

    /// Moves the watermark to `to`, noting the cut if it passes checkpoint
    /// times.
    fn advance(&mut self, to: Time, times: Option<&CheckpointTimes>) {
        let from = *self.capability.time();
        if to <= from {
            return;
        }
        self.capability.downgrade(&to);
        if let Some(times) = times {
            let last = times.last_at(to);
            if last > from {
                let cut = self.cut(false);
                self.crossed.push((from, last, cut));
            }
        }
    }
}

/// The cuts of a source's partitions at checkpoint times.
struct Cuts {
    times: CheckpointTimes,
    save: SaveCuts,
    /// The exhausted partitions: their cuts at the checkpoint times they
    /// passed while being read, and their final cut, for every later time.
    finished: Vec<(Vec<Crossing>, PartitionCut)>,
}

/// The cut among `crossed` for checkpoint time `at`, if any.
fn cut_at(crossed: &[Crossing], at: Time) -> Option<&PartitionCut> {
    crossed
        .iter()
        .find(|(from, to, _)| *from < at && at <= *to)
        .map(|(_, _, cut)| cut)
}

impl Cuts {
    /// Saves the cut at the last checkpoint time the least watermark of
    /// `partitions` has reached, if it reached a new one.
    fn take<D>(&mut self, partitions: &mut [Partition<D>]) {
        let Some(least) = partitions.iter().map(|p| *p.capability.time()).min() else {
            return; // every partition is done: the source ends
        };
        let Some(at) = self.times.reached(least) else {
            return;
        };
        let mut cuts = Vec::with_capacity(partitions.len() + self.finished.len());
        for (crossed, last) in &mut self.finished {
            cuts.push(cut_at(crossed, at).unwrap_or(last).clone());
            crossed.retain(|(_, to, _)| *to > at);
        }
        for p in partitions.iter_mut() {
            let Some(cut) = cut_at(&p.crossed, at) else {
                return; // cannot happen: every watermark has passed `at`
            };
            cuts.push(cut.clone());
            p.crossed.retain(|(_, to, _)| *to > at);
        }
        cuts.sort_by_key(|c| c.partition);
        (self.save)(at, cuts);
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
///         align: None, checkpoints: Default::default(),
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
    let mut event_time = event_time;
    let checkpoints = event_time
        .as_mut()
        .map(|et| std::mem::take(&mut et.checkpoints))
        .unwrap_or_default();
    source(scope, name, move |capability, info| {
        let activator = scope.activator_for(info.address);
        let now = Instant::now();
        let mut partitions: Vec<Partition<D>> = readers
            .into_iter()
            .enumerate()
            .map(|(index, reader)| Partition {
                index,
                reader,
                capability: capability.clone(),
                clock: Clock {
                    max_seen: None,
                    last_activity: now,
                },
                crossed: Vec::new(),
            })
            .collect();
        drop(capability);
        let SourceCheckpoints { every, resume } = checkpoints;
        let mut cuts = every.map(|(interval, save)| Cuts {
            times: CheckpointTimes::every(interval),
            save,
            finished: Vec::new(),
        });
        if let Some((at, saved)) = resume {
            let bound = event_time.as_ref().map_or(0, |et| et.bound);
            if let Err(e) = resume_at(&mut partitions, at, &saved, bound) {
                failure.raise(e);
                partitions.clear();
            }
            if let Some(c) = cuts.as_mut() {
                c.times.resume_after(at);
                c.finished = saved
                    .into_iter()
                    .filter(|c| c.done)
                    .map(|c| (Vec::new(), c))
                    .collect();
            }
        }
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
                        let times = cuts.as_ref().map(|c| &c.times);
                        partition.advance(max.saturating_sub(et.bound), times);
                    }
                }
                cursor = i + 1;
                match status {
                    // Dropping the partition releases its capability.
                    ReadStatus::Done => {
                        if let Some(c) = cuts.as_mut() {
                            let last = partition.cut(true);
                            c.finished
                                .push((std::mem::take(&mut partition.crossed), last));
                        }
                        partitions.swap_remove(i);
                        idle.swap_remove(i);
                    }
                    ReadStatus::More => {}
                    ReadStatus::Idle => {
                        if let Some(timeout) = event_time.as_ref().and_then(|et| et.idle_timeout) {
                            let times = cuts.as_ref().map(|c| &c.times);
                            advance_idle(partition, timeout, times);
                        }
                        idle[i] = true;
                    }
                }
                if let Some(c) = cuts.as_mut() {
                    c.take(&mut partitions);
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
fn advance_idle<D: 'static>(
    partition: &mut Partition<D>,
    timeout: Duration,
    times: Option<&CheckpointTimes>,
) {
    let idle = partition.clock.last_activity.elapsed();
    if idle < timeout {
        return;
    }
    let step = idle.as_millis() as u64;
    let next = partition.capability.time().saturating_add(step);
    partition.advance(next, times);
    partition.clock.last_activity = Instant::now();
}

/// Moves each partition to its cut in `cuts` (saved at checkpoint time
/// `at`): exhausted ones are dropped, the others seek to their positions,
/// keep their highest event time and start at their watermark then.
fn resume_at<D: 'static>(
    partitions: &mut Vec<Partition<D>>,
    at: Time,
    cuts: &[PartitionCut],
    bound: u64,
) -> Result<(), BoxError> {
    let mut kept = Vec::with_capacity(partitions.len());
    for mut p in partitions.drain(..) {
        let cut = cuts
            .iter()
            .find(|c| c.partition == p.index)
            .ok_or_else(|| format!("the checkpoint at {at} has no cut of partition {}", p.index))?;
        if cut.done {
            continue;
        }
        let position = cut.position.ok_or_else(|| {
            format!(
                "partition {} cannot resume: its reader has no position",
                p.index
            )
        })?;
        p.reader.seek(position)?;
        p.clock.max_seen = cut.max_seen;
        let watermark = cut.max_seen.map_or(at, |m| m.saturating_sub(bound).max(at));
        p.capability.downgrade(&watermark);
        kept.push(p);
    }
    *partitions = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

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

    type Saved = Arc<Mutex<Vec<(Time, Vec<PartitionCut>)>>>;

    /// Runs the 4-partition source (partition 3 ends early, partition 2
    /// stalls), resuming at
    /// `resume` if given, saving cuts every 100 ms into `saved`; returns
    /// every `(time, value)` sent.
    fn run(resume: Option<(Time, Vec<PartitionCut>)>, saved: Saved) -> Vec<(Time, u64)> {
        let captured = timely::example(move |scope| {
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
                    every: Some((
                        100,
                        Box::new(move |t, cuts| saved.lock().unwrap().push((t, cuts))),
                    )),
                    resume,
                },
            };
            partitioned_source_with_time(
                scope,
                "values",
                readers,
                Some(time),
                Arc::default(),
                Failure::default(),
            )
            .capture()
        });
        let mut sent: Vec<(Time, u64)> = captured
            .extract()
            .into_iter()
            .flat_map(|(t, batch)| batch.into_iter().map(move |(_, v)| (t, v)))
            .collect();
        sent.sort();
        sent
    }

    /// For every checkpoint time `T` at which the source saved its cuts, a
    /// source resumed there sends exactly what the first run sent at or
    /// after `T`, at the same times.
    #[test]
    fn a_resumed_source_sends_what_followed_its_checkpoint() {
        let saved: Saved = Arc::default();
        let all = run(None, Arc::clone(&saved));
        assert_eq!(all.len(), 3 * 300 + 100);
        let checkpoints = saved.lock().unwrap().clone();
        assert!(checkpoints.len() >= 20, "{} checkpoints", checkpoints.len());
        assert!(
            checkpoints
                .iter()
                .any(|(_, cuts)| cuts.iter().any(|c| c.done)),
            "no checkpoint after partition 3 ended"
        );
        for (at, cuts) in checkpoints {
            assert_eq!(cuts.len(), 4, "{cuts:?}");
            let expected: Vec<(Time, u64)> =
                all.iter().filter(|(t, _)| *t >= at).cloned().collect();
            let got = run(Some((at, cuts)), Arc::default());
            assert_eq!(got, expected, "resumed at {at}");
        }
    }
}
