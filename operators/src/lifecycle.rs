//! The one lifecycle of weir's stateful operators.
//!
//! Every stateful operator (windows, the interval join, the updating fold)
//! follows the same skeleton: records arrive stamped with their partition's
//! watermark; those that would have the same effect whenever they are
//! applied are applied on arrival, the others wait in a *stash* by timestamp
//! and are applied, in timestamp order, once the input frontier has passed
//! their timestamp; the operator holds the least capability it may still
//! need to send at, and gives it up when it holds no state.
//!
//! [`Stateful`] owns that skeleton (the stash, the capabilities, the
//! frontier bookkeeping and the outputs) and calls the hooks of a
//! [`Lifecycle`] for the operator-specific part:
//!
//! | hook | called |
//! |---|---|
//! | [`ready`](Lifecycle::ready) | for each arriving record: apply it now, or stash it? |
//! | [`on_record`](Lifecycle::on_record) | for a record applied on arrival |
//! | [`on_records`](Lifecycle::on_records) | for the stashed records of one timestamp, once the frontier has passed it, in timestamp order (before new input is taken in) |
//! | [`on_watermark`](Lifecycle::on_watermark) | after the stash below the frontier is applied and new input taken in: fire what is due |
//! | [`snapshot`](Lifecycle::snapshot) / [`restore`](Lifecycle::restore) | when the frontier reaches an announced checkpoint time: state as of that time, per key group; and loading it back |
//! | [`on_close`](Lifecycle::on_close) | once, when the input is complete |
//! | [`next_output`](Lifecycle::next_output) | after each activation: the earliest time the operator may still send at, where its capabilities are held |
//!
//! Each operator has two outputs: its results and its late records (records
//! that arrived after everything they could still change had been
//! emitted). Hooks send to both through an [`Emit`]; the skeleton sends each
//! record at the time the hook asks for, or at the capability it holds if
//! that is later, and counts the late records.
//!
//! # Examples
//!
//! A running sum per timestamp: records wait until their timestamp is
//! complete, then the sum so far goes out.
//!
//! ```
//! use std::sync::{atomic::AtomicU64, Arc};
//! use timely::dataflow::operators::{ToStream, capture::{Capture, Extract}};
//! use weir_operators::lifecycle::{Emit, Lifecycle, Stateful};
//! use weir_operators::Time;
//!
//! struct RunningSum { sum: u64 }
//! impl Lifecycle for RunningSum {
//!     type In = u64;
//!     type Out = u64;
//!     type Late = ();
//!     fn on_record(&mut self, _time: Time, v: u64, _out: &mut Emit<u64, ()>) { self.sum += v }
//!     fn on_records(&mut self, time: Time, vs: Vec<u64>, out: &mut Emit<u64, ()>) {
//!         self.sum += vs.iter().sum::<u64>();
//!         out.give(time, self.sum);
//!     }
//!     fn next_output(&self) -> Option<Time> { None }
//! }
//!
//! let out = timely::example(|scope| {
//!     let input = (1..=4u64).to_stream(scope).container::<Vec<_>>();
//!     let late = Arc::new(AtomicU64::new(0));
//!     let (sums, _late) = Stateful::unary(input, "RunningSum", RunningSum { sum: 0 }, late);
//!     sums.capture()
//! });
//! let sums: Vec<u64> = out.extract().into_iter().flat_map(|(_, d)| d).collect();
//! assert_eq!(sums, vec![10]);
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::{Capability, InputCapability};

use crate::checkpoint::Announced;
use crate::{Time, VecStream};
use weir_engine::BoxError;

