//! Watermarks: an idle partition of an unbounded source does not hold the
//! job back once its idle timeout passes; an exhausted one releases its
//! watermark at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use weir::prelude::*;
use weir::sources::{PartitionReader, ReadStatus, SourceContext};
use weir::{BoxError, SourceError};

/// Partition 0: event times 0..20, then done. Partition 1: no records, idle
/// until `release` is set (or a deadline passes, so a failing test ends).
struct TwoPartitions {
    release: Arc<AtomicBool>,
}

struct Busy(u64);
struct Idle(Arc<AtomicBool>, Instant);

impl PartitionReader<u64> for Busy {
    fn read(&mut self, out: &mut Vec<u64>, _: usize) -> Result<ReadStatus, BoxError> {
        out.extend(self.0..20);
        self.0 = 20;
        Ok(ReadStatus::Done)
    }
}

impl PartitionReader<u64> for Idle {
    fn read(&mut self, _: &mut Vec<u64>, _: usize) -> Result<ReadStatus, BoxError> {
        if self.0.load(Ordering::SeqCst) || self.1.elapsed() > Duration::from_secs(20) {
            Ok(ReadStatus::Done)
        } else {
            Ok(ReadStatus::Idle)
        }
    }
}

impl Source for TwoPartitions {
    type Item = u64;
    fn describe(&self) -> String {
        "two-partitions".into()
    }
    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<u64>>>, SourceError> {
        let mut readers: Vec<Box<dyn PartitionReader<u64>>> = Vec::new();
        if ctx.worker() == 0 {
            readers.push(Box::new(Busy(0)));
            readers.push(Box::new(Idle(Arc::clone(&self.release), Instant::now())));
        }
        Ok(readers)
    }
}

#[test]
fn idle_partition_advances_by_processing_time() {
    let release = Arc::new(AtomicBool::new(false));
    let fired_while_idle = Arc::new(AtomicBool::new(false));
    let (r, f) = (Arc::clone(&release), Arc::clone(&fired_while_idle));
    let start = Instant::now();
    Pipeline::new("idle")
        .source(TwoPartitions {
            release: Arc::clone(&release),
        })
        .event_time(
            |t: &u64| *t,
            Watermark::ascending().idle_timeout(Duration::from_millis(20)),
        )
        .key_by(|_| 0u8)
        .window(Tumbling::of(Duration::from_millis(10)))
        .count()
        .sink(ForEach::new(move |_: &WindowResult<u8, u64>| {
            // A window fired while partition 1 was still running: its
            // watermark moved on without records.
            if !r.swap(true, Ordering::SeqCst) {
                f.store(true, Ordering::SeqCst);
            }
        }))
        .run(Cluster::threads(1).quiet(true))
        .unwrap();
    assert!(fired_while_idle.load(Ordering::SeqCst));
    // Without the idle timeout the partition would hold the windows until
    // its 20 s deadline.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn without_idle_timeout_an_idle_partition_holds_windows_back() {
    let release = Arc::new(AtomicBool::new(false));
    let fired = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&fired);
    let releaser = Arc::clone(&release);
    // Release the idle partition after a while; no window may fire before.
    let guard = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        releaser.store(true, Ordering::SeqCst);
    });
    let seen_before_release = Arc::new(AtomicBool::new(false));
    let (s, r) = (Arc::clone(&seen_before_release), Arc::clone(&release));
    Pipeline::new("held")
        .source(TwoPartitions { release })
        .event_time(|t: &u64| *t, Watermark::ascending())
        .key_by(|_| 0u8)
        .window(Tumbling::of(Duration::from_millis(10)))
        .count()
        .sink(ForEach::new(move |_: &WindowResult<u8, u64>| {
            f.store(true, Ordering::SeqCst);
            if !r.load(Ordering::SeqCst) {
                s.store(true, Ordering::SeqCst);
            }
        }))
        .run(Cluster::threads(1).quiet(true))
        .unwrap();
    guard.join().unwrap();
    assert!(
        fired.load(Ordering::SeqCst),
        "windows fire once the partition ends"
    );
    assert!(!seen_before_release.load(Ordering::SeqCst));
}

#[test]
fn event_time_after_a_map_is_a_plan_error() {
    let p = Pipeline::new("p");
    let _ = p
        .source(Iter::new(vec![1u64]))
        .map(|x| x + 1)
        .event_time(|t| *t, Watermark::ascending())
        .key_by(|_| 0u8)
        .window(Tumbling::of(Duration::from_millis(10)))
        .count()
        .sink(Collect::new());
    let err = p.validate().unwrap_err().to_string();
    assert!(
        err.contains("event_time") && err.contains("right after a source"),
        "{err}"
    );
}

#[test]
fn window_without_event_time_is_a_plan_error() {
    let p = Pipeline::new("p");
    let _ = p
        .source(Iter::new(vec![1u64]))
        .key_by(|_| 0u8)
        .window(Tumbling::of(Duration::from_millis(10)))
        .count()
        .sink(Collect::new());
    let err = p.validate().unwrap_err().to_string();
    assert!(
        err.contains("#2 `window tumbling(10 ms)`") && err.contains("event time"),
        "{err}"
    );
}

/// A stream cloned before `event_time` reads the same source operator: the
/// input is read once, and both branches see every record.
#[test]
fn a_stream_cloned_before_event_time_reads_its_input_once() {
    let p = Pipeline::new("clone-before-event-time");
    let source = p.source(Iter::new(0u64..1000));
    let windows = Collect::new();
    let plain = Collect::new();
    source
        .clone()
        .event_time(|t: &u64| *t, Watermark::ascending())
        .key_by(|_| 0u8)
        .window(Tumbling::of(Duration::from_millis(100)))
        .count()
        .sink(windows.clone());
    source.map(|t| t * 2).sink(plain.clone());
    let summary = p.run(Cluster::threads(2).quiet(true)).unwrap();
    assert_eq!(summary.events(), 1000, "{:?}", summary.sources);
    let counts: u64 = windows.take().iter().map(|r| r.value).sum();
    assert_eq!(counts, 1000);
    assert_eq!(plain.take().len(), 1000);
}

#[test]
fn event_time_twice_on_one_source_is_a_plan_error() {
    let p = Pipeline::new("twice");
    let source = p.source(Iter::new(0u64..10));
    let a = source
        .clone()
        .event_time(|t: &u64| *t, Watermark::ascending());
    let b = source.event_time(|t: &u64| *t + 1, Watermark::ascending());
    a.sink(Collect::new());
    b.sink(Collect::new());
    let err = p.validate().unwrap_err().to_string();
    assert!(
        err.contains("event time assigned once per source; source #0 already has it"),
        "{err}"
    );
}
