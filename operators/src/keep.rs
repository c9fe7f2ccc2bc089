//! Checkpoints of the differential stages (`count`, `join`,
//! `reduce_updates`): their input collection, kept on a side branch.
//!
//! A differential operator's output at a time depends only on its input
//! accumulated up to that time. So instead of saving differential's
//! arrangements, a `Keeper` (a [`Stateful`] operator reading the same
//! input) keeps the input collection consolidated (`record → multiplicity`)
//! and saves it per key group at each checkpoint time `T`: every record
//! stamped before `T`, none after. A restored job replays, on each worker,
//! the groups it owns into the differential operator at `T − 1`, and drops
//! what the operator outputs before `T` (the replay's output: what it
//! stands for was committed before the crash). From `T` on the input is the
//! failure-free run's, and so is the output.
//!
//! Differential sends a record at a capability that may be earlier than the
//! record's own time; with checkpoints the output is sent at each record's
//! own time (`Kept::output`), so that what a sink stages before `T` is
//! exactly the output at times before `T`.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::ExchangeData;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Concat;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::operator::source;

use crate::lifecycle::{Emit, GroupStates, Lifecycle, Stateful};
use crate::{Start, Time, VecStream};
use weir_engine::BoxError;

/// The stream a part of a job holds at each checkpoint time until its share
/// of that checkpoint is saved: to be watched by the committer.
pub type Acks<'scope> = VecStream<'scope, ()>;

/// A differential collection's updates as a timely stream: each record
/// with its time and multiplicity.
pub(crate) type UpdateStream<'scope, D> = VecStream<'scope, (D, Time, isize)>;

/// Keeps a differential stage's input collection, consolidated, per key
/// group. `split` turns an input record into the collection's record and
/// its multiplicity; `group` names a record's key group.
pub(crate) struct Keeper<I, D, S, G> {
    collection: BTreeMap<D, isize>,
    split: S,
    group: G,
    _in: PhantomData<fn(I)>,
}

impl<I, D, S, G> Keeper<I, D, S, G>
where
    D: Ord,
    S: Fn(I) -> (D, isize),
{
    /// A keeper holding `collection` (a restored one, or nothing).
    pub(crate) fn new(
        split: S,
        group: G,
        collection: impl IntoIterator<Item = (D, isize)>,
    ) -> Self {
        let mut keeper = Keeper {
            collection: BTreeMap::new(),
            split,
            group,
            _in: PhantomData,
        };
        for (d, diff) in collection {
            keeper.add(d, diff);
        }
        keeper
    }

    fn add(&mut self, record: D, diff: isize) {
        if diff == 0 {
            return;
        }
        match self.collection.entry(record) {
            Entry::Occupied(mut e) => {
                *e.get_mut() += diff;
                if *e.get() == 0 {
                    e.remove();
                }
            }
            Entry::Vacant(e) => {
                e.insert(diff);
            }
        }
    }
}

impl<I, D, S, G> Lifecycle for Keeper<I, D, S, G>
where
    I: 'static,
    D: Ord + Serialize + DeserializeOwned + 'static,
    S: Fn(I) -> (D, isize) + 'static,
    G: Fn(&D) -> u32 + 'static,
{
    type In = I;
    type Out = ();
    type Late = ();

    /// Every record can be added on arrival: the skeleton keeps those at or
    /// after the next checkpoint time out of the collection until it is
    /// saved.
    fn ready(&self, _time: Time, _frontier: Option<Time>, _record: &I) -> bool {
        true
    }

    fn on_record(&mut self, _time: Time, record: I, _out: &mut Emit<(), ()>) {
        let (d, diff) = (self.split)(record);
        self.add(d, diff);
    }

    fn on_records(&mut self, _time: Time, records: Vec<I>, _out: &mut Emit<(), ()>) {
        for record in records {
            let (d, diff) = (self.split)(record);
            self.add(d, diff);
        }
    }

    /// Per key group, the records of the collection with their
    /// multiplicities.
    fn snapshot(&self, _checkpoint: Time) -> Result<GroupStates, BoxError> {
        let mut groups: BTreeMap<u32, Vec<(&D, isize)>> = BTreeMap::new();
        for (d, diff) in &self.collection {
            groups.entry((self.group)(d)).or_default().push((d, *diff));
        }
        groups
            .into_iter()
            .map(|(group, entries)| Ok((group, bincode::serialize(&entries)?)))
            .collect()
    }

    fn restore(&mut self, _checkpoint: Time, _group: u32, state: &[u8]) -> Result<(), BoxError> {
        for (d, diff) in decode::<D>(state)? {
            self.add(d, diff);
        }
        Ok(())
    }

    fn next_output(&self) -> Option<Time> {
        None
    }
}

/// One key group's records, as `Keeper` saves them.
fn decode<D: DeserializeOwned>(state: &[u8]) -> Result<Vec<(D, isize)>, BoxError> {
    Ok(bincode::deserialize(state)?)
}

/// A differential stage's part in checkpoints, made by `keep`: the
/// keeper's acknowledgements, and what a restored stage replays and drops.
/// Without checkpoints it is empty and changes nothing.
pub struct Kept<'scope, D> {
    /// The keeper's acknowledgements: `Some` when the stage takes part.
    acks: Option<Acks<'scope>>,
    /// The checkpoint time restored from.
    restored_at: Option<Time>,
    /// This worker's share of the input collection then, until replayed.
    replay: Vec<(D, isize)>,
}

impl<'scope, D: ExchangeData> Kept<'scope, D> {
    /// Nothing kept, replayed or dropped: no checkpoints.
    pub(crate) fn none() -> Self {
        Kept {
            acks: None,
            restored_at: None,
            replay: Vec::new(),
        }
    }

