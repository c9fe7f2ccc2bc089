//! Keyed event-time windows: tumbling, sliding (with pane sharing) and
//! session windows, aggregated incrementally by an [`Aggregator`].
//!
//! # Time
//!
//! Records arrive as `(event time, (key, value))` at a timely timestamp that
//! is their source partition's watermark (see [`crate::source`]). Records
//! stamped `t` are treated as if applied once the input frontier has reached
//! `t`, after every window whose `end + allowed_lateness <= t` has fired. A
//! window `[start, end)` therefore fires once, when the frontier (the global
//! watermark) reaches `end + allowed_lateness`, and a record is *late*
//! exactly when all of its windows have fired by the time its own watermark
//! comes up. Whether a record is late depends only on its partition's order,
//! never on thread timing: results are the same on any number of workers and
//! processes.
//!
//! A record that gets the same outcome whenever it is applied is applied on
//! arrival: a tumbling or sliding record whose first window ends (plus the
//! allowed lateness) after `t` — every record at or above its watermark —
//! and a session record above its watermark. The others wait in a stash
//! until the frontier has passed `t`.
//!
//! Late records are counted and sent to a second output.
//!
//! # State
//!
//! Tumbling and sliding windows keep one accumulator per key and *pane* (the
//! greatest common divisor of size and slide), in one hash map per pane
//! shared by all keys: a record is added to one pane only, windows fire in
//! order of their ends by merging their panes (panes no later window needs
//! are moved, not copied), and those panes are then freed, so state follows
//! the open windows. Session windows keep, per key, a small sorted vector of
//! open sessions and one live timer, merging sessions as records bridge them
//! (Flink-style: `[t, t + gap)` per record, windows that overlap or touch
//! merge).

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Capability;

use crate::{Time, VecStream};

/// How records are grouped into windows. All times are milliseconds, and
/// windows are aligned to the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assigner {
    /// `[k·size, (k+1)·size)`.
    Tumbling {
        /// Window length.
        size: u64,
    },
    /// Every `[k·slide, k·slide + size)` that holds the event.
    Sliding {
        /// Window length.
        size: u64,
        /// Distance between window starts; at most `size`.
        slide: u64,
    },
    /// `[first, last + gap)` per key, for runs of events less than `gap` apart.
    Session {
        /// Inactivity gap that closes a session.
        gap: u64,
    },
}

/// An [`Assigner`] and the allowed lateness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// How records are grouped.
    pub assigner: Assigner,
    /// How long after its end a window waits for late records before firing.
    pub allowed_lateness: u64,
}

/// An incremental aggregation: an accumulator per window (or pane), records
/// added one by one, accumulators merged, and a result at the end.
///
/// # Examples
///
/// ```
/// use weir_operators::window::Aggregator;
///
/// /// The longest string.
/// struct Longest;
/// impl Aggregator<String> for Longest {
///     type Acc = String;
///     type Out = String;
///     fn init(&self) -> String { String::new() }
///     fn add(&self, acc: &mut String, v: &String) {
///         if v.len() > acc.len() { *acc = v.clone(); }
///     }
///     fn merge(&self, acc: &mut String, other: &String) { self.add(acc, other) }
///     fn finish(&self, acc: String) -> String { acc }
/// }
///
/// let mut acc = Longest.init();
/// Longest.add(&mut acc, &"ab".to_string());
/// Longest.add(&mut acc, &"abc".to_string());
/// assert_eq!(Longest.finish(acc), "abc");
/// ```
pub trait Aggregator<V>: Send + Sync + 'static {
    /// The running state of one window or pane.
    type Acc: Clone + 'static;
    /// The result of a window.
    type Out: 'static;
    /// A fresh accumulator.
    fn init(&self) -> Self::Acc;
    /// Adds one record.
    fn add(&self, acc: &mut Self::Acc, value: &V);
    /// Adds everything `other` holds to `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
    /// Adds one record the operator no longer needs: override it to move
    /// the record instead of cloning it (the default calls [`add`](Self::add)).
    fn add_owned(&self, acc: &mut Self::Acc, value: V) {
        self.add(acc, &value)
    }
    /// Merges an accumulator the operator no longer needs: override it to
    /// move instead of clone (the default calls [`merge`](Self::merge)).
    fn merge_owned(&self, acc: &mut Self::Acc, other: Self::Acc) {
        self.merge(acc, &other)
    }
    /// The window's result.
    fn finish(&self, acc: Self::Acc) -> Self::Out;
}

