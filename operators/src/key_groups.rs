//! Key groups: a key goes to one of a fixed number of key groups (a hash of
//! the key modulo [`KeyGroups::COUNT`]), and key groups go to workers by
//! contiguous ranges. Keyed state can then be saved per key group and restored
//! onto any number of workers (Flink's key groups).

use std::hash::{Hash, Hasher};

use std::rc::Rc;

use crate::MapBatches;
use timely::ExchangeData;
use timely::dataflow::channels::pact::Exchange as ExchangePact;
use timely::dataflow::operators::generic::Operator;

use crate::VecStream;

/// The key-group routing function.
///
/// # Examples
///
/// ```
/// use weir_operators::KeyGroups;
///
/// let g = KeyGroups::group_of(&"apple");
/// assert!(g < KeyGroups::COUNT);
/// assert_eq!(g, KeyGroups::group_of(&"apple")); // deterministic
/// // Groups are split into contiguous ranges, one per worker.
/// assert_eq!(KeyGroups::worker_of(0, 4), 0);
/// assert_eq!(KeyGroups::worker_of(KeyGroups::COUNT - 1, 4), 3);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct KeyGroups;

impl KeyGroups {
    /// Number of key groups; the most workers a keyed operator can use.
    pub const COUNT: u32 = 4096;

    /// The key group of `key`: a hash that is the same in every process of a
    /// cluster (FxHash with fixed seed, then a multiplicative mix whose top
    /// bits pick the group).
    #[inline]
    pub fn group_of<K: Hash + ?Sized>(key: &K) -> u32 {
        let mut h = rustc_hash::FxHasher::default();
        key.hash(&mut h);
        let mixed = h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 52) as u32 // top 12 bits: 0..4096
    }

    /// The worker, among `peers`, that owns key group `group`.
    #[inline]
    pub fn worker_of(group: u32, peers: usize) -> usize {
        (group as usize * peers) / Self::COUNT as usize
    }
}

/// Serializes state entries by the key group of each entry's key: one
/// `(group, bytes)` per group, so that a restore on any number of workers
/// loads the groups each worker owns (see
/// [`Lifecycle::snapshot`](crate::lifecycle::Lifecycle::snapshot)).
pub(crate) fn by_key_group<'a, K, E>(
    entries: impl Iterator<Item = (&'a K, E)>,
) -> Result<crate::lifecycle::GroupStates, weir_engine::BoxError>
where
    K: Hash + 'a,
    E: serde::Serialize,
{
    let mut groups: std::collections::BTreeMap<u32, Vec<E>> = Default::default();
    for (key, entry) in entries {
        groups
            .entry(KeyGroups::group_of(key))
            .or_default()
            .push(entry);
    }
    groups
        .into_iter()
        .map(|(group, entries)| Ok((group, bincode::serialize(&entries)?)))
        .collect()
}

/// Keys `(event time, record)` records and routes each to the worker owning
/// its key's group, in one operator: the key is computed once to route the
/// record and once to pair it, rather than a map followed by an exchange.
/// With one worker in all it is only the map.
pub trait KeyByGroup<'scope, V> {
    /// Pairs each record with `key(record)` on the worker owning the key.
    ///
    /// # Examples
    ///
    /// ```
    /// use timely::dataflow::operators::{ToStream, Inspect};
    /// use weir_operators::{KeyByGroup, KeyGroups};
    ///
    /// timely::execute(timely::Config::process(2), |worker| {
    ///     let (index, peers) = (worker.index(), worker.peers());
    ///     worker.dataflow::<u64, _, _>(|scope| {
    ///         (0..100u64)
    ///             .map(|x| (0, x))
    ///             .to_stream(scope)
    ///             .container::<Vec<_>>()
    ///             .key_by_group(|x: &u64| x % 7)
    ///             .inspect(move |(_, (k, x))| {
    ///                 assert_eq!(*k, x % 7);
    ///                 assert_eq!(KeyGroups::worker_of(KeyGroups::group_of(k), peers), index)
    ///             });
    ///     });
    /// })
    /// .unwrap();
    /// ```
    fn key_by_group<K, F>(self, key: F) -> VecStream<'scope, (crate::Time, (K, V))>
    where
        K: Hash + 'static,
        F: Fn(&V) -> K + 'static;
}

