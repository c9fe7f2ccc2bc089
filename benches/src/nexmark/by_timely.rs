//! The queries written by hand on timely dataflow 0.32, as a skilled timely
//! user would: a source operator generating this worker's partitions with
//! timely time = the least event time it may still produce, `Exchange`
//! pacts on the key, and `unary_frontier` / `binary_frontier` operators
//! keeping per-window state in hash maps and firing a window once the input
//! frontier has passed its end. Each Nexmark partition is in event-time
//! order, so no record is late.

use std::collections::BTreeMap;
use std::fmt::Debug;

use anyhow::anyhow;
use rustc_hash::{FxHashMap, FxHashSet};
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::operator::{Operator, source};
use timely::dataflow::operators::vec::{Filter, Map};
use timely::dataflow::operators::{Capability, InputCapability};
use timely::dataflow::{Scope, Stream};
use weir::Cluster;
use weir::sources::{Auction, Bid, EventGenerator, Nexmark, Person};
use weir_examples::nexmark::{Q1, Q2, Q5, Q5_SIZE_MS, Q5_SLIDE_MS, Q7, Q8, TUMBLE_MS};

use super::Query;
use crate::Results;

type Time = u64;
type Records<'s, D> = Stream<'s, Time, Vec<D>>;

/// Events a partition generates per turn.
const BATCH: u64 = 1024;

/// Runs `query` on `cluster`'s workers.
///
/// # Errors
///
/// The cluster configuration is invalid or a worker failed.
pub fn run(query: Query, events: u64, cluster: &Cluster, results: &Results) -> anyhow::Result<()> {
    let config = cluster.timely_config()?;
    let results = results.clone();
    let guards = timely::execute(config, move |worker| {
        let results = results.clone();
        worker.dataflow::<Time, _, _>(move |scope| match query {
            Query::Q0 => sink(bids(scope, events), results),
            Query::Q1 => sink(
                bids(scope, events).map(|b| Q1 {
                    auction: b.auction as u64,
                    bidder: b.bidder as u64,
                    price: 0.908 * b.price as f64,
                    date_time: b.date_time,
                }),
                results,
            ),
            Query::Q2 => sink(
                bids(scope, events)
                    .filter(|b| b.auction % 123 == 0)
                    .map(|b| Q2 {
                        auction: b.auction as u64,
                        price: b.price as u64,
                    }),
                results,
            ),
            Query::Q5 => sink(q5(bids(scope, events)), results),
            Query::Q7 => sink(q7(bids(scope, events)), results),
            Query::Q8 => sink(q8(scope, events), results),
        });
    })
    .map_err(|e| anyhow!("timely: {e}"))?;
    for result in guards.join() {
        result.map_err(|e| anyhow!("timely worker: {e}"))?;
    }
    Ok(())
}

fn sink<D: Debug + 'static>(stream: Records<'_, D>, results: Results) {
    stream.sink(Pipeline, "Results", move |(input, _)| {
        input.for_each(|_, data| {
            results.add(data);
            data.clear();
        })
    });
}

/// This worker's partitions of `source`, each generating a batch in turn;
/// records go out at the least event time any of them may still produce.
fn generate<'s, T: Clone + 'static>(
    scope: Scope<'s, Time>,
    source_of: Nexmark<T>,
    next: fn(&mut EventGenerator) -> T,
    time: fn(&T) -> Time,
) -> Records<'s, T> {
    let (index, peers) = (scope.index() as u64, scope.peers());
    source(scope, "Nexmark", move |capability, info| {
        let activator = scope.activator_for(info.address);
        // (generator, events left, least event time it may still produce)
        let mut partitions: Vec<(EventGenerator, u64, Time)> = (index..source_of.partition_count())
            .step_by(peers)
            .map(|p| source_of.partition(p))
            .filter(|(_, n)| *n > 0)
            .map(|(g, n)| (g, n, 0))
            .collect();
        let mut capability = Some(capability);
        let mut batch: Vec<T> = Vec::with_capacity(BATCH as usize);
        move |output| {
            let Some(cap) = capability.as_mut() else {
                return;
            };
            for (generator, left, low) in partitions.iter_mut() {
                let n = (*left).min(BATCH);
                *left -= n;
                batch.extend((0..n).map(|_| next(generator)));
                if let Some(last) = batch.last() {
                    *low = time(last);
                    output.session(cap).give_container(&mut batch);
                    batch.clear();
                }
            }
            partitions.retain(|(_, left, _)| *left > 0);
            match partitions.iter().map(|(_, _, low)| *low).min() {
                None => capability = None,
                Some(low) => {
                    if low > *cap.time() {
                        cap.downgrade(&low);
                    }
                    activator.activate();
                }
            }
        }
    })
}

