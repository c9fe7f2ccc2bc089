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
//!
//! Both are [`Lifecycle`](crate::lifecycle::Lifecycle)s run by the one
//! stateful-operator skeleton ([`Stateful`]): `panes.rs` holds the
//! tumbling and sliding state, `sessions.rs` the session state.

mod panes;
mod sessions;

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};

pub use crate::aggregator::Aggregator;
use crate::lifecycle::{Start, Stateful};
use crate::{Time, VecStream};

/// A keyed record with its event time.
type Keyed<K, V> = (Time, (K, V));

/// What window state sends: results with their event time, late records.
type WindowEmit<K, V, O> = crate::lifecycle::Emit<(Time, WindowResult<K, O>), Keyed<K, V>>;

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

    /// As [`window_aggregate`](WindowAggregate::window_aggregate), started
    /// as `start` says (restored from a checkpoint, taking checkpoints).
    fn window_aggregate_from<A: Aggregator<V>>(
        self,
        config: WindowConfig,
        agg: A,
        late: Arc<AtomicU64>,
        start: Start<'scope>,
    ) -> WindowOutputs<'scope, K, V, A::Out>;
}

impl<'scope, K, V> WindowAggregate<'scope, K, V> for VecStream<'scope, (Time, (K, V))>
where
    K: Hash + Eq + Clone + serde::Serialize + serde::de::DeserializeOwned + 'static,
    V: 'static,
{
    fn window_aggregate<A: Aggregator<V>>(
        self,
        config: WindowConfig,
        agg: A,
        late: Arc<AtomicU64>,
    ) -> WindowOutputs<'scope, K, V, A::Out> {
        self.window_aggregate_from(config, agg, late, Start::default())
    }

    fn window_aggregate_from<A: Aggregator<V>>(
        self,
        config: WindowConfig,
        agg: A,
        late: Arc<AtomicU64>,
        start: Start<'scope>,
    ) -> WindowOutputs<'scope, K, V, A::Out> {
        let lateness = config.allowed_lateness;
        match config.assigner {
            Assigner::Tumbling { size } => {
                let panes = panes::Panes::new(size, size, lateness, agg);
                Stateful::unary_from(self, "Window", panes, late, start)
            }
            Assigner::Sliding { size, slide } => {
                let panes = panes::Panes::new(size, slide, lateness, agg);
                Stateful::unary_from(self, "Window", panes, late, start)
            }
            Assigner::Session { gap } => {
                let sessions = sessions::Sessions::new(gap, lateness, agg);
                Stateful::unary_from(self, "Window", sessions, late, start)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    use timely::dataflow::operators::Input;
    use timely::dataflow::operators::capture::{Capture, Extract};

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

    mod restore {
        use proptest::prelude::*;

        use crate::lifecycle::{Emit, Lifecycle, with_and_without_checkpoint};
        use crate::window::panes::Panes;
        use crate::window::sessions::Sessions;
        use crate::window::{Keyed, WindowResult};
        use crate::{Aggregator, KeyGroups, Time};

        pub(super) struct SumOf;

        impl Aggregator<u64> for SumOf {
            type Acc = u64;
            type Out = u64;
            fn init(&self) -> u64 {
                0
            }
            fn add(&self, acc: &mut u64, v: &u64) {
                *acc += v;
            }
            fn merge(&self, acc: &mut u64, other: &u64) {
                *acc += other;
            }
            fn finish(&self, acc: u64) -> u64 {
                acc
            }
        }

        trait Window: Lifecycle<In = Keyed<u32, u64>, Out = (Time, WindowResult<u32, u64>)> {}
        impl<L: Lifecycle<In = Keyed<u32, u64>, Out = (Time, WindowResult<u32, u64>)>> Window for L {}

        /// Window results as (key, start, end, sum).
        type Results = Vec<(u32, u64, u64, u64)>;

        /// Applies the records with `from <= ts < until` (sorted by `ts`, each
        /// stamped with its own time) to the operator owning its key's group,
        /// with a watermark to all at every multiple of 50 ms, then up to
        /// `until`; returns the results as (key, start, end, sum).
        fn run<L: Window>(
            ops: &mut [L],
            records: &[(u64, u32, u64)],
            from: u64,
            until: u64,
        ) -> Results {
            let mut emit = Emit::for_test();
            let mut mark = from - from % 50 + 50;
            for &(ts, key, v) in records.iter().filter(|r| (from..until).contains(&r.0)) {
                while mark <= ts {
                    ops.iter_mut()
                        .for_each(|op| op.on_watermark(mark, &mut emit));
                    mark += 50;
                }
                let owner = KeyGroups::worker_of(KeyGroups::group_of(&key), ops.len());
                ops[owner].on_records(ts, vec![(ts, (key, v))], &mut emit);
            }
            ops.iter_mut()
                .for_each(|op| op.on_watermark(until, &mut emit));
            emit.take_out()
                .into_iter()
                .map(|(_, r)| (r.key, r.window_start, r.window_end, r.value))
                .collect()
        }

        fn records() -> impl Strategy<Value = Vec<(u64, u32, u64)>> {
            prop::collection::vec((0u64..3_000, 0u32..40, 1u64..100), 0..300)
        }

        proptest! {
            /// Tumbling and sliding window state saved at a checkpoint and
            /// restored on 1, 2 or 3 operators gives the results of a run
            /// without the checkpoint.
            #[test]
            fn restored_panes_continue_as_if_never_stopped(
                mut records in records(),
                (size, slide) in prop_oneof![Just((200u64, 200u64)), Just((300, 100)), Just((250, 50))],
                checkpoint in 1u64..3_000,
                workers in 1usize..4,
            ) {
                records.sort_by_key(|r| r.0);
                let (got, expected) = with_and_without_checkpoint(
                    || Panes::new(size, slide, 0, SumOf), checkpoint, workers,
                    |ops, from, until| run(ops, &records, from, until));
                prop_assert_eq!(got, expected);
            }

            /// The same for session windows (with and without allowed
            /// lateness).
            #[test]
            fn restored_sessions_continue_as_if_never_stopped(
                mut records in records(),
                gap in prop_oneof![Just(20u64), Just(120)],
                lateness in prop_oneof![Just(0u64), Just(70)],
                checkpoint in 1u64..3_000,
                workers in 1usize..4,
            ) {
                records.sort_by_key(|r| r.0);
                let (got, expected) = with_and_without_checkpoint(
                    || Sessions::new(gap, lateness, SumOf), checkpoint, workers,
                    |ops, from, until| run(ops, &records, from, until));
                prop_assert_eq!(got, expected);
            }
        }

        #[test]
        fn state_of_another_shape_is_an_error_not_a_panic() {
            let mut panes: Panes<u32, u64, SumOf> = Panes::new(10, 10, 0, SumOf);
            assert!(panes.restore(0, 0, b"\x01\x02").is_err());
            let mut sessions: Sessions<u32, u64, SumOf> = Sessions::new(10, 0, SumOf);
            assert!(sessions.restore(0, 0, b"\x05").is_err());
        }
    }

    /// Checkpoints taken by a live window operator: for every checkpoint
    /// time `T` it saved, a fresh operator restored from that state and fed
    /// only the records stamped at or after `T` gives, with the first run's
    /// results before `T`, the first run's results.
    mod live_checkpoints {
        use std::sync::{Arc, Mutex};

        use timely::dataflow::InputHandle;
        use timely::dataflow::operators::Concat;
        use timely::dataflow::operators::capture::{Capture, Extract};

        use super::restore::SumOf;
        use crate::Time;
        use crate::lifecycle::{Checkpoints, GroupStates, Lifecycle, Start, Stateful};
        use crate::window::panes::Panes;
        use crate::window::sessions::Sessions;
        use crate::window::{Keyed, WindowResult};
        use timely::dataflow::operators::vec::Input as _;

        type Saved = Arc<Mutex<Vec<(Time, GroupStates)>>>;
        type Results = Vec<(Time, (u32, u64, u64, u64))>;

        /// Records `(input time, ts, key, value)`, in input-time order.
        fn records() -> Vec<(Time, u64, u32, u64)> {
            let mut state = 0x2545_f491_4f6c_dd1du64;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let mut records: Vec<_> = (0..2_000u64)
                .map(|i| {
                    let ts = i * 3 / 2 + next() % 40;
                    (ts - ts % 7, ts, (next() % 25) as u32, next() % 100)
                })
                .collect();
            records.sort_by_key(|r| r.0);
            records
        }

        /// Runs `op` (restored at `restored_at`, if given) on the records
        /// stamped at or after `from`, with checkpoints announced every
        /// 100 ms of event time, as the announcer does (the next one stamped
        /// at the last), saved into `saved`; returns the results with their
        /// times.
        fn run<L, M>(make: M, restore: Option<(Time, GroupStates)>, saved: Saved) -> Results
        where
            L: Lifecycle<In = Keyed<u32, u64>, Out = (Time, WindowResult<u32, u64>)> + 'static,
            M: Fn() -> L + Send + Sync + 'static,
        {
            let (tx, rx) = std::sync::mpsc::channel();
            timely::execute_directly(move |worker| {
                let mut input = InputHandle::<
                    Time,
                    timely::container::CapacityContainerBuilder<Vec<Keyed<u32, u64>>>,
                >::new();
                let op = make();
                let from = restore.as_ref().map_or(0, |(t, _)| *t);
                let (restored_at, state) = restore.unzip();
                let failure = weir_engine::Failure::default();
                // A second, empty input trails the records by 60 ms and
                // holds the frontier back: records at or after a checkpoint
                // time arrive before the frontier reaches it.
                let mut trailing = InputHandle::<
                    Time,
                    timely::container::CapacityContainerBuilder<Vec<Keyed<u32, u64>>>,
                >::new();
                let mut control = worker.dataflow::<Time, _, _>(|scope| {
                    let stream = input.to_stream(scope).concat(trailing.to_stream(scope));
                    let (control, announced) = scope.new_input::<Time>();
                    let start = Start {
                        restored_at,
                        checkpoints: Some(Checkpoints {
                            control: announced,
                            save: Box::new(move |t, state| {
                                saved.lock().unwrap().push((t, state.unwrap()));
                            }),
                        }),
                        restore: state.unwrap_or_default(),
                        failure: failure.clone(),
                    };
                    let (results, _late) =
                        Stateful::unary_from(stream, "W", op, Arc::default(), start);
                    results.capture_into(tx);
                    control
                });
                input.advance_to(from);
                trailing.advance_to(from);
                control.advance_to(from);
                let mut next = from - from % 100 + 100;
                control.send(next);
                control.advance_to(next);
                for (t, ts, key, v) in records() {
                    if t < from {
                        continue;
                    }
                    // The sources (here the trailing input) have passed the
                    // checkpoint time announced last: announce the next.
                    while t.saturating_sub(60) >= next {
                        next += 100;
                        control.send(next);
                        control.advance_to(next);
                    }
                    input.advance_to(t);
                    trailing.advance_to(t.saturating_sub(60).max(from));
                    input.send((ts, (key, v)));
                    worker.step();
                }
                input.close();
                trailing.close();
                control.close();
                while worker.step() {}
                assert!(!failure.is_raised(), "the state restores");
            });
            rx.extract()
                .into_iter()
                .flat_map(|(t, rs)| rs.into_iter().map(move |(_, r)| (t, r)))
                .map(|(t, r)| (t, (r.key, r.window_start, r.window_end, r.value)))
                .collect()
        }

        fn restores_from_every_checkpoint<L, M>(make: M)
        where
            L: Lifecycle<In = Keyed<u32, u64>, Out = (Time, WindowResult<u32, u64>)> + 'static,
            M: Fn() -> L + Send + Sync + Clone + 'static,
        {
            let saved: Saved = Arc::default();
            let mut full = run(make.clone(), None, Arc::clone(&saved));
            full.sort();
            let checkpoints = saved.lock().unwrap().clone();
            assert!(checkpoints.len() >= 10, "{} checkpoints", checkpoints.len());
            for (t, state) in checkpoints {
                let mut got: Results = full.iter().filter(|(time, _)| *time < t).cloned().collect();
                got.extend(run(make.clone(), Some((t, state)), Arc::default()));
                got.sort();
                assert_eq!(got, full, "restored from the checkpoint at {t}");
            }
        }

        #[test]
        fn sliding_windows_restore_from_every_checkpoint() {
            restores_from_every_checkpoint(|| Panes::new(300, 100, 0, SumOf));
        }

        #[test]
        fn sessions_restore_from_every_checkpoint() {
            restores_from_every_checkpoint(|| Sessions::new(25, 10, SumOf));
        }
    }
}
