//! Session windows: per key, a small sorted vector of open sessions and one
//! live timer, merging sessions as records bridge them (Flink-style:
//! `[t, t + gap)` per record, windows that overlap or touch merge).

use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::{Keyed, WindowEmit, WindowResult};
use crate::key_groups::by_key_group;
use crate::lifecycle::{Emit, GroupStates, Lifecycle};
use crate::{Aggregator, Time};
use weir_engine::BoxError;

/// The window state of a session window operator.
pub(super) struct Sessions<K, V, A: Aggregator<V>> {
    gap: u64,
    lateness: u64,
    agg: A,
    /// Per key, the open sessions and the key's timer.
    sessions: FxHashMap<K, KeySessions<A::Acc>>,
    /// Keys to look at, by time. A key has at most one live timer (the one
    /// its `KeySessions::timer` names), no later than its first session's
    /// `end + allowed_lateness`; others are stale.
    timers: BTreeMap<Time, Vec<K>>,
    /// Sessions fired by one `fire_until`, sent in order of their ends.
    fired: Vec<WindowResult<K, A::Out>>,
    _records: PhantomData<fn(V)>,
}

impl<K: Hash + Eq + Clone, V, A: Aggregator<V>> Sessions<K, V, A> {
    /// Sessions closed by `gap` without records.
    pub(super) fn new(gap: u64, lateness: u64, agg: A) -> Self {
        Sessions {
            gap,
            lateness,
            agg,
            sessions: FxHashMap::default(),
            timers: BTreeMap::new(),
            fired: Vec::new(),
            _records: PhantomData,
        }
    }

    /// True if `[ts, ts + gap)` overlaps or touches an open session of `key`.
    fn overlaps(&self, key: &K, ts: u64) -> bool {
        self.sessions.get(key).is_some_and(|ks| {
            let (first, last) = ks.overlapping(ts, ts.saturating_add(self.gap));
            first < last
        })
    }

    /// Adds a record's session `[ts, ts + gap)` to `key`'s sessions, merging
    /// every session it overlaps or touches.
    fn merge(&mut self, ts: u64, key: K, value: V) {
        let (lo, hi) = (ts, ts.saturating_add(self.gap));
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
        let due = end.saturating_add(self.lateness);
        if ks.timer.is_none_or(|t| due < t) {
            ks.timer = Some(due);
            self.timers.entry(due).or_default().push(key);
        }
    }

    /// Fires every session due at or before `time`, and sends them in order
    /// of their ends, each at its own event time `end − 1`.
    fn fire_until(&mut self, time: Time, out: &mut WindowEmit<K, V, A::Out>) {
        while let Some(entry) = self.timers.first_entry() {
            if *entry.key() > time {
                break;
            }
            let (due, keys) = entry.remove_entry();
            for key in keys {
                self.fire(key, due);
            }
        }
        if !self.fired.is_empty() {
            self.fired.sort_by_key(|r| r.window_end);
            for r in self.fired.drain(..) {
                out.give(r.window_end - 1, (r.window_end - 1, r));
            }
        }
    }

    /// Fires `key`'s sessions due at `due` if this is its live timer, and
    /// sets the timer for the next one.
    fn fire(&mut self, key: K, due: Time) {
        let lateness = self.lateness;
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

impl<K, V, A> Lifecycle for Sessions<K, V, A>
where
    K: Hash + Eq + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: 'static,
    A: Aggregator<V>,
{
    type In = Keyed<K, V>;
    type Out = (Time, WindowResult<K, A::Out>);
    type Late = Keyed<K, V>;

    /// A record above its watermark (`ts > time`) can be applied at once.
    /// Its session `[ts, ts + gap)` is not late, and only merges with
    /// sessions ending at or after `ts`, which cannot be due by `time`. A
    /// record of an earlier timestamp applied later decides whether it is
    /// late by the sessions it overlaps: those ending before its own
    /// `ts' + gap < time < ts`, which this record can neither reach nor
    /// extend, so that decision does not change either.
    #[inline]
    fn ready(&self, time: Time, _frontier: Option<Time>, (ts, _): &Keyed<K, V>) -> bool {
        *ts > time
    }

    #[inline]
    fn on_record(
        &mut self,
        _time: Time,
        (ts, (key, value)): Keyed<K, V>,
        _out: &mut Emit<Self::Out, Self::Late>,
    ) {
        self.merge(ts, key, value);
    }

    /// A record whose own session window has ended is late unless it
    /// overlaps an open session, perhaps one that another record of this
    /// timestamp opened or extended: repeated until nothing changes, so that
    /// the outcome does not depend on the order of the records.
    fn on_records(
        &mut self,
        time: Time,
        records: Vec<Keyed<K, V>>,
        out: &mut Emit<Self::Out, Self::Late>,
    ) {
        self.fire_until(time, out);
        let mut candidates = Vec::new();
        for (ts, (key, value)) in records {
            if ts.saturating_add(self.gap).saturating_add(self.lateness) > time {
                self.merge(ts, key, value);
            } else {
                candidates.push((ts, (key, value)));
            }
        }
        loop {
            let before = candidates.len();
            let mut still = Vec::with_capacity(before);
            for (ts, (key, value)) in candidates {
                if self.overlaps(&key, ts) {
                    self.merge(ts, key, value);
                } else {
                    still.push((ts, (key, value)));
                }
            }
            candidates = still;
            if candidates.len() == before {
                break;
            }
        }
        for record in candidates {
            out.late(time, record);
        }
    }

    fn on_watermark(&mut self, watermark: Time, out: &mut Emit<Self::Out, Self::Late>) {
        self.fire_until(watermark, out);
    }

    fn next_output(&self) -> Option<Time> {
        let due = *self.timers.keys().next()?;
        Some(due.saturating_sub(self.lateness).saturating_sub(1))
    }

    /// Per key group, each key's open sessions `(start, end, accumulator)`.
    fn snapshot(&self, _checkpoint: Time) -> Result<GroupStates, BoxError> {
        by_key_group(
            self.sessions
                .iter()
                .map(|(key, ks)| (key, (key, &ks.open[..]))),
        )
    }

    /// Each key's timer is its first session's end (plus the allowed
    /// lateness): every earlier one had fired by the checkpoint.
    fn restore(&mut self, _checkpoint: Time, _group: u32, state: &[u8]) -> Result<(), BoxError> {
        let entries: Vec<KeyState<K, A::Acc>> = bincode::deserialize(state)?;
        for (key, open) in entries {
            let Some(&(_, end, _)) = open.first() else {
                continue;
            };
            let due = end.saturating_add(self.lateness);
            self.timers.entry(due).or_default().push(key.clone());
            let open = open.into_iter().collect();
            self.sessions.insert(
                key,
                KeySessions {
                    open,
                    timer: Some(due),
                },
            );
        }
        Ok(())
    }
}

/// A key and its open sessions `(start, end, accumulator)`, as saved.
type KeyState<K, Acc> = (K, Vec<(u64, u64, Acc)>);

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
