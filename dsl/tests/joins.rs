//! Window and interval joins checked against naive references on random,
//! out-of-order input (with late records), on 1 and 2 workers.

use std::collections::BTreeMap;
use std::time::Duration;

mod common;

use proptest::prelude::*;
use weir::Joined;
use weir::prelude::*;

/// `(event time, key, id)`.
type Rec = (u64, u8, u32);
/// `(key, left id, right id)`.
type Pair = (u8, u32, u32);

#[derive(Debug, Clone, Copy)]
struct Setup {
    partitions: usize,
    every: usize,
    bound: u64,
}

/// Each record with the watermark its source partition stamps it with.
fn stamped(input: &[Rec], s: &Setup) -> Vec<(u64, Rec)> {
    common::stamped(input, |r| r.0, s.partitions, s.every, s.bound)
}

fn window_join_reference(
    left: &[Rec],
    right: &[Rec],
    s: &Setup,
    size: u64,
    slide: u64,
) -> Vec<Pair> {
    // (key, window start) -> (left ids, right ids), for windows still open
    // when the record's watermark came up.
    let mut windows: BTreeMap<(u8, u64), (Vec<u32>, Vec<u32>)> = BTreeMap::new();
    for (side, input) in [(0, left), (1, right)] {
        for (wm, (ts, k, id)) in stamped(input, s) {
            for start in (0..=ts / slide)
                .map(|i| i * slide)
                .filter(|st| st + size > ts)
            {
                if start + size > wm {
                    let w = windows.entry((k, start)).or_default();
                    if side == 0 {
                        w.0.push(id)
                    } else {
                        w.1.push(id)
                    }
                }
            }
        }
    }
    let mut pairs: Vec<Pair> = windows
        .into_iter()
        .flat_map(|((k, _), (ls, rs))| {
            ls.iter()
                .flat_map(|l| rs.iter().map(move |r| (k, *l, *r)))
                .collect::<Vec<_>>()
        })
        .collect();
    pairs.sort();
    pairs
}

fn interval_join_reference(
    left: &[Rec],
    right: &[Rec],
    s: &Setup,
    lower: i64,
    upper: i64,
) -> Vec<Pair> {
    let on_time = |input: &[Rec]| -> Vec<Rec> {
        stamped(input, s)
            .into_iter()
            .filter(|(wm, r)| r.0 >= *wm)
            .map(|(_, r)| r)
            .collect()
    };
    let (ls, rs) = (on_time(left), on_time(right));
    let mut pairs = Vec::new();
    for a in &ls {
        for b in &rs {
            let (ta, tb) = (a.0 as i64, b.0 as i64);
            if a.1 == b.1 && ta + lower <= tb && tb <= ta + upper {
                pairs.push((a.1, a.2, b.2));
            }
        }
    }
    pairs.sort();
    pairs
}

enum Join {
    Window(u64, u64),
    Interval(i64, i64),
}

fn with_weir(left: &[Rec], right: &[Rec], s: &Setup, join: &Join, workers: usize) -> Vec<Pair> {
    let p = Pipeline::new("join");
    let side = |input: &[Rec]| {
        p.source(Iter::new(input.to_vec()).partitions(s.partitions))
            .event_time(
                |r: &Rec| r.0,
                Watermark::bounded(Duration::from_millis(s.bound)).every(s.every),
            )
            .key_by(|r| r.1)
    };
    let (l, r) = (side(left), side(right));
    let out = Collect::new();
    let joined = match *join {
        Join::Window(size, slide) => l.window_join(
            r,
            Sliding::of(Duration::from_millis(size)).every(Duration::from_millis(slide)),
        ),
        Join::Interval(lower, upper) => l.interval_join(r, lower, upper),
    };
    joined.sink(out.clone());
    p.run(Cluster::threads(workers).quiet(true)).unwrap();
    let mut pairs: Vec<Pair> = out
        .take()
        .into_iter()
        .map(|j: Joined<u8, Rec, Rec>| (j.key, j.left.2, j.right.2))
        .collect();
    pairs.sort();
    pairs
}

