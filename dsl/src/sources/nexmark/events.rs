//! The Nexmark events and their generator.
//!
//! The generator follows the Nexmark benchmark's model (Beam and Flink's
//! `GeneratorConfig`, ported to Rust by the `nexmark` crate): event `n` is a
//! person, an auction or a bid by `n % 50` (1 : 3 : 46), its ids and prices
//! come from a random generator seeded with `n`, so any event can be made
//! without the ones before it, and event times advance at a fixed rate.
//! What differs is the cost: strings are not built per event. Channels, urls,
//! names, cities and states are borrowed from pools built once; random text
//! (`extra`, item names, descriptions) is a slice of the requested length cut
//! at a random place from one buffer of random letters. A bid or an auction
//! allocates nothing; a person allocates its e-mail address and credit card
//! number (2 % of the events).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::LazyLock;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// A string of a Nexmark event: borrowed from the generator's pools, or owned
/// once an event has been deserialized (or built by hand).
pub type Text = Cow<'static, str>;

/// The three kinds of Nexmark events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    /// A new person ([`Person`]).
    Person,
    /// A new auction ([`Auction`]).
    Auction,
    /// A bid on an auction ([`Bid`]).
    Bid,
}

/// A Nexmark event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A person registers.
    Person(Person),
    /// A person opens an auction.
    Auction(Auction),
    /// A person bids on an auction.
    Bid(Bid),
}

impl Event {
    /// The kind of this event.
    pub fn event_type(&self) -> EventType {
        match self {
            Event::Person(_) => EventType::Person,
            Event::Auction(_) => EventType::Auction,
            Event::Bid(_) => EventType::Bid,
        }
    }

    /// The event time, in ms since the epoch.
    pub fn timestamp(&self) -> u64 {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }
}

/// A person who may open auctions and bid.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Person {
    /// The person's id (from [`NexmarkConfig::first_person_id`] on, in order).
    pub id: usize,
    /// First and last name, e.g. `"vicky noris"`.
    pub name: Text,
    /// `7 letters @ 5 letters .com`.
    pub email_address: Text,
    /// Four groups of four digits.
    pub credit_card: Text,
    /// One of ten US cities.
    pub city: Text,
    /// One of six US states, two lower-case letters.
    pub state: Text,
    /// The event time, in ms since the epoch.
    pub date_time: u64,
    /// Random letters that bring the event to about 200 bytes.
    pub extra: Text,
}

/// An item put up for auction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Auction {
    /// The auction's id (from [`NexmarkConfig::first_auction_id`] on, in order).
    pub id: usize,
    /// 20 random letters.
    pub item_name: Text,
    /// 100 random letters.
    pub description: Text,
    /// The opening price, in cents.
    pub initial_bid: usize,
    /// The least price for a sale, in cents.
    pub reserve: usize,
    /// The event time, in ms since the epoch.
    pub date_time: u64,
    /// When the auction closes, in ms since the epoch.
    pub expires: u64,
    /// The id of the person selling.
    pub seller: usize,
    /// One of five categories (10 to 14).
    pub category: usize,
    /// Random letters that bring the event to about 500 bytes.
    pub extra: Text,
}

/// A bid on an auction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bid {
    /// The id of the auction.
    pub auction: usize,
    /// The id of the person bidding.
    pub bidder: usize,
    /// The price bid, in cents: `100 * 10^(6u)` for `u` uniform in `[0, 1)`.
    pub price: usize,
    /// Where the bid came from: one of 4 hot channels half of the time, else
    /// one of 10 000 others.
    pub channel: Text,
    /// The channel's url.
    pub url: Text,
    /// The event time, in ms since the epoch.
    pub date_time: u64,
    /// Random letters that bring the event to about 100 bytes.
    pub extra: Text,
}