impl<'scope, V: ExchangeData> KeyByGroup<'scope, V> for VecStream<'scope, (crate::Time, V)> {
    fn key_by_group<K, F>(self, key: F) -> VecStream<'scope, (crate::Time, (K, V))>
    where
        K: Hash + 'static,
        F: Fn(&V) -> K + 'static,
    {
        let peers = self.scope().peers();
        if peers == 1 {
            return self.map_batches("KeyBy", move |(ts, v)| (ts, (key(&v), v)));
        }
        let key = Rc::new(key);
        let route = Rc::clone(&key);
        let pact = ExchangePact::new(move |(_, v): &(crate::Time, V)| {
            KeyGroups::worker_of(KeyGroups::group_of(&route(v)), peers) as u64
        });
        self.unary(pact, "KeyBy", move |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut keyed: Vec<_> =
                        data.drain(..).map(|(ts, v)| (ts, (key(&v), v))).collect();
                    output.session(&cap).give_container(&mut keyed);
                });
            }
        })
    }
}

/// Routes `(event time, (key, value))` records, already paired with their
/// keys, to the worker owning each key's group. With one worker in all the
/// stream is returned as it is; otherwise batches pass through an exchange
/// untouched (no map stage).
pub trait ExchangeByKey<'scope, K, V> {
    /// The same records, each on the worker owning its key.
    ///
    /// # Examples
    ///
    /// ```
    /// use timely::dataflow::operators::{ToStream, Inspect};
    /// use weir_operators::{ExchangeByKey, KeyGroups};
    ///
    /// timely::execute(timely::Config::process(2), |worker| {
    ///     let (index, peers) = (worker.index(), worker.peers());
    ///     worker.dataflow::<u64, _, _>(|scope| {
    ///         (0..100u64)
    ///             .map(|x| (0, (x % 7, x)))
    ///             .to_stream(scope)
    ///             .container::<Vec<_>>()
    ///             .exchange_by_key()
    ///             .inspect(move |(_, (k, x))| {
    ///                 assert_eq!(*k, x % 7);
    ///                 assert_eq!(KeyGroups::worker_of(KeyGroups::group_of(k), peers), index)
    ///             });
    ///     });
    /// })
    /// .unwrap();
    /// ```
    fn exchange_by_key(self) -> VecStream<'scope, (crate::Time, (K, V))>;
}

impl<'scope, K, V> ExchangeByKey<'scope, K, V> for VecStream<'scope, (crate::Time, (K, V))>
where
    K: ExchangeData + Hash,
    V: ExchangeData,
{
    fn exchange_by_key(self) -> VecStream<'scope, (crate::Time, (K, V))> {
        let peers = self.scope().peers();
        if peers == 1 {
            return self;
        }
        let pact = ExchangePact::new(move |(_, (k, _)): &(crate::Time, (K, V))| {
            KeyGroups::worker_of(KeyGroups::group_of(k), peers) as u64
        });
        self.unary(pact, "ExchangeByKey", move |_, _| {
            move |input, output| {
                input.for_each(|cap, data| output.session(&cap).give_container(data));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_spread_over_workers() {
        let mut per_worker = [0usize; 4];
        for k in 0..10_000u64 {
            per_worker[KeyGroups::worker_of(KeyGroups::group_of(&k), 4)] += 1;
        }
        for n in per_worker {
            assert!((2000..3000).contains(&n), "{per_worker:?}");
        }
    }

    #[test]
    fn ranges_cover_every_worker_count() {
        for peers in 1..=16 {
            let mut seen = vec![false; peers];
            for g in 0..KeyGroups::COUNT {
                seen[KeyGroups::worker_of(g, peers)] = true;
            }
            assert!(seen.iter().all(|s| *s), "peers={peers}");
        }
    }
}
