//! Tumbling and sliding windows: one accumulator per key and pane.
//!
//! A pane is the greatest common divisor of size and slide. Each pane start
//! has one hash map of accumulators shared by all keys: a record is added to
//! one pane only, windows fire in order of their ends by merging their panes
//! (panes no later window needs are moved, not copied), and those panes are
//! then freed, so state follows the open windows.

use std::collections::BTreeMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::marker::PhantomData;

use rustc_hash::FxHashMap;

use super::{Keyed, WindowEmit, WindowResult};
use crate::key_groups::by_key_group;
use crate::lifecycle::{Emit, GroupStates, Lifecycle};
use crate::{Aggregator, Time};
use weir_engine::BoxError;

/// The window state of a tumbling or sliding window operator.
pub(super) struct Panes<K, V, A: Aggregator<V>> {
    size: u64,
    slide: u64,
    /// `gcd(size, slide)`.
    pane: u64,
    lateness: u64,
    agg: A,
    /// Per pane start, an accumulator per key.
    panes: BTreeMap<u64, FxHashMap<K, A::Acc>>,
    /// Keys of the last window fired: a new pane's map starts with room for
    /// as many, rather than growing (and rehashing) from empty.
    last_keys: usize,
    /// The greatest time windows have fired up to: every window with
    /// `end + allowed_lateness` at or below it is done, records or not.
    fired_until: Option<Time>,
    _records: PhantomData<fn(V)>,
}

impl<K: Hash + Eq + Clone, V, A: Aggregator<V>> Panes<K, V, A> {
    /// Windows of `size` every `slide` (`slide == size` for tumbling).
    pub(super) fn new(size: u64, slide: u64, lateness: u64, agg: A) -> Self {
        Panes {
            size,
            slide,
            pane: gcd(size, slide),
            lateness,
            agg,
            panes: BTreeMap::new(),
            last_keys: 0,
            fired_until: None,
            _records: PhantomData,
        }
    }

    /// Whether a record stamped `time` is late: every window holding it
    /// fires at or before `time`.
    fn is_late(&self, time: Time, ts: u64) -> bool {
        let last_start = ts - ts % self.slide;
        (last_start + self.size).saturating_add(self.lateness) <= time
    }

    /// Adds a record to its pane.
    #[inline]
    fn add(&mut self, ts: u64, key: K, value: V) {
        let (agg, keys) = (&self.agg, self.last_keys);
        let acc = self
            .panes
            .entry(ts - ts % self.pane)
            .or_insert_with(|| new_pane(keys))
            .entry(key)
            .or_insert_with(|| agg.init());
        agg.add_owned(acc, value);
    }

    /// The next window to fire: the first one holding the oldest pane and
    /// not done yet, as `(start, end)`.
    fn next_window(&self) -> Option<(u64, u64)> {
        let (size, slide) = (self.size, self.slide);
        let oldest = *self.panes.keys().next()?;
        let first = (oldest + 1).saturating_sub(size).div_ceil(slide) * slide;
        // The first window not done: `start + size + lateness > fired_until`.
        let open = self.fired_until.map_or(0, |t| {
            t.saturating_add(1)
                .saturating_sub(size)
                .saturating_sub(self.lateness)
                .div_ceil(slide)
                .saturating_mul(slide)
        });
        let start = first.max(open);
        Some((start, start.saturating_add(size)))
    }

    /// Fires every window due at or before `time`, in order of their ends.
    fn fire_until(&mut self, time: Time, out: &mut WindowEmit<K, V, A::Out>) {
        while let Some((start, end)) = self.next_window() {
            let fire = end.saturating_add(self.lateness);
            if fire > time {
                break;
            }
            self.fire_window(start, end, out);
            // Windows fire in order of their ends: every window due by this
            // one's time is done.
            self.fired_until = Some(self.fired_until.map_or(fire, |t| t.max(fire)));
        }
        self.fired_until = Some(self.fired_until.map_or(time, |t| t.max(time)));
    }