fn side_strategy(first_id: u32) -> impl Strategy<Value = Vec<Rec>> {
    prop::collection::vec((0u64..30, any::<bool>(), 0u64..200, 0u8..3), 0..120).prop_map(
        move |raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (jitter, far, back, k))| {
                    let base = 500 + i as u64 * 5;
                    let ts = if far {
                        base.saturating_sub(back)
                    } else {
                        base + jitter
                    };
                    (ts, k, first_id + i as u32)
                })
                .collect()
        },
    )
}

fn setup_strategy() -> impl Strategy<Value = Setup> {
    (1usize..4, 1usize..10, 0u64..40).prop_map(|(partitions, every, bound)| Setup {
        partitions,
        every,
        bound,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn window_join_matches_the_reference(
        left in side_strategy(0),
        right in side_strategy(10_000),
        setup in setup_strategy(),
        (slide, n) in (1u64..40, 1u64..4),
    ) {
        let size = slide * n;
        let expected = window_join_reference(&left, &right, &setup, size, slide);
        let join = Join::Window(size, slide);
        prop_assert_eq!(&with_weir(&left, &right, &setup, &join, 1), &expected);
        prop_assert_eq!(&with_weir(&left, &right, &setup, &join, 2), &expected);
    }

    #[test]
    fn interval_join_matches_the_reference(
        left in side_strategy(0),
        right in side_strategy(10_000),
        setup in setup_strategy(),
        (lower, width) in (-60i64..60, 0i64..80),
    ) {
        let upper = lower + width;
        let expected = interval_join_reference(&left, &right, &setup, lower, upper);
        let join = Join::Interval(lower, upper);
        prop_assert_eq!(&with_weir(&left, &right, &setup, &join, 1), &expected);
        prop_assert_eq!(&with_weir(&left, &right, &setup, &join, 2), &expected);
    }
}

#[test]
fn interval_join_with_lower_above_upper_is_a_plan_error() {
    let p = Pipeline::new("p");
    let side = || {
        p.source(Iter::new(vec![(1u64, 0u8, 0u32)]))
            .event_time(|r: &Rec| r.0, Watermark::ascending())
            .key_by(|r| r.1)
    };
    side().interval_join(side(), 5, 1).sink(Collect::new());
    let err = p.validate().unwrap_err().to_string();
    assert!(
        err.contains("`lower`") && err.contains("no greater than the upper (1 ms), got 5 ms"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn updating_join_nets_to_the_cross_product(
        left in side_strategy(0),
        right in side_strategy(10_000),
        setup in setup_strategy(),
    ) {
        let mut expected: Vec<Pair> = Vec::new();
        for a in &left {
            for b in right.iter().filter(|b| b.1 == a.1) {
                expected.push((a.1, a.2, b.2));
            }
        }
        expected.sort();
        for workers in [1, 2] {
            let p = Pipeline::new("join");
            let side = |input: &[Rec]| {
                p.source(Iter::new(input.to_vec()).partitions(setup.partitions))
                    .event_time(|r: &Rec| r.0, Watermark::bounded(Duration::from_millis(setup.bound)).every(setup.every))
                    .key_by(|r| r.1)
            };
            let out = Collect::new();
            side(&left).join(side(&right)).sink(out.clone());
            p.run(Cluster::threads(workers).quiet(true)).unwrap();
            let mut net: BTreeMap<Pair, i64> = BTreeMap::new();
            for u in out.take() {
                let (a, b): (Rec, Rec) = u.value;
                *net.entry((u.key, a.2, b.2)).or_default() += u.diff;
            }
            let mut got: Vec<Pair> = Vec::new();
            for (pair, n) in net {
                prop_assert!(n >= 0);
                got.extend(std::iter::repeat_n(pair, n as usize));
            }
            prop_assert_eq!(&got, &expected);
        }
    }
}
