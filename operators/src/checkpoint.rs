//! Taking checkpoints across a dataflow: when, and when they are complete.
//!
//! The timely frontier is a consistent cut: once an operator's input
//! frontier has reached `T`, every record stamped before `T` has reached it
//! and no other will. So a checkpoint needs no barriers in the data, only a
//! time `T` every part of the job agrees on and saves its state at:
//!
//! - [`announce`] picks the times. Worker 0 watches the sources' frontier;
//!   it holds a capability on the *control* stream at the next checkpoint
//!   time `T` and, when every source has passed `T`, announces the one after
//!   (`T'`, stamped at `T`) and moves its capability to `T'`. `T'` is where
//!   the sources are expected one checkpoint interval of processing time
//!   later, from the pace event time went at over the last interval. The
//!   announcement reaches every worker (it is broadcast) before any
//!   operator's frontier can pass `T`, since it is stamped at `T`.
//! - Every stateful operator ([`Checkpoints`](crate::lifecycle::Checkpoints))
//!   saves its state as of `T` when its frontier reaches `T`, and holds a
//!   capability at `T` until it has; records stamped at or after the next
//!   checkpoint time are never applied before that.
//! - Sources send where each partition stood whenever its watermark moved
//!   (a [`PartitionCut`], stamped at the watermark it moved from); a
//!   [`SourceCuts`] operator keeps the last cut of each partition before
//!   each checkpoint time, which is where the partition resumes from.
//! - Sinks stage what they receive before `T` and hold a capability at `T`
//!   on an acknowledgement stream until it is staged.
//! - [`commit`] (worker 0) watches the acknowledgements: once their frontier
//!   has passed `T`, every part of every worker has saved its share of `T`
//!   and the checkpoint can be committed; once it is empty, the job is
//!   complete and its final output can be committed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use timely::communication::Pull;
use timely::dataflow::channels::Message;
use timely::dataflow::operators::InputCapability;
use timely::dataflow::operators::generic::InputHandleCore;
use timely::progress::frontier::MutableAntichain;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::vec::Broadcast;

use crate::lifecycle::{Emit, GroupStates, Lifecycle};
use crate::source::PartitionCut;
use crate::{Time, VecStream};
use weir_engine::{BoxError, Failure};

/// Announced checkpoint times: each record is a checkpoint time `T`, sent at
/// a time at or before `T`, on every worker.
pub type Control<'scope> = VecStream<'scope, Time>;

/// The checkpoint times of a job, announced on every worker (see the
/// [module documentation](self)). Worker 0 watches the frontier of `sources`
/// (any stream the job's sources hold their capabilities on; its records
/// are dropped) and announces a time about every `interval` of processing
/// time. `after`: the checkpoint a restored job started from; every time
/// announced is later.
pub fn announce<'scope, D: 'static>(
    sources: VecStream<'scope, D>,
    interval: Duration,
    after: Option<Time>,
) -> Control<'scope> {
    let scope = sources.scope();
    let mut builder = OperatorBuilder::new("AnnounceCheckpoints".to_owned(), scope);
    let mut input = builder.new_input(sources, Pipeline);
    // The sources' frontier says when to announce; it must not hold the
    // control stream back (the announcer's capability alone does), or the
    // operators' gate would follow the sources and stash every record: the
    // output is connected to no input.
    let no_input: Vec<(usize, timely::progress::Antichain<u64>)> = Vec::new();
    let (output, stream) = builder.new_output_connection::<Vec<Time>, _>(no_input);
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<Time>>>::from(output);
    let leader = scope.index() == 0;
    builder.build(move |mut initial| {
        let mut cap: Option<Capability<Time>> = initial.pop().filter(|_| leader);
        let mut pace = Pace::new(interval, after);
        move |frontiers| {
            input.for_each(|_, data| data.clear());
            let Some(current) = cap.as_mut() else {
                return;
            };
            let Some(f) = frontiers[0].frontier().first().copied() else {
                cap = None; // the sources are done: no more checkpoints
                return;
            };
            if let Some(next) = pace.next(f)
                && next > *current.time()
            {
                output.activate().session(&*current).give(next);
                current.downgrade(&next);
            }
        }
    });
    stream.broadcast()
}