macro_rules! tuple_aggregator {
    ($($a:ident $i:tt),+) => {
        /// Several aggregations at once; the result is the tuple of results.
        impl<V, $($a: Aggregator<V>),+> Aggregator<V> for ($($a,)+) {
            type Acc = ($($a::Acc,)+);
            type Out = ($($a::Out,)+);
            fn init(&self) -> Self::Acc {
                ($(self.$i.init(),)+)
            }
            fn add(&self, acc: &mut Self::Acc, v: &V) {
                $(self.$i.add(&mut acc.$i, v);)+
            }
            fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
                $(self.$i.merge(&mut acc.$i, &other.$i);)+
            }
            fn finish(&self, acc: Self::Acc) -> Self::Out {
                ($(self.$i.finish(acc.$i),)+)
            }
        }
    };
}

tuple_aggregator!(A 0, B 1);
tuple_aggregator!(A 0, B 1, C 2);
tuple_aggregator!(A 0, B 1, C 2, D 3);
tuple_aggregator!(A 0, B 1, C 2, D 3, E 4);
tuple_aggregator!(A 0, B 1, C 2, D 3, E 4, F 5);

/// The result of one window of one key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowResult<K, O> {
    /// The key.
    pub key: K,
    /// First millisecond of the window.
    pub window_start: u64,
    /// First millisecond after the window.
    pub window_end: u64,
    /// The aggregate.
    pub value: O,
}

/// Streams of window results (timestamped with event time `window_end − 1`)
/// and of late records.
pub type WindowOutputs<'scope, K, V, O> = (
    VecStream<'scope, (Time, WindowResult<K, O>)>,
    VecStream<'scope, (Time, (K, V))>,
);

/// Aggregates keyed records per event-time window.
pub trait WindowAggregate<'scope, K, V> {
    /// Groups each key's records into windows as `config` says, aggregates
    /// them with `agg`, and emits each window's result once, when the
    /// watermark reaches `end + allowed_lateness`. The input must be
    /// partitioned by key. Late records are added to `late` and sent to the
    /// second output.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{atomic::AtomicU64, Arc};
    /// use timely::dataflow::operators::{ToStream, capture::{Capture, Extract}};
    /// use weir_operators::window::{Aggregator, Assigner, WindowAggregate, WindowConfig, WindowResult};
    ///
    /// struct Count;
    /// impl Aggregator<u32> for Count {
    ///     type Acc = u64;
    ///     type Out = u64;
    ///     fn init(&self) -> u64 { 0 }
    ///     fn add(&self, acc: &mut u64, _: &u32) { *acc += 1 }
    ///     fn merge(&self, acc: &mut u64, other: &u64) { *acc += other }
    ///     fn finish(&self, acc: u64) -> u64 { acc }
    /// }
    ///
    /// let results = timely::example(|scope| {
    ///     let config = WindowConfig { assigner: Assigner::Tumbling { size: 10 }, allowed_lateness: 0 };
    ///     // (event time, (key, value)), all at watermark 0.
    ///     let (results, _late) = vec![(3, ('a', 1u32)), (7, ('a', 2)), (12, ('a', 3))]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .window_aggregate(config, Count, Arc::new(AtomicU64::new(0)));
    ///     results.capture()
    /// });
    /// let mut got: Vec<_> = results.extract().into_iter().flat_map(|(_, d)| d).map(|(_, r)| r).collect();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     WindowResult { key: 'a', window_start: 0, window_end: 10, value: 2 },
    ///     WindowResult { key: 'a', window_start: 10, window_end: 20, value: 1 },
    /// ]);
    /// ```
    fn window_aggregate<A: Aggregator<V>>(
        self,
        config: WindowConfig,
        agg: A,
        late: Arc<AtomicU64>,
    ) -> WindowOutputs<'scope, K, V, A::Out>;
}

