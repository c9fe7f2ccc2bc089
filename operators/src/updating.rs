//! Keyed aggregation without windows: an updating result per key.
//!
//! Records are folded into per-key state in timestamp order. When the input
//! frontier passes a timestamp, every key that changed at it emits a
//! retraction of its previous result (`diff = -1`) and its new result
//! (`diff = +1`): a changelog, as a materialised view would see it.

use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::operators::arrange::arrangement::{Arranged, arrange_core};
use differential_dataflow::trace::implementations::{ValBatcher, ValBuilder, ValSpine};
use rustc_hash::FxHashMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use timely::ExchangeData;
use timely::dataflow::channels::pact::{Exchange as ExchangePact, Pipeline};
use timely::dataflow::operators::generic::Operator;

use crate::keep::{Acks, at_own_times, keep, takes_part};
use crate::key_groups::by_key_group;
use crate::lifecycle::{Emit, GroupStates, Lifecycle, Stateful};
use crate::{KeyGroups, Time, VecStream};
use weir_engine::BoxError;

/// One change of a keyed result: `value` is added (`diff = 1`) or retracted
/// (`diff = -1`) for `key`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Update<K, A> {
    /// The key.
    pub key: K,
    /// The result for the key.
    pub value: A,
    /// `1` when the value becomes current, `-1` when it stops being current.
    pub diff: i64,
}

/// Folds a stream of `(key, value)` pairs into an updating result per key.
pub trait UpdatingFold<'scope, K, V> {
    /// Folds each key's values into an accumulator that starts at `init()`,
    /// emitting a changelog of [`Update`]s as the input frontier advances. The
    /// input must already be partitioned by key (see
    /// [`KeyByGroup`](crate::KeyByGroup)). Values of one timestamp are
    /// folded in arrival order, so `fold` should not depend on their order.
    ///
    /// # Examples
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use weir_operators::updating::{Update, UpdatingFold};
    ///
    /// let out = timely::example(|scope| {
    ///     vec![('a', 1u64), ('b', 5), ('a', 2)]
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .updating_fold(|| 0u64, |acc, v| *acc += v)
    ///         .capture()
    /// });
    /// let mut changes: Vec<_> = out.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// changes.sort();
    /// assert_eq!(changes, vec![
    ///     Update { key: 'a', value: 3, diff: 1 },
    ///     Update { key: 'b', value: 5, diff: 1 },
    /// ]);
    /// ```
    fn updating_fold<A, I, F>(self, init: I, fold: F) -> VecStream<'scope, Update<K, A>>
    where
        A: ExchangeData + Clone + PartialEq,
        I: Fn() -> A + 'static,
        F: Fn(&mut A, V) + 'static;

    /// As [`updating_fold`](UpdatingFold::updating_fold), started as
    /// `start` says (restored from a checkpoint, taking checkpoints).
    fn updating_fold_from<A, I, F>(
        self,
        init: I,
        fold: F,
        start: crate::Start<'scope>,
    ) -> VecStream<'scope, Update<K, A>>
    where
        A: ExchangeData + Clone + PartialEq,
        I: Fn() -> A + 'static,
        F: Fn(&mut A, V) + 'static;
}

impl<'scope, K, V> UpdatingFold<'scope, K, V> for VecStream<'scope, (K, V)>
where
    K: ExchangeData + Hash + Eq + Clone,
    V: ExchangeData,
{
    fn updating_fold<A, I, F>(self, init: I, fold: F) -> VecStream<'scope, Update<K, A>>
    where
        A: ExchangeData + Clone + PartialEq,
        I: Fn() -> A + 'static,
        F: Fn(&mut A, V) + 'static,
    {
        self.updating_fold_from(init, fold, crate::Start::default())
    }

    fn updating_fold_from<A, I, F>(
        self,
        init: I,
        fold: F,
        start: crate::Start<'scope>,
    ) -> VecStream<'scope, Update<K, A>>
    where
        A: ExchangeData + Clone + PartialEq,
        I: Fn() -> A + 'static,
        F: Fn(&mut A, V) + 'static,
    {
        let state = FoldState {
            working: None,
            current: FxHashMap::default(),
            init,
            fold,
            _records: PhantomData,
        };
        // A fold has no late records: every record counts.
        let (changes, _late) =
            Stateful::unary_from(self, "UpdatingFold", state, Arc::default(), start);
        changes
    }
}

/// Each key touched at one time, with its previous result (if any) and its
/// result after folding that time's records.
type Touched<K, A> = FxHashMap<K, (Option<A>, A)>;

