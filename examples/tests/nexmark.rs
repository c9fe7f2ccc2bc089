//! Nexmark queries in the DSL against straightforward single-threaded
//! references over the same generator, on 1 and 2 workers.

use std::collections::{BTreeMap, BTreeSet};

use weir::prelude::*;
use weir::sources::{Bid, Event, EventGenerator, NexmarkConfig};
use weir_examples::nexmark::{self as q, Q2, Q3, Q5, Q7, Q8};

const EVENTS: u64 = 150_000; // 15 s of event time

fn events() -> Vec<Event> {
    EventGenerator::new(NexmarkConfig::default())
        .take(EVENTS as usize)
        .collect()
}

fn bids() -> Vec<Bid> {
    events()
        .into_iter()
        .filter_map(|e| if let Event::Bid(b) = e { Some(b) } else { None })
        .collect()
}

fn run<T: Data>(workers: usize, build: impl Fn(Collect<T>) -> Pipeline) -> Vec<T> {
    let out = Collect::new();
    build(out.clone())
        .run(Cluster::threads(workers).quiet(true))
        .unwrap();
    out.take()
}

#[test]
fn q0_and_q1_pass_every_bid() {
    let expected: Vec<(usize, usize, u64)> = {
        let mut v: Vec<_> = bids()
            .iter()
            .map(|b| (b.auction, b.price, b.date_time))
            .collect();
        v.sort();
        v
    };
    for workers in [1, 2] {
        let mut got: Vec<_> = run(workers, |s| q::q0(EVENTS, s))
            .into_iter()
            .map(|b| (b.auction, b.price, b.date_time))
            .collect();
        got.sort();
        assert_eq!(got, expected);
        let q1 = run(workers, |s| q::q1(EVENTS, s));
        assert_eq!(q1.len(), expected.len());
        let total: f64 = q1.iter().map(|r| r.price).sum();
        let reference: f64 = bids().iter().map(|b| 0.908 * b.price as f64).sum();
        assert!(
            (total - reference).abs() < 1e-6 * reference,
            "{total} vs {reference}"
        );
    }
}

#[test]
fn q2_selects_every_123rd_auction() {
    let mut expected: Vec<Q2> = bids()
        .iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| Q2 {
            auction: b.auction as u64,
            price: b.price as u64,
        })
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    for workers in [1, 2] {
        let mut got = run(workers, |s| q::q2(EVENTS, s));
        got.sort();
        assert_eq!(got, expected);
    }
}

#[test]
fn q5_finds_the_hot_items_of_each_sliding_window() {
    // Count bids per (window start, auction) for every sliding window.
    let mut counts: BTreeMap<u64, BTreeMap<u64, u64>> = BTreeMap::new();
    for b in bids() {
        let t = b.date_time;
        let mut start = t - t % q::Q5_SLIDE_MS;
        loop {
            *counts
                .entry(start)
                .or_default()
                .entry(b.auction as u64)
                .or_default() += 1;
            if start < q::Q5_SLIDE_MS || start + q::Q5_SIZE_MS <= t + q::Q5_SLIDE_MS {
                break;
            }
            start -= q::Q5_SLIDE_MS;
        }
    }
    let mut expected = Vec::new();
    for (start, per_auction) in counts {
        let max = per_auction.values().copied().max().unwrap();
        for (auction, n) in per_auction {
            if n == max {
                expected.push(Q5 {
                    window_start: start,
                    auction,
                    num: n,
                });
            }
        }
    }
    expected.sort();
    assert!(expected.len() > 5);
    for workers in [1, 2] {
        let mut got = run(workers, |s| q::q5(EVENTS, s));
        got.sort();
        assert_eq!(got, expected);
    }
}

#[test]
fn q7_finds_the_highest_bids_of_each_tumbling_window() {
    let mut by_window: BTreeMap<u64, Vec<Bid>> = BTreeMap::new();
    for b in bids() {
        by_window
            .entry(b.date_time - b.date_time % q::TUMBLE_MS)
            .or_default()
            .push(b);
    }
    let mut expected = Vec::new();
    for (start, bids) in by_window {
        let max = bids.iter().map(|b| b.price).max().unwrap();
        for b in bids.into_iter().filter(|b| b.price == max) {
            expected.push(Q7 {
                window_end: start + q::TUMBLE_MS,
                auction: b.auction as u64,
                price: b.price as u64,
                bidder: b.bidder as u64,
                date_time: b.date_time,
            });
        }
    }
    expected.sort();
    for workers in [1, 2] {
        let mut got = run(workers, |s| q::q7(EVENTS, s));
        got.sort();
        assert_eq!(got, expected);
    }
}