impl<'scope, K, V> WindowAggregate<'scope, K, V> for VecStream<'scope, (Time, (K, V))>
where
    K: Hash + Eq + Clone + 'static,
    V: 'static,
{
    fn window_aggregate<A: Aggregator<V>>(
        self,
        config: WindowConfig,
        agg: A,
        late: Arc<AtomicU64>,
    ) -> WindowOutputs<'scope, K, V, A::Out> {
        let mut builder = OperatorBuilder::new("Window".to_owned(), self.scope());
        let mut input = builder.new_input(self, Pipeline);
        let (results, results_stream) = builder.new_output();
        let (late_out, late_stream) = builder.new_output();
        let mut results =
            OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<_>>>::from(results);
        let mut late_out =
            OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<_>>>::from(late_out);
        builder.build(move |_capabilities| {
            let mut state = WindowState::<K, V, A> {
                geometry: match config.assigner {
                    Assigner::Tumbling { size } => (size, size, size),
                    Assigner::Sliding { size, slide } => (size, slide, gcd(size, slide)),
                    Assigner::Session { gap } => (gap, gap, gap),
                },
                config,
                agg,
                stash: BTreeMap::new(),
                panes: BTreeMap::new(),
                fired_until: None,
                sessions: FxHashMap::default(),
                timers: BTreeMap::new(),
                capability: None,
                fired: Vec::new(),
            };
            move |frontiers| {
                let frontier = &frontiers[0];
                let mut late_handle = late_out.activate();
                input.for_each(|cap, data| {
                    let Some(time) = cap.least().copied() else {
                        data.clear();
                        return;
                    };
                    if state
                        .capability
                        .as_ref()
                        .is_none_or(|(c, _)| time < *c.time())
                    {
                        state.capability = cap.retain_least(0).zip(cap.retain_least(1));
                    }
                    // Records that cannot be late are applied at once;
                    // the others wait for the frontier to pass their time.
                    for (ts, (key, value)) in data.drain(..) {
                        if state.can_apply_now(time, ts) {
                            match state.config.assigner {
                                Assigner::Session { gap } => {
                                    state.merge_session(ts, gap, key, value)
                                }
                                _ => state.add(ts, key, value),
                            }
                        } else {
                            state
                                .stash
                                .entry(time)
                                .or_default()
                                .push((ts, (key, value)));
                        }
                    }
                });
                let least = frontier.frontier().first().copied();
                let mut late_records = Vec::new();
                // Apply, in timestamp order, the stashed records of every
                // timestamp the frontier has passed (all of them are here).
                while let Some(entry) = state.stash.first_entry() {
                    let time = *entry.key();
                    if least.is_some_and(|f| time >= f) {
                        break;
                    }
                    let records = entry.remove();
                    state.fire_until(time);
                    state.apply_all(time, records, &mut late_records);
                }
                match least {
                    Some(f) => state.fire_until(f),
                    None => state.fire_until(Time::MAX),
                }
                if !late_records.is_empty() {
                    late.fetch_add(late_records.len() as u64, Ordering::Relaxed);
                    if let Some((_, cap)) = &state.capability {
                        late_handle
                            .session(cap)
                            .give_iterator(late_records.drain(..));
                    }
                }
                if !state.fired.is_empty() {
                    let mut handle = results.activate();
                    let (cap, _) = state
                        .capability
                        .as_ref()
                        .expect("results need a capability");
                    // A result goes out at its own event time `end − 1` (or
                    // later, if the capability is), so that a window stage
                    // downstream sees it on time.
                    let mut fired = std::mem::take(&mut state.fired);
                    fired.sort_by_key(|r| r.window_end);
                    let mut fired = fired.into_iter().peekable();
                    while let Some(first) = fired.next() {
                        let end = first.window_end;
                        let at = cap.delayed(&(end - 1).max(*cap.time()));
                        let mut session = handle.session(&at);
                        session.give((end - 1, first));
                        while let Some(r) = fired.next_if(|r| r.window_end == end) {
                            session.give((end - 1, r));
                        }
                    }
                }
                // Hold a capability only while there is state to fire, at
                // most at the end of the first window still to fire.
                if state.is_empty() {
                    state.capability = None;
                } else {
                    let lateness = state.config.allowed_lateness;
                    let next_end = state
                        .next_fire()
                        .map(|fire| fire.saturating_sub(lateness).saturating_sub(1));
                    let hold = state
                        .stash
                        .keys()
                        .next()
                        .copied()
                        .into_iter()
                        .chain(least)
                        .chain(next_end)
                        .min();
                    if let (Some(t), Some((results_cap, late_cap))) =
                        (hold, state.capability.as_mut())
                    {
                        if t > *results_cap.time() {
                            results_cap.downgrade(&t);
                            late_cap.downgrade(&t);
                        }
                    }
                }
            }
        });
        (results_stream, late_stream)
    }
}

