//! weir, hand-written timely and the plain loop produce the same results on
//! every benchmarked Nexmark query, on 1 and 2 workers.

use weir::Cluster;
use weir_benches::Results;
use weir_benches::nexmark::{Impl, Query, run};

const EVENTS: u64 = 120_000;

fn results(implementation: Impl, query: Query, workers: usize) -> Vec<String> {
    let out = run(
        implementation,
        query,
        EVENTS,
        &Cluster::threads(workers).quiet(true),
        &Results::keeping(),
    )
    .unwrap_or_else(|e| panic!("{implementation:?} {query:?}: {e:#}"));
    assert_eq!(out.count as usize, out.rows.len());
    out.rows
}

fn check(query: Query) {
    let expected = results(Impl::Loop, query, 1);
    assert!(!expected.is_empty(), "{query:?} has results");
    for workers in [1, 2] {
        for implementation in [Impl::Timely, Impl::Weir] {
            let got = results(implementation, query, workers);
            assert!(
                got == expected,
                "{implementation:?} {query:?} on {workers} workers: {} results, loop {}; first difference: {:?}",
                got.len(),
                expected.len(),
                got.iter().zip(&expected).find(|(a, b)| a != b)
            );
        }
    }
}

#[test]
fn q0_same_results() {
    check(Query::Q0);
}

#[test]
fn q1_same_results() {
    check(Query::Q1);
}

#[test]
fn q2_same_results() {
    check(Query::Q2);
}

#[test]
fn q5_same_results() {
    check(Query::Q5);
}

#[test]
fn q7_same_results() {
    check(Query::Q7);
}

#[test]
fn q8_same_results() {
    check(Query::Q8);
}
