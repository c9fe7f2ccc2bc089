//! Interval join of two keyed streams with event time.
//!
//! A left record `a` and a right record `b` with equal keys match when
//! `a.ts + lower <= b.ts <= a.ts + upper`. As in [`crate::window`], records
//! stamped `t` are applied once the frontiers have passed `t`, in timestamp
//! order, left before right; a record whose event time is below its own
//! watermark (`ts < t`) is late and joins nothing. Every future record then
//! has an event time at or above the timestamp being applied, so a stored
//! record is dropped as soon as no future record can match it.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::key_groups::by_key_group;
use crate::lifecycle::{Emit, GroupStates, Lifecycle, Side, Stateful};
use crate::{Time, VecStream};
use weir_engine::BoxError;

/// Joins keyed streams on an event-time interval.
pub trait IntervalJoin<'scope, K, A> {
    /// Pairs `(key, left, right)` with `left.ts + lower <= right.ts <=
    /// left.ts + upper`, each pair once, with event time the later of the
    /// two. Both inputs must be partitioned by key. Late records are counted
    /// in `late`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{atomic::AtomicU64, Arc};
    /// use timely::dataflow::operators::{ToStream, capture::{Capture, Extract}};
    /// use weir_operators::join::IntervalJoin;
    ///
    /// let out = timely::example(|scope| {
    ///     let left = vec![(10, ('k', 10u32)), (50, ('k', 50))].to_stream(scope).container::<Vec<_>>();
    ///     let right = vec![(12, ('k', 12u32)), (70, ('k', 70))].to_stream(scope).container::<Vec<_>>();
    ///     left.interval_join(right, 0, 5, Arc::new(AtomicU64::new(0))).capture()
    /// });
    /// let pairs: Vec<_> = out.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// assert_eq!(pairs, vec![(12, ('k', 10, 12))]);
    /// ```
    fn interval_join<B>(
        self,
        other: VecStream<'scope, (Time, (K, B))>,
        lower: i64,
        upper: i64,
        late: Arc<AtomicU64>,
    ) -> VecStream<'scope, (Time, (K, A, B))>
    where
        B: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static;

    /// As [`interval_join`](IntervalJoin::interval_join), started as
    /// `start` says (restored from a checkpoint, taking checkpoints).
    fn interval_join_from<B>(
        self,
        other: VecStream<'scope, (Time, (K, B))>,
        lower: i64,
        upper: i64,
        late: Arc<AtomicU64>,
        start: crate::Start<'scope>,
    ) -> VecStream<'scope, (Time, (K, A, B))>
    where
        B: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static;
}

impl<'scope, K, A> IntervalJoin<'scope, K, A> for VecStream<'scope, (Time, (K, A))>
where
    K: Hash + Eq + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    A: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn interval_join<B>(
        self,
        other: VecStream<'scope, (Time, (K, B))>,
        lower: i64,
        upper: i64,
        late: Arc<AtomicU64>,
    ) -> VecStream<'scope, (Time, (K, A, B))>
    where
        B: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        self.interval_join_from(other, lower, upper, late, crate::Start::default())
    }

    fn interval_join_from<B>(
        self,
        other: VecStream<'scope, (Time, (K, B))>,
        lower: i64,
        upper: i64,
        late: Arc<AtomicU64>,
        start: crate::Start<'scope>,
    ) -> VecStream<'scope, (Time, (K, A, B))>
    where
        B: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    {
        let state = JoinState::<K, A, B> {
            lower,
            upper,
            left: Stored::default(),
            right: Stored::default(),
        };
        let (pairs, _late) = Stateful::binary_from(self, other, "IntervalJoin", state, late, start);
        pairs
    }
}

/// The state of one interval join operator: the stored records of both
/// sides. Every record waits for the frontier to pass its timestamp.
struct JoinState<K, A, B> {
    lower: i64,
    upper: i64,
    left: Stored<K, A>,
    right: Stored<K, B>,
}

/// The stored records of one side, by key, with an index of when they
/// stop being useful.
struct Stored<K, V> {
    records: FxHashMap<K, Vec<(Time, V)>>,
    /// Keys holding a record that is useless once the time passes the key.
    expiry: BTreeMap<Time, FxHashSet<K>>,
}

impl<K, V> Default for Stored<K, V> {
    fn default() -> Self {
        Stored {
            records: FxHashMap::default(),
            expiry: BTreeMap::new(),
        }
    }
}

impl<K: Hash + Eq + Clone, V> Stored<K, V> {
    /// The records of `key`.
    fn of(&self, key: &K) -> &[(Time, V)] {
        self.records.get(key).map_or(&[], Vec::as_slice)
    }

    /// Stores a record that can match nothing stamped after `until`.
    fn insert(&mut self, key: K, ts: Time, value: V, until: i128) {
        self.expiry
            .entry(clamp(until))
            .or_default()
            .insert(key.clone());
        self.records.entry(key).or_default().push((ts, value));
    }

