//! The queries as single-threaded loops over the event generator with
//! `FxHashMap` state: the floor of what any framework can do here. Events of
//! one type come out of the generator in event-time order, so windows close
//! as soon as a later event arrives.

use std::collections::VecDeque;
use std::fmt::Debug;

use rustc_hash::{FxHashMap, FxHashSet};
use weir::sources::{Auction, Bid, EventGenerator, Nexmark, Person};
use weir_examples::nexmark::{Q1, Q2, Q5, Q5_SIZE_MS, Q5_SLIDE_MS, Q7, Q8, TUMBLE_MS};

use super::Query;
use crate::Results;

/// Results are handed over in batches of this many, as a framework would.
const BATCH: usize = 1024;

/// Runs `query` over the first `events` events.
pub fn run(query: Query, events: u64, results: &Results) {
    match query {
        Query::Q0 => {
            let mut out = Out::new(results);
            bids(events).for_each(|b| out.push(b));
        }
        Query::Q1 => {
            let mut out = Out::new(results);
            bids(events).for_each(|b| {
                out.push(Q1 {
                    auction: b.auction as u64,
                    bidder: b.bidder as u64,
                    price: 0.908 * b.price as f64,
                    date_time: b.date_time,
                })
            });
        }
        Query::Q2 => {
            let mut out = Out::new(results);
            bids(events).filter(|b| b.auction % 123 == 0).for_each(|b| {
                out.push(Q2 {
                    auction: b.auction as u64,
                    price: b.price as u64,
                })
            });
        }
        Query::Q5 => q5(events, &mut Out::new(results)),
        Query::Q7 => q7(events, &mut Out::new(results)),
        Query::Q8 => q8(events, &mut Out::new(results)),
    }
}

struct Out<'a, T: Debug> {
    batch: Vec<T>,
    results: &'a Results,
}

impl<'a, T: Debug> Out<'a, T> {
    fn new(results: &'a Results) -> Self {
        Out {
            batch: Vec::new(),
            results,
        }
    }

    fn push(&mut self, row: T) {
        self.batch.push(row);
        if self.batch.len() == BATCH {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.results.add(&self.batch);
        self.batch.clear();
    }
}

impl<T: Debug> Drop for Out<'_, T> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// All events of one type, in event-time order.
fn all<T>(source: Nexmark<T>, next: fn(&mut EventGenerator) -> T) -> impl Iterator<Item = T> {
    let (mut generator, count) = source.partitions(1).partition(0);
    (0..count).map(move |_| next(&mut generator))
}

fn bids(events: u64) -> impl Iterator<Item = Bid> {
    all(Nexmark::bids(events), EventGenerator::next_bid)
}

fn q5(events: u64, out: &mut Out<'_, Q5>) {
    // Counts per auction for each pane of one slide, oldest first.
    let mut panes: VecDeque<(u64, FxHashMap<u64, u64>)> = VecDeque::new();
    let mut window = FxHashMap::default();
    // The start of the next window to fire.
    let mut next: Option<u64> = None;
    let mut fire = |start: u64, panes: &mut VecDeque<(u64, FxHashMap<u64, u64>)>| {
        window.clear();
        for (_, counts) in panes.iter().take_while(|(p, _)| *p < start + Q5_SIZE_MS) {
            for (auction, n) in counts {
                *window.entry(*auction).or_insert(0) += n;
            }
        }
        let max = window.values().copied().max().unwrap_or(0);
        for (auction, n) in &window {
            if *n == max {
                out.push(Q5 {
                    window_start: start,
                    auction: *auction,
                    num: *n,
                });
            }
        }
        while panes.front().is_some_and(|(p, _)| *p < start + Q5_SLIDE_MS) {
            panes.pop_front();
        }
    };
    for bid in bids(events) {
        let t = bid.date_time;
        let pane = t - t % Q5_SLIDE_MS;
        let start = next.get_or_insert(pane.saturating_sub(Q5_SIZE_MS - Q5_SLIDE_MS));
        while *start + Q5_SIZE_MS <= t {
            fire(*start, &mut panes);
            *start += Q5_SLIDE_MS;
        }
        if panes.back().is_none_or(|(p, _)| *p != pane) {
            panes.push_back((pane, FxHashMap::default()));
        }
        let counts = &mut panes.back_mut().expect("pane").1;
        *counts.entry(bid.auction as u64).or_insert(0) += 1;
    }
    if let Some(mut start) = next {
        while !panes.is_empty() {
            fire(start, &mut panes);
            start += Q5_SLIDE_MS;
        }
    }
}

fn q7(events: u64, out: &mut Out<'_, Q7>) {
    let mut window: Option<u64> = None;
    let mut top: Vec<Bid> = Vec::new();
    let mut fire = |start: u64, top: &mut Vec<Bid>| {
        for b in top.drain(..) {
            out.push(Q7 {
                window_end: start + TUMBLE_MS,
                auction: b.auction as u64,
                price: b.price as u64,
                bidder: b.bidder as u64,
                date_time: b.date_time,
            });
        }
    };
    for bid in bids(events) {
        let start = bid.date_time - bid.date_time % TUMBLE_MS;
        if window != Some(start) {
            if let Some(w) = window {
                fire(w, &mut top);
            }
            window = Some(start);
        }
        match top.first().map(|t| t.price) {
            Some(max) if max > bid.price => {}
            Some(max) if max == bid.price => top.push(bid),
            _ => {
                top.clear();
                top.push(bid);
            }
        }
    }
    if let Some(w) = window {
        fire(w, &mut top);
    }
}

fn q8(events: u64, out: &mut Out<'_, Q8>) {
    let mut persons = all(Nexmark::persons(events), EventGenerator::next_person).peekable();
    let mut auctions = all(Nexmark::auctions(events), EventGenerator::next_auction).peekable();
    let mut window: Option<u64> = None;
    let mut people: FxHashMap<u64, String> = FxHashMap::default();
    let mut sellers: FxHashSet<u64> = FxHashSet::default();
    let mut fire =
        |start: u64, people: &mut FxHashMap<u64, String>, sellers: &mut FxHashSet<u64>| {
            for (id, name) in people.drain() {
                if sellers.contains(&id) {
                    out.push(Q8 {
                        id,
                        name,
                        window_start: start,
                    });
                }
            }
            sellers.clear();
        };
    // Merge the two streams in event-time order.
    loop {
        let next_person = persons.peek().map(|p: &Person| p.date_time);
        let next_auction = auctions.peek().map(|a: &Auction| a.date_time);
        let t = match (next_person, next_auction) {
            (None, None) => break,
            (Some(p), Some(a)) => p.min(a),
            (Some(t), None) | (None, Some(t)) => t,
        };
        let start = t - t % TUMBLE_MS;
        if window != Some(start) {
            if let Some(w) = window {
                fire(w, &mut people, &mut sellers);
            }
            window = Some(start);
        }
        if next_person == Some(t) {
            let p = persons.next().expect("peeked");
            people.insert(p.id as u64, p.name.into_owned());
        } else {
            let a = auctions.next().expect("peeked");
            sellers.insert(a.seller as u64);
        }
    }
    if let Some(w) = window {
        fire(w, &mut people, &mut sellers);
    }
}
