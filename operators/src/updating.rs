//! Keyed aggregation without windows: an updating result per key.
//!
//! Records are folded into per-key state in timestamp order. When the input
//! frontier passes a timestamp, every key that changed at it emits a
//! retraction of its previous result (`diff = -1`) and its new result
//! (`diff = +1`): a changelog, as a materialised view would see it.

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Capability;
use timely::ExchangeData;

use crate::{Time, VecStream};

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
    /// [`ExchangeByKey`](crate::ExchangeByKey)). Values of one timestamp are
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
        self.unary_frontier(Pipeline, "UpdatingFold", move |_, _| {
            // Records not yet folded, by timestamp, with a capability for it.
            let mut pending: BTreeMap<Time, (Capability<Time>, Vec<(K, V)>)> = BTreeMap::new();
            // The current (last emitted) result of each key.
            let mut current: FxHashMap<K, A> = FxHashMap::default();
            // Per-key state while folding one timestamp: (previous, next).
            let mut touched: FxHashMap<K, (Option<A>, A)> = FxHashMap::default();
            move |(input, frontier), output| {
                input.for_each(|cap, data| {
                    let Some(time) = cap.least().copied() else {
                        data.clear();
                        return;
                    };
                    let entry = pending.entry(time).or_insert_with(|| {
                        (cap.retain_least(0).expect("time present"), Vec::new())
                    });
                    entry.1.append(data);
                });
                while let Some(entry) = pending.first_entry() {
                    if frontier.less_equal(entry.key()) {
                        break;
                    }
                    let (cap, records) = entry.remove();
                    for (key, value) in records {
                        let slot = touched.entry(key).or_insert_with_key(|k| {
                            let prev = current.get(k).cloned();
                            let next = prev.clone().unwrap_or_else(&init);
                            (prev, next)
                        });
                        fold(&mut slot.1, value);
                    }
                    let mut session = output.session(&cap);
                    for (key, (prev, next)) in touched.drain() {
                        if prev.as_ref() == Some(&next) {
                            continue;
                        }
                        if let Some(old) = prev {
                            session.give(Update {
                                key: key.clone(),
                                value: old,
                                diff: -1,
                            });
                        }
                        session.give(Update {
                            key: key.clone(),
                            value: next.clone(),
                            diff: 1,
                        });
                        current.insert(key, next);
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use timely::dataflow::operators::capture::{Capture, Extract};
    use timely::dataflow::operators::Input;

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
}
