//! Windows checked against a naive single-threaded reference on random,
//! out-of-order input, with and without late data, on 1 and 2 workers and on
//! 2 processes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use proptest::prelude::*;
use weir::aggregate::{Count, Max, Sum};
use weir::prelude::*;

/// `(event time, key, value)`.
type Rec = (u64, u8, i64);
/// `(key, start, end, (count, sum, max))`.
type Out = (u8, u64, u64, (u64, i64, i64));

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tumbling(u64),
    Sliding(u64, u64),
    Session(u64),
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    partitions: usize,
    every: usize,
    bound: u64,
    lateness: u64,
    kind: Kind,
}

// ---------------------------------------------------------------- reference

/// Each record with the watermark its source partition stamps it with.
fn stamped(input: &[Rec], s: &Setup) -> Vec<(u64, Rec)> {
    common::stamped(input, |r| r.0, s.partitions, s.every, s.bound)
}

fn summarize(values: &[i64]) -> (u64, i64, i64) {
    (
        values.len() as u64,
        values.iter().sum(),
        *values.iter().max().unwrap(),
    )
}

fn reference(input: &[Rec], s: &Setup) -> (Vec<Out>, Vec<Rec>) {
    let stamped = stamped(input, s);
    let mut late = Vec::new();
    let mut windows: BTreeMap<(u8, u64, u64), Vec<i64>> = BTreeMap::new();
    match s.kind {
        Kind::Tumbling(_) | Kind::Sliding(..) => {
            let (size, slide) = match s.kind {
                Kind::Tumbling(size) => (size, size),
                Kind::Sliding(size, slide) => (size, slide),
                Kind::Session(_) => unreachable!(),
            };
            for (wm, (ts, k, v)) in stamped {
                let mut any = false;
                // Every window start k·slide with start <= ts < start + size.
                for start in (0..=ts / slide)
                    .map(|i| i * slide)
                    .filter(|st| st + size > ts)
                {
                    if start + size + s.lateness > wm {
                        windows.entry((k, start, start + size)).or_default().push(v);
                        any = true;
                    }
                }
                if !any {
                    late.push((ts, k, v));
                }
            }
        }
        Kind::Session(gap) => {
            let mut by_stamp: BTreeMap<u64, Vec<Rec>> = BTreeMap::new();
            for (wm, r) in stamped {
                by_stamp.entry(wm).or_default().push(r);
            }
            // Open sessions: (key, start, end, values).
            let mut open: Vec<(u8, u64, u64, Vec<i64>)> = Vec::new();
            let close = |open: &mut Vec<(u8, u64, u64, Vec<i64>)>,
                         windows: &mut BTreeMap<(u8, u64, u64), Vec<i64>>,
                         upto: Option<u64>| {
                open.retain(|(k, st, en, vals)| {
                    let due = upto.is_none_or(|t| en + s.lateness <= t);
                    if due {
                        windows.insert((*k, *st, *en), vals.clone());
                    }
                    !due
                });
            };
            let add = |open: &mut Vec<(u8, u64, u64, Vec<i64>)>, (ts, k, v): Rec| {
                open.push((k, ts, ts + gap, vec![v]));
                // Merge overlapping or touching sessions of a key until none are left.
                loop {
                    let mut merged = false;
                    'outer: for i in 0..open.len() {
                        for j in 0..open.len() {
                            let (a, b) = (&open[i], &open[j]);
                            if i != j && a.0 == b.0 && a.1 <= b.2 && a.2 >= b.1 {
                                let b = open.remove(j);
                                let i = if j < i { i - 1 } else { i };
                                let a = &mut open[i];
                                a.1 = a.1.min(b.1);
                                a.2 = a.2.max(b.2);
                                a.3.extend(b.3);
                                merged = true;
                                break 'outer;
                            }
                        }
                    }
                    if !merged {
                        break;
                    }
                }
            };
            for (wm, recs) in by_stamp {
                close(&mut open, &mut windows, Some(wm));
                let mut candidates = Vec::new();
                for r in recs {
                    if r.0 + gap + s.lateness > wm {
                        add(&mut open, r);
                    } else {
                        candidates.push(r);
                    }
                }
                loop {
                    let before = candidates.len();
                    let mut still = Vec::new();
                    for r in candidates {
                        let overlaps = open
                            .iter()
                            .any(|(k, st, en, _)| *k == r.1 && *st <= r.0 + gap && *en >= r.0);
                        if overlaps {
                            add(&mut open, r);
                        } else {
                            still.push(r);
                        }
                    }
                    candidates = still;
                    if candidates.len() == before {
                        break;
                    }
                }
                late.extend(candidates);
            }
            close(&mut open, &mut windows, None);
        }
    }
    let mut out: Vec<Out> = windows
        .into_iter()
        .map(|((k, st, en), vals)| (k, st, en, summarize(&vals)))
        .collect();
    out.sort();
    late.sort();
    (out, late)
}