/// The state of one [`UpdatingFold`] operator.
struct FoldState<K, V, A, I, F> {
    /// The time being folded, with each touched key's previous and next
    /// result.
    working: Option<(Time, Touched<K, A>)>,
    /// The current (last emitted) result of each key.
    current: FxHashMap<K, A>,
    init: I,
    fold: F,
    _records: PhantomData<fn(V)>,
}

impl<K, V, A, I, F> FoldState<K, V, A, I, F>
where
    K: Hash + Eq + Clone,
    A: Clone + PartialEq,
    I: Fn() -> A,
    F: Fn(&mut A, V),
{
    /// Folds records stamped `time`, emitting an earlier working time first.
    fn fold_at(
        &mut self,
        time: Time,
        records: impl IntoIterator<Item = (K, V)>,
        out: &mut Emit<Update<K, A>, ()>,
    ) {
        if self.working.as_ref().is_some_and(|(t, _)| *t < time) {
            self.emit_working(out);
        }
        let (_, touched) = self
            .working
            .get_or_insert_with(|| (time, FxHashMap::default()));
        for (key, value) in records {
            let slot = touched.entry(key).or_insert_with_key(|k| {
                let prev = self.current.get(k).cloned();
                let next = prev.clone().unwrap_or_else(&self.init);
                (prev, next)
            });
            (self.fold)(&mut slot.1, value);
        }
    }

    /// Emits the changes of the working time: a retraction of each touched
    /// key's previous result and its new result, when they differ.
    fn emit_working(&mut self, out: &mut Emit<Update<K, A>, ()>) {
        let Some((time, touched)) = self.working.take() else {
            return;
        };
        for (key, (prev, next)) in touched {
            if prev.as_ref() == Some(&next) {
                continue;
            }
            if let Some(old) = prev {
                out.give(
                    time,
                    Update {
                        key: key.clone(),
                        value: old,
                        diff: -1,
                    },
                );
            }
            out.give(
                time,
                Update {
                    key: key.clone(),
                    value: next.clone(),
                    diff: 1,
                },
            );
            self.current.insert(key, next);
        }
    }
}

impl<K, V, A, I, F> Lifecycle for FoldState<K, V, A, I, F>
where
    K: Hash + Eq + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: 'static,
    A: Clone + PartialEq + serde::Serialize + serde::de::DeserializeOwned + 'static,
    I: Fn() -> A + 'static,
    F: Fn(&mut A, V) + 'static,
{
    type In = (K, V);
    type Out = Update<K, A>;
    type Late = ();

    /// Records at the least time still possible can be folded at once:
    /// nothing earlier can arrive. Later ones wait.
    #[inline]
    fn ready(&self, time: Time, frontier: Option<Time>, _: &(K, V)) -> bool {
        frontier == Some(time)
    }

    #[inline]
    fn on_record(&mut self, time: Time, record: (K, V), out: &mut Emit<Update<K, A>, ()>) {
        self.fold_at(time, Some(record), out);
    }

    fn on_records(&mut self, time: Time, records: Vec<(K, V)>, out: &mut Emit<Update<K, A>, ()>) {
        self.fold_at(time, records, out);
    }

    /// Emits the working time once the frontier has passed it.
    fn on_watermark(&mut self, watermark: Time, out: &mut Emit<Update<K, A>, ()>) {
        if self.working.as_ref().is_some_and(|(t, _)| *t < watermark) {
            self.emit_working(out);
        }
    }

    fn next_output(&self) -> Option<Time> {
        self.working.as_ref().map(|(t, _)| *t)
    }

    /// Per key group, each key's current result: every time before the
    /// checkpoint has been emitted into it, and a working time (at or after
    /// the checkpoint) is not part of it.
    fn snapshot(&self, _checkpoint: Time) -> Result<GroupStates, BoxError> {
        by_key_group(self.current.iter().map(|(key, a)| (key, (key, a))))
    }

    fn restore(&mut self, _checkpoint: Time, _group: u32, state: &[u8]) -> Result<(), BoxError> {
        let entries: Vec<(K, A)> = bincode::deserialize(state)?;
        self.current.extend(entries);
        Ok(())
    }
}

