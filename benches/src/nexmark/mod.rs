//! Nexmark queries q0, q1, q2, q5, q7 and q8 three ways: the weir DSL
//! queries of `weir-examples` ([`by_weir`]), the same queries written by hand
//! on timely dataflow operators ([`by_timely`]), and single-threaded loops
//! over hash maps ([`by_loop`]). All three read the same events from the
//! same generator (`weir::sources::Nexmark`) and produce the same results
//! (checked in `benches/tests/nexmark.rs`).

pub mod by_loop;
pub mod by_timely;
pub mod by_weir;

use clap::ValueEnum;
use weir::Cluster;

use crate::{Output, Results};

/// A benchmarked query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Query {
    /// Every bid.
    Q0,
    /// Every bid with its price in euro.
    Q1,
    /// Bids on every 123rd auction.
    Q2,
    /// Per 10 s window sliding by 2 s, the auctions with the most bids.
    Q5,
    /// Per 10 s tumbling window, the bids with the highest price.
    Q7,
    /// Persons who opened an auction in the 10 s window they registered in.
    Q8,
}

/// An implementation of the queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Impl {
    /// The weir DSL.
    Weir,
    /// Hand-written timely dataflow.
    Timely,
    /// A single-threaded loop.
    Loop,
}

/// Runs `query` over the first `events` Nexmark events with `implementation`
/// (`cluster` is ignored by the loop), sending its results to `results`.
///
/// # Errors
///
/// The job failed.
pub fn run(
    implementation: Impl,
    query: Query,
    events: u64,
    cluster: &Cluster,
    results: &Results,
) -> anyhow::Result<Output> {
    match implementation {
        Impl::Weir => by_weir::run(query, events, cluster, results)?,
        Impl::Timely => by_timely::run(query, events, cluster, results)?,
        Impl::Loop => by_loop::run(query, events, results),
    }
    Ok(results.finish())
}
