//! Keyed aggregation checked against a naive single-threaded reference on
//! random input, on 1 and several workers.

use std::collections::HashMap;

use proptest::prelude::*;
use weir::prelude::*;
use weir::sources::{PartitionReader, ReadStatus};

/// The reference: a plain loop over the input.
fn reference(input: &[(u16, i64)]) -> Vec<(u16, (u64, i64, i64))> {
    let mut acc: HashMap<u16, (u64, i64, i64)> = HashMap::new();
    for &(k, v) in input {
        let e = acc.entry(k).or_insert((0, 0, i64::MIN));
        e.0 += 1;
        e.1 += v;
        e.2 = e.2.max(v);
    }
    let mut out: Vec<_> = acc.into_iter().collect();
    out.sort();
    out
}

fn with_weir(input: &[(u16, i64)], workers: usize) -> Vec<(u16, (u64, i64, i64))> {
    let out = Collect::new();
    Pipeline::new("keyed")
        .source(Iter::new(input.to_vec()))
        .key_by(|(k, _)| *k)
        .fold(
            || (0u64, 0i64, i64::MIN),
            |acc, (_, v)| {
                acc.0 += 1;
                acc.1 += v;
                acc.2 = acc.2.max(v);
            },
        )
        .sink(out.clone())
        .run(Cluster::threads(workers).quiet(true))
        .unwrap();
    let updates = out.take();
    // A bounded input at one timestamp: one final insertion per key.
    assert!(updates.iter().all(|u| u.diff == 1));
    let mut got: Vec<_> = updates.into_iter().map(|u| (u.key, u.value)).collect();
    got.sort();
    got
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn fold_matches_reference(
        input in prop::collection::vec((0u16..50, -1_000i64..1_000), 0..2_000),
    ) {
        let expected = reference(&input);
        prop_assert_eq!(with_weir(&input, 1), expected.clone());
        prop_assert_eq!(with_weir(&input, 3), expected);
    }
}

#[test]
fn count_of_generated_keys() {
    let out = Collect::new();
    Pipeline::new("count")
        .source(Generator::new(100_000, |i| i))
        .key_by(|i: &u64| i % 1_000)
        .count()
        .sink(out.clone())
        .run(Cluster::threads(2).quiet(true))
        .unwrap();
    let got = out.take();
    assert_eq!(got.len(), 1_000);
    assert!(got.iter().all(|u| u.value == 100 && u.diff == 1));
}

/// Nets a changelog: the `(key, value)` pairs whose updates do not cancel.
fn net(updates: Vec<Update<u16, u64>>) -> Vec<(u16, u64, i64)> {
    let mut acc: HashMap<(u16, u64), i64> = HashMap::new();
    for u in updates {
        *acc.entry((u.key, u.value)).or_default() += u.diff;
    }
    let mut out: Vec<_> = acc
        .into_iter()
        .filter(|(_, d)| *d != 0)
        .map(|((k, v), d)| (k, v, d))
        .collect();
    out.sort();
    out
}

fn counts_with_event_time(input: &[(u16, i64)], workers: usize) -> (Vec<(u16, u64, i64)>, usize) {
    let out = Collect::new();
    // Event time = position, a watermark every 16 records: the counts change
    // many times, and the changelog must net out to the final counts.
    let timed: Vec<(u64, u16)> = input
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (i as u64, *k))
        .collect();
    Pipeline::new("counts")
        .source(Iter::new(timed))
        .event_time(|r: &(u64, u16)| r.0, Watermark::ascending().every(16))
        .key_by(|r| r.1)
        .count()
        .sink(out.clone())
        .run(Cluster::threads(workers).quiet(true))
        .unwrap();
    let updates = out.take();
    let n = updates.len();
    (net(updates), n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn count_changelog_nets_to_the_reference(
        input in prop::collection::vec((0u16..20, 0i64..1), 0..1_500),
    ) {
        let expected: Vec<(u16, u64, i64)> = reference(&input)
            .into_iter()
            .map(|(k, (n, _, _))| (k, n, 1))
            .collect();
        let (one, _) = counts_with_event_time(&input, 1);
        prop_assert_eq!(&one, &expected);
        let (two, _) = counts_with_event_time(&input, 2);
        prop_assert_eq!(&two, &expected);
    }
}