/// The parameters of the Nexmark generator; the defaults are those of the
/// Nexmark benchmark, but for the base time, which is fixed
/// ([`NEXMARK_BASE_TIME`](super::NEXMARK_BASE_TIME)) so that runs repeat.
///
/// Ratios of 0 are taken as 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NexmarkConfig {
    /// The event time of event 0, in ms since the epoch.
    pub base_time: u64,
    /// Events per second of event time (10 000: one event per 0.1 ms).
    pub events_per_second: u64,
    /// Persons in each group of `person + auction + bid` proportion events (1).
    pub person_proportion: usize,
    /// Auctions in each group (3).
    pub auction_proportion: usize,
    /// Bids in each group (46).
    pub bid_proportion: usize,
    /// How many of the latest persons are active, as sellers and bidders (1000).
    pub active_people: usize,
    /// How many auctions are open on average (100).
    pub in_flight_auctions: usize,
    /// Average size of a person in bytes, which sets the length of `extra` (200).
    pub avg_person_byte_size: usize,
    /// Average size of an auction in bytes (500).
    pub avg_auction_byte_size: usize,
    /// Average size of a bid in bytes (100).
    pub avg_bid_byte_size: usize,
    /// 1 in this many auctions is by any active person, the others by a hot
    /// seller (4).
    pub hot_seller_ratio: usize,
    /// 1 in this many bids is on any open auction, the others on a hot one (2).
    pub hot_auction_ratio: usize,
    /// 1 in this many bids is by any active person, the others by a hot
    /// bidder (4).
    pub hot_bidder_ratio: usize,
    /// 1 in this many bids comes from any channel, the others from one of
    /// the 4 hot channels (2).
    pub hot_channel_ratio: usize,
    /// The number of auction categories (5).
    pub num_categories: usize,
    /// The id of the first person (1000).
    pub first_person_id: usize,
    /// The id of the first auction (1000).
    pub first_auction_id: usize,
    /// The first category (10).
    pub first_category_id: usize,
    /// How far past the latest person a bid or auction may name one (10).
    pub person_id_lead: usize,
    /// How far past the latest auction a bid may name one (10).
    pub auction_id_lead: usize,
}

impl Default for NexmarkConfig {
    fn default() -> Self {
        NexmarkConfig {
            base_time: super::NEXMARK_BASE_TIME,
            events_per_second: 10_000,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            active_people: 1000,
            in_flight_auctions: 100,
            avg_person_byte_size: 200,
            avg_auction_byte_size: 500,
            avg_bid_byte_size: 100,
            hot_seller_ratio: 4,
            hot_auction_ratio: 2,
            hot_bidder_ratio: 4,
            hot_channel_ratio: 2,
            num_categories: 5,
            first_person_id: 1000,
            first_auction_id: 1000,
            first_category_id: 10,
            person_id_lead: 10,
            auction_id_lead: 10,
        }
    }
}

/// Hot sellers, bidders and auctions are the first of each batch of this many.
const HOT_RATIO: usize = 100;

impl NexmarkConfig {
    /// The config with every ratio and count at least 1, so that no random
    /// range is empty.
    fn checked(mut self) -> Self {
        for v in [
            &mut self.person_proportion,
            &mut self.auction_proportion,
            &mut self.active_people,
            &mut self.hot_seller_ratio,
            &mut self.hot_auction_ratio,
            &mut self.hot_bidder_ratio,
            &mut self.hot_channel_ratio,
            &mut self.num_categories,
        ] {
            *v = (*v).max(1);
        }
        self.events_per_second = self.events_per_second.max(1);
        self
    }

