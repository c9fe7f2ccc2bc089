//! Sources and sinks end to end: files split over workers, bad rows, part
//! files, and plan errors.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use weir::SourceError;
use weir::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Event {
    user: String,
    amount: i64,
    ts: u64,
}

fn event(i: u64) -> Event {
    Event {
        user: format!("u{}", i % 37),
        amount: (i as i64 * 7919) % 1000 - 500,
        ts: 1_000 + i,
    }
}

/// Writes `n` events as CSV over three files (columns in another order
/// than the struct) and as JSON lines over three files.
fn write_inputs(dir: &Path, n: u64) {
    for part in 0..3u64 {
        let mut csv = String::from("ts,amount,user\n");
        let mut jsonl = String::new();
        for i in (part..n).step_by(3) {
            let e = event(i);
            writeln!(csv, "{},{},{}", e.ts, e.amount, e.user).unwrap();
            writeln!(jsonl, "{}", serde_json::to_string(&e).unwrap()).unwrap();
        }
        std::fs::write(dir.join(format!("events-{part}.csv")), csv).unwrap();
        std::fs::write(dir.join(format!("events-{part}.jsonl")), jsonl).unwrap();
    }
}

fn expected(n: u64) -> Vec<Event> {
    let mut all: Vec<Event> = (0..n).map(event).collect();
    all.sort();
    all
}

fn collect<S: Source<Item = Event>>(source: S, workers: usize) -> Vec<Event> {
    let out = Collect::new();
    Pipeline::new("read")
        .source(source)
        .sink(out.clone())
        .run(Cluster::threads(workers).quiet(true))
        .unwrap();
    let mut got = out.take();
    got.sort();
    got
}

#[test]
fn csv_glob_is_read_exactly_once_on_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), 5_000);
    let glob = dir.path().join("*.csv");
    for workers in [1, 2, 3] {
        // Small splits so that every file is cut into several byte ranges.
        let got = collect(Csv::<Event>::new(&glob).split_size(1_000), workers);
        assert_eq!(got, expected(5_000), "workers={workers}");
    }
}

#[test]
fn jsonl_glob_is_read_exactly_once_on_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), 5_000);
    let glob = dir.path().join("*.jsonl");
    for workers in [1, 2, 3] {
        let got = collect(JsonLines::<Event>::new(&glob).split_size(777), workers);
        assert_eq!(got, expected(5_000), "workers={workers}");
    }
}

#[test]
fn bad_csv_row_stops_the_job_naming_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    let mut text = String::from("user,amount,ts\n");
    for i in 0..2_000 {
        if i == 1_234 {
            text.push_str("ann,12x,5\n");
        } else {
            writeln!(text, "u{i},{i},{i}").unwrap();
        }
    }
    std::fs::write(&path, text).unwrap();
    for workers in [1, 3] {
        let err = Pipeline::new("bad")
            .source(Csv::<Event>::new(&path).split_size(500))
            .sink(Collect::new())
            .run(Cluster::threads(workers).quiet(true))
            .unwrap_err();
        match err.source_error() {
            Some(SourceError::BadRecord {
                path: p,
                line,
                reason,
                ..
            }) => {
                assert_eq!(p, &path);
                // Header is line 1, row i is line i + 2.
                assert_eq!(*line, 1_236);
                assert!(reason.contains("field `amount`"), "{reason}");
            }
            other => panic!("unexpected {other:?}: {err}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("bad.csv:1236"), "{msg}");
    }
}

#[test]
fn csv_row_with_too_few_fields_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.csv");
    std::fs::write(&path, "user,amount,ts\nann,1,2\nbob,3\n").unwrap();
    let err = Pipeline::new("short")
        .source(Csv::<Event>::new(&path))
        .sink(Collect::new())
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("short.csv:3") && err.contains("2 field(s) where the header has 3"),
        "{err}"
    );
}

#[test]
fn bad_json_line_stops_the_job_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"user\":\"a\",\"amount\":1,\"ts\":1}\n{\"user\":\"b\",\"amount\":\"many\",\"ts\":2}\n",
    )
    .unwrap();
    let err = Pipeline::new("bad")
        .source(JsonLines::<Event>::new(&path))
        .sink(Collect::new())
        .run(Cluster::threads(2).quiet(true))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("bad.jsonl:2") && msg.contains("invalid type"),
        "{msg}"
    );
}