// ---------------------------------------------------------------- weir

fn pipeline(
    input: &[Rec],
    s: &Setup,
    results: impl Sink<WindowResult<u8, (u64, i64, i64)>>,
    late: impl Sink<Rec>,
) -> Pipeline {
    let (p, counted, late_data) = windowed(input, s);
    late_data.sink(late);
    counted.sink(results);
    p
}

/// The job of [`pipeline`] without its sinks: the pipeline, its window
/// results and its late records.
type Windowed = (
    Pipeline,
    Stream<WindowResult<u8, (u64, i64, i64)>>,
    Stream<Rec>,
);

/// See [`Windowed`].
fn windowed(input: &[Rec], s: &Setup) -> Windowed {
    let p = Pipeline::new("windows");
    let spec = match s.kind {
        Kind::Tumbling(size) => Tumbling::of(Duration::from_millis(size)),
        Kind::Sliding(size, slide) => {
            Sliding::of(Duration::from_millis(size)).every(Duration::from_millis(slide))
        }
        Kind::Session(gap) => Session::with_gap(Duration::from_millis(gap)),
    };
    let windowed = p
        .source(Iter::new(input.to_vec()).partitions(s.partitions))
        .event_time(
            |r: &Rec| r.0,
            Watermark::bounded(Duration::from_millis(s.bound)).every(s.every),
        )
        .key_by(|r| r.1)
        .window(spec)
        .allowed_lateness(Duration::from_millis(s.lateness));
    let late = windowed.late_data();
    let counted = windowed.aggregate((Count, Sum::of(|r: &Rec| r.2), Max::of(|r: &Rec| r.2)));
    (p, counted, late)
}

fn with_weir(input: &[Rec], s: &Setup, cluster: Cluster) -> (Vec<Out>, Vec<Rec>) {
    let (results, late) = (Collect::new(), Collect::new());
    pipeline(input, s, results.clone(), late.clone())
        .run(cluster.quiet(true))
        .unwrap();
    let mut out: Vec<Out> = results
        .take()
        .into_iter()
        .map(|r| (r.key, r.window_start, r.window_end, r.value))
        .collect();
    out.sort();
    let mut late = late.take();
    late.sort();
    (out, late)
}

fn input_strategy() -> impl Strategy<Value = Vec<Rec>> {
    // Mostly increasing event times with jitter, and now and then a record
    // far behind (late unless the bound and lateness cover it).
    prop::collection::vec(
        (0u64..40, any::<bool>(), 0u64..400, 0u8..4, -50i64..50),
        0..300,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (jitter, far, back, k, v))| {
                let base = i as u64 * 7 + 1_000;
                let ts = if far {
                    base.saturating_sub(back)
                } else {
                    base + jitter
                };
                (ts, k, v)
            })
            .collect()
    })
}

fn kind_strategy() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1u64..120).prop_map(Kind::Tumbling),
        (1u64..60, 1u64..5).prop_map(|(slide, n)| Kind::Sliding(slide * n, slide)),
        (1u64..80).prop_map(Kind::Session),
    ]
}