    fn group(&self) -> usize {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// The event time of event `n`: `n / events_per_second` seconds after
    /// the base time, rounded to the ms.
    pub fn timestamp(&self, n: u64) -> u64 {
        let rate = self.events_per_second.max(1) as u128;
        self.base_time + ((n as u128 * 1000 + rate / 2) / rate) as u64
    }

    /// The kind of event `n`.
    pub fn event_type(&self, n: u64) -> EventType {
        let rem = (n % self.group().max(1) as u64) as usize;
        if rem < self.person_proportion {
            EventType::Person
        } else if rem < self.person_proportion + self.auction_proportion {
            EventType::Auction
        } else {
            EventType::Bid
        }
    }

    /// The event number of the `k`-th event of `kind` (counting from 0).
    pub fn number_of(&self, kind: EventType, k: u64) -> u64 {
        let (before, share) = match kind {
            EventType::Person => (0, self.person_proportion),
            EventType::Auction => (self.person_proportion, self.auction_proportion),
            EventType::Bid => (
                self.person_proportion + self.auction_proportion,
                self.bid_proportion,
            ),
        };
        let share = share.max(1) as u64;
        k / share * self.group() as u64 + before as u64 + k % share
    }

    /// The latest person id (from 0) as of event `n`.
    fn last_person(&self, n: usize) -> usize {
        let (epoch, offset) = (n / self.group(), n % self.group());
        epoch * self.person_proportion + offset.min(self.person_proportion - 1)
    }

    /// The latest auction id (from 0) as of event `n`, which is not a person.
    fn last_auction(&self, n: usize) -> usize {
        let (epoch, offset) = (n / self.group(), n % self.group());
        if offset < self.person_proportion {
            // The auctions of the group before.
            (epoch * self.auction_proportion).saturating_sub(1)
        } else {
            let offset = (offset - self.person_proportion).min(self.auction_proportion - 1);
            epoch * self.auction_proportion + offset
        }
    }

    /// One of the active persons (from 0), or one a little ahead.
    fn any_person(&self, n: usize, rng: &mut Xoshiro256PlusPlus) -> usize {
        let people = self.last_person(n) + 1;
        let active = people.min(self.active_people);
        people - active + below(rng, active + self.person_id_lead)
    }

    /// One of the open auctions (from 0), or one a little ahead.
    fn any_auction(&self, n: usize, rng: &mut Xoshiro256PlusPlus) -> usize {
        let max = self.last_auction(n);
        let min = max.saturating_sub(self.in_flight_auctions);
        min + below(rng, max - min + 1 + self.auction_id_lead)
    }

    /// Makes event `n`.
    pub(crate) fn event(&self, n: u64) -> Event {
        match self.event_type(n) {
            EventType::Person => Event::Person(self.person(n)),
            EventType::Auction => Event::Auction(self.auction(n)),
            EventType::Bid => Event::Bid(self.bid(n)),
        }
    }

    /// Makes event `n` as a person (whatever kind `n` is).
    pub(crate) fn person(&self, n: u64) -> Person {
        let pools = &*POOLS;
        let rng = &mut Xoshiro256PlusPlus::seed_from_u64(n);
        let name: &'static str = &pools.names[below(rng, pools.names.len())];
        let mut email = String::with_capacity(17);
        email.push_str(random_letters(rng, 7));
        email.push('@');
        email.push_str(random_letters(rng, 5));
        email.push_str(".com");
        let mut card = String::with_capacity(19);
        for i in 0..4 {
            let sep = if i == 0 { "" } else { " " };
            let _ = write!(card, "{sep}{:04}", below(rng, 10_000));
        }
        let city: &'static str = CITIES[below(rng, CITIES.len())];
        let state: &'static str = STATES[below(rng, STATES.len())];
        let size = 8 + name.len() + email.len() + card.len() + city.len() + state.len();
        Person {
            id: self.last_person(n as usize) + self.first_person_id,
            name: Cow::Borrowed(name),
            email_address: Cow::Owned(email),
            credit_card: Cow::Owned(card),
            city: Cow::Borrowed(city),
            state: Cow::Borrowed(state),
            date_time: self.timestamp(n),
            extra: extra(rng, size, self.avg_person_byte_size),
        }
    }

    /// Makes event `n` as an auction (whatever kind `n` is).
    pub(crate) fn auction(&self, n: u64) -> Auction {
        let rng = &mut Xoshiro256PlusPlus::seed_from_u64(n);
        let e = n as usize;
        let time = self.timestamp(n);
        let item_name = random_letters(rng, 20);
        let description = random_letters(rng, 100);
        let initial_bid = price(rng);
        let reserve = initial_bid + price(rng);
        // Auctions last about as long as it takes to open `in_flight_auctions` more.
        let ahead = (self.in_flight_auctions * self.group() / self.auction_proportion) as u64;
        let horizon = self.timestamp(n + ahead) - time;
        let expires = time + 1 + below(rng, (horizon * 2).max(1) as usize) as u64;
        let seller = if below(rng, self.hot_seller_ratio) > 0 {
            self.last_person(e) / HOT_RATIO * HOT_RATIO
        } else {
            self.any_person(e, rng)
        };
        let category = self.first_category_id + below(rng, self.num_categories);
        Auction {
            id: self.last_auction(e) + self.first_auction_id,
            item_name: Cow::Borrowed(item_name),
            description: Cow::Borrowed(description),
            initial_bid,
            reserve,
            date_time: time,
            expires,
            seller: seller + self.first_person_id,
            category,
            extra: extra(rng, 8 + 20 + 100 + 5 * 8, self.avg_auction_byte_size),
        }
    }

    /// Makes event `n` as a bid (whatever kind `n` is).
    pub(crate) fn bid(&self, n: u64) -> Bid {
        let pools = &*POOLS;
        let rng = &mut Xoshiro256PlusPlus::seed_from_u64(n);
        let e = n as usize;
        let auction = if below(rng, self.hot_auction_ratio) > 0 {
            self.last_auction(e) / HOT_RATIO * HOT_RATIO
        } else {
            self.any_auction(e, rng)
        };
        let bidder = if below(rng, self.hot_bidder_ratio) > 0 {
            // The second of the batch, so that hot bidders are not hot sellers.
            self.last_person(e) / HOT_RATIO * HOT_RATIO + 1
        } else {
            self.any_person(e, rng)
        };
        let price = price(rng);
        let (channel, url) = if below(rng, self.hot_channel_ratio) > 0 {
            &pools.hot_channels[below(rng, pools.hot_channels.len())]
        } else {
            &pools.channels[below(rng, pools.channels.len())]
        };
        Bid {
            auction: auction + self.first_auction_id,
            bidder: bidder + self.first_person_id,
            price,
            channel: Cow::Borrowed(channel),
            url: Cow::Borrowed(url),
            date_time: self.timestamp(n),
            extra: extra(rng, 4 * 8, self.avg_bid_byte_size),
        }
    }
}

/// A number below `n` (at least 1): the high half of a 64 × 64-bit product
/// (Lemire's method without the rejection step: the bias, under `n / 2^64`,
/// is far below what a benchmark's distribution can show, and the call is
/// one multiplication).
#[inline]
fn below(rng: &mut Xoshiro256PlusPlus, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// A price in cents, from 1 dollar to 1 million, log-uniform.
fn price(rng: &mut Xoshiro256PlusPlus) -> usize {
    (10f32.powf(rng.random::<f32>() * 6.0) * 100.0).round() as usize
}

/// Letters that bring an event of `size` bytes to `average` bytes on
/// average: `average - size`, give or take a fifth.
fn extra(rng: &mut Xoshiro256PlusPlus, size: usize, average: usize) -> Text {
    if size > average {
        return Cow::Borrowed("");
    }
    let want = average - size;
    let delta = (want + 2) / 5;
    let len = want - delta + if delta == 0 { 0 } else { below(rng, 2 * delta) };
    Cow::Borrowed(random_letters(rng, len))
}

/// `len` random lower-case letters: a slice of [`Pools::letters`] at a
/// random place (at most [`MAX_TEXT`] letters).
fn random_letters(rng: &mut Xoshiro256PlusPlus, len: usize) -> &'static str {
    let letters: &'static str = &POOLS.letters;
    let len = len.min(MAX_TEXT);
    let start = below(rng, letters.len() - len);
    &letters[start..start + len]
}

/// The most random letters one string takes from the pool.
const MAX_TEXT: usize = 4096;

const FIRST_NAMES: [&str; 11] = [
    "peter", "paul", "luke", "john", "saul", "vicky", "kate", "julie", "sarah", "deiter", "walter",
];
const LAST_NAMES: [&str; 9] = [
    "shultz", "abrams", "spencer", "white", "bartels", "walton", "smith", "jones", "noris",
];
const CITIES: [&str; 10] = [
    "phoenix",
    "los angeles",
    "san francisco",
    "boise",
    "portland",
    "bend",
    "redmond",
    "seattle",
    "kent",
    "cheyenne",
];
const STATES: [&str; 6] = ["az", "ca", "id", "or", "wa", "wy"];

/// The strings events borrow, built once per process (the same in every
/// process: they are made from fixed seeds).
struct Pools {
    /// 256 KiB of random lower-case letters.
    letters: String,
    /// Every `first last` name.
    names: Vec<String>,
    /// The 4 hot channels and their urls.
    hot_channels: Vec<(String, String)>,
    /// `channel-0` to `channel-9999` and their urls.
    channels: Vec<(String, String)>,
}

static POOLS: LazyLock<Pools> = LazyLock::new(|| {
    let rng = &mut Xoshiro256PlusPlus::seed_from_u64(0x004e_6578_6d61_726b);
    let letters = (0..256 * 1024 + MAX_TEXT)
        .map(|_| rng.random_range(b'a'..=b'z') as char)
        .collect();
    let names = FIRST_NAMES
        .iter()
        .flat_map(|f| LAST_NAMES.iter().map(move |l| format!("{f} {l}")))
        .collect();
    let hot_channels = ["Google", "Facebook", "Baidu", "Apple"]
        .iter()
        .zip(0u64..)
        .map(|(c, i)| (c.to_string(), base_url(i)))
        .collect();
    let channels = (0..10_000u32)
        .map(|i| {
            let mut url = base_url(i as u64);
            let rng = &mut Xoshiro256PlusPlus::seed_from_u64(i as u64);
            if rng.random_range(0..10) > 0 {
                let id = (i.reverse_bits() as i32).unsigned_abs();
                let _ = write!(url, "&channel_id={id}");
            }
            (format!("channel-{i}"), url)
        })
        .collect();
    Pools {
        letters,
        names,
        hot_channels,
        channels,
    }
});

/// `https://www.nexmark.com/a/b/c/item.htm?query=1`, with three random path
/// parts of 3 or 4 letters, some `_`.
fn base_url(seed: u64) -> String {
    let rng = &mut Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(1 << 32));
    let mut url = String::from("https://www.nexmark.com");
    for _ in 0..3 {
        url.push('/');
        for _ in 0..rng.random_range(3..5) {
            url.push(if rng.random_range(0..13) == 0 {
                '_'
            } else {
                rng.random_range(b'a'..=b'z') as char
            });
        }
    }
    url.push_str("/item.htm?query=1");
    url
}