/// When the next checkpoint is due, in event time.
struct Pace {
    interval: Duration,
    /// The last checkpoint time announced (or restored from).
    last: Option<Time>,
    /// When it was announced, and where the sources were then.
    since: Option<(Instant, Time)>,
}

impl Pace {
    fn new(interval: Duration, after: Option<Time>) -> Self {
        Pace {
            interval,
            last: after,
            since: None,
        }
    }

    /// The next checkpoint time, if one is due now that the sources'
    /// frontier is at `f`: one is due once `f` has reached the last one
    /// announced. It is `f` plus the event time the sources covered in one
    /// interval of processing time, at the pace they went since the last
    /// announcement (one millisecond per millisecond at first, and while
    /// the sources had not yet read anything), and at least 1 ms after `f`.
    fn next(&mut self, f: Time) -> Option<Time> {
        if self.last.is_some_and(|last| f < last) {
            return None;
        }
        let interval = self.interval.as_millis().max(1) as f64;
        let ahead = match self.since {
            Some((when, from)) if from > 0 => {
                let elapsed = when.elapsed().as_secs_f64() * 1000.0;
                (f - from) as f64 / elapsed.max(1.0) * interval
            }
            _ => interval,
        };
        let next = f.saturating_add((ahead as Time).max(1));
        if next == Time::MAX {
            return None;
        }
        self.last = Some(next);
        self.since = Some((Instant::now(), f));
        Some(next)
    }
}

/// One part's state, as a file of a checkpoint: every key group's state.
///
/// # Errors
///
/// Cannot happen for in-memory bytes; reported rather than unwrapped.
pub fn encode_states(states: &GroupStates) -> Result<Vec<u8>, BoxError> {
    Ok(bincode::serialize(states)?)
}

/// The key groups' states in a file written by [`encode_states`].
///
/// # Errors
///
/// The bytes are not such a file.
pub fn decode_states(bytes: &[u8]) -> Result<GroupStates, BoxError> {
    Ok(bincode::deserialize(bytes)?)
}

/// The control stream's input handle in an operator.
pub(crate) type ControlInput<P> = InputHandleCore<Time, Vec<Time>, P>;

/// What a part of the job (a stateful operator, a staging sink) knows of
/// the checkpoints announced on the control stream: the times announced
/// and not yet taken, each with the capabilities `C` that keep the job's
/// frontier below it until the part's share is saved, and the frontier of
/// the announcements still to come.
pub(crate) struct Announced<C> {
    pending: BTreeMap<Time, C>,
    /// The control stream's frontier: later announcements are at or after it.
    until: Option<Time>,
    /// Checkpoints at or before this time are not taken (the one a
    /// restored part starts from, and earlier).
    after: Option<Time>,
}

impl<C> Announced<C> {
    /// Nothing announced yet; checkpoints at or before `after` are ignored.
    pub(crate) fn new(after: Option<Time>) -> Self {
        Announced {
            pending: BTreeMap::new(),
            until: None,
            after,
        }
    }

    /// Takes in the announcements on `control`, whose frontier is
    /// `frontier`: `hold` makes the capabilities held for a time from the
    /// capability of the message announcing it.
    pub(crate) fn take<P>(
        &mut self,
        control: &mut ControlInput<P>,
        frontier: &MutableAntichain<Time>,
        hold: impl Fn(&InputCapability<Time>, Time) -> C,
    ) where
        P: Pull<Message<Time, Vec<Time>>>,
    {
        self.until = frontier.frontier().first().copied();
        control.for_each(|cap, times| {
            let Some(stamped) = cap.least().copied() else {
                times.clear();
                return;
            };
            for at in times.drain(..) {
                // An announcement after its own time cannot be held (the
                // announcer never sends one).
                debug_assert!(at >= stamped, "checkpoint {at} announced at {stamped}");
                if at >= stamped && self.after.is_none_or(|after| at > after) {
                    self.pending.insert(at, hold(&cap, at));
                }
            }
        });
    }