/// The operator-specific part of a stateful operator; see the
/// [module documentation](self) for when each hook is called.
///
/// Hooks never see timely capabilities: they say at which time each output
/// record should go (a time at or after the timestamp being applied, or any
/// time at or after [`next_output`](Lifecycle::next_output) as last
/// reported), and the skeleton sends it there.
pub trait Lifecycle: 'static {
    /// The records the operator reads.
    type In: 'static;
    /// The records of its main output.
    type Out: 'static;
    /// The records of its late-data output.
    type Late: 'static;

    /// Whether `record`, stamped `time`, can be applied on arrival with the
    /// same outcome as once the frontier has passed `time`. `frontier` is the
    /// least time of the input frontier (`None` once the input is complete).
    /// By default every record waits.
    fn ready(&self, time: Time, frontier: Option<Time>, record: &Self::In) -> bool {
        let _ = (time, frontier, record);
        false
    }

    /// Applies one record stamped `time` on arrival (only records for which
    /// [`ready`](Lifecycle::ready) said so).
    fn on_record(&mut self, time: Time, record: Self::In, out: &mut Emit<Self::Out, Self::Late>);

    /// Applies the stashed records stamped `time`, once the frontier has
    /// passed `time`; timestamps come in increasing order.
    fn on_records(
        &mut self,
        time: Time,
        records: Vec<Self::In>,
        out: &mut Emit<Self::Out, Self::Late>,
    );

    /// The frontier has reached `watermark`: every record stamped before it
    /// has been applied, and no other will come. Fire what is due. By
    /// default nothing happens.
    fn on_watermark(&mut self, watermark: Time, out: &mut Emit<Self::Out, Self::Late>) {
        let _ = (watermark, out);
    }

    /// The frontier has passed the checkpoint time `checkpoint` (and
    /// `on_watermark(checkpoint)` has run): the state holds exactly the
    /// records stamped before it. Returns that state per key group, each
    /// group's serialized on its own, so that a restore on any number of
    /// workers loads the groups each worker owns. By default (an operator
    /// without state) nothing. [`Stateful`] calls it when started with
    /// [`Checkpoints`] ([`Start`]).
    ///
    /// # Errors
    ///
    /// The state cannot be serialized.
    fn snapshot(&self, checkpoint: Time) -> Result<GroupStates, BoxError> {
        let _ = checkpoint;
        Ok(Vec::new())
    }

    /// Loads one key group's state, as [`snapshot`](Lifecycle::snapshot)
    /// saved it at `checkpoint`, into an operator that has applied nothing
    /// else; then the frontier is at `checkpoint`.
    ///
    /// # Errors
    ///
    /// The bytes are not such a state, or the operator keeps none (the
    /// default).
    fn restore(&mut self, checkpoint: Time, group: u32, state: &[u8]) -> Result<(), BoxError> {
        let _ = (checkpoint, state);
        Err(format!("this operator keeps no state to restore (key group {group})").into())
    }

    /// The input is complete (after a last `on_watermark(Time::MAX)`): flush
    /// anything still held. By default nothing happens.
    fn on_close(&mut self, out: &mut Emit<Self::Out, Self::Late>) {
        let _ = out;
    }

    /// The earliest time the operator may still send at without further
    /// input, or `None` if it holds no state that could produce output. The
    /// skeleton holds its capabilities there (or at the stash's first
    /// timestamp, if earlier).
    fn next_output(&self) -> Option<Time>;
}

/// Output records collected by the hooks during one activation, each with
/// the time it asks for.
pub struct Emit<O, L> {
    out: Runs<O>,
    late: Runs<L>,
}

/// Records in runs of equal times, in the order given: a run goes out as
/// one container, without moving its records again.
struct Runs<R> {
    /// The runs, none of them empty.
    runs: Vec<(Time, Vec<R>)>,
    /// The length of the last run sent, to size the next one.
    hint: usize,
}

impl<R> Runs<R> {
    fn new() -> Self {
        Runs {
            runs: Vec::new(),
            hint: 0,
        }
    }

    #[inline]
    fn push(&mut self, time: Time, record: R) {
        if let Some((t, run)) = self.runs.last_mut()
            && *t == time
        {
            run.push(record);
            return;
        }
        self.start(time, record);
    }

    #[cold]
    fn start(&mut self, time: Time, record: R) {
        let mut run = Vec::with_capacity(self.hint.clamp(1, 1 << 12));
        run.push(record);
        self.runs.push((time, run));
    }