    /// Fires the window `[start, end)` for every key with records in it, and
    /// frees the panes no later window holds. Results go out at their own
    /// event time `end − 1`, so that a window stage downstream sees them on
    /// time.
    fn fire_window(&mut self, start: u64, end: u64, out: &mut WindowEmit<K, V, A::Out>) {
        // Panes before the next window's start are merged by moving them,
        // the others by reference.
        let keep = self.panes.split_off(&(start + self.slide));
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
        self.last_keys = windows.len();
        for (key, acc) in windows {
            let result = WindowResult {
                key,
                window_start: start,
                window_end: end,
                value: self.agg.finish(acc),
            };
            out.give(end - 1, (end - 1, result));
        }
    }
}

impl<K, V, A> Lifecycle for Panes<K, V, A>
where
    K: Hash + Eq + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: 'static,
    A: Aggregator<V>,
{
    type In = Keyed<K, V>;
    type Out = (Time, WindowResult<K, A::Out>);
    type Late = Keyed<K, V>;

    /// A record whose first window ends (plus the allowed lateness) after
    /// `time` — every record at or above its watermark — can be applied at
    /// once: none of its windows has fired or may fire before `time`.
    #[inline]
    fn ready(&self, time: Time, _frontier: Option<Time>, (ts, _): &Keyed<K, V>) -> bool {
        let ts = *ts;
        if ts >= time {
            return true;
        }
        // The first window holding `ts` starts at the least multiple of
        // `slide` above `ts − size`.
        let first = (ts + 1).saturating_sub(self.size).div_ceil(self.slide) * self.slide;
        (first + self.size).saturating_add(self.lateness) > time
    }

    #[inline]
    fn on_record(
        &mut self,
        _time: Time,
        (ts, (key, value)): Keyed<K, V>,
        _out: &mut Emit<Self::Out, Self::Late>,
    ) {
        self.add(ts, key, value);
    }

    fn on_records(
        &mut self,
        time: Time,
        records: Vec<Keyed<K, V>>,
        out: &mut Emit<Self::Out, Self::Late>,
    ) {
        self.fire_until(time, out);
        for (ts, (key, value)) in records {
            if self.is_late(time, ts) {
                out.late(time, (ts, (key, value)));
            } else {
                self.add(ts, key, value);
            }
        }
    }

    fn on_watermark(&mut self, watermark: Time, out: &mut Emit<Self::Out, Self::Late>) {
        self.fire_until(watermark, out);
    }

    fn next_output(&self) -> Option<Time> {
        self.next_window().map(|(_, end)| end - 1)
    }

    /// Per key group, the `(pane start, key, accumulator)` of its keys.
    fn snapshot(&self, _checkpoint: Time) -> Result<GroupStates, BoxError> {
        by_key_group(
            self.panes.iter().flat_map(|(&pane, accs)| {
                accs.iter().map(move |(key, acc)| (key, (pane, key, acc)))
            }),
        )
    }

    fn restore(&mut self, checkpoint: Time, _group: u32, state: &[u8]) -> Result<(), BoxError> {
        let entries: Vec<(u64, K, A::Acc)> = bincode::deserialize(state)?;
        for (pane, key, acc) in entries {
            self.panes.entry(pane).or_default().insert(key, acc);
        }
        // Every window due by the checkpoint had fired when it was taken.
        self.fired_until = Some(self.fired_until.map_or(checkpoint, |t| t.max(checkpoint)));
        Ok(())
    }
}

/// A pane's map with room for `keys` keys; out of line, so that `add` stays
/// small enough to inline the aggregator's `add`.
#[cold]
#[inline(never)]
fn new_pane<K, V>(keys: usize) -> FxHashMap<K, V> {
    FxHashMap::with_capacity_and_hasher(keys, Default::default())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}