/// A keyed record with its event time.
type Keyed<K, V> = (Time, (K, V));

/// The state of one window operator: all keyed window state lives here.
struct WindowState<K, V, A: Aggregator<V>> {
    config: WindowConfig,
    /// Window length, slide and pane length of tumbling and sliding windows
    /// (pane = gcd of size and slide), worked out once.
    geometry: (u64, u64, u64),
    agg: A,
    /// Records not yet applied, by timestamp.
    stash: BTreeMap<Time, Vec<Keyed<K, V>>>,
    /// Tumbling and sliding windows: per pane start, an accumulator per key.
    panes: BTreeMap<u64, FxHashMap<K, A::Acc>>,
    /// The greatest time windows have fired up to: every window with
    /// `end + allowed_lateness` at or below it is done, records or not.
    fired_until: Option<Time>,
    /// Session windows: per key, the open sessions and the key's timer.
    sessions: FxHashMap<K, KeySessions<A::Acc>>,
    /// Session timers: keys to look at, by time. A key has at most one live
    /// timer (the one its `KeySessions::timer` names), no later than its
    /// first session's `end + allowed_lateness`; others are stale.
    timers: BTreeMap<Time, Vec<K>>,
    /// Capabilities for the results and late outputs while state remains.
    capability: Option<(Capability<Time>, Capability<Time>)>,
    /// Results fired and not yet sent.
    fired: Vec<WindowResult<K, A::Out>>,
}

impl<K: Hash + Eq + Clone, V, A: Aggregator<V>> WindowState<K, V, A> {
    fn is_empty(&self) -> bool {
        self.stash.is_empty()
            && self.timers.is_empty()
            && self.panes.is_empty()
            && self.fired.is_empty()
    }

    /// Whether a record stamped `time` with event time `ts` can be applied
    /// before the frontier passes `time`, with the same outcome as when its
    /// turn comes.
    ///
    /// Tumbling and sliding: when its first window ends (plus the allowed
    /// lateness) after `time` — every record at or above its watermark —
    /// none of its windows has fired or may fire before `time`.
    ///
    /// Sessions: when `ts > time`. Its session `[ts, ts + gap)` is not late,
    /// and only merges with sessions ending at or after `ts`, which cannot
    /// be due by `time`. A record of an earlier timestamp applied later
    /// decides whether it is late by the sessions it overlaps: those ending
    /// before its own `ts' + gap < time < ts`, which this record can neither
    /// reach nor extend, so that decision does not change either.
    fn can_apply_now(&self, time: Time, ts: u64) -> bool {
        match self.config.assigner {
            Assigner::Session { .. } => ts > time,
            _ if ts >= time => true,
            _ => {
                let (size, slide, _) = self.geometry;
                // The first window holding `ts` starts at the least multiple
                // of `slide` above `ts − size`.
                let first = (ts + 1).saturating_sub(size).div_ceil(slide) * slide;
                (first + size).saturating_add(self.config.allowed_lateness) > time
            }
        }
    }

    /// Applies all records stamped `time`, adding late ones to `late`.
    fn apply_all(&mut self, time: Time, records: Vec<Keyed<K, V>>, late: &mut Vec<Keyed<K, V>>) {
        let Assigner::Session { gap } = self.config.assigner else {
            for (ts, (key, value)) in records {
                if self.is_late(time, ts) {
                    late.push((ts, (key, value)));
                } else {
                    self.add(ts, key, value);
                }
            }
            return;
        };
        // A record whose own session window has ended is late unless it
        // overlaps an open session, perhaps one that another record of this
        // timestamp opened or extended: repeat until nothing changes, so that
        // the outcome does not depend on the order of the records.
        let lateness = self.config.allowed_lateness;
        let mut candidates = Vec::new();
        for (ts, (key, value)) in records {
            if ts.saturating_add(gap).saturating_add(lateness) > time {
                self.merge_session(ts, gap, key, value);
            } else {
                candidates.push((ts, (key, value)));
            }
        }
        loop {
            let before = candidates.len();
            let mut still = Vec::with_capacity(before);
            for (ts, (key, value)) in candidates {
                if self.session_overlaps(&key, ts, gap) {
                    self.merge_session(ts, gap, key, value);
                } else {
                    still.push((ts, (key, value)));
                }
            }
            candidates = still;
            if candidates.len() == before {
                break;
            }
        }
        late.extend(candidates);
    }

