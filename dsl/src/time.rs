//! Event time: `Stream::event_time` and watermark strategies.

use std::sync::Arc;
use std::time::Duration;

use weir_operators::source::{Align, EventTime};

use crate::error::PlanError;
use crate::plan::{Port, builder};
use crate::sources::open_source;
use crate::stream::single_output;
use crate::{Data, Stream};

/// How watermarks follow event time: each source partition's watermark is
/// the highest event time it has read minus a bound on out-of-orderness,
/// updated after every batch of records (see [`every`](Watermark::every)).
/// The source reads next from its partition with the least watermark, so
/// partitions move through event time together and windows fire as the
/// input is read.
///
/// A record is late when every window it belongs to has ended (plus the
/// allowed lateness) before its partition's watermark, as of the start of
/// its batch. That depends on the partition's own records only, so results
/// are the same on any number of workers.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::Watermark;
///
/// let wm = Watermark::bounded(Duration::from_millis(500)).idle_timeout(Duration::from_secs(5));
/// assert_eq!(wm.bound(), Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    bound: Duration,
    idle_timeout: Option<Duration>,
    every: usize,
    ahead: Option<usize>,
}

/// Batches a source may send beyond what the job has finished, by default.
const BATCHES_AHEAD: usize = 64;

impl Watermark {
    /// Records may arrive up to `max_out_of_orderness` behind the highest
    /// event time seen in their partition without being late.
    pub fn bounded(max_out_of_orderness: Duration) -> Self {
        Watermark {
            bound: max_out_of_orderness,
            idle_timeout: None,
            every: weir_operators::source::BATCH,
            ahead: Some(BATCHES_AHEAD),
        }
    }

    /// Records arrive in event-time order in each partition.
    pub fn ascending() -> Self {
        Self::bounded(Duration::ZERO)
    }

    /// A partition without records for `timeout` advances its watermark with
    /// processing time, so that an idle partition of an unbounded source does
    /// not hold the whole job back. (An exhausted partition always releases
    /// its watermark.)
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// A partition's watermark moves after each batch of at most `records`
    /// records it reads (default 1024): the records of one batch share the
    /// watermark as of the batch's start. A partition's first batch is its
    /// first record alone, so that its watermark is known before more of it
    /// is read. Smaller batches make lateness finer-grained and cost
    /// throughput.
    pub fn every(mut self, records: usize) -> Self {
        self.every = records.max(1);
        self
    }

    /// On several workers, each source sends at most `batches` batches
    /// (default 64, of [`every`](Watermark::every) records each) beyond what
    /// the sinks downstream of it have finished, over all workers and
    /// processes: a worker whose input is ahead in event time waits for the
    /// others (watermark alignment) instead of piling up records in exchange
    /// queues and window state that cannot fire yet. On one worker the
    /// source's partitions are already read in step and nothing waits.
    ///
    /// A source waits only for times it has passed, so it never waits for
    /// itself; it does wait for partitions that hold their watermark back,
    /// such as an idle partition without [`idle_timeout`](Watermark::idle_timeout).
    ///
    /// ```
    /// use weir::Watermark;
    ///
    /// let wm = Watermark::ascending().max_batches_ahead(16);
    /// assert_eq!(wm.batches_ahead(), Some(16));
    /// assert_eq!(Watermark::ascending().unaligned().batches_ahead(), None);
    /// assert_eq!(Watermark::ascending().batches_ahead(), Some(64));
    /// ```
    pub fn max_batches_ahead(mut self, batches: usize) -> Self {
        self.ahead = Some(batches.max(1));
        self
    }

    /// Sources read as fast as they can, however far ahead of the job (see
    /// [`max_batches_ahead`](Watermark::max_batches_ahead)).
    pub fn unaligned(mut self) -> Self {
        self.ahead = None;
        self
    }

    /// The batches a source may send ahead of the job; `None` if unaligned.
    pub fn batches_ahead(&self) -> Option<usize> {
        self.ahead
    }

    /// The bound on out-of-orderness.
    pub fn bound(&self) -> Duration {
        self.bound
    }
}

impl<T: Data> Stream<T> {
    /// Assigns event time to the records of a source: `extract` gives a
    /// record's event time in milliseconds since the epoch, and each source
    /// partition's watermark follows `watermark`. The pipeline's watermark is
    /// the least over all partitions of all workers; windows fire as it
    /// passes them.
    ///
    /// # Errors
    ///
    /// `run` reports a [`PlanError`] if the stream does not come straight
    /// from [`Pipeline::source`](crate::Pipeline::source): watermarks are
    /// kept per source partition.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("events")
    ///     .source(Iter::new(vec![(1_000u64, 'a'), (1_500, 'b'), (12_000, 'a')]))
    ///     .event_time(|e: &(u64, char)| e.0, Watermark::bounded(Duration::from_millis(100)))
    ///     .key_by(|e| e.1)
    ///     .window(Tumbling::of(Duration::from_secs(10)))
    ///     .count()
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(2).quiet(true))
    ///     .unwrap();
    /// let mut got: Vec<_> = out.take().into_iter().map(|r| (r.key, r.window_start, r.value)).collect();
    /// got.sort();
    /// assert_eq!(got, vec![('a', 0, 1), ('a', 10_000, 1), ('b', 0, 1)]);
    /// ```
    pub fn event_time<F>(self, extract: F, watermark: Watermark) -> Stream<T>
    where
        F: Fn(&T) -> u64 + Send + Sync + 'static,
    {
        let label = format!("bounded({} ms)", watermark.bound.as_millis());
        let node = self.pipeline.add_node("event_time", label, &[self.at]);
        // The stage passes the source's stream on: the source itself is
        // built with event time, once, whoever else reads it.
        let up = self.upstream();
        let pass = builder(move |ctx| up.build(ctx));
        self.pipeline.set_build(node, single_output(node, pass));
        let mut stream = Stream::of(self.pipeline.clone(), Port::main(node), true);
        let Some(slot) = self.source.clone() else {
            self.pipeline.record_error(PlanError::InvalidParameter {
                stage: self.pipeline.describe(node),
                field: "event_time".into(),
                expected: "event time assigned right after a source (`pipeline.source(..).event_time(..)`), where each partition keeps its watermark".into(),
            });
            return stream;
        };
        let source = slot.parts.clone();
        let source_node = slot.parts.node;
        let extract = Arc::new(extract);
        let bound = watermark.bound.as_millis() as u64;
        let idle_timeout = watermark.idle_timeout;
        let batch = watermark.every;
        let ahead = watermark.ahead;
        let timed = builder(move |ctx| {
            let extract = Arc::clone(&extract);
            let time = EventTime {
                extract: move |r: &T| extract(r),
                bound,
                idle_timeout,
                batch,
                align: ahead
                    .filter(|_| ctx.scope.peers() > 1)
                    .map(|batches| Align {
                        progress: ctx.progress_of(source_node),
                        batches,
                    }),
                checkpoints: Default::default(),
                release: None,
            };
            open_source(ctx, &source, Some(time))
        });
        if slot.parts.source.resumable() {
            self.pipeline.set_blocker(source_node, None);
        } else {
            let blocker = crate::sources::source_blocker(false);
            self.pipeline.set_blocker(source_node, Some(blocker));
        }
        if !slot.assign(timed) {
            self.pipeline.record_error(PlanError::InvalidParameter {
                stage: self.pipeline.describe(node),
                field: "event_time".into(),
                expected: format!(
                    "event time assigned once per source; source #{source_node} already has it"
                ),
            });
        }
        // Still the source's stream, for its error policy.
        stream.source = Some(slot);
        stream
    }
}