    /// Drops the records that can match nothing stamped `time` or later;
    /// `until` gives that last useful time of a record's event time.
    fn expire(&mut self, time: Time, until: impl Fn(Time) -> i128) {
        while let Some(entry) = self.expiry.first_entry() {
            if *entry.key() >= time {
                break;
            }
            for key in entry.remove() {
                if let Some(records) = self.records.get_mut(&key) {
                    records.retain(|(ts, _)| until(*ts) >= i128::from(time));
                    if records.is_empty() {
                        self.records.remove(&key);
                    }
                }
            }
        }
    }
}

impl<K: Hash + Eq + Clone, A: Clone, B: Clone> JoinState<K, A, B> {
    /// True if a left record at `ta` matches a right record at `tb`.
    fn matches(&self, ta: Time, tb: Time) -> bool {
        let (ta, tb) = (i128::from(ta), i128::from(tb));
        ta + i128::from(self.lower) <= tb && tb <= ta + i128::from(self.upper)
    }
}

impl<K, A, B> Lifecycle for JoinState<K, A, B>
where
    K: Hash + Eq + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    A: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    B: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    type In = Side<(Time, (K, A)), (Time, (K, B))>;
    type Out = (Time, (K, A, B));
    type Late = Side<(Time, (K, A)), (Time, (K, B))>;

    fn on_record(&mut self, time: Time, record: Self::In, out: &mut Emit<Self::Out, Self::Late>) {
        self.on_records(time, vec![record], out);
    }

    /// Applies the records stamped `time`, lefts before rights; pairs go out
    /// at `time`.
    fn on_records(
        &mut self,
        time: Time,
        records: Vec<Self::In>,
        out: &mut Emit<Self::Out, Self::Late>,
    ) {
        let (lower, upper) = (i128::from(self.lower), i128::from(self.upper));
        // The last event time of a right record a left record at `ts` can
        // match, and of a left record a right record at `ts` can match.
        let left_until = move |ts: Time| i128::from(ts) + upper;
        let right_until = move |ts: Time| i128::from(ts) - lower;
        self.left.expire(time, left_until);
        self.right.expire(time, right_until);
        let mut rights = Vec::new();
        for record in records {
            let (ts, (key, a)) = match record {
                Side::Left(left) => left,
                Side::Right(right) => {
                    rights.push(right);
                    continue;
                }
            };
            if ts < time {
                out.late(time, Side::Left((ts, (key, a))));
                continue;
            }
            for (tb, b) in self.right.of(&key) {
                if self.matches(ts, *tb) {
                    out.give(time, (ts.max(*tb), (key.clone(), a.clone(), b.clone())));
                }
            }
            self.left.insert(key, ts, a, left_until(ts));
        }
        for (ts, (key, b)) in rights {
            if ts < time {
                out.late(time, Side::Right((ts, (key, b))));
                continue;
            }
            for (ta, a) in self.left.of(&key) {
                if self.matches(*ta, ts) {
                    out.give(time, (ts.max(*ta), (key.clone(), a.clone(), b.clone())));
                }
            }
            self.right.insert(key, ts, b, right_until(ts));
        }
    }

    /// Stored records need no capability: they produce output only when a
    /// later record arrives.
    fn next_output(&self) -> Option<Time> {
        None
    }

    /// Per key group, each key's stored left and right records.
    fn snapshot(&self, _checkpoint: Time) -> Result<GroupStates, BoxError> {
        let lefts = self.left.records.keys();
        let rights = (self.right.records.keys()).filter(|k| !self.left.records.contains_key(*k));
        by_key_group(
            lefts
                .chain(rights)
                .map(|key| (key, (key, self.left.of(key), self.right.of(key)))),
        )
    }

    fn restore(&mut self, _checkpoint: Time, _group: u32, state: &[u8]) -> Result<(), BoxError> {
        let entries: Vec<JoinKeyState<K, A, B>> = bincode::deserialize(state)?;
        let (lower, upper) = (i128::from(self.lower), i128::from(self.upper));
        for (key, lefts, rights) in entries {
            for (ts, a) in lefts {
                self.left.insert(key.clone(), ts, a, i128::from(ts) + upper);
            }
            for (ts, b) in rights {
                self.right
                    .insert(key.clone(), ts, b, i128::from(ts) - lower);
            }
        }
        Ok(())
    }
}

/// A key and its stored left and right records, as saved.
type JoinKeyState<K, A, B> = (K, Vec<(Time, A)>, Vec<(Time, B)>);