    /// Whether a tumbling or sliding record stamped `time` is late: every
    /// window holding it fires at or before `time`.
    fn is_late(&self, time: Time, ts: u64) -> bool {
        let (size, slide, _) = self.geometry;
        let last_start = ts - ts % slide;
        (last_start + size).saturating_add(self.config.allowed_lateness) <= time
    }

    /// Adds a tumbling or sliding record to its pane.
    fn add(&mut self, ts: u64, key: K, value: V) {
        let (_, _, pane) = self.geometry;
        let agg = &self.agg;
        let acc = self
            .panes
            .entry(ts - ts % pane)
            .or_default()
            .entry(key)
            .or_insert_with(|| agg.init());
        agg.add_owned(acc, value);
    }

    /// The next tumbling or sliding window to fire: the first one holding
    /// the oldest pane and not done yet, as `(start, end)`.
    fn next_window(&self) -> Option<(u64, u64)> {
        let (size, slide, _) = self.geometry;
        let oldest = *self.panes.keys().next()?;
        let first = (oldest + 1).saturating_sub(size).div_ceil(slide) * slide;
        // The first window not done: `start + size + lateness > fired_until`.
        let open = self.fired_until.map_or(0, |t| {
            t.saturating_add(1)
                .saturating_sub(size)
                .saturating_sub(self.config.allowed_lateness)
                .div_ceil(slide)
                .saturating_mul(slide)
        });
        let start = first.max(open);
        Some((start, start.saturating_add(size)))
    }

    /// When the next window fires (`end + allowed_lateness`), if any.
    fn next_fire(&self) -> Option<Time> {
        let lateness = self.config.allowed_lateness;
        let panes = self
            .next_window()
            .map(|(_, end)| end.saturating_add(lateness));
        panes
            .into_iter()
            .chain(self.timers.keys().next().copied())
            .min()
    }

    /// True if `[ts, ts + gap)` overlaps or touches an open session of `key`.
    fn session_overlaps(&self, key: &K, ts: u64, gap: u64) -> bool {
        self.sessions.get(key).is_some_and(|ks| {
            let (first, last) = ks.overlapping(ts, ts.saturating_add(gap));
            first < last
        })
    }

    /// Adds a record's session `[ts, ts + gap)` to `key`'s sessions, merging
    /// every session it overlaps or touches.
    fn merge_session(&mut self, ts: u64, gap: u64, key: K, value: V) {
        let lateness = self.config.allowed_lateness;
        let (lo, hi) = (ts, ts.saturating_add(gap));
        let ks = match self.sessions.get_mut(&key) {
            Some(ks) => ks,
            None => self.sessions.entry(key.clone()).or_default(),
        };
        let (first, last) = ks.overlapping(lo, hi);
        let end = if last - first == 1 {
            // The common case: the record falls in or extends one session.
            let (s, e, acc) = &mut ks.open[first];
            *s = (*s).min(lo);
            *e = (*e).max(hi);
            self.agg.add_owned(acc, value);
            *e
        } else {
            let (mut start, mut end) = (lo, hi);
            let mut acc = self.agg.init();
            for (s, e, other) in ks.open.drain(first..last) {
                start = start.min(s);
                end = end.max(e);
                self.agg.merge_owned(&mut acc, other);
            }
            self.agg.add_owned(&mut acc, value);
            ks.open.insert(first, (start, end, acc));
            end
        };
        let due = end.saturating_add(lateness);
        if ks.timer.is_none_or(|t| due < t) {
            ks.timer = Some(due);
            self.timers.entry(due).or_default().push(key);
        }
    }

    /// Fires every window due at or before `time`, in order.
    fn fire_until(&mut self, time: Time) {
        let lateness = self.config.allowed_lateness;
        while let Some((start, end)) = self.next_window() {
            let fire = end.saturating_add(lateness);
            if fire > time {
                break;
            }
            self.fire_window(start, end);
            // Windows fire in order of their ends: every window due by this
            // one's time is done.
            self.fired_until = Some(self.fired_until.map_or(fire, |t| t.max(fire)));
        }
        while let Some(entry) = self.timers.first_entry() {
            if *entry.key() > time {
                break;
            }
            let (due, keys) = entry.remove_entry();
            for key in keys {
                self.fire_sessions(key, due);
            }
        }
        self.fired_until = Some(self.fired_until.map_or(time, |t| t.max(time)));
    }