    /// Records in all runs.
    fn len(&self) -> usize {
        self.runs.iter().map(|(_, run)| run.len()).sum()
    }

    /// Drops the runs asking for a time before `time`.
    fn drop_before(&mut self, time: Time) {
        self.runs.retain(|(t, _)| *t >= time);
    }
}

impl<O, L> Emit<O, L> {
    fn new() -> Self {
        Emit {
            out: Runs::new(),
            late: Runs::new(),
        }
    }

    /// Sends `record` on the main output at `time` (or at the held
    /// capability, if that is later).
    #[inline]
    pub fn give(&mut self, time: Time, record: O) {
        self.out.push(time, record);
    }

    /// Sends `record` on the late-data output at `time` (or later, as
    /// [`give`](Emit::give)).
    #[inline]
    pub fn late(&mut self, time: Time, record: L) {
        self.late.push(time, record);
    }

    fn is_empty(&self) -> bool {
        self.out.runs.is_empty() && self.late.runs.is_empty()
    }
}

/// Test support for [`Lifecycle::snapshot`] and [`Lifecycle::restore`]:
/// what operators emit without a checkpoint, and with one at `checkpoint`
/// whose state is restored on `workers` fresh operators, each loading the
/// key groups it owns. `run(ops, from, until)` applies the test's records
/// stamped `from <= time < until` to `ops` (routed by key group), lets the
/// frontier reach `until`, and returns what they emitted. Returns (with,
/// without), each sorted.
#[cfg(test)]
pub(crate) fn with_and_without_checkpoint<L: Lifecycle, R: Ord>(
    fresh: impl Fn() -> L,
    checkpoint: Time,
    workers: usize,
    mut run: impl FnMut(&mut [L], Time, Time) -> Vec<R>,
) -> (Vec<R>, Vec<R>) {
    let mut expected = run(&mut [fresh()], 0, Time::MAX);
    let mut before = [fresh()];
    let mut got = run(&mut before, 0, checkpoint);
    let mut after: Vec<L> = (0..workers).map(|_| fresh()).collect();
    for (group, state) in before[0].snapshot(checkpoint).unwrap() {
        let owner = crate::KeyGroups::worker_of(group, workers);
        after[owner].restore(checkpoint, group, &state).unwrap();
    }
    got.extend(run(&mut after, checkpoint, Time::MAX));
    expected.sort();
    got.sort();
    (got, expected)
}

/// Test support: the records stamped in `range` (sorted by `time`), by
/// time in order, each time's records split among `owners` operators by the
/// key group `group` gives.
#[cfg(test)]
pub(crate) fn by_time_and_owner<R>(
    records: &[R],
    range: std::ops::Range<Time>,
    time: impl Fn(&R) -> Time,
    group: impl Fn(&R) -> u32,
    owners: usize,
) -> Vec<(Time, Vec<Vec<&R>>)> {
    let mut out: Vec<(Time, Vec<Vec<&R>>)> = Vec::new();
    for r in records.iter().filter(|r| range.contains(&time(r))) {
        let t = time(r);
        if out.last().is_none_or(|(last, _)| *last != t) {
            out.push((t, (0..owners).map(|_| Vec::new()).collect()));
        }
        let batches = &mut out.last_mut().expect("pushed above").1;
        batches[crate::KeyGroups::worker_of(group(r), owners)].push(r);
    }
    out
}

#[cfg(test)]
impl<O, L> Emit<O, L> {
    /// An empty collection, for driving a [`Lifecycle`] by hand in tests.
    pub(crate) fn for_test() -> Self {
        Self::new()
    }

    /// Takes what was given on the main output, in order.
    pub(crate) fn take_out(&mut self) -> Vec<O> {
        self.out.runs.drain(..).flat_map(|(_, run)| run).collect()
    }
}