#[test]
fn count_changelog_retracts_earlier_counts() {
    let input: Vec<(u16, i64)> = (0..1_000).map(|i| ((i % 3) as u16, 0)).collect();
    let (netted, updates) = counts_with_event_time(&input, 2);
    assert_eq!(netted, vec![(0, 334, 1), (1, 333, 1), (2, 333, 1)]);
    // Several watermarks: each key's count was updated (and retracted) many times.
    assert!(updates > 3 * 10, "{updates}");
}

/// A source that may never end, as standard input or a followed queue: the
/// words sent on a channel, read by worker 0, until the sender is dropped.
struct Words(std::sync::Arc<std::sync::Mutex<Option<std::sync::mpsc::Receiver<u16>>>>);

impl weir::sources::Source for Words {
    type Item = u16;

    fn describe(&self) -> String {
        "words".to_string()
    }

    fn open(
        &self,
        ctx: &weir::sources::SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<u16>>>, weir::SourceError> {
        let taken = (ctx.worker() == 0)
            .then(|| self.0.lock().unwrap().take())
            .flatten();
        Ok(taken
            .map(|rx| Box::new(WordsReader(rx)) as Box<dyn PartitionReader<u16>>)
            .into_iter()
            .collect())
    }
}

struct WordsReader(std::sync::mpsc::Receiver<u16>);

impl PartitionReader<u16> for WordsReader {
    fn read(&mut self, out: &mut Vec<u16>, max: usize) -> Result<ReadStatus, weir::BoxError> {
        use std::sync::mpsc::TryRecvError;
        while out.len() < max {
            match self.0.try_recv() {
                Ok(w) => out.push(w),
                Err(TryRecvError::Empty) => return Ok(ReadStatus::Idle),
                Err(TryRecvError::Disconnected) => return Ok(ReadStatus::Done),
            }
        }
        Ok(ReadStatus::More)
    }
}

/// Waits until the changelog collected in `out` so far nets to `want`.
fn wait_for_net(
    out: &std::sync::Arc<std::sync::Mutex<Vec<Update<u16, u64>>>>,
    want: &[(u16, u64, i64)],
) -> Result<(), String> {
    let start = std::time::Instant::now();
    loop {
        let got = net(out.lock().unwrap().clone());
        if got == want {
            return Ok(());
        }
        if start.elapsed() > std::time::Duration::from_secs(20) {
            return Err(format!(
                "after 20 s the changelog nets to {got:?}, not {want:?}"
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn updating_stages_over_an_unbounded_source_emit_as_the_input_goes() {
    for workers in [1, 2] {
        let (tx, rx) = std::sync::mpsc::channel();
        let source = Words(std::sync::Arc::new(std::sync::Mutex::new(Some(rx))));
        let counts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sums = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let p = Pipeline::new("live").update_interval(std::time::Duration::from_millis(50));
        let keyed = p.source(source).key_by(|w: &u16| *w);
        let c = std::sync::Arc::clone(&counts);
        keyed
            .clone()
            .count()
            .sink(ForEach::new(move |u: &Update<u16, u64>| {
                c.lock().unwrap().push(u.clone())
            }));
        let s = std::sync::Arc::clone(&sums);
        keyed
            .fold(|| 0u64, |sum, w| *sum += u64::from(w))
            .sink(ForEach::new(move |u: &Update<u16, u64>| {
                s.lock().unwrap().push(u.clone())
            }));
        let job = std::thread::spawn(move || p.run(Cluster::threads(workers).quiet(true)));
        // The source stays open: each step's results come out while it waits.
        for w in [1, 1, 2, 1] {
            tx.send(w).unwrap();
        }
        wait_for_net(&counts, &[(1, 3, 1), (2, 1, 1)]).unwrap();
        wait_for_net(&sums, &[(1, 3, 1), (2, 2, 1)]).unwrap();
        for w in [2, 3, 3, 1] {
            tx.send(w).unwrap();
        }
        wait_for_net(&counts, &[(1, 4, 1), (2, 2, 1), (3, 2, 1)]).unwrap();
        wait_for_net(&sums, &[(1, 4, 1), (2, 4, 1), (3, 6, 1)]).unwrap();
        assert!(!job.is_finished(), "{workers} workers: the job ended early");
        drop(tx);
        job.join().unwrap().unwrap();
        // The changelog went through versions: the first counts of 1 and 2
        // were retracted.
        let counts = counts.lock().unwrap().clone();
        assert!(
            counts.contains(&Update {
                key: 1,
                value: 3,
                diff: -1
            }),
            "{workers} workers: {counts:?}"
        );
        assert_eq!(net(counts), vec![(1, 4, 1), (2, 2, 1), (3, 2, 1)]);
    }
}