/// Generates Nexmark events: event `offset`, `offset + step`, ... of all
/// events or, with a type filter, of the events of one kind.
///
/// ```
/// use weir::sources::{Event, EventGenerator, EventType, NexmarkConfig};
///
/// let config = NexmarkConfig::default();
/// let all: Vec<Event> = EventGenerator::new(config).take(100).collect();
/// // Every other bid, from the second on.
/// let bids: Vec<Event> = EventGenerator::new(config)
///     .with_type_filter(EventType::Bid)
///     .with_offset(1)
///     .with_step(2)
///     .take(3)
///     .collect();
/// let expected: Vec<&Event> = all
///     .iter()
///     .filter(|e| e.event_type() == EventType::Bid)
///     .skip(1)
///     .step_by(2)
///     .take(3)
///     .collect();
/// assert_eq!(bids.iter().collect::<Vec<_>>(), expected);
/// ```
#[derive(Clone, Debug)]
pub struct EventGenerator {
    config: NexmarkConfig,
    offset: u64,
    step: u64,
    only: Option<EventType>,
}

impl EventGenerator {
    /// All events, from event 0.
    pub fn new(config: NexmarkConfig) -> Self {
        EventGenerator {
            config: config.checked(),
            offset: 0,
            step: 1,
            only: None,
        }
    }