    /// Fires the tumbling or sliding window `[start, end)` for every key
    /// with records in it, and frees the panes no later window holds.
    fn fire_window(&mut self, start: u64, end: u64) {
        let (_, slide, _) = self.geometry;
        // Panes before the next window's start are merged by moving them,
        // the others by reference.
        let keep = self.panes.split_off(&(start + slide));
        let done = std::mem::replace(&mut self.panes, keep);
        let mut windows: FxHashMap<K, A::Acc> = FxHashMap::default();
        for (_, pane) in done.into_iter().filter(|(p, _)| *p >= start) {
            if windows.is_empty() {
                windows = pane;
                continue;
            }
            for (key, acc) in pane {
                match windows.entry(key) {
                    Entry::Occupied(mut e) => self.agg.merge_owned(e.get_mut(), acc),
                    Entry::Vacant(e) => {
                        e.insert(acc);
                    }
                }
            }
        }
        for (_, pane) in self.panes.range(..end) {
            for (key, acc) in pane {
                match windows.get_mut(key) {
                    Some(w) => self.agg.merge(w, acc),
                    None => {
                        windows.insert(key.clone(), acc.clone());
                    }
                }
            }
        }
        self.fired
            .extend(windows.into_iter().map(|(key, acc)| WindowResult {
                key,
                window_start: start,
                window_end: end,
                value: self.agg.finish(acc),
            }));
    }

    /// Fires `key`'s sessions due at `due` if this is its live timer, and
    /// sets the timer for the next one.
    fn fire_sessions(&mut self, key: K, due: Time) {
        let lateness = self.config.allowed_lateness;
        let Some(ks) = self.sessions.get_mut(&key) else {
            return;
        };
        if ks.timer != Some(due) {
            return; // stale
        }
        // Sessions do not overlap, so their ends ascend with their starts.
        let n = ks
            .open
            .partition_point(|(_, e, _)| e.saturating_add(lateness) <= due);
        for (start, end, acc) in ks.open.drain(..n) {
            self.fired.push(WindowResult {
                key: key.clone(),
                window_start: start,
                window_end: end,
                value: self.agg.finish(acc),
            });
        }
        match ks.open.first() {
            None => {
                self.sessions.remove(&key);
            }
            Some((_, end, _)) => {
                let next = end.saturating_add(lateness);
                ks.timer = Some(next);
                self.timers.entry(next).or_default().push(key);
            }
        }
    }
}

/// The open sessions of one key, by start (they neither overlap nor touch),
/// and when the key's next timer is due. The first session is stored inline,
/// in the hash map entry: most keys have one.
struct KeySessions<Acc> {
    open: SmallVec<[(u64, u64, Acc); 1]>,
    timer: Option<Time>,
}

impl<Acc> Default for KeySessions<Acc> {
    fn default() -> Self {
        KeySessions {
            open: SmallVec::new(),
            timer: None,
        }
    }
}