#[test]
fn q8_finds_new_persons_who_opened_auctions() {
    let window = |t: u64| t - t % q::TUMBLE_MS;
    let mut persons: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut sellers: BTreeSet<(u64, u64)> = BTreeSet::new();
    for e in events() {
        match e {
            Event::Person(p) => {
                persons.insert((p.id as u64, window(p.date_time)), p.name.into());
            }
            Event::Auction(a) => {
                sellers.insert((a.seller as u64, window(a.date_time)));
            }
            Event::Bid(_) => {}
        }
    }
    let mut expected: Vec<Q8> = persons
        .into_iter()
        .filter(|(k, _)| sellers.contains(k))
        .map(|((id, window_start), name)| Q8 {
            id,
            name,
            window_start,
        })
        .collect();
    expected.sort();
    assert!(expected.len() > 10);
    for workers in [1, 2] {
        let mut got = run(workers, |s| q::q8(EVENTS, s));
        got.sort();
        assert_eq!(got, expected);
    }
}

#[test]
fn q3_joins_local_sellers_with_their_category_10_auctions() {
    let mut persons: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    let mut auctions: Vec<(u64, u64)> = Vec::new();
    for e in events() {
        match e {
            Event::Person(p) if ["or", "id", "ca"].contains(&p.state.to_lowercase().as_str()) => {
                persons.insert(p.id as u64, (p.name.into(), p.city.into(), p.state.into()));
            }
            Event::Auction(a) if a.category == 10 => auctions.push((a.seller as u64, a.id as u64)),
            _ => {}
        }
    }
    let mut expected: Vec<Q3> = auctions
        .into_iter()
        .filter_map(|(seller, auction)| {
            let (name, city, state) = persons.get(&seller)?.clone();
            Some(Q3 {
                name,
                city,
                state,
                auction,
            })
        })
        .collect();
    expected.sort();
    assert!(expected.len() > 10, "{}", expected.len());
    for workers in [1, 2] {
        let mut got = run(workers, |s| q::q3(EVENTS, s));
        got.sort();
        assert_eq!(got, expected);
    }
}

/// The closing price of each auction with at least one bid in its lifetime:
/// auction id -> (category, seller, expires, price).
fn closing_prices() -> BTreeMap<u64, (u64, u64, u64, u64)> {
    let mut auctions = BTreeMap::new();
    let mut bids = Vec::new();
    for e in events() {
        match e {
            Event::Auction(a) => {
                auctions.insert(a.id as u64, a);
            }
            Event::Bid(b) => bids.push(b),
            Event::Person(_) => {}
        }
    }
    let mut closing = BTreeMap::new();
    for b in bids {
        if let Some(a) = auctions.get(&(b.auction as u64))
            && a.date_time <= b.date_time
            && b.date_time <= a.expires
        {
            let e = closing.entry(a.id as u64).or_insert((
                a.category as u64,
                a.seller as u64,
                a.expires,
                0,
            ));
            e.3 = e.3.max(b.price as u64);
        }
    }
    closing
}

/// The final state of a changelog: each key's value with net count +1.
fn final_state(changes: Vec<Update<u64, u64>>) -> BTreeMap<u64, u64> {
    let mut net: BTreeMap<(u64, u64), i64> = BTreeMap::new();
    for u in changes {
        *net.entry((u.key, u.value)).or_default() += u.diff;
    }
    let mut state = BTreeMap::new();
    for ((k, v), n) in net {
        assert!(n == 0 || n == 1, "key {k} value {v} has net count {n}");
        if n == 1 {
            assert!(
                state.insert(k, v).is_none(),
                "key {k} has two current values"
            );
        }
    }
    state
}

#[test]
fn q4_averages_closing_prices_per_category() {
    let mut sums: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (category, _, _, price) in closing_prices().into_values() {
        let e = sums.entry(category).or_default();
        e.0 += price;
        e.1 += 1;
    }
    let expected: BTreeMap<u64, u64> = sums.into_iter().map(|(c, (s, n))| (c, s / n)).collect();
    assert!(expected.len() >= 3);
    for workers in [1, 2] {
        assert_eq!(final_state(run(workers, |s| q::q4(EVENTS, s))), expected);
    }
}

#[test]
fn q6_averages_each_sellers_last_ten_closing_prices() {
    let mut by_seller: BTreeMap<u64, Vec<(u64, u64, u64)>> = BTreeMap::new();
    for (auction, (_, seller, expires, price)) in closing_prices() {
        by_seller
            .entry(seller)
            .or_default()
            .push((expires, auction, price));
    }
    let expected: BTreeMap<u64, u64> = by_seller
        .into_iter()
        .map(|(seller, mut closed)| {
            closed.sort();
            let last = &closed[closed.len().saturating_sub(10)..];
            (
                seller,
                last.iter().map(|c| c.2).sum::<u64>() / last.len() as u64,
            )
        })
        .collect();
    assert!(expected.len() > 10);
    for workers in [1, 2] {
        assert_eq!(final_state(run(workers, |s| q::q6(EVENTS, s))), expected);
    }
}