    /// Starts at the `offset`-th event (of the filtered kind).
    pub fn with_offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// Takes every `step`-th event (at least 1).
    pub fn with_step(mut self, step: u64) -> Self {
        self.step = step.max(1);
        self
    }

    /// Only events of `kind`.
    pub fn with_type_filter(mut self, kind: EventType) -> Self {
        self.only = Some(kind);
        self
    }

    /// The number of the next event among all events.
    fn number(&self) -> u64 {
        match self.only {
            None => self.offset,
            Some(kind) => self.config.number_of(kind, self.offset),
        }
    }

    /// The event time of the next event.
    pub fn timestamp(&self) -> u64 {
        self.config.timestamp(self.number())
    }

    /// The next event, as [`next`](Iterator::next) (which never ends).
    pub fn next_event(&mut self) -> Event {
        let n = self.advance();
        self.config.event(n)
    }

    /// The next event as a bid; with a bid filter, the same as `next`
    /// without the [`Event`] around it.
    pub fn next_bid(&mut self) -> Bid {
        let n = self.advance();
        self.config.bid(n)
    }

    /// The next event as an auction (see [`next_bid`](Self::next_bid)).
    pub fn next_auction(&mut self) -> Auction {
        let n = self.advance();
        self.config.auction(n)
    }