/// Counts keys with differential dataflow: the count of each key as a
/// changelog, consolidated per timestamp.
pub trait UpdatingCount<'scope, K> {
    /// Counts the records of each key, emitting, whenever a key's count
    /// changes at a timestamp, the retraction of the old count and the new
    /// count. The input must be partitioned by key group (see
    /// [`KeyByGroup`](crate::KeyByGroup)): the count is kept on the worker
    /// the record is on.
    ///
    /// # Examples
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use weir_operators::updating::{Update, UpdatingCount};
    ///
    /// let out = timely::example(|scope| {
    ///     vec!['a', 'b', 'a'].to_stream(scope).container::<Vec<_>>().updating_count().capture()
    /// });
    /// let mut changes: Vec<_> = out.extract().into_iter().flat_map(|(_, d)| d).collect();
    /// changes.sort();
    /// assert_eq!(changes, vec![
    ///     Update { key: 'a', value: 2, diff: 1 },
    ///     Update { key: 'b', value: 1, diff: 1 },
    /// ]);
    /// ```
    fn updating_count(self) -> VecStream<'scope, Update<K, u64>>;

    /// As [`updating_count`](UpdatingCount::updating_count), restored and
    /// taking checkpoints as `start` says (see [`crate::keep`]): the counts,
    /// and the acknowledgements the job's committer must watch (`None`
    /// without checkpoints).
    fn updating_count_from(
        self,
        start: crate::Start<'scope>,
    ) -> (VecStream<'scope, Update<K, u64>>, Option<Acks<'scope>>);
}

impl<'scope, K> UpdatingCount<'scope, K> for VecStream<'scope, K>
where
    K: ExchangeData + Hash + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned,
{
    fn updating_count(self) -> VecStream<'scope, Update<K, u64>> {
        self.updating_count_from(crate::Start::default()).0
    }

    fn updating_count_from(
        self,
        start: crate::Start<'scope>,
    ) -> (VecStream<'scope, Update<K, u64>>, Option<Acks<'scope>>) {
        use differential_dataflow::AsCollection;
        use timely::dataflow::operators::vec::Map;

        let mut kept = keep(
            &self,
            "Keep: Count",
            |k: K| (k, 1),
            KeyGroups::group_of,
            start,
        );
        let updates = updates_of(self.map(|key| (key, ())));
        let updates = kept.replay(updates.inner, |key| (key, ())).as_collection();
        let counts = arrange_local(updates, "Arrange: Count")
            .reduce_abelian::<_, ValBuilder<K, isize, Time, isize>, ValSpine<K, isize, Time, isize>, _, _>(
                "Count",
                |_key, records, out| out.push((records[0].1, 1)),
                |vec, key, updates| {
                    vec.clear();
                    vec.extend(updates.drain(..).map(|(v, t, r)| ((key.clone(), v), t, r)));
                },
            )
            .as_collection(|key, n| (key.clone(), *n))
            .inner;
        let counts = kept.output(counts).map(|((key, n), _, diff)| Update {
            key,
            value: n as u64,
            diff: diff as i64,
        });
        (counts, kept.into_acks())
    }
}

/// Arranges a collection of `(key, value)` updates on the worker they are
/// on: weir's keyed streams are already partitioned by key group (see
/// [`KeyByGroup`](crate::KeyByGroup)), so differential's own exchange by its
/// hash would be a second shuffle, and would put keyed state outside the key
/// groups that checkpoints save and restore.
fn arrange_local<'scope, K, V>(
    updates: Updates<'scope, (K, V)>,
    name: &str,
) -> Arranged<'scope, TraceAgent<ValSpine<K, V, Time, isize>>>
where
    K: ExchangeData + Ord + Clone,
    V: ExchangeData + Ord + Clone,
{
    arrange_core::<_, _, ValBatcher<K, V, Time, isize>, _>(
        updates.inner,
        Pipeline,
        name,
        ValBatcher::new,
    )
}

/// A differential collection of updates with weir's time.
type Updates<'scope, D> =
    differential_dataflow::collection::vec::Collection<'scope, Time, D, isize>;

/// The records of a stream as inserts into a differential collection, at
/// their timestamps.
fn updates_of<'scope, D: ExchangeData + Clone>(stream: VecStream<'scope, D>) -> Updates<'scope, D> {
    use differential_dataflow::AsCollection;
    stream
        .unary(Pipeline, "ToUpdates", |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    if let Some(time) = cap.least().copied() {
                        output
                            .session(&cap)
                            .give_iterator(data.drain(..).map(|d| (d, time, 1isize)));
                    } else {
                        data.clear();
                    }
                })
            }
        })
        .as_collection()
}

/// A changelog stream, each update with the event time it happened at.
pub type Changes<'scope, K, V> = VecStream<'scope, (Time, Update<K, V>)>;