fn setup_strategy() -> impl Strategy<Value = Setup> {
    (
        1usize..5,
        1usize..20,
        0u64..60,
        prop_oneof![Just(0u64), 0u64..100],
        kind_strategy(),
    )
        .prop_map(|(partitions, every, bound, lateness, kind)| Setup {
            partitions,
            every,
            bound,
            lateness,
            kind,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn windows_match_the_reference_on_one_and_two_workers(
        input in input_strategy(),
        setup in setup_strategy(),
    ) {
        let expected = reference(&input, &setup);
        prop_assert_eq!(&with_weir(&input, &setup, Cluster::threads(1)), &expected);
        prop_assert_eq!(&with_weir(&input, &setup, Cluster::threads(2)), &expected);
    }
}

/// A fixed input with plenty of late records, for the multi-process test.
fn fixed_input() -> Vec<Rec> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..3_000u64)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ts = if x.is_multiple_of(10) {
                (i * 5).saturating_sub(x % 500)
            } else {
                i * 5 + x % 30
            };
            (ts, (x >> 20) as u8 % 5, (x >> 40) as i64 % 100)
        })
        .collect()
}

fn fixed_setups() -> Vec<Setup> {
    [
        Kind::Tumbling(100),
        Kind::Sliding(100, 20),
        Kind::Session(15),
    ]
    .into_iter()
    .map(|kind| Setup {
        partitions: 3,
        every: 16,
        bound: 40,
        lateness: 25,
        kind,
    })
    .collect()
}

#[test]
fn fixed_input_has_late_records_and_matches_on_one_and_two_workers() {
    let input = fixed_input();
    for setup in fixed_setups() {
        let expected = reference(&input, &setup);
        assert!(!expected.1.is_empty(), "{setup:?}: no late records");
        assert!(expected.0.len() > 10, "{setup:?}");
        assert_eq!(
            with_weir(&input, &setup, Cluster::threads(1)),
            expected,
            "{setup:?}"
        );
        assert_eq!(
            with_weir(&input, &setup, Cluster::threads(2)),
            expected,
            "{setup:?}"
        );
    }
}

const CHILD: &str = "WEIR_WINDOWS_CHILD";

#[test]
#[ignore = "helper: started as a child process by the multi-process test"]
fn child() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let mut parts = spec.split('|');
    let (process, hosts, dir) = (
        parts.next().unwrap().parse::<usize>().unwrap(),
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    );
    for (i, setup) in fixed_setups().iter().enumerate() {
        let dir = Path::new(&dir);
        let job = pipeline(
            &fixed_input(),
            setup,
            JsonLinesFile::to(dir.join(format!("results-{i}.jsonl"))),
            JsonLinesFile::to(dir.join(format!("late-{i}.jsonl"))),
        );
        if let Err(e) = job.run(Cluster::multi_process(2, 2, process, &hosts).quiet(true)) {
            eprintln!("child error: {e}");
            std::process::exit(3);
        }
    }
    // The first setup's results with named values, which cross processes
    // as `Named` (to the one worker writing the file).
    let (job, counted, late) = windowed(&fixed_input(), &fixed_setups()[0]);
    late.sink(JsonLinesFile::to(Path::new(&dir).join("named-late.jsonl")));
    counted
        .with_names(["count", "sum", "max"])
        .sink(JsonLinesFile::to(Path::new(&dir).join("named.jsonl")));
    if let Err(e) = job.run(Cluster::multi_process(2, 2, process, &hosts).quiet(true)) {
        eprintln!("child error: {e}");
        std::process::exit(3);
    }
}