    /// The next event as a person (see [`next_bid`](Self::next_bid)).
    pub fn next_person(&mut self) -> Person {
        let n = self.advance();
        self.config.person(n)
    }

    /// The number of the next event; moves on by one step.
    #[inline]
    /// Skips the next `n` events (of the filtered kind).
    pub fn skip_events(&mut self, n: u64) {
        self.offset += n * self.step;
    }

    fn advance(&mut self) -> u64 {
        let n = self.number();
        self.offset += self.step;
        n
    }
}

impl Iterator for EventGenerator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        Some(self.next_event())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bids(n: u64) -> Vec<Bid> {
        EventGenerator::new(NexmarkConfig::default())
            .take(n as usize)
            .filter_map(|e| match e {
                Event::Bid(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn kinds_come_one_three_forty_six_and_ids_count_up() {
        let events: Vec<Event> = EventGenerator::new(NexmarkConfig::default())
            .take(5000)
            .collect();
        let count = |k| events.iter().filter(|e| e.event_type() == k).count();
        assert_eq!(count(EventType::Person), 100);
        assert_eq!(count(EventType::Auction), 300);
        assert_eq!(count(EventType::Bid), 4600);
        let persons: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::Person(p) => Some(p.id),
                _ => None,
            })
            .collect();
        assert_eq!(persons, (1000..1100).collect::<Vec<_>>());
        let auctions: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::Auction(a) => Some(a.id),
                _ => None,
            })
            .collect();
        assert_eq!(auctions, (1000..1300).collect::<Vec<_>>());
        // 0.1 ms per event, rounded to the ms.
        let times: Vec<u64> = events.iter().map(Event::timestamp).collect();
        assert_eq!(times[0], super::super::NEXMARK_BASE_TIME);
        assert_eq!(times[4999] - times[0], 500);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn bids_follow_the_nexmark_distribution() {
        let config = NexmarkConfig::default();
        let bids = bids(200_000);
        let n = bids.len() as f64;
        let share = |f: &dyn Fn(&Bid) -> bool| bids.iter().filter(|b| f(b)).count() as f64 / n;
        // Prices: 100 * 10^(6u), so a sixth of the bids per decade.
        assert!(bids.iter().all(|b| (100..=100_000_000).contains(&b.price)));
        let low = share(&|b| b.price < 1000);
        assert!((low - 1.0 / 6.0).abs() < 0.01, "{low}");
        // Half the bids from one of the 4 hot channels.
        let hot = share(&|b| ["Google", "Facebook", "Baidu", "Apple"].contains(&&*b.channel));
        assert!((hot - 0.5).abs() < 0.01, "{hot}");
        // Half the bids on a hot auction (a multiple of 100, from 1000 on),
        // and so more (the others may land on one too).
        let hot_auction = share(&|b| b.auction % 100 == 0);
        assert!((0.5..0.53).contains(&hot_auction), "{hot_auction}");
        // Three quarters by a hot bidder (ids ending in 01).
        let hot_bidder = share(&|b| b.bidder % 100 == 1);
        assert!((0.74..0.77).contains(&hot_bidder), "{hot_bidder}");
        // `extra`: 68 letters give or take a fifth.
        assert!(bids.iter().all(|b| (54..82).contains(&b.extra.len())
            && b.extra.bytes().all(|c| c.is_ascii_lowercase())));
        let mean = bids.iter().map(|b| b.extra.len()).sum::<usize>() as f64 / n;
        assert!((mean - 67.5).abs() < 0.5, "{mean}");
        // Bids name auctions that are open or about to be.
        for (i, b) in bids.iter().enumerate().step_by(97) {
            let e = config.number_of(EventType::Bid, i as u64) as usize;
            let last = config.last_auction(e) + config.first_auction_id;
            assert!(b.auction <= last + config.auction_id_lead, "{i}");
            assert!(b.auction + config.in_flight_auctions >= last, "{i}");
        }
        // Channels and urls come in pairs.
        let google = bids.iter().find(|b| b.channel == "Google").unwrap();
        assert!(
            bids.iter()
                .filter(|b| b.channel == "Google")
                .all(|b| b.url == google.url)
        );
        assert!(google.url.starts_with("https://www.nexmark.com/"));
    }