#[test]
fn missing_input_is_an_error_naming_the_path() {
    let err = Pipeline::new("missing")
        .source(Csv::<Event>::new("/nonexistent/weir/*.csv"))
        .sink(Collect::new())
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no input file matches `/nonexistent/weir/*.csv`"),
        "{err}"
    );

    // An I/O error is the source of the error chain, down from `RunError`.
    let err = Pipeline::new("missing")
        .source(Csv::<Event>::new("/nonexistent/weir/events.csv"))
        .sink(Collect::new())
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err();
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = vec![&err];
    while let Some(next) = chain.last().and_then(|e| e.source()) {
        chain.push(next);
    }
    let io = chain
        .iter()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no io::Error in {chain:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert!(matches!(err.source_error(), Some(SourceError::Io { .. })));
}

#[test]
fn part_file_sinks_write_one_file_per_worker() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let csv_out = dir.path().join("csv-out");
    let p = Pipeline::new("parts");
    let events = p.source(Generator::new(3_000, event));
    events.clone().sink(JsonLinesFile::parts(&out));
    events.sink(CsvFile::parts(&csv_out));
    let summary = p.run(Cluster::threads(3).quiet(true)).unwrap();
    assert_eq!(summary.events(), 3_000);
    assert_eq!(summary.sinks.iter().map(|(_, n)| n).sum::<u64>(), 6_000);

    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    );
    // Reading the parts back (a directory source) gives the events back.
    assert_eq!(collect(JsonLines::<Event>::new(&out), 2), expected(3_000));
    assert_eq!(collect(Csv::<Event>::new(&csv_out), 2), expected(3_000));
}

#[test]
fn one_stage_feeds_two_sinks_and_is_built_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let p = Pipeline::new("fanout");
    let mapped = p.source(Generator::new(1_000, |i| i)).map(move |i: u64| {
        c.fetch_add(1, Ordering::Relaxed);
        i
    });
    let (evens, odds) = (Collect::new(), Collect::new());
    mapped.clone().filter(|i| i % 2 == 0).sink(evens.clone());
    mapped.filter(|i| i % 2 == 1).sink(odds.clone());
    p.run(Cluster::threads(2).quiet(true)).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 1_000);
    assert_eq!(evens.take().len(), 500);
    assert_eq!(odds.take().len(), 500);
}

#[test]
fn plan_errors_name_the_stage() {
    // No sink.
    let p = Pipeline::new("nosink");
    let _ = p.source(Iter::new(vec![1u8]));
    let err = p.run(Cluster::threads(1).quiet(true)).unwrap_err();
    assert!(
        matches!(err, RunError::Plan(PlanError::NoSink { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("`nosink` has no sink"));

    // A branch that goes nowhere.
    let p = Pipeline::new("dangling");
    let s = p.source(Iter::new(vec![1u8]));
    let _ = s.clone().map(|x| x + 1).named("plus-one");
    s.sink(Collect::new());
    let err = p
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("#1 `map plus-one` is not consumed"), "{err}");

    // A union of streams of two pipelines.
    let a = Pipeline::new("a").source(Iter::new(vec![1u8]));
    let b = Pipeline::new("b").source(Iter::new(vec![2u8]));
    let job = a.union(b).sink(Collect::new());
    let err = job
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("combines streams of different pipelines (`a` and `b`)"),
        "{err}"
    );
}

/// A stream of a pipeline with more stages than this one, passed to `union`,
/// `interval_join` or `join`: a plan error naming the stage, not an index out
/// of bounds.
#[test]
fn streams_of_a_longer_pipeline_are_a_plan_error() {
    let other = || {
        let p = Pipeline::new("other");
        p.source(Iter::new(vec![(1u64, 2u8)]))
            .event_time(|r: &(u64, u8)| r.0, Watermark::ascending())
            .map(|r| r)
            .filter(|_| true)
            .map(|r| r)
            .filter(|_| true)
            .map(|r| r)
    };
    let short = || {
        Pipeline::new("short")
            .source(Iter::new(vec![(1u64, 1u8)]))
            .event_time(|r: &(u64, u8)| r.0, Watermark::ascending())
    };
    let check = |job: Pipeline, stage: &str| {
        let err = job.validate().unwrap_err();
        assert!(matches!(err, PlanError::ForeignStream { .. }), "{err}");
        let err = err.to_string();
        assert!(
            err.contains(stage) && err.contains("(`short` and `other`)"),
            "{err}"
        );
    };
    check(short().union(other()).sink(Collect::new()), "`union`");
    let keyed = |s: Stream<(u64, u8)>| s.key_by(|r: &(u64, u8)| r.1);
    check(
        keyed(short())
            .interval_join(keyed(other()), 0, 10)
            .sink(Collect::new()),
        "`interval_join",
    );
    check(
        keyed(short()).join(keyed(other())).sink(Collect::new()),
        "`join`",
    );
}

#[test]
fn bad_cluster_settings_are_errors_not_panics() {
    let job = Pipeline::new("p")
        .source(Iter::new(vec![1u8]))
        .sink(Collect::new());
    let err = job.run(Cluster::threads(0)).unwrap_err().to_string();
    assert!(err.contains("--workers"), "{err}");
}

#[test]
fn sink_io_error_stops_the_job_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should go.
    let target = dir.path().join("taken");
    std::fs::create_dir(&target).unwrap();
    let err = Pipeline::new("p")
        .source(Iter::new(vec![1u8]))
        .sink(JsonLinesFile::to(&target))
        .run(Cluster::threads(2).quiet(true))
        .unwrap_err();
    assert!(err.to_string().contains("taken"), "{err}");
}