fn clamp(t: i128) -> Time {
    t.clamp(0, i128::from(Time::MAX)) as Time
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use timely::dataflow::operators::Input;
    use timely::dataflow::operators::capture::{Capture, Extract};

    use super::*;

    /// Left and right batches `(watermark, [(ts, id)])`, all with key 0.
    type Batches = Vec<(Time, Vec<(Time, u32)>)>;

    fn run(lower: i64, upper: i64, left: Batches, right: Batches) -> (Vec<(u32, u32)>, u64) {
        let late = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&late);
        let out = timely::example(move |scope| {
            let (mut l, ls) = scope.new_input::<Vec<(Time, (u8, u32))>>();
            let (mut r, rs) = scope.new_input::<Vec<(Time, (u8, u32))>>();
            let out = ls.interval_join(rs, lower, upper, counted).capture();
            // (watermark, left?, records), in watermark order.
            let mut batches: Vec<_> = left
                .into_iter()
                .map(|(t, b)| (t, true, b))
                .chain(right.into_iter().map(|(t, b)| (t, false, b)))
                .collect();
            batches.sort_by_key(|b| b.0);
            for (time, is_left, records) in batches {
                l.advance_to(time);
                r.advance_to(time);
                for (ts, id) in records {
                    if is_left {
                        l.send((ts, (0, id)));
                    } else {
                        r.send((ts, (0, id)));
                    }
                }
            }
            out
        });
        let mut pairs: Vec<(u32, u32)> = out
            .extract()
            .into_iter()
            .flat_map(|(_, d)| d)
            .map(|(_, (_, a, b))| (a, b))
            .collect();
        pairs.sort();
        (pairs, late.load(Ordering::Relaxed))
    }

    #[test]
    fn a_record_is_kept_until_the_last_time_it_can_match() {
        // a at 10 matches b in [10, 15]; b arrives stamped 15 at 15: a must
        // still be there.
        let (pairs, late) = run(0, 5, vec![(0, vec![(10, 1)])], vec![(15, vec![(15, 2)])]);
        assert_eq!((pairs, late), (vec![(1, 2)], 0));
        // The same when an older record of the key expires first.
        let (pairs, _) = run(
            0,
            5,
            vec![(0, vec![(5, 0), (10, 1)])],
            vec![(15, vec![(15, 2)])],
        );
        assert_eq!(pairs, vec![(1, 2)]);
        // One past the interval: no pair.
        let (pairs, _) = run(0, 5, vec![(0, vec![(10, 1)])], vec![(16, vec![(16, 2)])]);
        assert!(pairs.is_empty());
        // Negative bounds: b at 7 matches a at 10 with lower = -3; b is kept
        // until a record stamped 10 comes.
        let (pairs, _) = run(-3, 0, vec![(10, vec![(10, 1)])], vec![(0, vec![(7, 2)])]);
        assert_eq!(pairs, vec![(1, 2)]);
    }

    #[test]
    fn records_below_their_watermark_are_late() {
        let (pairs, late) = run(
            0,
            100,
            vec![(0, vec![(10, 1)])],
            vec![(20, vec![(19, 2), (20, 3)])],
        );
        assert_eq!((pairs, late), (vec![(1, 3)], 1));
    }

    mod restore {
        use proptest::prelude::*;

        use super::*;
        use crate::KeyGroups;
        use crate::lifecycle::{by_time_and_owner, with_and_without_checkpoint};

        type State = JoinState<u8, u16, u16>;
        type Pairs = Vec<(Time, (u8, u16, u16))>;
        /// `(ts, key, id, is_left)`.
        type Record = (Time, u8, u16, bool);

        fn fresh(lower: i64, upper: i64) -> State {
            JoinState {
                lower,
                upper,
                left: Stored::default(),
                right: Stored::default(),
            }
        }

        /// Joins the records with `from <= ts < until` (sorted by `ts`, each
        /// stamped with its own time) on the operator owning each key's group.
        fn run(ops: &mut [State], records: &[Record], from: Time, until: Time) -> Pairs {
            let mut emit = Emit::for_test();
            let group = |r: &Record| KeyGroups::group_of(&r.1);
            for (t, batches) in by_time_and_owner(records, from..until, |r| r.0, group, ops.len()) {
                for (op, batch) in ops.iter_mut().zip(batches) {
                    let batch: Vec<_> = batch
                        .into_iter()
                        .map(|&(ts, key, id, left)| {
                            if left {
                                Side::Left((ts, (key, id)))
                            } else {
                                Side::Right((ts, (key, id)))
                            }
                        })
                        .collect();
                    if !batch.is_empty() {
                        op.on_records(t, batch, &mut emit);
                    }
                }
            }
            emit.take_out()
        }

        proptest! {
            /// An interval join's stored records saved at a checkpoint and
            /// restored on 1-3 operators by key group give the pairs of a
            /// run without the checkpoint.
            #[test]
            fn restored_join_continues_as_if_never_stopped(
                mut records in prop::collection::vec((0u64..1_000, 0u8..8, any::<u16>(), any::<bool>()), 0..150),
                (lower, upper) in prop_oneof![Just((0i64, 50i64)), Just((-30, 30)), Just((-100, 0))],
                checkpoint in 1u64..1_000,
                workers in 1usize..4,
            ) {
                records.sort_by_key(|r| r.0);
                let (got, expected) = with_and_without_checkpoint(
                    || fresh(lower, upper),
                    checkpoint,
                    workers,
                    |ops, from, until| run(ops, &records, from, until),
                );
                prop_assert_eq!(got, expected);
            }
        }
    }
}