/// Joins keyed streams with differential dataflow.
pub trait UpdatingJoin<'scope, K, A> {
    /// Pairs every `(key, a)` with every `(key, b)` of `other`, as a
    /// changelog of `(a, b)` per key, each update at the timestamp its pair
    /// formed. Both inputs must be partitioned by key group (see
    /// [`KeyByGroup`](crate::KeyByGroup)).
    ///
    /// # Examples
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use weir_operators::updating::{Update, UpdatingJoin};
    ///
    /// let out = timely::example(|scope| {
    ///     let people = vec![(1u32, 'p')].to_stream(scope).container::<Vec<_>>();
    ///     let orders = vec![(1u32, 10u64), (1, 11), (2, 12)].to_stream(scope).container::<Vec<_>>();
    ///     people.updating_join(orders).capture()
    /// });
    /// let mut got: Vec<_> = out.extract().into_iter().flat_map(|(_, d)| d).map(|(_, u)| u).collect();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     Update { key: 1, value: ('p', 10), diff: 1 },
    ///     Update { key: 1, value: ('p', 11), diff: 1 },
    /// ]);
    /// ```
    fn updating_join<B>(self, other: VecStream<'scope, (K, B)>) -> Changes<'scope, K, (A, B)>
    where
        B: ExchangeData + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned;

    /// As [`updating_join`](UpdatingJoin::updating_join), each side
    /// restored and taking checkpoints as its `Start` says (left, right;
    /// see [`crate::keep`]): the changes, and the acknowledgements the job's
    /// committer must watch (`None` without checkpoints).
    fn updating_join_from<B>(
        self,
        other: VecStream<'scope, (K, B)>,
        starts: (crate::Start<'scope>, crate::Start<'scope>),
    ) -> (Changes<'scope, K, (A, B)>, Option<Acks<'scope>>)
    where
        B: ExchangeData + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned;
}

impl<'scope, K, A> UpdatingJoin<'scope, K, A> for VecStream<'scope, (K, A)>
where
    K: ExchangeData + Hash + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned,
    A: ExchangeData + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned,
{
    fn updating_join<B>(self, other: VecStream<'scope, (K, B)>) -> Changes<'scope, K, (A, B)>
    where
        B: ExchangeData + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned,
    {
        let fresh = (crate::Start::default(), crate::Start::default());
        self.updating_join_from(other, fresh).0
    }

    fn updating_join_from<B>(
        self,
        other: VecStream<'scope, (K, B)>,
        (left_start, right_start): (crate::Start<'scope>, crate::Start<'scope>),
    ) -> (Changes<'scope, K, (A, B)>, Option<Acks<'scope>>)
    where
        B: ExchangeData + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned,
    {
        use differential_dataflow::AsCollection;
        use timely::dataflow::operators::Concat;
        use timely::dataflow::operators::vec::Map;

        let left_group = |d: &(K, A)| KeyGroups::group_of(&d.0);
        let right_group = |d: &(K, B)| KeyGroups::group_of(&d.0);
        let mut left_kept = keep(&self, "Keep: Join left", |d| (d, 1), left_group, left_start);
        let mut right_kept = keep(
            &other,
            "Keep: Join right",
            |d| (d, 1),
            right_group,
            right_start,
        );
        let left = left_kept
            .replay(updates_of(self).inner, |d| d)
            .as_collection();
        let right = right_kept
            .replay(updates_of(other).inner, |d| d)
            .as_collection();
        let left = arrange_local(left, "Arrange: Join left");
        let right = arrange_local(right, "Arrange: Join right");
        let pairs = left
            .join_core(right, |key, a, b| {
                Some((key.clone(), (a.clone(), b.clone())))
            })
            .inner;
        let changes = left_kept.output(pairs).map(|((key, pair), time, diff)| {
            (
                time,
                Update {
                    key,
                    value: pair,
                    diff: diff as i64,
                },
            )
        });
        let acks = match (left_kept.into_acks(), right_kept.into_acks()) {
            (Some(l), Some(r)) => Some(l.concat(r)),
            (l, r) => l.or(r),
        };
        (changes, acks)
    }
}

/// Reduces a changelog per key with differential dataflow.
pub trait ReduceChanges<'scope, K, V> {
    /// For each key, whenever its values change, calls `f` with the key and
    /// all its current values (sorted, with their multiplicities) and makes
    /// the result, if any, the key's current output: a changelog of outputs.
    /// A change counts at its own time (the first field), or at the time it
    /// arrives at if that is later.
    /// The changes are first routed to the worker owning their key's group,
    /// where the key's values are kept.
    ///
    /// # Examples
    ///
    /// ```
    /// use timely::dataflow::operators::ToStream;
    /// use timely::dataflow::operators::capture::{Capture, Extract};
    /// use weir_operators::updating::{ReduceChanges, Update};
    ///
    /// let out = timely::example(|scope| {
    ///     let changes = vec![
    ///         (0, Update { key: 'a', value: 5u32, diff: 1 }),
    ///         (0, Update { key: 'a', value: 9, diff: 1 }),
    ///         (0, Update { key: 'a', value: 9, diff: -1 }),
    ///     ];
    ///     changes
    ///         .to_stream(scope)
    ///         .container::<Vec<_>>()
    ///         .reduce_changes(|_k, vals: &[(&u32, isize)]| vals.last().map(|(v, _)| **v))
    ///         .capture()
    /// });
    /// let got: Vec<_> = out.extract().into_iter().flat_map(|(_, d)| d).map(|(_, u)| u).collect();
    /// assert_eq!(got, vec![Update { key: 'a', value: 5, diff: 1 }]);
    /// ```
    fn reduce_changes<O, F>(self, f: F) -> Changes<'scope, K, O>
    where
        O: ExchangeData + Ord + std::fmt::Debug + Clone,
        F: Fn(&K, &[(&V, isize)]) -> Option<O> + 'static;

    /// As [`reduce_changes`](ReduceChanges::reduce_changes), restored and
    /// taking checkpoints as `start` says (see [`crate::keep`]): the
    /// changes, and the acknowledgements the job's committer must watch
    /// (`None` without checkpoints).
    fn reduce_changes_from<O, F>(
        self,
        f: F,
        start: crate::Start<'scope>,
    ) -> (Changes<'scope, K, O>, Option<Acks<'scope>>)
    where
        O: ExchangeData + Ord + std::fmt::Debug + Clone,
        F: Fn(&K, &[(&V, isize)]) -> Option<O> + 'static;
}