    /// Records stamped before this time may be applied (or written) now: no
    /// checkpoint can come before it. `None`: any record may.
    pub(crate) fn gate(&self) -> Option<Time> {
        let next = self.pending.keys().next().copied();
        next.into_iter().chain(self.until).min()
    }

    /// The next pending checkpoint an input frontier at `frontier` has
    /// reached (`None`, a complete input, reaches them all), taken out with
    /// its capabilities: the caller saves its share, then drops them.
    pub(crate) fn due(&mut self, frontier: Option<Time>) -> Option<(Time, C)> {
        let entry = self.pending.first_entry()?;
        if frontier.is_some_and(|f| f < *entry.key()) {
            return None;
        }
        Some((*entry.key(), entry.remove()))
    }

    /// Forgets the pending checkpoints, releasing their capabilities.
    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }
}

/// A step of committing, as [`commit`] calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Every part of the job has saved its share of the checkpoint at this
    /// time.
    Checkpoint(Time),
    /// The job is complete: every sink has staged all its output.
    Final,
}

/// Commits the checkpoints announced on `control` on worker 0: `on_commit`
/// is called with [`Commit::Checkpoint`] once the frontier of `acks` (the
/// streams every part of the job holds a capability on until its share of a
/// checkpoint is saved) has passed its time, in order, and with
/// [`Commit::Final`] once `acks` is complete (after every checkpoint still
/// announced: parts whose input completes save their share of each). An error is raised on
/// `failure` and ends committing.
pub fn commit<'scope>(
    acks: VecStream<'scope, ()>,
    control: Control<'scope>,
    mut on_commit: impl FnMut(Commit) -> Result<(), BoxError> + 'static,
    failure: Failure,
) {
    let scope = acks.scope();
    let leader = scope.index() == 0;
    let mut builder = OperatorBuilder::new("CommitCheckpoints".to_owned(), scope);
    let mut acks = builder.new_input(acks, Pipeline);
    let mut control = builder.new_input(control, Pipeline);
    builder.build(move |_| {
        let mut announced = std::collections::BTreeSet::new();
        let mut done = !leader;
        move |frontiers| {
            acks.for_each(|_, data| data.clear());
            control.for_each(|_, times| announced.extend(times.drain(..)));
            if done {
                announced.clear();
                return;
            }
            let acked = frontiers[0].frontier().first().copied();
            while let Some(&at) = announced.first() {
                if acked.is_some_and(|f| f <= at) {
                    return;
                }
                announced.pop_first();
                if let Err(e) = on_commit(Commit::Checkpoint(at)) {
                    failure.raise(e);
                    done = true;
                    return;
                }
            }
            if acked.is_none() {
                done = true;
                if let Err(e) = on_commit(Commit::Final) {
                    failure.raise(e);
                }
            }
        }
    });
}

/// Keeps, per source partition, the last [`PartitionCut`] sent before each
/// checkpoint time: a partition's cut is stamped at the watermark it moved
/// from, so the last one before `T` is where it stood when its watermark
/// passed `T` (or its end, if it ended before). Its state per key group is
/// one partition's cut, the group being the partition's id.
#[derive(Default)]
pub struct SourceCuts {
    cuts: std::collections::BTreeMap<u32, (Time, PartitionCut)>,
}

impl SourceCuts {
    fn note(&mut self, time: Time, cut: PartitionCut) {
        let id = cut.partition as u32;
        match self.cuts.get(&id) {
            Some((t, _)) if *t > time => {}
            _ => {
                self.cuts.insert(id, (time, cut));
            }
        }
    }

    /// The cuts in a checkpoint's state, as saved per key group.
    ///
    /// # Errors
    ///
    /// A group's bytes are not a cut.
    pub fn decode(state: &[u8]) -> Result<PartitionCut, BoxError> {
        Ok(bincode::deserialize(state)?)
    }
}

impl Lifecycle for SourceCuts {
    type In = PartitionCut;
    type Out = ();
    type Late = ();

    fn ready(&self, _time: Time, _frontier: Option<Time>, _cut: &PartitionCut) -> bool {
        true
    }

    fn on_record(&mut self, time: Time, cut: PartitionCut, _out: &mut Emit<(), ()>) {
        self.note(time, cut);
    }