/// Sends `records` run by run (in order of their times), each at its time
/// or at `cap` if that is later.
fn send_runs<R: 'static>(
    records: &mut Runs<R>,
    cap: &Capability<Time>,
    output: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<R>>>,
) {
    if !records.runs.is_sorted_by_key(|(t, _)| *t) {
        records.runs.sort_by_key(|(t, _)| *t);
    }
    let floor = *cap.time();
    for (time, mut run) in records.runs.drain(..) {
        records.hint = run.len();
        let at = cap.delayed(&time.max(floor));
        output.session(&at).give_container(&mut run);
    }
}

/// The two output streams of a stateful operator: results and late records.
pub type Outputs<'scope, O, L> = (VecStream<'scope, O>, VecStream<'scope, L>);

/// The skeleton of a stateful operator: the stash, the capabilities and the
/// frontier bookkeeping around a [`Lifecycle`].
pub struct Stateful<L: Lifecycle> {
    op: L,
    /// Records waiting for the frontier to pass their timestamp.
    stash: BTreeMap<Time, Vec<L::In>>,
    /// Capabilities of the results and late outputs, while there is state.
    caps: Option<(Capability<Time>, Capability<Time>)>,
    closed: bool,
    emit: Emit<L::Out, L::Late>,
    /// Counts the records sent to the late output.
    late: Arc<AtomicU64>,
    /// Where this operator's state goes at checkpoint times, if anywhere.
    save: Option<SaveState>,
    /// Checkpoint times announced and not yet taken, each holding a
    /// capability on both outputs (results, late).
    announced: Announced<(Capability<Time>, Capability<Time>)>,
    /// The checkpoint time this operator was restored from: what it would
    /// send before that time was sent, and committed downstream, before the
    /// checkpoint was complete (the sinks' frontier passes the time only once
    /// this operator's capability has), so it is dropped.
    restored_at: Option<Time>,
}

/// An operator's state per key group: each group's state serialized on its
/// own (see [`Lifecycle::snapshot`]).
pub type GroupStates = Vec<(u32, Vec<u8>)>;

/// Receives a checkpoint time and the operator's state as of it (or the
/// error that kept it from being serialized). The operator's share of the
/// checkpoint is complete when it returns: the operator holds the job's
/// frontier below the checkpoint time until then.
pub type SaveState = Box<dyn FnMut(Time, Result<GroupStates, BoxError>)>;

/// Checkpoints of one stateful operator's state, taken at the checkpoint
/// times announced on `control` (see [`crate::checkpoint`]). An announced
/// time `T` comes stamped at or before `T`, so it arrives before the
/// operator's frontier can pass `T`. When the frontier reaches `T`, the
/// stash below it is applied, the operator is told the watermark is there,
/// and its state as of `T` (every record stamped before it, none after)
/// goes to `save`, per key group; until `save` returns, the operator holds
/// capabilities at `T`, so that nothing downstream passes `T` before this
/// operator's state is saved. Records stamped at or after the next
/// checkpoint time (or, while none is announced, at or after the
/// announcements' frontier) are stashed rather than applied on arrival, so
/// they are never mixed into the state as of it.
pub struct Checkpoints<'scope> {
    /// The announced checkpoint times (every worker receives each one).
    pub control: crate::checkpoint::Control<'scope>,
    /// Where each checkpoint's state goes.
    pub save: SaveState,
}

/// How a stateful operator starts: fresh, or restored from a checkpoint,
/// and whether it takes checkpoints.
#[derive(Default)]
pub struct Start<'scope> {
    /// The checkpoint time the operator's state was restored from (see
    /// [`Lifecycle::restore`]): its outputs start there, so restored state
    /// can fire before any new record arrives.
    pub restored_at: Option<Time>,
    /// Checkpoints to take; `None` takes none.
    pub checkpoints: Option<Checkpoints<'scope>>,
    /// The state to load, per key group, saved at `restored_at`: loaded
    /// with [`Lifecycle::restore`] when the operator is built. An error
    /// (state of another shape) is raised on `failure`.
    pub restore: GroupStates,
    /// Where an error restoring the state goes.
    pub failure: weir_engine::Failure,
}

