use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_engine::BoxError;
use weir_operators::Time;

mod events;

pub use events::{Auction, Bid, Event, EventGenerator, EventType, NexmarkConfig, Person, Text};

use super::{PartitionReader, ReadStatus, Source, SourceContext};
use crate::Data;
use crate::error::SourceError;

/// The event time of the first Nexmark event unless
/// [`base_time`](Nexmark::base_time) says otherwise: 2023-11-14T22:13:20Z.
pub const NEXMARK_BASE_TIME: u64 = 1_700_000_000_000;

/// The Nexmark generator ([`EventGenerator`], the model of the Nexmark
/// benchmark's generator in Beam and Flink, without per-event string
/// building): persons, auctions and bids in the proportion 1 : 3 : 46.
///
/// The events of the chosen type among the first `events` are cut into a
/// fixed number of partitions (16 unless [`partitions`](Nexmark::partitions)
/// says otherwise; partition `p` holds the `p`-th, `(p + partitions)`-th, ...
/// of them), so the same events come out, with the same event times, on any
/// number of workers, and every partition moves through event time at the
/// same pace (none is left without records to move its watermark). Event times start at
/// [`NEXMARK_BASE_TIME`] and advance 0.1 ms per event (10 000 events/s).
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
/// use weir::sources::{Bid, Nexmark};
///
/// let out = Collect::new();
/// Pipeline::new("bids")
///     .source(Nexmark::bids(1_000))
///     .map(|b: Bid| b.price)
///     .sink(out.clone())
///     .run(Cluster::threads(2).quiet(true))
///     .unwrap();
/// // 46 of every 50 events are bids.
/// assert_eq!(out.take().len(), 920);
/// ```
pub struct Nexmark<T> {
    events: u64,
    only: Option<EventType>,
    partitions: u64,
    base_time: u64,
    next: fn(&mut EventGenerator) -> T,
    kind: &'static str,
    _item: PhantomData<fn() -> T>,
}

impl Nexmark<Event> {
    /// All events among the first `events`.
    pub fn events(events: u64) -> Self {
        Nexmark::new(events, None, EventGenerator::next_event, "events")
    }
}

impl Nexmark<Bid> {
    /// The bids among the first `events` events.
    pub fn bids(events: u64) -> Self {
        Nexmark::new(
            events,
            Some(EventType::Bid),
            EventGenerator::next_bid,
            "bids",
        )
    }
}

impl Nexmark<Auction> {
    /// The auctions among the first `events` events.
    pub fn auctions(events: u64) -> Self {
        Nexmark::new(
            events,
            Some(EventType::Auction),
            EventGenerator::next_auction,
            "auctions",
        )
    }
}

impl Nexmark<Person> {
    /// The persons among the first `events` events.
    pub fn persons(events: u64) -> Self {
        Nexmark::new(
            events,
            Some(EventType::Person),
            EventGenerator::next_person,
            "persons",
        )
    }
}

impl<T> Nexmark<T> {
    fn new(
        events: u64,
        only: Option<EventType>,
        next: fn(&mut EventGenerator) -> T,
        kind: &'static str,
    ) -> Self {
        Nexmark {
            events,
            only,
            partitions: 16,
            base_time: NEXMARK_BASE_TIME,
            next,
            kind,
            _item: PhantomData,
        }
    }

    /// Cuts the events into `partitions` partitions (at least 1).
    pub fn partitions(mut self, partitions: u64) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// The event time of the first event, in ms since the epoch.
    pub fn base_time(mut self, base_time: u64) -> Self {
        self.base_time = base_time;
        self
    }

    /// How many records the source produces: the events of its type among
    /// the first `events`.
    ///
    /// ```
    /// use weir::sources::Nexmark;
    ///
    /// // Persons, auctions and bids come 1 : 3 : 46.
    /// assert_eq!(Nexmark::persons(100).len(), 2);
    /// assert_eq!(Nexmark::auctions(100).len(), 6);
    /// assert_eq!(Nexmark::bids(100).len(), 92);
    /// assert_eq!(Nexmark::events(100).len(), 100);
    /// ```
    pub fn len(&self) -> u64 {
        match self.only {
            None => self.events,
            Some(kind) => count_of(kind, self.events, &self.config()),
        }
    }