    fn on_records(&mut self, time: Time, cuts: Vec<PartitionCut>, _out: &mut Emit<(), ()>) {
        for cut in cuts {
            self.note(time, cut);
        }
    }

    fn snapshot(&self, _checkpoint: Time) -> Result<GroupStates, BoxError> {
        self.cuts
            .iter()
            .map(|(id, (_, cut))| Ok((*id, bincode::serialize(cut)?)))
            .collect()
    }

    fn restore(&mut self, checkpoint: Time, group: u32, state: &[u8]) -> Result<(), BoxError> {
        let cut = Self::decode(state)?;
        if cut.partition as u32 != group {
            return Err(format!(
                "the cut saved for partition {group} is of partition {}",
                cut.partition
            )
            .into());
        }
        self.note(checkpoint, cut);
        Ok(())
    }

    fn next_output(&self) -> Option<Time> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_checkpoint_is_one_interval_ahead_then_the_pace_follows_event_time() {
        let mut pace = Pace::new(Duration::from_millis(1000), None);
        assert_eq!(pace.next(0), Some(1000));
        assert_eq!(pace.next(999), None, "not due before the sources pass it");
        // The sources jumped from nothing to real time: no pace yet.
        let first = pace.next(1_700_000_000_000).unwrap();
        assert_eq!(first, 1_700_000_001_000);
        std::thread::sleep(Duration::from_millis(20));
        // 10 s of event time in about 20 ms: the next is far ahead.
        let next = pace.next(1_700_000_010_000).unwrap();
        assert!(next > 1_700_000_010_000 + 100_000, "{next}");
        assert!(next < 1_700_000_010_000 + 600_000, "{next}");
    }

    /// The control stream's frontier is the announcer's capability, the next
    /// checkpoint time, not the sources' frontier: operators apply records
    /// before it on arrival.
    #[test]
    fn the_control_frontier_is_the_next_checkpoint_not_the_sources() {
        use timely::dataflow::operators::{Input, Probe};
        timely::execute_directly(|worker| {
            let (mut sources, probe) = worker.dataflow::<Time, _, _>(|scope| {
                let (sources, stream) = scope.new_input::<Vec<u64>>();
                let control = announce(stream, Duration::from_secs(1), None);
                let probe = control.probe();
                (sources, probe.0)
            });
            sources.advance_to(5);
            for _ in 0..10 {
                worker.step();
            }
            // Announced at 0: the first checkpoint, one interval ahead.
            assert!(
                !probe.less_than(&1000),
                "the control frontier follows the sources"
            );
            assert!(probe.less_equal(&1000));
            sources.advance_to(1500);
            for _ in 0..10 {
                worker.step();
            }
            // The sources passed 1000: the next is announced, 1 ms per ms.
            assert!(!probe.less_than(&2500));
            sources.close();
            while worker.step() {}
        });
    }

    #[test]
    fn a_restored_job_announces_after_its_checkpoint() {
        let mut pace = Pace::new(Duration::from_millis(10), Some(5_000));
        assert_eq!(pace.next(4_000), None);
        assert_eq!(pace.next(5_000), Some(5_010));
    }

    #[test]
    fn source_cuts_keep_the_last_cut_per_partition_and_restore_it() {
        let cut = |partition, position| PartitionCut {
            partition,
            position: Some(position),
            max_seen: Some(position * 10),
            done: false,
            state: Vec::new(),
        };
        let mut cuts = SourceCuts::default();
        let mut out = Emit::for_test();
        cuts.on_record(5, cut(0, 1), &mut out);
        cuts.on_records(9, vec![cut(0, 2), cut(3, 7)], &mut out);
        cuts.on_record(7, cut(0, 9), &mut out); // older than the last: ignored
        let state = cuts.snapshot(10).unwrap();
        assert_eq!(state.len(), 2);
        let mut restored = SourceCuts::default();
        for (group, bytes) in &state {
            restored.restore(10, *group, bytes).unwrap();
        }
        assert_eq!(restored.snapshot(10).unwrap(), state);
        assert_eq!(SourceCuts::decode(&state[0].1).unwrap(), cut(0, 2));
        assert!(restored.restore(10, 1, &state[0].1).is_err());
    }
}