impl Start<'_> {
    /// Loads the state to restore into `op`.
    fn load<L: Lifecycle>(&mut self, name: &str, op: &mut L) {
        let (Some(at), false) = (self.restored_at, self.restore.is_empty()) else {
            return;
        };
        for (group, state) in std::mem::take(&mut self.restore) {
            if let Err(e) = op.restore(at, group, &state) {
                self.failure.raise(format!(
                    "{name}: cannot restore key group {group} from the checkpoint at {at}: {e}"
                ));
                return;
            }
        }
    }
}

/// An output of a stateful operator, batching records in vectors.
type Output<R> = OutputBuilder<Time, CapacityContainerBuilder<Vec<R>>>;

/// Adds the results and late outputs of a stateful operator to `builder`.
fn two_outputs<'scope, O: 'static, L: 'static>(
    builder: &mut OperatorBuilder<'scope, Time>,
) -> (Output<O>, Output<L>, Outputs<'scope, O, L>) {
    let (results, results_stream) = builder.new_output();
    let (late, late_stream) = builder.new_output();
    (
        Output::from(results),
        Output::from(late),
        (results_stream, late_stream),
    )
}

impl<L: Lifecycle> Stateful<L> {
    fn new(
        op: L,
        late: Arc<AtomicU64>,
        save: Option<SaveState>,
        restored_at: Option<Time>,
    ) -> Self {
        Stateful {
            op,
            stash: BTreeMap::new(),
            caps: None,
            closed: false,
            emit: Emit::new(),
            late,
            save,
            announced: Announced::new(restored_at),
            restored_at: None,
        }
    }

    /// Keeps the outputs' initial capabilities at the restored checkpoint
    /// time, if any: restored state may fire before any input arrives.
    fn hold_initial(&mut self, initial: &[Capability<Time>], restored_at: Option<Time>) {
        if let (Some(t), [results, late, ..]) = (restored_at, initial) {
            self.caps = Some((results.delayed(&t), late.delayed(&t)));
            self.restored_at = Some(t);
        }
    }

