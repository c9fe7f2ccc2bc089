//! Nexmark queries written in the weir DSL, following the Flink SQL versions
//! of the nexmark project. Event time is each event's `date_time`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::prelude::*;
use weir::sources::{Auction, Bid, Nexmark, Person};

/// The queries implemented here.
pub const QUERIES: [&str; 9] = ["q0", "q1", "q2", "q3", "q4", "q5", "q6", "q7", "q8"];

/// q1: a bid with its price in euro.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Q1 {
    /// Auction id.
    pub auction: u64,
    /// Bidder id.
    pub bidder: u64,
    /// Price in euro cents (`0.908 × price`).
    pub price: f64,
    /// Event time.
    pub date_time: u64,
}

/// q2: the price of bids on every 123rd auction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q2 {
    /// Auction id (a multiple of 123).
    pub auction: u64,
    /// Price in cents.
    pub price: u64,
}

/// q3: a seller in Oregon, Idaho or California with an auction in category 10.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q3 {
    /// Seller name.
    pub name: String,
    /// Seller city.
    pub city: String,
    /// Seller state.
    pub state: String,
    /// Auction id.
    pub auction: u64,
}

/// q5: an auction with the most bids in a sliding window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q5 {
    /// Window start.
    pub window_start: u64,
    /// Auction id.
    pub auction: u64,
    /// Bids on it in the window.
    pub num: u64,
}

/// q7: a bid with the highest price of its tumbling window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q7 {
    /// Window end.
    pub window_end: u64,
    /// Auction id.
    pub auction: u64,
    /// Price in cents.
    pub price: u64,
    /// Bidder id.
    pub bidder: u64,
    /// Event time of the bid.
    pub date_time: u64,
}

/// q8: a new person who opened an auction in the same tumbling window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Q8 {
    /// Person id.
    pub id: u64,
    /// Person name.
    pub name: String,
    /// Window start.
    pub window_start: u64,
}

/// q5's window: 10 s, sliding every 2 s.
pub const Q5_SIZE_MS: u64 = 10_000;
/// q5's slide.
pub const Q5_SLIDE_MS: u64 = 2_000;
/// q7's and q8's tumbling window.
pub const TUMBLE_MS: u64 = 10_000;

fn bids(p: &Pipeline, events: u64) -> Stream<Bid> {
    p.source(Nexmark::bids(events))
        .event_time(|b: &Bid| b.date_time, Watermark::ascending())
}

/// q0: every bid, unchanged.
pub fn q0(events: u64, sink: impl Sink<Bid>) -> Pipeline {
    let p = Pipeline::new("nexmark-q0");
    bids(&p, events).sink(sink)
}

/// q1: every bid with its price in euro.
pub fn q1(events: u64, sink: impl Sink<Q1>) -> Pipeline {
    let p = Pipeline::new("nexmark-q1");
    bids(&p, events)
        .map(|b| Q1 {
            auction: b.auction as u64,
            bidder: b.bidder as u64,
            price: 0.908 * b.price as f64,
            date_time: b.date_time,
        })
        .sink(sink)
}

/// q2: bids on auctions whose id is a multiple of 123.
pub fn q2(events: u64, sink: impl Sink<Q2>) -> Pipeline {
    let p = Pipeline::new("nexmark-q2");
    bids(&p, events)
        .filter(|b| b.auction % 123 == 0)
        .map(|b| Q2 {
            auction: b.auction as u64,
            price: b.price as u64,
        })
        .sink(sink)
}

/// q3 ("local item suggestion"): persons in OR, ID or CA joined with their
/// auctions in category 10, with no window (an updating join; both inputs
/// only grow, so every update is an insertion).
pub fn q3(events: u64, sink: impl Sink<Q3>) -> Pipeline {
    let p = Pipeline::new("nexmark-q3");
    let persons = p
        .source(Nexmark::persons(events))
        // The generator writes states in lower case.
        .filter(|x: &Person| {
            ["OR", "ID", "CA"]
                .iter()
                .any(|s| x.state.eq_ignore_ascii_case(s))
        })
        .map(|x| {
            let names = (
                x.name.into_owned(),
                x.city.into_owned(),
                x.state.into_owned(),
            );
            (x.id as u64, names)
        })
        .key_by(|x| x.0);
    let auctions = p
        .source(Nexmark::auctions(events))
        .filter(|a: &Auction| a.category == 10)
        .map(|a| (a.seller as u64, a.id as u64))
        .key_by(|a| a.0);
    persons
        .join(auctions)
        .flat_map(|u| {
            let ((_, (name, city, state)), (_, auction)) = u.value;
            let row = Q3 {
                name,
                city,
                state,
                auction,
            };
            std::iter::repeat_n(row, u.diff.max(0) as usize)
        })
        .sink(sink)
}

/// An auction's id with the closing price of its winning bid (the highest
/// bid placed between the auction's start and its expiry), as a changelog:
/// `(auction, (category or seller, closing price))` per auction.
fn closing_prices(
    p: &Pipeline,
    events: u64,
    by: fn(&Auction) -> u64,
) -> Stream<Update<u64, (u64, u64, u64)>> {
    let auctions = p
        .source(Nexmark::auctions(events))
        .map(move |a| (a.id as u64, (by(&a), a.date_time, a.expires)))
        .key_by(|a| a.0);
    let bids = p
        .source(Nexmark::bids(events))
        .map(|b| (b.auction as u64, (b.price as u64, b.date_time)))
        .key_by(|b| b.0);
    auctions
        .join(bids)
        .filter(|u| {
            let ((_, (_, start, end)), (_, (_, at))) = &u.value;
            start <= at && at <= end
        })
        .reduce_updates(|_auction, pairs| {
            let ((_, (group, _, expires)), _) = pairs.first()?.0;
            let price = pairs.iter().map(|(p, _)| p.1.1.0).max()?;
            Some((*group, *expires, price))
        })
}