    /// Whether the source produces no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The generator configuration: the Nexmark defaults with this source's
    /// base time.
    pub fn config(&self) -> NexmarkConfig {
        NexmarkConfig {
            base_time: self.base_time,
            ..NexmarkConfig::default()
        }
    }

    /// The number of partitions.
    pub fn partition_count(&self) -> u64 {
        self.partitions
    }

    /// The generator of partition `p` and how many records it yields: the
    /// `p`-th, `(p + partitions)`-th, ... event of the source's type.
    pub fn partition(&self, p: u64) -> (EventGenerator, u64) {
        let count = self.len().saturating_sub(p).div_ceil(self.partitions);
        let mut generator = EventGenerator::new(self.config());
        if let Some(kind) = self.only {
            generator = generator.with_type_filter(kind);
        }
        (generator.with_offset(p).with_step(self.partitions), count)
    }
}

impl<T: Data> Source for Nexmark<T> {
    type Item = T;

    fn describe(&self) -> String {
        // A source of one kind reads only its share of the events: say so,
        // or the summary's "92000 events read" of 100000 looks like a loss.
        match self.only {
            Some(_) => format!("nexmark({} among {} events)", self.kind, self.events),
            None => format!("nexmark({} events)", self.events),
        }
    }

    fn bounded(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        let mut readers: Vec<Box<dyn PartitionReader<T>>> = Vec::new();
        for p in (ctx.worker() as u64..self.partitions).step_by(ctx.peers()) {
            let (generator, count) = self.partition(p);
            ctx.expect_work(count);
            readers.push(Box::new(NexmarkReader {
                generator,
                count,
                left: count,
                next: self.next,
                work: ctx.work_done(),
            }));
        }
        Ok(readers)
    }
}

/// How many events of `kind` are among the first `events`: each group of
/// `person + auction + bid` proportion events holds persons first, then
/// auctions, then bids.
fn count_of(kind: EventType, events: u64, config: &NexmarkConfig) -> u64 {
    let (person, auction, bid) = (
        config.person_proportion.max(1) as u64,
        config.auction_proportion.max(1) as u64,
        config.bid_proportion as u64,
    );
    let group = person + auction + bid;
    let (first, share) = match kind {
        EventType::Person => (0, person),
        EventType::Auction => (person, auction),
        EventType::Bid => (person + auction, bid),
    };
    events / group * share + (events % group).saturating_sub(first).min(share)
}

struct NexmarkReader<T> {
    generator: EventGenerator,
    /// The partition's events in all.
    count: u64,
    left: u64,
    next: fn(&mut EventGenerator) -> T,
    work: Arc<AtomicU64>,
}

// Not through `sources::Each`: handing events to a closure, rather than
// pushing them here after one `reserve`, measured 12.4 against 14.0 M
// events/s on q0.
impl<T: 'static> PartitionReader<T> for NexmarkReader<T> {
    fn read(&mut self, out: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        // The generator makes only events of the source's kind, each read
        // one record.
        let n = self.left.min(max as u64);
        out.reserve(n as usize);
        for _ in 0..n {
            out.push((self.next)(&mut self.generator));
        }
        self.left -= n;
        self.work.fetch_add(n, Ordering::Relaxed);
        Ok(self.status())
    }

    fn read_timed(
        &mut self,
        out: &mut Vec<(Time, T)>,
        max: usize,
        stamp: &mut dyn FnMut(&T) -> Time,
        _: &mut Vec<T>,
    ) -> Result<ReadStatus, BoxError> {
        let n = self.left.min(max as u64);
        out.reserve(n as usize);
        for _ in 0..n {
            let event = (self.next)(&mut self.generator);
            out.push((stamp(&event), event));
        }
        self.left -= n;
        self.work.fetch_add(n, Ordering::Relaxed);
        Ok(self.status())
    }

    /// The events returned so far.
    fn position(&self) -> Option<u64> {
        Some(self.count - self.left)
    }

    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        let skip =
            crate::sources::checked_skip("nexmark", position, self.count - self.left, self.left)?;
        self.generator.skip_events(skip);
        self.left -= skip;
        Ok(())
    }
}

impl<T> NexmarkReader<T> {
    fn status(&self) -> ReadStatus {
        if self.left == 0 {
            ReadStatus::Done
        } else {
            ReadStatus::More
        }
    }
}