fn bids(scope: Scope<'_, Time>, events: u64) -> Records<'_, Bid> {
    generate(
        scope,
        Nexmark::bids(events),
        EventGenerator::next_bid,
        |b| b.date_time,
    )
}

/// An output capability held while an operator has windows to fire.
#[derive(Default)]
struct Held(Option<Capability<Time>>);

impl Held {
    /// Holds the input's time if it is below the held one.
    fn retain(&mut self, input: &InputCapability<Time>) {
        let least = input.least().copied();
        if self.0.as_ref().is_none_or(|c| least < Some(*c.time())) {
            self.0 = input.retain_least(0);
        }
    }

    /// A capability for time `t`, or the held time if that is later.
    fn at(&self, t: Time) -> Capability<Time> {
        let held = self.0.as_ref().expect("a held capability");
        held.delayed(&t.max(*held.time()))
    }

    /// Holds `next`, the time of the next result, or nothing.
    fn settle(&mut self, next: Option<Time>) {
        match (next, self.0.as_mut()) {
            (None, _) => self.0 = None,
            (Some(t), Some(cap)) if t > *cap.time() => cap.downgrade(&t),
            _ => {}
        }
    }
}

/// Keeps, per timestamp, the records with the highest `score` (all of them
/// on a tie), gathered on one worker per timestamp.
fn keep_max<'s, D: timely::ExchangeData + Debug>(
    stream: Records<'s, D>,
    score: fn(&D) -> u64,
) -> Records<'s, D> {
    stream.unary_frontier(Exchange::new(|_: &D| 0), "KeepMax", move |_, _| {
        let mut pending: BTreeMap<Time, (Capability<Time>, Vec<D>)> = BTreeMap::new();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                let time = *cap.least().expect("a time");
                let (_, records) = pending
                    .entry(time)
                    .or_insert_with(|| (cap.retain_least(0).expect("a time"), Vec::new()));
                records.append(data);
            });
            while let Some(entry) = pending.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (cap, mut records) = entry.remove();
                let max = records.iter().map(score).max().unwrap_or(0);
                records.retain(|r| score(r) == max);
                output.session(&cap).give_container(&mut records);
            }
        }
    })
}

fn q5(bids: Records<'_, Bid>) -> Records<'_, Q5> {
    let candidates = bids.unary_frontier(
        Exchange::new(|b: &Bid| b.auction as u64),
        "SlidingCount",
        |_, _| {
            // Bid counts per auction for each pane of one slide.
            let mut panes: BTreeMap<Time, FxHashMap<u64, u64>> = BTreeMap::new();
            let mut next: Option<Time> = None;
            let mut window: FxHashMap<u64, u64> = FxHashMap::default();
            let mut held = Held::default();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    held.retain(&cap);
                    for b in data.drain(..) {
                        let pane = b.date_time - b.date_time % Q5_SLIDE_MS;
                        let first = pane.saturating_sub(Q5_SIZE_MS - Q5_SLIDE_MS);
                        if next.is_none_or(|n| first < n) {
                            next = Some(first);
                        }
                        *panes
                            .entry(pane)
                            .or_default()
                            .entry(b.auction as u64)
                            .or_insert(0) += 1;
                    }
                });
                while let Some(start) = next {
                    let end = start + Q5_SIZE_MS;
                    if panes.is_empty() {
                        next = None;
                    } else if frontier.less_than(&end) {
                        break;
                    } else {
                        window.clear();
                        for counts in panes.range(start..end).map(|(_, c)| c) {
                            for (auction, n) in counts {
                                *window.entry(*auction).or_insert(0) += n;
                            }
                        }
                        let max = window.values().copied().max().unwrap_or(0);
                        let cap = held.at(end - 1);
                        let mut session = output.session(&cap);
                        for (auction, num) in window.iter().filter(|(_, n)| **n == max) {
                            session.give(Q5 {
                                window_start: start,
                                auction: *auction,
                                num: *num,
                            });
                        }
                        panes.retain(|pane, _| *pane >= start + Q5_SLIDE_MS);
                        next = Some(start + Q5_SLIDE_MS);
                    }
                }
                held.settle(next.map(|s| s + Q5_SIZE_MS - 1));
            }
        },
    );
    keep_max(candidates, |c| c.num)
}