/// Every file sink writes on a thread of its own: a write that fails there
/// (`/dev/full`) still stops the job with an error naming the path and the
/// reason, for JSON lines, CSV and text, one file or parts.
#[test]
fn a_failing_write_on_the_file_thread_stops_the_job() {
    assert!(
        Path::new("/dev/full").exists(),
        "this test needs /dev/full (Linux)"
    );
    let records = || Iter::new((0..200_000u64).collect::<Vec<_>>());
    let check = |err: RunError| {
        let text = err.to_string();
        assert!(
            text.contains("/dev/full") && text.contains("No space left on device"),
            "{text}"
        );
    };
    for workers in [1, 2] {
        let cluster = || Cluster::threads(workers).quiet(true);
        let p = Pipeline::new("jsonl");
        p.source(records()).sink(JsonLinesFile::to("/dev/full"));
        check(p.run(cluster()).unwrap_err());
        let p = Pipeline::new("csv");
        p.source(records())
            .map(event)
            .sink(CsvFile::to("/dev/full"));
        check(p.run(cluster()).unwrap_err());
        let p = Pipeline::new("text");
        p.source(records())
            .map(|n: u64| n.to_string())
            .sink(TextFile::to("/dev/full"));
        check(p.run(cluster()).unwrap_err());
    }
    // Output goes to a device as it is: /dev/full was never replaced by a
    // published file.
    use std::os::unix::fs::FileTypeExt;
    assert!(
        std::fs::metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

/// Reads a file cut into hundreds of splits on one worker in a child
/// process whose open-file limit is 32: splits are opened lazily and closed
/// between reads, so the job neither runs out of file descriptors nor loses a
/// row.
#[test]
fn many_splits_fit_in_a_small_file_descriptor_limit() {
    const CHILD: &str = "WEIR_TEST_FD_CHILD";
    if let Ok(dir) = std::env::var(CHILD) {
        let dir = Path::new(&dir);
        let csv = Collect::new();
        let jsonl = Collect::new();
        let p = Pipeline::new("many-splits");
        p.source(Csv::<Event>::new(dir.join("events-0.csv")).split_size(512))
            .sink(csv.clone());
        p.source(JsonLines::<Event>::new(dir.join("events-0.jsonl")).split_size(512))
            .sink(jsonl.clone());
        p.run(Cluster::threads(1).quiet(true)).unwrap();
        let mut expected: Vec<Event> = (0..30_000).step_by(3).map(event).collect();
        expected.sort();
        for got in [csv.take(), jsonl.take()] {
            let mut got = got;
            got.sort();
            assert_eq!(got, expected);
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), 30_000);
    let size = std::fs::metadata(dir.path().join("events-0.csv"))
        .unwrap()
        .len();
    assert!(size / 512 > 200, "the input must have many splits");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 32 && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "many_splits_fit_in_a_small_file_descriptor_limit",
        ])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A source of `(event time, partition)` records: partition 0 has nothing
/// for its first 300 ms (as a queue that has not delivered yet), then 1 000
/// records; the other partitions have `long` records each, at event times
/// running far ahead of partition 0's.
struct LateStarter {
    long: u64,
}

struct LateReader {
    partition: u64,
    next: u64,
    end: u64,
    opened: std::time::Instant,
}

impl weir::sources::PartitionReader<(u64, u64)> for LateReader {
    fn read(
        &mut self,
        out: &mut Vec<(u64, u64)>,
        max: usize,
    ) -> Result<weir::sources::ReadStatus, weir::BoxError> {
        if self.partition == 0 && self.opened.elapsed() < std::time::Duration::from_millis(300) {
            return Ok(weir::sources::ReadStatus::Idle);
        }
        let until = (self.next + max as u64).min(self.end);
        out.extend((self.next..until).map(|t| (t, self.partition)));
        self.next = until;
        Ok(match self.next == self.end {
            true => weir::sources::ReadStatus::Done,
            false => weir::sources::ReadStatus::More,
        })
    }
}

impl Source for LateStarter {
    type Item = (u64, u64);

    fn describe(&self) -> String {
        "late-starter".into()
    }

    fn open(
        &self,
        ctx: &weir::sources::SourceContext,
    ) -> Result<Vec<Box<dyn weir::sources::PartitionReader<(u64, u64)>>>, SourceError> {
        Ok((ctx.worker() as u64..4)
            .step_by(ctx.peers())
            .map(|p| {
                Box::new(LateReader {
                    partition: p,
                    next: 0,
                    end: if p == 0 { 1_000 } else { self.long },
                    opened: std::time::Instant::now(),
                }) as Box<dyn weir::sources::PartitionReader<(u64, u64)>>
            })
            .collect())
    }
}

/// On several workers a source is held back by the job's progress (flow
/// control); a partition with nothing to read at first, which the others
/// on its worker ran far ahead of, is then what holds the job back, and is
/// read rather than waited for: the job completes. (It used to wait for
/// itself forever: seen with Kafka partitions whose first fetch came late.)
#[test]
fn a_partition_idle_at_first_does_not_stall_its_source() {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let out = Collect::new();
        let p = Pipeline::new("late-starter");
        p.source(LateStarter { long: 300_000 })
            .event_time(
                |r: &(u64, u64)| r.0,
                Watermark::bounded(std::time::Duration::ZERO),
            )
            .key_by(|r: &(u64, u64)| r.1)
            .window(Tumbling::of(std::time::Duration::from_secs(100)))
            .count()
            .sink(out.clone());
        let result = p.run(Cluster::threads(2).quiet(true));
        let _ = done.send(result.map(|_| out.take()));
    });
    let results = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the job did not complete within a minute: its source waits for itself")
        .unwrap();
    let total: u64 = results.iter().map(|w| w.value).sum();
    assert_eq!(total, 1_000 + 3 * 300_000);
}