impl<'scope, K, V> ReduceChanges<'scope, K, V> for Changes<'scope, K, V>
where
    K: ExchangeData + Hash + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned,
    V: ExchangeData + Ord + std::fmt::Debug + Clone + Serialize + DeserializeOwned,
{
    fn reduce_changes<O, F>(self, f: F) -> Changes<'scope, K, O>
    where
        O: ExchangeData + Ord + std::fmt::Debug + Clone,
        F: Fn(&K, &[(&V, isize)]) -> Option<O> + 'static,
    {
        self.reduce_changes_from(f, crate::Start::default()).0
    }

    fn reduce_changes_from<O, F>(
        self,
        f: F,
        start: crate::Start<'scope>,
    ) -> (Changes<'scope, K, O>, Option<Acks<'scope>>)
    where
        O: ExchangeData + Ord + std::fmt::Debug + Clone,
        F: Fn(&K, &[(&V, isize)]) -> Option<O> + 'static,
    {
        use differential_dataflow::AsCollection;
        use timely::dataflow::operators::vec::Map;

        // One shuffle, by key group, then state on the worker owning it.
        // A change happens at its own time, or when it arrives if that is
        // later (a changelog made by `map` from records of a source).
        let peers = self.scope().peers();
        let by_group = ExchangePact::new(move |(_, u): &(Time, Update<K, V>)| {
            KeyGroups::worker_of(KeyGroups::group_of(&u.key), peers) as u64
        });
        let changes = self.unary(by_group, "FromChanges", |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    if let Some(&arrived) = cap.least() {
                        output.session(&cap).give_iterator(
                            data.drain(..)
                                .map(|(t, u)| ((u.key, u.value), t.max(arrived), u.diff as isize)),
                        );
                    } else {
                        data.clear();
                    }
                })
            }
        });
        // With checkpoints each change goes at its own time, so that the
        // keeper saves at `T` exactly the changes before `T`.
        let changes = match takes_part(&start) {
            true => at_own_times(changes, 0),
            false => changes,
        };
        let by_key = |d: &(K, V)| KeyGroups::group_of(&d.0);
        let split = |(d, _, diff): ((K, V), Time, isize)| (d, diff);
        let mut kept = keep(&changes, "Keep: ReduceUpdates", split, by_key, start);
        let changes = kept.replay(changes, |d| d).as_collection();
        let reduced = arrange_local(changes, "Arrange: ReduceUpdates")
            .reduce_abelian::<_, ValBuilder<K, O, Time, isize>, ValSpine<K, O, Time, isize>, _, _>(
                "ReduceUpdates",
                move |key, values, out| {
                    if let Some(o) = f(key, values) {
                        out.push((o, 1isize));
                    }
                },
                |vec, key, updates| {
                    vec.clear();
                    vec.extend(updates.drain(..).map(|(v, t, r)| ((key.clone(), v), t, r)));
                },
            )
            .as_collection(|key, value| (key.clone(), value.clone()))
            .inner;
        let changes = kept.output(reduced).map(|((key, value), time, diff)| {
            (
                time,
                Update {
                    key,
                    value,
                    diff: diff as i64,
                },
            )
        });
        (changes, kept.into_acks())
    }
}