#[test]
fn two_processes_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let mut lines = String::new();
    for _ in 0..2 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        lines.push_str(&format!("{}\n", l.local_addr().unwrap()));
    }
    std::fs::write(&hosts, lines).unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--ignored", "--exact", "child", "--nocapture"])
                .env(
                    CHILD,
                    format!("{p}|{}|{}", hosts.display(), dir.path().display()),
                )
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let input = fixed_input();
    for (i, setup) in fixed_setups().iter().enumerate() {
        let (expected, expected_late) = reference(&input, setup);
        let read = |name: String| -> Vec<String> {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            text.lines().map(String::from).collect()
        };
        let mut got: Vec<Out> = read(format!("results-{i}.jsonl"))
            .iter()
            .map(|l| {
                let r: WindowResult<u8, (u64, i64, i64)> = serde_json::from_str(l).unwrap();
                (r.key, r.window_start, r.window_end, r.value)
            })
            .collect();
        got.sort();
        let mut late: Vec<Rec> = read(format!("late-{i}.jsonl"))
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        late.sort();
        assert_eq!(got, expected, "{setup:?}");
        assert_eq!(late, expected_late, "{setup:?}");
    }
    let text = std::fs::read_to_string(dir.path().join("named.jsonl")).unwrap();
    let mut named: Vec<Out> = text
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            let v = &r["value"];
            let value = (
                v["count"].as_u64().unwrap(),
                v["sum"].as_i64().unwrap(),
                v["max"].as_i64().unwrap(),
            );
            let n = |f: &str| r[f].as_u64().unwrap();
            (n("key") as u8, n("window_start"), n("window_end"), value)
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        reference(&input, &fixed_setups()[0]).0,
        "named values"
    );
}

/// A count whose accumulators are counted while they live, to bound the
/// window state a job holds.
mod live {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[derive(Default)]
    pub struct Gauge {
        now: AtomicI64,
        peak: AtomicI64,
    }