    /// Builds the operator `op` on one input: its results and late records.
    /// The number of late records is added to `late`.
    pub fn unary<'scope>(
        input: VecStream<'scope, L::In>,
        name: &str,
        op: L,
        late: Arc<AtomicU64>,
    ) -> Outputs<'scope, L::Out, L::Late> {
        Self::unary_from(input, name, op, late, Start::default())
    }

    /// As [`unary`](Stateful::unary), started as `start` says: restored
    /// from a checkpoint, taking checkpoints.
    pub fn unary_from<'scope>(
        input: VecStream<'scope, L::In>,
        name: &str,
        op: L,
        late: Arc<AtomicU64>,
        mut start: Start<'scope>,
    ) -> Outputs<'scope, L::Out, L::Late> {
        let mut op = op;
        start.load(name, &mut op);
        let mut builder = OperatorBuilder::new(name.to_owned(), input.scope());
        let mut input = builder.new_input(input, Pipeline);
        let (control, save) = start.checkpoints.map(|c| (c.control, c.save)).unzip();
        let mut control = control.map(|c| builder.new_input(c, Pipeline));
        let (mut results, mut late_out, streams) = two_outputs(&mut builder);
        let restored_at = start.restored_at;
        builder.build(move |initial| {
            let mut state = Stateful::new(op, late, save, restored_at);
            state.hold_initial(&initial, restored_at);
            move |frontiers| {
                let frontier = least(frontiers);
                if let (Some(control), Some(f)) = (control.as_mut(), frontiers.last()) {
                    state.announced.take(control, f, hold_both);
                }
                state.step(frontier, &mut results, &mut late_out, |state| {
                    input.for_each(|cap, data| state.receive(frontier, &cap, data, |r| r))
                });
            }
        });
        streams
    }

    /// Builds the operator `op` on two inputs, whose records it reads as
    /// [`Side::Left`] and [`Side::Right`]; as [`unary`](Stateful::unary)
    /// otherwise.
    pub fn binary<'scope, A: 'static, B: 'static>(
        left: VecStream<'scope, A>,
        right: VecStream<'scope, B>,
        name: &str,
        op: L,
        late: Arc<AtomicU64>,
    ) -> Outputs<'scope, L::Out, L::Late>
    where
        L: Lifecycle<In = Side<A, B>>,
    {
        Self::binary_from(left, right, name, op, late, Start::default())
    }

    /// As [`binary`](Stateful::binary), started as `start` says.
    pub fn binary_from<'scope, A: 'static, B: 'static>(
        left: VecStream<'scope, A>,
        right: VecStream<'scope, B>,
        name: &str,
        op: L,
        late: Arc<AtomicU64>,
        mut start: Start<'scope>,
    ) -> Outputs<'scope, L::Out, L::Late>
    where
        L: Lifecycle<In = Side<A, B>>,
    {
        let mut op = op;
        start.load(name, &mut op);
        let mut builder = OperatorBuilder::new(name.to_owned(), left.scope());
        let mut left = builder.new_input(left, Pipeline);
        let mut right = builder.new_input(right, Pipeline);
        let (control, save) = start.checkpoints.map(|c| (c.control, c.save)).unzip();
        let mut control = control.map(|c| builder.new_input(c, Pipeline));
        let (mut results, mut late_out, streams) = two_outputs(&mut builder);
        let restored_at = start.restored_at;
        builder.build(move |initial| {
            let mut state = Stateful::new(op, late, save, restored_at);
            state.hold_initial(&initial, restored_at);
            move |frontiers| {
                let frontier = least(frontiers);
                if let (Some(control), Some(f)) = (control.as_mut(), frontiers.last()) {
                    state.announced.take(control, f, hold_both);
                }
                state.step(frontier, &mut results, &mut late_out, |state| {
                    left.for_each(|cap, data| state.receive(frontier, &cap, data, Side::Left));
                    right.for_each(|cap, data| state.receive(frontier, &cap, data, Side::Right));
                });
            }
        });
        streams
    }

    /// One activation: applies the stash below the frontier, takes in the
    /// new input (`take_input`), reports the frontier, and sends what the
    /// hooks emitted.
    fn step(
        &mut self,
        frontier: Option<Time>,
        results: &mut Output<L::Out>,
        late: &mut Output<L::Late>,
        take_input: impl FnOnce(&mut Self),
    ) {
        self.checkpoint(frontier);
        self.apply_stash(frontier);
        take_input(self);
        self.watermark(frontier);
        self.flush(frontier, &mut results.activate(), &mut late.activate());
    }

    /// Takes the announced checkpoints the frontier has reached, in order
    /// (see [`Checkpoints`]), releasing the capabilities held for each once
    /// its state is saved. A complete input has passed them all: the job
    /// commits each before its end.
    fn checkpoint(&mut self, frontier: Option<Time>) {
        if self.closed {
            self.announced.clear();
            return;
        }
        while let Some((at, held)) = self.announced.due(frontier) {
            self.apply_stash(Some(at));
            self.op.on_watermark(at, &mut self.emit);
            let state = self.op.snapshot(at);
            if let Some(save) = self.save.as_mut() {
                save(at, state);
            }
            drop(held);
        }
    }

    /// Whether records stamped `time` may be applied on arrival: not at or
    /// after the next checkpoint time, nor at or after the frontier of
    /// announcements (a checkpoint may still be announced there).
    fn before_checkpoint(&self, time: Time) -> bool {
        self.announced.gate().is_none_or(|gate| time < gate)
    }

    /// Applies, in timestamp order, the stash below `frontier`.
    fn apply_stash(&mut self, frontier: Option<Time>) {
        if self.closed {
            return;
        }
        while let Some(entry) = self.stash.first_entry() {
            let time = *entry.key();
            if frontier.is_some_and(|f| time >= f) {
                break;
            }
            let records = entry.remove();
            self.op.on_records(time, records, &mut self.emit);
        }
    }

    /// Tells the operator where the frontier is (and, once, that the input
    /// is complete).
    fn watermark(&mut self, frontier: Option<Time>) {
        if self.closed {
            return;
        }
        match frontier {
            Some(f) => self.op.on_watermark(f, &mut self.emit),
            None => {
                self.op.on_watermark(Time::MAX, &mut self.emit);
                self.op.on_close(&mut self.emit);
                self.closed = true;
            }
        }
    }

    /// Takes in one batch: holds a capability for its time, applies the
    /// records the operator can apply now and stashes the others.
    fn receive<R>(
        &mut self,
        frontier: Option<Time>,
        cap: &InputCapability<Time>,
        data: &mut Vec<R>,
        wrap: impl Fn(R) -> L::In,
    ) {
        let Some(time) = cap.least().copied() else {
            data.clear();
            return;
        };
        if self.caps.as_ref().is_none_or(|(c, _)| time < *c.time()) {
            self.caps = cap.retain_least(0).zip(cap.retain_least(1));
        }
        // The batch shares one time: whether a checkpoint comes before it
        // is asked once, not per record.
        let may_apply = self.before_checkpoint(time);
        let mut waiting = Vec::new();
        for record in data.drain(..) {
            let record = wrap(record);
            if may_apply && self.op.ready(time, frontier, &record) {
                self.op.on_record(time, record, &mut self.emit);
            } else {
                waiting.push(record);
            }
        }
        if !waiting.is_empty() {
            self.stash.entry(time).or_default().append(&mut waiting);
        }
    }

    /// Sends what the hooks emitted, then moves the capabilities up to the
    /// earliest time still needed, or drops them when no state is left.
    fn flush(
        &mut self,
        frontier: Option<Time>,
        results: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<L::Out>>>,
        late: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<L::Late>>>,
    ) {
        if let Some(t) = self.restored_at {
            self.emit.out.drop_before(t);
            self.emit.late.drop_before(t);
        }
        if !self.emit.is_empty() {
            match &self.caps {
                Some((results_cap, late_cap)) => {
                    let late_records = self.emit.late.len() as u64;
                    if late_records > 0 {
                        self.late.fetch_add(late_records, Ordering::Relaxed);
                    }
                    send_runs(&mut self.emit.out, results_cap, results);
                    send_runs(&mut self.emit.late, late_cap, late);
                }
                None => {
                    // Output needs state, and state needs a capability:
                    // this cannot happen, but must not panic a worker.
                    debug_assert!(false, "a stateful operator emitted without a capability");
                    self.emit.out.runs.clear();
                    self.emit.late.runs.clear();
                }
            }
        }
        let first_stashed = self.stash.keys().next().copied();
        let hold = first_stashed.into_iter().chain(self.op.next_output()).min();
        match (hold, self.caps.as_mut()) {
            (None, _) => self.caps = None,
            (Some(t), Some((results_cap, late_cap))) => {
                // Never above the frontier: records may still arrive there.
                let t = frontier.map_or(t, |f| t.min(f));
                if t > *results_cap.time() {
                    results_cap.downgrade(&t);
                    late_cap.downgrade(&t);
                }
            }
            (Some(_), None) => {}
        }
    }
}

/// The capabilities a stateful operator holds for an announced checkpoint
/// at `at`: one on each output.
fn hold_both(cap: &InputCapability<Time>, at: Time) -> (Capability<Time>, Capability<Time>) {
    (cap.delayed(&at, 0), cap.delayed(&at, 1))
}

/// The least time of the frontiers of all inputs; `None` once all are
/// complete.
fn least(frontiers: &[timely::progress::frontier::MutableAntichain<Time>]) -> Option<Time> {
    frontiers
        .iter()
        .filter_map(|f| f.frontier().first().copied())
        .min()
}

/// A record of the left or of the right input of a two-input operator.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Side<A, B> {
    /// From the left input.
    Left(A),
    /// From the right input.
    Right(B),
}