    #[test]
    fn partitions_make_the_same_events_as_one_generator() {
        let config = NexmarkConfig::default();
        let all: Vec<Event> = EventGenerator::new(config).take(10_000).collect();
        for kind in [EventType::Person, EventType::Auction, EventType::Bid] {
            let of_kind: Vec<&Event> = all.iter().filter(|e| e.event_type() == kind).collect();
            for parts in [1, 3, 16] {
                let mut merged: Vec<(usize, Event)> = Vec::new();
                for p in 0..parts {
                    let g = EventGenerator::new(config)
                        .with_type_filter(kind)
                        .with_offset(p as u64)
                        .with_step(parts as u64);
                    let count = of_kind.len().saturating_sub(p).div_ceil(parts);
                    merged.extend((0..count).map(|i| p + i * parts).zip(g.take(count)));
                }
                merged.sort_by_key(|(i, _)| *i);
                let merged: Vec<&Event> = merged.iter().map(|(_, e)| e).collect();
                assert_eq!(merged, of_kind, "{kind:?} in {parts} partitions");
            }
        }
        let first = |kind| all.iter().find(|e: &&Event| e.event_type() == kind);
        let only = |kind| EventGenerator::new(config).with_type_filter(kind);
        let bid = Event::Bid(only(EventType::Bid).next_bid());
        let auction = Event::Auction(only(EventType::Auction).next_auction());
        let person = Event::Person(only(EventType::Person).next_person());
        assert_eq!(Some(&bid), first(EventType::Bid));
        assert_eq!(Some(&auction), first(EventType::Auction));
        assert_eq!(Some(&person), first(EventType::Person));
    }

    #[test]
    fn persons_and_auctions_look_like_nexmark() {
        let config = NexmarkConfig::default();
        for k in 0..200 {
            let p = config.person(config.number_of(EventType::Person, k));
            assert_eq!(p.email_address.len(), 17);
            assert_eq!(&p.email_address[7..8], "@");
            assert!(p.email_address.ends_with(".com"));
            assert_eq!(p.credit_card.len(), 19);
            assert!(p.credit_card.split(' ').all(|g| g.len() == 4));
            assert!(STATES.contains(&&*p.state) && CITIES.contains(&&*p.city));
            let a = config.auction(config.number_of(EventType::Auction, k));
            assert_eq!((a.item_name.len(), a.description.len()), (20, 100));
            assert!((10..15).contains(&a.category));
            assert!(a.reserve > a.initial_bid && a.expires > a.date_time);
            let e = config.number_of(EventType::Auction, k) as usize;
            let persons = config.last_person(e) + 1 + config.first_person_id;
            assert!(a.seller < persons + config.person_id_lead);
        }
    }
}