    /// Counted in its gauge while alive; saved without it (a restored
    /// accumulator is counted in a gauge of its own).
    #[derive(serde::Serialize, serde::Deserialize)]
    pub struct Acc(u64, #[serde(skip)] Arc<Gauge>);

    impl Acc {
        fn new(n: u64, gauge: Arc<Gauge>) -> Acc {
            let now = gauge.now.fetch_add(1, Ordering::Relaxed) + 1;
            gauge.peak.fetch_max(now, Ordering::Relaxed);
            Acc(n, gauge)
        }
    }

    impl Clone for Acc {
        fn clone(&self) -> Acc {
            Acc::new(self.0, Arc::clone(&self.1))
        }
    }

    impl Drop for Acc {
        fn drop(&mut self) {
            self.1.now.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub struct LiveCount(pub Arc<Gauge>);

    impl weir::Aggregator<(u64, u32)> for LiveCount {
        type Acc = Acc;
        type Out = u64;
        fn init(&self) -> Acc {
            Acc::new(0, Arc::clone(&self.0))
        }
        fn add(&self, acc: &mut Acc, _: &(u64, u32)) {
            acc.0 += 1;
        }
        fn merge(&self, acc: &mut Acc, other: &Acc) {
            acc.0 += other.0;
        }
        fn finish(&self, acc: Acc) -> u64 {
            acc.0
        }
    }

    impl Gauge {
        pub fn peak(&self) -> i64 {
            self.peak.load(Ordering::Relaxed)
        }
    }
}

/// A file of time-ordered rows cut into many splits: the source reads its
/// partitions in step through event time, so windows fire as the file is
/// read and the live window state stays a small part of all the windows.
#[test]
fn window_state_follows_the_watermark_not_the_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let (rows, keys) = (200_000u64, 100u32);
    for i in 0..rows {
        writeln!(file, "[{},{}]", 1_000_000 + i, i as u32 % keys).unwrap();
    }
    drop(file);
    let gauge = std::sync::Arc::new(live::Gauge::default());
    let out = Collect::new();
    Pipeline::new("live-state")
        .source(JsonLines::<(u64, u32)>::new(&path).split_size(64 * 1024))
        .event_time(|r: &(u64, u32)| r.0, Watermark::ascending())
        .key_by(|r: &(u64, u32)| r.1)
        .window(Tumbling::of(Duration::from_millis(1000)))
        .aggregate(live::LiveCount(std::sync::Arc::clone(&gauge)))
        .sink(out.clone())
        .run(Cluster::threads(1).quiet(true))
        .unwrap();
    let results = out.take();
    assert_eq!(results.iter().map(|r| r.value).sum::<u64>(), rows);
    let windows = results.len() as i64; // 200 windows x 100 keys
    assert_eq!(windows, 20_000);
    // One split holds about 4 500 rows (5 windows); with its neighbours'
    // first records, a few windows of 100 keys are open at a time.
    assert!(
        gauge.peak() < 2_000,
        "peak live accumulators {} of {windows} windows",
        gauge.peak()
    );
}

/// Two partitions, one per worker, of `(event time, key)` rows in time
/// order: worker 0's reads at once, worker 1's ten rows a millisecond.
struct TwoSpeeds {
    rows: u64,
}

struct Reader {
    next: u64,
    rows: u64,
    slow: bool,
}

impl weir::sources::PartitionReader<(u64, u32)> for Reader {
    fn read(
        &mut self,
        out: &mut Vec<(u64, u32)>,
        max: usize,
    ) -> Result<weir::sources::ReadStatus, weir::BoxError> {
        let n = if self.slow {
            std::thread::sleep(Duration::from_millis(1));
            10
        } else {
            max as u64
        };
        let end = (self.next + n).min(self.rows);
        out.extend((self.next..end).map(|i| (i, (i % 50) as u32)));
        self.next = end;
        Ok(if end == self.rows {
            weir::sources::ReadStatus::Done
        } else {
            weir::sources::ReadStatus::More
        })
    }
}

impl Source for TwoSpeeds {
    type Item = (u64, u32);
    fn describe(&self) -> String {
        "two-speeds".into()
    }
    fn open(
        &self,
        ctx: &weir::sources::SourceContext,
    ) -> Result<Vec<Box<dyn weir::sources::PartitionReader<(u64, u32)>>>, weir::SourceError> {
        Ok(vec![Box::new(Reader {
            next: 0,
            rows: self.rows,
            slow: ctx.worker() == 1,
        })])
    }
}

/// Peak live window accumulators of a 50 ms tumbling count over
/// [`TwoSpeeds`] on 2 workers, with watermark `wm`.
fn peak_state_two_speeds(wm: Watermark) -> i64 {
    let rows = 5_000;
    let gauge = std::sync::Arc::new(live::Gauge::default());
    let out = Collect::new();
    Pipeline::new("two-speeds")
        .source(TwoSpeeds { rows })
        .event_time(|r: &(u64, u32)| r.0, wm.every(10))
        .key_by(|r: &(u64, u32)| r.1)
        .window(Tumbling::of(Duration::from_millis(50)))
        .aggregate(live::LiveCount(std::sync::Arc::clone(&gauge)))
        .sink(out.clone())
        .run(Cluster::threads(2).quiet(true))
        .unwrap();
    let results = out.take();
    // Both partitions' rows, each counted once: 100 windows x 50 keys.
    assert_eq!(results.iter().map(|r| r.value).sum::<u64>(), 2 * rows);
    assert_eq!(results.len(), 5_000);
    gauge.peak()
}

/// A worker whose input is ahead in event time waits for the other
/// (watermark alignment): window state stays a few windows deep. Without
/// alignment the fast worker reads all its rows while the slow one holds the
/// watermark back, and every window stays open.
#[test]
fn sources_ahead_of_the_job_wait_for_it() {
    let aligned = peak_state_two_speeds(Watermark::ascending().max_batches_ahead(4));
    let unaligned = peak_state_two_speeds(Watermark::ascending().unaligned());
    assert!(aligned < 1_000, "aligned: peak {aligned} live accumulators");
    assert!(
        unaligned > 3_000,
        "unaligned: peak {unaligned} live accumulators"
    );
}