#[cfg(test)]
mod tests {
    use timely::dataflow::operators::Input;
    use timely::dataflow::operators::capture::{Capture, Extract};

    use super::*;

    #[test]
    fn later_timestamps_retract_earlier_results() {
        let captured = timely::example(|scope| {
            let (mut input, stream) = scope.new_input::<Vec<(char, u64)>>();
            let out = stream.updating_fold(|| 0u64, |acc, v| *acc += v).capture();
            input.send(('a', 1));
            input.send(('b', 1));
            input.advance_to(5);
            input.send(('a', 2));
            input.send(('b', 0)); // folds to the same value: no change emitted
            input.advance_to(9);
            input.send(('a', 4));
            input.send(('a', 10));
            out
        });
        let mut by_time: Vec<(u64, Vec<Update<char, u64>>)> = captured.extract();
        for (_, updates) in &mut by_time {
            updates.sort();
        }
        let u = |key, value, diff| Update { key, value, diff };
        assert_eq!(
            by_time,
            vec![
                (0, vec![u('a', 1, 1), u('b', 1, 1)]),
                (5, vec![u('a', 1, -1), u('a', 3, 1)]),
                (9, vec![u('a', 3, -1), u('a', 17, 1)]),
            ]
        );
    }

    mod restore {
        use proptest::prelude::*;

        use super::*;
        use crate::lifecycle::{by_time_and_owner, with_and_without_checkpoint};

        type Sum = FoldState<u8, u32, u64, fn() -> u64, fn(&mut u64, u32)>;
        type Changes = Vec<(u8, u64, i64)>;

        fn fresh() -> Sum {
            FoldState {
                working: None,
                current: FxHashMap::default(),
                init: || 0,
                fold: |a, v| *a += u64::from(v),
                _records: PhantomData,
            }
        }

        /// Folds the records with `from <= time < until` (sorted by time) on
        /// the operator owning each key's group, the frontier passing each
        /// time after its records, then reaching `until`.
        fn run(ops: &mut [Sum], records: &[(Time, u8, u32)], from: Time, until: Time) -> Changes {
            let mut emit = Emit::for_test();
            let group = |r: &(Time, u8, u32)| KeyGroups::group_of(&r.1);
            for (t, batches) in by_time_and_owner(records, from..until, |r| r.0, group, ops.len()) {
                for (op, batch) in ops.iter_mut().zip(batches) {
                    let batch: Vec<(u8, u32)> = batch.into_iter().map(|r| (r.1, r.2)).collect();
                    if !batch.is_empty() {
                        op.on_records(t, batch, &mut emit);
                    }
                }
                ops.iter_mut()
                    .for_each(|op| op.on_watermark(t + 1, &mut emit));
            }
            ops.iter_mut()
                .for_each(|op| op.on_watermark(until, &mut emit));
            emit.take_out()
                .into_iter()
                .map(|u| (u.key, u.value, u.diff))
                .collect()
        }

        proptest! {
            /// A fold's state saved at a checkpoint and restored on 1-3
            /// operators by key group gives the changelog of a run without
            /// the checkpoint.
            #[test]
            fn restored_fold_continues_as_if_never_stopped(
                mut records in prop::collection::vec((0u64..500, 0u8..30, 1u32..50), 0..200),
                checkpoint in 1u64..500,
                workers in 1usize..4,
            ) {
                records.sort_by_key(|r| r.0);
                let (got, expected) = with_and_without_checkpoint(
                    fresh,
                    checkpoint,
                    workers,
                    |ops, from, until| run(ops, &records, from, until),
                );
                prop_assert_eq!(got, expected);
            }
        }
    }
}