impl<Acc> KeySessions<Acc> {
    /// The index range of the sessions `[lo, hi)` overlaps or touches.
    fn overlapping(&self, lo: u64, hi: u64) -> (usize, usize) {
        let first = self.open.partition_point(|(_, e, _)| *e < lo);
        let last = self.open.partition_point(|(s, _, _)| *s <= hi);
        (first, last.max(first))
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    use timely::dataflow::operators::capture::{Capture, Extract};
    use timely::dataflow::operators::Input;

    use super::*;

    struct Count;
    impl Aggregator<u32> for Count {
        type Acc = u64;
        type Out = u64;
        fn init(&self) -> u64 {
            0
        }
        fn add(&self, acc: &mut u64, _: &u32) {
            *acc += 1;
        }
        fn merge(&self, acc: &mut u64, other: &u64) {
            *acc += other;
        }
        fn finish(&self, acc: u64) -> u64 {
            acc
        }
    }

    type Batch = (Time, Vec<(Time, (u8, u32))>);
    /// `(key, start, end, count)` per window, and the late event times.
    type Outcome = (Vec<(u8, u64, u64, u64)>, Vec<Time>);

    /// Runs a window stage over batches sent at the given watermarks; returns
    /// `(key, start, end, count)` results and late event times.
    fn run(assigner: Assigner, lateness: u64, batches: Vec<Batch>) -> Outcome {
        let config = WindowConfig {
            assigner,
            allowed_lateness: lateness,
        };
        let (results, late) = timely::example(move |scope| {
            let (mut input, stream) = scope.new_input::<Vec<(Time, (u8, u32))>>();
            let (results, late) =
                stream.window_aggregate(config, Count, Arc::new(AtomicU64::new(0)));
            for (time, records) in batches {
                input.advance_to(time);
                for r in records {
                    input.send(r);
                }
            }
            (results.capture(), late.capture())
        });
        let mut results: Vec<_> = results
            .extract()
            .into_iter()
            .flat_map(|(_, d)| d)
            .map(|(_, r)| (r.key, r.window_start, r.window_end, r.value))
            .collect();
        results.sort();
        let mut late: Vec<_> = late
            .extract()
            .into_iter()
            .flat_map(|(_, d)| d)
            .map(|(ts, _)| ts)
            .collect();
        late.sort();
        (results, late)
    }

    #[test]
    fn a_window_ending_at_the_watermark_has_fired() {
        let tumbling = Assigner::Tumbling { size: 10 };
        // At watermark 10, [0, 10) has fired: ts 5 is late; at 9 it is not.
        let (results, late) = run(
            tumbling,
            0,
            vec![(0, vec![(1, (0, 0))]), (10, vec![(5, (0, 0))])],
        );
        assert_eq!((results, late), (vec![(0, 0, 10, 1)], vec![5]));
        let (results, late) = run(
            tumbling,
            0,
            vec![(0, vec![(1, (0, 0))]), (9, vec![(5, (0, 0))])],
        );
        assert_eq!((results, late), (vec![(0, 0, 10, 2)], vec![]));
        // Allowed lateness keeps the window open until end + lateness.
        let (results, late) = run(
            tumbling,
            3,
            vec![(0, vec![(1, (0, 0))]), (12, vec![(5, (0, 0))])],
        );
        assert_eq!((results, late), (vec![(0, 0, 10, 2)], vec![]));
    }

    #[test]
    fn session_record_is_late_only_if_it_reaches_no_open_session() {
        let session = Assigner::Session { gap: 10 };
        // [10, 20) has ended at watermark 20 and nothing is open: late.
        let (_, late) = run(session, 0, vec![(20, vec![(10, (0, 0))])]);
        assert_eq!(late, vec![10]);
        // Same record, but a session [15, 25) is open and [10, 20) overlaps it.
        let (results, late) = run(
            session,
            0,
            vec![(0, vec![(15, (0, 0))]), (20, vec![(10, (0, 0))])],
        );
        assert_eq!((results, late), (vec![(0, 10, 25, 2)], vec![]));
        // Two records of one watermark: 19 opens [19, 29), which 9's session
        // [9, 19) touches; accepted whatever the order.
        for order in [
            vec![(9, (0, 0)), (19, (0, 0))],
            vec![(19, (0, 0)), (9, (0, 0))],
        ] {
            let (results, late) = run(session, 0, vec![(19, order)]);
            assert_eq!((results, late), (vec![(0, 9, 29, 2)], vec![]));
        }
    }

    #[test]
    fn a_window_due_before_a_record_s_watermark_stays_done_without_records() {
        let sliding = Assigner::Sliding {
            size: 132,
            slide: 44,
        };
        // ts 887 is in [792, 924), [836, 968) and [880, 1012); at watermark
        // 970 with lateness 22 the first is due (946), though it never had
        // a record: 887 counts in the other two only.
        let (results, late) = run(
            sliding,
            22,
            vec![
                (0, vec![(1000, (0, 0)), (1007, (0, 0))]),
                (970, vec![(887, (3, 0))]),
            ],
        );
        assert_eq!(
            (results, late),
            (
                vec![
                    (0, 880, 1012, 2),
                    (0, 924, 1056, 2),
                    (0, 968, 1100, 2),
                    (3, 836, 968, 1),
                    (3, 880, 1012, 1)
                ],
                vec![]
            )
        );
    }

    #[test]
    fn sliding_record_counts_only_in_open_windows() {
        let sliding = Assigner::Sliding {
            size: 20,
            slide: 10,
        };
        // ts 15 is in [0, 20) and [10, 30). At watermark 20, [0, 20) has
        // fired, so it counts in [10, 30) only.
        let (results, late) = run(
            sliding,
            0,
            vec![(0, vec![(5, (0, 0))]), (20, vec![(15, (0, 0))])],
        );
        assert_eq!(
            (results, late),
            (vec![(0, 0, 20, 1), (0, 10, 30, 1)], vec![])
        );
    }
}