/// q4: the average closing price of auctions per category (an updating
/// query: every change of a closing price updates its category's average).
pub fn q4(events: u64, sink: impl Sink<Update<u64, u64>>) -> Pipeline {
    let p = Pipeline::new("nexmark-q4");
    closing_prices(&p, events, |a| a.category as u64)
        .map(|u| Update {
            key: u.value.0,
            value: (u.key, u.value.2),
            diff: u.diff,
        })
        .reduce_updates(|_category, prices: &[(&(u64, u64), isize)]| {
            let (sum, n) = prices.iter().fold((0u64, 0u64), |(s, n), ((_, price), m)| {
                (s + price * *m as u64, n + *m as u64)
            });
            (n > 0).then(|| sum / n)
        })
        .sink(sink)
}

/// q6: per seller, the average closing price of their (up to) 10 auctions
/// that expire last (an updating query).
pub fn q6(events: u64, sink: impl Sink<Update<u64, u64>>) -> Pipeline {
    let p = Pipeline::new("nexmark-q6");
    closing_prices(&p, events, |a| a.seller as u64)
        .map(|u| Update {
            key: u.value.0,
            // Sorted by expiry, so the last ten are the latest to expire.
            value: (u.value.1, u.key, u.value.2),
            diff: u.diff,
        })
        .reduce_updates(|_seller, closed: &[(&(u64, u64, u64), isize)]| {
            let prices: Vec<u64> = closed
                .iter()
                .flat_map(|((_, _, price), m)| std::iter::repeat_n(*price, (*m).max(0) as usize))
                .collect();
            let last = &prices[prices.len().saturating_sub(10)..];
            (!last.is_empty()).then(|| last.iter().sum::<u64>() / last.len() as u64)
        })
        .sink(sink)
}

/// q5: per 10 s window sliding every 2 s, the auctions with the most bids.
pub fn q5(events: u64, sink: impl Sink<Q5>) -> Pipeline {
    let p = Pipeline::new("nexmark-q5");
    bids(&p, events)
        .key_by(|b| b.auction as u64)
        .window(
            Sliding::of(Duration::from_millis(Q5_SIZE_MS))
                .every(Duration::from_millis(Q5_SLIDE_MS)),
        )
        .count()
        // Each window's counts share its event time (end − 1): a tumbling
        // window of the slide gathers exactly one sliding window's counts.
        .key_by(|r| r.window_start)
        .window(Tumbling::of(Duration::from_millis(Q5_SLIDE_MS)))
        .process(|counts| {
            let max = counts.iter().map(|r| r.value).max().unwrap_or(0);
            counts
                .into_iter()
                .filter(|r| r.value == max)
                .map(|r| Q5 {
                    window_start: r.window_start,
                    auction: r.key,
                    num: r.value,
                })
                .collect::<Vec<_>>()
        })
        .flat_map(|r| r.value)
        .sink(sink)
}

/// q7: per 10 s tumbling window, the bids with the highest price.
pub fn q7(events: u64, sink: impl Sink<Q7>) -> Pipeline {
    let p = Pipeline::new("nexmark-q7");
    bids(&p, events)
        .map(|b| Q7 {
            window_end: 0,
            auction: b.auction as u64,
            price: b.price as u64,
            bidder: b.bidder as u64,
            date_time: b.date_time,
        })
        .key_by(|_| ())
        .window(Tumbling::of(Duration::from_millis(TUMBLE_MS)))
        .max_by(|b| b.price)
        .flat_map(|r| {
            let end = r.window_end;
            r.value.into_iter().map(move |b| Q7 {
                window_end: end,
                ..b
            })
        })
        .sink(sink)
}

/// q8: persons who opened an auction in the same 10 s tumbling window in
/// which they registered.
pub fn q8(events: u64, sink: impl Sink<Q8>) -> Pipeline {
    let p = Pipeline::new("nexmark-q8");
    // Only the fields the query needs travel on.
    let persons = p
        .source(Nexmark::persons(events))
        .event_time(|x: &Person| x.date_time, Watermark::ascending())
        .map(|x| (x.id as u64, x.name.into_owned(), x.date_time))
        .key_by(|x| x.0);
    let auctions = p
        .source(Nexmark::auctions(events))
        .event_time(|a: &Auction| a.date_time, Watermark::ascending())
        .map(|a| a.seller as u64)
        .key_by(|seller| *seller);
    persons
        .window_join(auctions, Tumbling::of(Duration::from_millis(TUMBLE_MS)))
        .map(|j| Q8 {
            id: j.key,
            window_start: j.left.2 - j.left.2 % TUMBLE_MS,
            name: j.left.1,
        })
        // One row per person and window, however many auctions they opened.
        .key_by(|q| (q.id, q.window_start))
        .window(Tumbling::of(Duration::from_millis(TUMBLE_MS)))
        .reduce(|a, _| a.clone())
        .map(|r| r.value)
        .sink(sink)
}