fn q7(bids: Records<'_, Bid>) -> Records<'_, Q7> {
    let candidates = bids.unary_frontier(Pipeline, "TopBids", |_, _| {
        // The bids with the highest price so far, per window start.
        let mut windows: BTreeMap<Time, Vec<Bid>> = BTreeMap::new();
        let mut held = Held::default();
        move |(input, frontier), output| {
            input.for_each(|cap, data| {
                held.retain(&cap);
                for b in data.drain(..) {
                    let top = windows
                        .entry(b.date_time - b.date_time % TUMBLE_MS)
                        .or_default();
                    match top.first().map(|t| t.price) {
                        Some(max) if max > b.price => {}
                        Some(max) if max == b.price => top.push(b),
                        _ => {
                            top.clear();
                            top.push(b);
                        }
                    }
                }
            });
            while let Some(entry) = windows.first_entry() {
                let end = entry.key() + TUMBLE_MS;
                if frontier.less_than(&end) {
                    break;
                }
                let top = entry.remove();
                let cap = held.at(end - 1);
                output
                    .session(&cap)
                    .give_iterator(top.into_iter().map(|b| Q7 {
                        window_end: end,
                        auction: b.auction as u64,
                        price: b.price as u64,
                        bidder: b.bidder as u64,
                        date_time: b.date_time,
                    }));
            }
            held.settle(windows.keys().next().map(|s| s + TUMBLE_MS - 1));
        }
    });
    keep_max(candidates, |c| c.price)
}

fn q8(scope: Scope<'_, Time>, events: u64) -> Records<'_, Q8> {
    let persons = generate(
        scope,
        Nexmark::persons(events),
        EventGenerator::next_person,
        |p: &Person| p.date_time,
    );
    let auctions = generate(
        scope,
        Nexmark::auctions(events),
        EventGenerator::next_auction,
        |a: &Auction| a.date_time,
    );
    persons.binary_frontier(
        auctions,
        Exchange::new(|p: &Person| p.id as u64),
        Exchange::new(|a: &Auction| a.seller as u64),
        "NewSellers",
        |_, _| {
            // Per window start: the persons who registered, the sellers.
            type Window = (FxHashMap<u64, String>, FxHashSet<u64>);
            let mut windows: BTreeMap<Time, Window> = BTreeMap::new();
            let mut held = Held::default();
            move |(persons, persons_frontier), (auctions, auctions_frontier), output| {
                persons.for_each(|cap, data| {
                    held.retain(&cap);
                    for p in data.drain(..) {
                        let start = p.date_time - p.date_time % TUMBLE_MS;
                        windows
                            .entry(start)
                            .or_default()
                            .0
                            .insert(p.id as u64, p.name.into_owned());
                    }
                });
                auctions.for_each(|cap, data| {
                    held.retain(&cap);
                    for a in data.drain(..) {
                        let start = a.date_time - a.date_time % TUMBLE_MS;
                        windows.entry(start).or_default().1.insert(a.seller as u64);
                    }
                });
                while let Some(entry) = windows.first_entry() {
                    let start = *entry.key();
                    let end = start + TUMBLE_MS;
                    if persons_frontier.less_than(&end) || auctions_frontier.less_than(&end) {
                        break;
                    }
                    let (people, sellers) = entry.remove();
                    let cap = held.at(end - 1);
                    output.session(&cap).give_iterator(
                        people
                            .into_iter()
                            .filter(|(id, _)| sellers.contains(id))
                            .map(|(id, name)| Q8 {
                                id,
                                name,
                                window_start: start,
                            }),
                    );
                }
                held.settle(windows.keys().next().map(|s| s + TUMBLE_MS - 1));
            }
        },
    )
}
