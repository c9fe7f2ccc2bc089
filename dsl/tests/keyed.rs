//! Keyed aggregation checked against a naive single-threaded reference on
//! random input, on 1 and several workers.

use std::collections::HashMap;

use proptest::prelude::*;
use weir::prelude::*;

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