    /// `updates` with the restored collection added at the checkpoint time
    /// minus one, each record mapped by `f`.
    pub(crate) fn replay<E: ExchangeData>(
        &mut self,
        updates: UpdateStream<'scope, E>,
        f: impl Fn(D) -> E + 'static,
    ) -> UpdateStream<'scope, E> {
        let Some(at) = self.restored_at else {
            return updates;
        };
        let records = std::mem::take(&mut self.replay);
        let before = at.saturating_sub(1);
        let replayed = source(updates.scope(), "Replay", move |cap, _info| {
            let mut cap = Some(cap);
            let mut records = Some(records);
            move |output| {
                if let (Some(cap), Some(records)) = (cap.take(), records.take()) {
                    let at = cap.delayed(&before);
                    let mut session = output.session(&at);
                    session.give_iterator(records.into_iter().map(|(d, r)| (f(d), before, r)));
                }
            }
        });
        updates.concat(replayed)
    }

    /// A differential operator's output as the stage sends it: unchanged
    /// without checkpoints; with them, each record at its own time, and,
    /// after a restore, nothing before the checkpoint time.
    pub(crate) fn output<O: ExchangeData + Clone>(
        &self,
        output: UpdateStream<'scope, O>,
    ) -> UpdateStream<'scope, O> {
        match self.acks {
            Some(_) => at_own_times(output, self.restored_at.unwrap_or(0)),
            None => output,
        }
    }

    /// The keeper's acknowledgements, for the job's committer (`None`
    /// without checkpoints).
    pub(crate) fn into_acks(self) -> Option<Acks<'scope>> {
        self.acks
    }
}

/// Whether a stage started as `start` says takes part in checkpoints
/// (takes them, or is restored from one).
pub(crate) fn takes_part(start: &Start<'_>) -> bool {
    start.checkpoints.is_some() || start.restored_at.is_some()
}

/// Sends each update at its own time, dropping those before `from`.
pub(crate) fn at_own_times<'scope, O: ExchangeData + Clone>(
    updates: UpdateStream<'scope, O>,
    from: Time,
) -> UpdateStream<'scope, O> {
    updates.unary(Pipeline, "AtOwnTimes", move |_, _| {
        move |input, output| {
            input.for_each(|cap, data| {
                if from > 0 {
                    data.retain(|(_, t, _)| *t >= from);
                }
                if data.is_empty() {
                    return;
                }
                let floor = cap.least().copied();
                if data.iter().all(|(_, t, _)| Some(*t) == floor) {
                    output.session(&cap).give_container(data);
                    return;
                }
                data.sort_by_key(|(_, t, _)| *t);
                let mut rest = &data[..];
                while let Some((_, t, _)) = rest.first() {
                    let n = rest.iter().take_while(|(_, u, _)| u == t).count();
                    let at = cap.delayed(t, 0);
                    output.session(&at).give_iterator(rest[..n].iter().cloned());
                    rest = &rest[n..];
                }
                data.clear();
            })
        }
    })
}

/// Builds the checkpoint part of a differential stage reading `input`: a
/// `Keeper` of its input collection (`split` makes each input record a
/// collection record and multiplicity, `group` names its key group),
/// restored and taking checkpoints as `start` says. Without checkpoints and
/// without a restore, nothing is built.
pub(crate) fn keep<'scope, I, D, S, G>(
    input: &VecStream<'scope, I>,
    name: &str,
    split: S,
    group: G,
    mut start: Start<'scope>,
) -> Kept<'scope, D>
where
    I: ExchangeData + Clone,
    D: ExchangeData + Clone + Ord + Serialize + DeserializeOwned,
    S: Fn(I) -> (D, isize) + 'static,
    G: Fn(&D) -> u32 + 'static,
{
    if !takes_part(&start) {
        return Kept::none();
    }
    // The restored groups are decoded once: into the replay, and the keeper
    // starts from them (rather than through `Lifecycle::restore`).
    let mut replay = Vec::new();
    if let Some(at) = start.restored_at {
        for (g, state) in std::mem::take(&mut start.restore) {
            match decode::<D>(&state) {
                Ok(mut group) => replay.append(&mut group),
                Err(e) => start.failure.raise(format!(
                    "{name}: cannot restore key group {g} from the checkpoint at {at}: {e}"
                )),
            }
        }
    }
    let restored_at = start.restored_at;
    let keeper = Keeper::new(split, group, replay.iter().cloned());
    let (acks, _) = Stateful::unary_from(input.clone(), name, keeper, Arc::default(), start);
    Kept {
        acks: Some(acks),
        restored_at,
        replay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyGroups;

    #[test]
    fn a_keeper_consolidates_and_restores_by_key_group() {
        let split = |(k, v, r): (u8, u8, isize)| ((k, v), r);
        let group = |d: &(u8, u8)| KeyGroups::group_of(&d.0);
        let mut keeper = Keeper::new(split, group, None);
        let mut out = Emit::for_test();
        keeper.on_records(1, vec![(1, 1, 1), (1, 1, 1), (2, 5, 1)], &mut out);
        keeper.on_record(2, (2, 5, -1), &mut out);
        keeper.on_record(2, (3, 9, 2), &mut out);
        let state = keeper.snapshot(3).unwrap();
        let mut restored = Keeper::new(split, group, None);
        for (g, bytes) in &state {
            restored.restore(3, *g, bytes).unwrap();
        }
        let mut got: Vec<_> = restored.collection.into_iter().collect();
        got.sort();
        assert_eq!(got, vec![((1, 1), 2), ((3, 9), 2)]);
        assert!(
            Keeper::new(split, group, None)
                .restore(3, 0, b"\x01")
                .is_err()
        );
    }
}