/// A source that acknowledges what it reads, and records what it is told.
struct Acking {
    released: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

struct AckingReader {
    next: u64,
    released: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Source for Acking {
    type Item = u64;

    fn describe(&self) -> String {
        "acking".into()
    }

    fn acknowledges(&self) -> bool {
        true
    }

    fn open(
        &self,
        ctx: &weir::sources::SourceContext,
    ) -> Result<Vec<Box<dyn weir::sources::PartitionReader<u64>>>, SourceError> {
        if ctx.worker() != 0 {
            return Ok(Vec::new());
        }
        Ok(vec![Box::new(AckingReader {
            next: 0,
            released: std::sync::Arc::clone(&self.released),
        })])
    }
}

impl weir::sources::PartitionReader<u64> for AckingReader {
    fn read(
        &mut self,
        out: &mut Vec<u64>,
        max: usize,
    ) -> Result<weir::sources::ReadStatus, weir::BoxError> {
        for _ in 0..max.min(100) {
            if self.next == 10_000 {
                return Ok(weir::sources::ReadStatus::Done);
            }
            out.push(self.next);
            self.next += 1;
        }
        Ok(weir::sources::ReadStatus::More)
    }

    fn position(&self) -> Option<u64> {
        Some(self.next)
    }

    fn release(&mut self, position: u64) -> Result<(), weir::BoxError> {
        self.released.lock().unwrap().push(position);
        Ok(())
    }
}

/// `Mapped` passes on what its inner source and readers do beyond reading:
/// a source that acknowledges still has its records released as they reach
/// the sinks when mapped (the spec maps queue sources).
#[test]
fn a_mapped_source_that_acknowledges_is_released() {
    let released = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let source = weir::sources::Mapped::new(
        Acking {
            released: std::sync::Arc::clone(&released),
        },
        |i: u64| i * 2,
    );
    let out = Collect::new();
    Pipeline::new("mapped-acks")
        .source(source)
        .event_time(|i: &u64| *i, Watermark::ascending().every(100))
        .sink(out.clone())
        .run(Cluster::threads(1).quiet(true))
        .unwrap();
    assert_eq!(out.take().len(), 10_000);
    let released = released.lock().unwrap();
    assert!(!released.is_empty(), "nothing was released");
    assert!(released.windows(2).all(|w| w[0] <= w[1]));
}
