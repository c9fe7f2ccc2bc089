//! Backpressure: a fast source feeding a slow sink on another worker keeps
//! the records in flight inside weir (read by the source, not yet written
//! by the sink) under a bound for the whole run, with event time (aligned
//! sources: `Watermark::max_batches_ahead`, 64 batches) and without (paced
//! sources: 256 batches). Without either, the test measured about half of
//! a 2 M-record input in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use weir::prelude::*;
use weir::sources::Mapped;

/// Runs `n` records from a generator through a sink on worker 0 that sleeps
/// 1 ms per 512 records, on `workers`; returns the most records ever read
/// and not yet written, sampled every millisecond.
fn most_in_flight(workers: usize, n: u64, event_time: bool) -> u64 {
    let read = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let counting = Arc::clone(&read);
    let source = Mapped::new(Generator::new(n, |i| i), move |i: u64| {
        counting.fetch_add(1, Ordering::Relaxed);
        i
    });
    let p = Pipeline::new("slow-sink");
    let mut stream = p.source(source);
    if event_time {
        stream = stream.event_time(|i: &u64| *i, Watermark::ascending());
    }
    let w = Arc::clone(&written);
    let job = stream
        .key_by(|_| 0u8)
        .values()
        .sink(ForEach::new(move |_: &u64| {
            if w.fetch_add(1, Ordering::Relaxed).is_multiple_of(512) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    let done = Arc::new(AtomicBool::new(false));
    let (r, wr, d) = (Arc::clone(&read), Arc::clone(&written), Arc::clone(&done));
    let sampler = std::thread::spawn(move || {
        let mut most = 0;
        while !d.load(Ordering::Relaxed) {
            let ahead = r
                .load(Ordering::Relaxed)
                .saturating_sub(wr.load(Ordering::Relaxed));
            most = most.max(ahead);
            std::thread::sleep(Duration::from_millis(1));
        }
        most
    });
    job.run(Cluster::threads(workers).quiet(true)).unwrap();
    done.store(true, Ordering::Relaxed);
    assert_eq!(written.load(Ordering::Relaxed), n);
    sampler.join().unwrap()
}

/// Records per batch a source sends at most (`weir_operators::source::BATCH`).
const BATCH: u64 = 1024;

#[test]
fn a_slow_sink_holds_back_an_aligned_source() {
    for workers in [2, 3] {
        let most = most_in_flight(workers, 3_000_000, true);
        // Each worker's source: 64 batches beyond the sinks, and the one
        // it is reading.
        let bound = workers as u64 * 66 * BATCH;
        assert!(
            most <= bound,
            "{workers} workers: {most} records in flight, bound {bound}"
        );
    }
}

#[test]
fn a_slow_sink_holds_back_a_source_without_event_time() {
    for workers in [2, 3] {
        let most = most_in_flight(workers, 3_000_000, false);
        // Each worker's source: 256 batches beyond the sinks, paced 8
        // batches to a time, and the one it is reading.
        let bound = workers as u64 * (256 + 8 + 1) * BATCH;
        assert!(
            most <= bound,
            "{workers} workers: {most} records in flight, bound {bound}"
        );
    }
    // One worker runs the sink between the source's reads.
    let most = most_in_flight(1, 1_000_000, false);
    assert!(most <= 64 * BATCH, "1 worker: {most} records in flight");
}

/// An unbounded source without event time (it says it may never end) into
/// a `fold` of one key (on one worker) that sleeps 1 ms per 512 records, on
/// `workers`: the source sends
/// at processing-time ticks of 10 ms, so the fold emits as it goes, and is
/// held back by the job's progress. Returns the most records ever read and
/// not yet folded.
fn most_in_flight_to_a_fold(workers: usize, n: u64) -> u64 {
    let read = Arc::new(AtomicU64::new(0));
    let folded = Arc::new(AtomicU64::new(0));
    let counting = Arc::clone(&read);
    let unbounded = Pausing {
        n,
        pauses: Arc::default(),
        resumes: Arc::default(),
    };
    let source = Mapped::new(unbounded, move |i: u64| {
        counting.fetch_add(1, Ordering::Relaxed);
        i
    });
    let f = Arc::clone(&folded);
    let p = Pipeline::new("slow-fold").update_interval(Duration::from_millis(10));
    let results = Arc::new(AtomicU64::new(0));
    let r = Arc::clone(&results);
    p.source(source)
        .key_by(|_| 0u8)
        .fold(
            || 0u64,
            move |sum, i| {
                *sum += i;
                if f.fetch_add(1, Ordering::Relaxed).is_multiple_of(512) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            },
        )
        .sink(ForEach::new(move |_: &Update<u8, u64>| {
            r.fetch_add(1, Ordering::Relaxed);
        }));
    let done = Arc::new(AtomicBool::new(false));
    let (rd, fd, d) = (Arc::clone(&read), Arc::clone(&folded), Arc::clone(&done));
    let sampler = std::thread::spawn(move || {
        let mut most = 0;
        while !d.load(Ordering::Relaxed) {
            let ahead = rd
                .load(Ordering::Relaxed)
                .saturating_sub(fd.load(Ordering::Relaxed));
            most = most.max(ahead);
            std::thread::sleep(Duration::from_millis(1));
        }
        most
    });
    p.run(Cluster::threads(workers).quiet(true)).unwrap();
    done.store(true, Ordering::Relaxed);
    assert_eq!(folded.load(Ordering::Relaxed), n);
    // The one key's sum changed at many ticks.
    let results = results.load(Ordering::Relaxed);
    assert!(results > 10, "{workers} workers: {results} results");
    sampler.join().unwrap()
}

#[test]
fn a_slow_fold_holds_back_an_unbounded_source_without_event_time() {
    for workers in [2, 3] {
        let most = most_in_flight_to_a_fold(workers, 2_000_000);
        // Each worker's source: 256 batches beyond the sinks, what it read
        // in one 10 ms tick, and the batch it is reading.
        let bound = workers as u64 * (256 + 16 + 1) * BATCH;
        eprintln!("{workers} workers: {most} in flight, bound {bound}");
        assert!(
            most <= bound,
            "{workers} workers: {most} records in flight, bound {bound}"
        );
    }
}

/// Counts the pauses and resumes of its readers, and fails a read of a
/// paused partition.
struct Pausing {
    n: u64,
    pauses: Arc<AtomicU64>,
    resumes: Arc<AtomicU64>,
}

struct PausingReader {
    next: u64,
    end: u64,
    step: u64,
    paused: bool,
    pauses: Arc<AtomicU64>,
    resumes: Arc<AtomicU64>,
}

impl weir::Source for Pausing {
    type Item = u64;

    fn describe(&self) -> String {
        "pausing".into()
    }

    fn open(
        &self,
        ctx: &weir::sources::SourceContext,
    ) -> Result<Vec<Box<dyn weir::sources::PartitionReader<u64>>>, weir::SourceError> {
        Ok(vec![Box::new(PausingReader {
            next: ctx.worker() as u64,
            end: self.n,
            step: ctx.peers() as u64,
            paused: false,
            pauses: Arc::clone(&self.pauses),
            resumes: Arc::clone(&self.resumes),
        })])
    }
}

impl weir::sources::PartitionReader<u64> for PausingReader {
    fn read(
        &mut self,
        out: &mut Vec<u64>,
        max: usize,
    ) -> Result<weir::sources::ReadStatus, weir::BoxError> {
        if self.paused {
            return Err("read while paused".into());
        }
        for _ in 0..max {
            if self.next >= self.end {
                return Ok(weir::sources::ReadStatus::Done);
            }
            out.push(self.next);
            self.next += self.step;
        }
        Ok(weir::sources::ReadStatus::More)
    }

    fn pause(&mut self) -> Result<(), weir::BoxError> {
        if self.paused {
            return Err("paused twice".into());
        }
        self.paused = true;
        self.pauses.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn resume(&mut self) -> Result<(), weir::BoxError> {
        if !self.paused {
            return Err("resumed without a pause".into());
        }
        self.paused = false;
        self.resumes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// A source held back by a slow sink pauses its readers while it waits
/// (Kafka stops fetching then) and resumes each before reading it again.
#[test]
fn a_held_back_source_pauses_its_readers() {
    let (pauses, resumes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let source = Pausing {
        n: 1_000_000,
        pauses: Arc::clone(&pauses),
        resumes: Arc::clone(&resumes),
    };
    let written = Arc::new(AtomicU64::new(0));
    let w = Arc::clone(&written);
    Pipeline::new("pausing")
        .source(source)
        .event_time(|i: &u64| *i, Watermark::ascending())
        .key_by(|_| 0u8)
        .values()
        .sink(ForEach::new(move |_: &u64| {
            if w.fetch_add(1, Ordering::Relaxed).is_multiple_of(512) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }))
        .run(Cluster::threads(2).quiet(true))
        .unwrap();
    assert_eq!(written.load(Ordering::Relaxed), 1_000_000);
    let (pauses, resumes) = (
        pauses.load(Ordering::Relaxed),
        resumes.load(Ordering::Relaxed),
    );
    assert!(pauses > 0, "never paused");
    // Every partition read to its end: each pause was resumed.
    assert_eq!(pauses, resumes);
}
