//! Keyed event-time windows: `KeyedStream::window`, the window kinds, and
//! `WindowedStream` with its aggregations.

use std::sync::Arc;
use std::time::Duration;

use timely::dataflow::operators::vec::Map;
use weir_engine::CounterKind;
pub use weir_operators::window::WindowResult;
use weir_operators::window::{Assigner, WindowAggregate, WindowConfig};

use crate::aggregate::{Aggregator, Avg, Collected, Count, Max, MaxBy, Min, Reduce, Sum};
use crate::error::PlanError;
use crate::plan::{NodeId, Port};
use crate::stream::Upstream;
use crate::{Data, Key, KeyedStream, Stream};

/// A window kind with its parameters, as given to [`KeyedStream::window`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    assigner: Assigner,
}

impl std::fmt::Display for WindowSpec {
    /// The window as `explain` shows it, e.g. `sliding(10000 ms every 2000 ms)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl WindowSpec {
    fn describe(&self) -> String {
        match self.assigner {
            Assigner::Tumbling { size } => format!("tumbling({size} ms)"),
            Assigner::Sliding { size, slide } => format!("sliding({size} ms every {slide} ms)"),
            Assigner::Session { gap } => format!("session(gap {gap} ms)"),
        }
    }

    /// The first impossible parameter: `(field, expected)`.
    fn problem(&self) -> Option<(&'static str, String)> {
        match self.assigner {
            Assigner::Tumbling { size: 0 } | Assigner::Sliding { size: 0, .. } => {
                Some(("size", "a window size above 0 ms".into()))
            }
            Assigner::Sliding { slide: 0, .. } => Some(("slide", "a slide above 0 ms".into())),
            Assigner::Sliding { size, slide } if slide > size => Some((
                "slide",
                format!("a slide no longer than the size ({size} ms), got {slide} ms"),
            )),
            Assigner::Session { gap: 0 } => Some(("gap", "a session gap above 0 ms".into())),
            _ => None,
        }
    }
}

fn millis(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX / 4)) as u64
}

/// Tumbling windows: `[k·size, (k+1)·size)`, aligned to the epoch.
pub struct Tumbling;

impl Tumbling {
    /// Windows of length `size`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let w = weir::Tumbling::of(Duration::from_secs(10));
    /// assert_eq!(w.to_string(), "tumbling(10000 ms)");
    /// ```
    pub fn of(size: Duration) -> WindowSpec {
        WindowSpec {
            assigner: Assigner::Tumbling { size: millis(size) },
        }
    }
}

/// Sliding windows: every `[k·slide, k·slide + size)` holding the event.
///
/// Windows start at or after the epoch (time 0): an event in the first
/// `size` of event time belongs only to the windows starting at 0 or later,
/// not to those that would start before it. Real timestamps never come
/// near this; small test timestamps (`ts = 1000`) do, and get fewer
/// windows than `size / slide`.
pub struct Sliding {
    size: u64,
}

impl Sliding {
    /// Windows of length `size`; say how often they start with [`every`](Sliding::every).
    pub fn of(size: Duration) -> Sliding {
        Sliding { size: millis(size) }
    }

    /// A window starts every `slide` (at most the size).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let w = weir::Sliding::of(Duration::from_secs(10)).every(Duration::from_secs(2));
    /// assert_eq!(w.to_string(), "sliding(10000 ms every 2000 ms)");
    /// ```
    pub fn every(self, slide: Duration) -> WindowSpec {
        WindowSpec {
            assigner: Assigner::Sliding {
                size: self.size,
                slide: millis(slide),
            },
        }
    }
}

/// Session windows: per key, runs of events less than `gap` apart; a
/// session is `[first, last + gap)` (windows that overlap or touch merge).
pub struct Session;

impl Session {
    /// Sessions closed by `gap` without events.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let w = weir::Session::with_gap(Duration::from_secs(30));
    /// assert_eq!(w.to_string(), "session(gap 30000 ms)");
    /// ```
    pub fn with_gap(gap: Duration) -> WindowSpec {
        WindowSpec {
            assigner: Assigner::Session { gap: millis(gap) },
        }
    }
}

/// A keyed stream cut into event-time windows, waiting for an aggregation.
///
/// Each window's result is emitted once, when the watermark passes
/// `window_end + allowed_lateness`, as a [`WindowResult`] with the key,
/// `window_start`, `window_end` and the value.
#[must_use = "a window does nothing until it is aggregated (count, sum, aggregate, ...)"]
pub struct WindowedStream<K, T> {
    input: Stream<(K, T)>,
    spec: WindowSpec,
    lateness: u64,
    /// The window stage: port 0 its results, port 1 its late records. It is
    /// built once the aggregation is known.
    node: NodeId,
}

impl<K: Key, T: Data> KeyedStream<K, T> {
    /// Cuts each key's records into event-time windows.
    ///
    /// # Errors
    ///
    /// `run` reports a [`PlanError`] naming the stage if the stream has no
    /// event time (see [`Stream::event_time`]) or the window parameters are
    /// impossible (zero size, zero gap, slide longer than size).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::prelude::*;
    ///
    /// let p = Pipeline::new("p");
    /// let _ = p
    ///     .source(Iter::new(vec![1u64, 2, 3]))
    ///     .event_time(|t| *t, Watermark::ascending())
    ///     .key_by(|t| t % 2)
    ///     .window(Sliding::of(Duration::from_secs(1)).every(Duration::from_secs(2)))
    ///     .count();
    /// let err = p.validate().unwrap_err().to_string();
    /// assert!(err.contains("`slide`") && err.contains("no longer than the size"), "{err}");
    /// ```
    pub fn window(self, spec: WindowSpec) -> WindowedStream<K, T> {
        let input = self.into_stream();
        let node = input.pipeline.add_node_with_outputs(
            "window",
            spec.describe(),
            &[input.at],
            &["", "late"],
        );
        let stage = input.pipeline.describe(node);
        if !input.timed {
            input.pipeline.record_error(PlanError::InvalidParameter {
                stage: stage.clone(),
                field: "event_time".into(),
                expected: "a stream with event time: call `.event_time(..)` on the source".into(),
            });
        }
        if let Some((field, expected)) = spec.problem() {
            input.pipeline.record_error(PlanError::InvalidParameter {
                stage,
                field: field.into(),
                expected,
            });
        }
        WindowedStream {
            input,
            spec,
            lateness: 0,
            node,
        }
    }
}

impl<K: Key, T: Data> WindowedStream<K, T> {
    /// Waits `lateness` after a window's end before firing it, so that
    /// records up to that late still count. The window fires once.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = millis(lateness);
        self
    }

    /// The late records of this window stage: records whose windows had all
    /// fired when the watermark of their partition reached them. Without
    /// this, late records are dropped (and counted in the run summary).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::prelude::*;
    ///
    /// // One partition, a watermark after every record: event times 5, 25,
    /// // then 3, late since the watermark is 25 − 10 = 15 by then and 3's
    /// // window [0, 10) has ended.
    /// let p = Pipeline::new("late");
    /// let windowed = p
    ///     .source(Iter::new(vec![5u64, 25, 3]).partitions(1))
    ///     .event_time(|t| *t, Watermark::bounded(Duration::from_millis(10)).every(1))
    ///     .key_by(|_| 0u8)
    ///     .window(Tumbling::of(Duration::from_millis(10)));
    /// let (late, counts) = (Collect::new(), Collect::new());
    /// windowed.late_data().sink(late.clone());
    /// windowed.count().sink(counts.clone());
    /// // The window stage has two outputs; the late records are `#3.late`.
    /// assert!(p.explain().contains("<- #3.late"), "{}", p.explain());
    /// let summary = p.run(Cluster::threads(1).quiet(true)).unwrap();
    /// assert_eq!(late.take(), vec![3]);
    /// let mut got: Vec<_> = counts.take().into_iter().map(|r| (r.window_start, r.value)).collect();
    /// got.sort();
    /// assert_eq!(got, vec![(0, 1), (20, 1)]);
    /// assert_eq!(summary.late[0].1, 1);
    /// ```
    pub fn late_data(&self) -> Stream<T> {
        let late = Port {
            node: self.node,
            port: 1,
        };
        Stream::of(self.input.pipeline.clone(), late, true)
    }

    /// Aggregates each window with `agg`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::aggregate::{Count, Max, Sum};
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec![(1u64, 5i64), (2, 7), (11, 1)]))
    ///     .event_time(|e: &(u64, i64)| e.0, Watermark::ascending())
    ///     .key_by(|_| 0u8)
    ///     .window(Tumbling::of(Duration::from_millis(10)))
    ///     .aggregate((Count, Sum::of(|e: &(u64, i64)| e.1), Max::of(|e: &(u64, i64)| e.1)))
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(1).quiet(true))
    ///     .unwrap();
    /// let mut got: Vec<_> = out.take().into_iter().map(|r| (r.window_start, r.value)).collect();
    /// got.sort_by_key(|r| r.0);
    /// assert_eq!(got, vec![(0, (2, 12, 7)), (10, (1, 1, 1))]);
    /// ```
    pub fn aggregate<A>(self, agg: A) -> Stream<WindowResult<K, A::Out>>
    where
        A: Aggregator<T>,
        A::Out: Data,
    {
        let config = WindowConfig {
            assigner: self.spec.assigner,
            allowed_lateness: self.lateness,
        };
        let up: Upstream<(K, T)> = self.input.upstream();
        let agg = Arc::new(agg);
        let name = format!("#{} {}", self.node, self.spec.describe());
        let node = self.node;
        self.input.pipeline.set_build(
            node,
            Arc::new(move |ctx| {
                let late = ctx.metrics.counter(CounterKind::Late, &name);
                let input = up.build(ctx)?;
                let start = ctx.keyed_start(node)?;
                let (results, late_records) = input.window_aggregate_from(
                    config,
                    SharedAggregator(Arc::clone(&agg)),
                    late,
                    start,
                );
                ctx.provide(Port::main(node), results);
                let late_port = Port { node, port: 1 };
                ctx.provide(late_port, late_records.map(|(ts, (_, v))| (ts, v)));
                Ok(())
            }),
        );
        Stream::of(self.input.pipeline.clone(), Port::main(node), true)
    }

    /// Number of records per window.
    pub fn count(self) -> Stream<WindowResult<K, u64>> {
        self.aggregate(Count)
    }

    /// Sum of `field` per window.
    pub fn sum<N, F>(self, field: F) -> Stream<WindowResult<K, N>>
    where
        N: Data + Copy + Default + std::ops::Add<Output = N>,
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.aggregate(Sum::of(field))
    }

    /// Least `field` per window.
    pub fn min<N, F>(self, field: F) -> Stream<WindowResult<K, N>>
    where
        N: Data + Copy + Default + PartialOrd,
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.aggregate(Min::of(field))
    }

    /// Greatest `field` per window.
    pub fn max<N, F>(self, field: F) -> Stream<WindowResult<K, N>>
    where
        N: Data + Copy + Default + PartialOrd,
        F: Fn(&T) -> N + Send + Sync + 'static,
    {
        self.aggregate(Max::of(field))
    }

    /// The records with the greatest `key` per window (all of them on a
    /// tie); only those are kept while the window is open.
    pub fn max_by<B, F>(self, key: F) -> Stream<WindowResult<K, Vec<T>>>
    where
        B: Ord + 'static,
        F: Fn(&T) -> B + Send + Sync + 'static,
    {
        self.aggregate(MaxBy::of(key))
    }

    /// Mean of `field` per window.
    pub fn avg<F>(self, field: F) -> Stream<WindowResult<K, f64>>
    where
        F: Fn(&T) -> f64 + Send + Sync + 'static,
    {
        self.aggregate(Avg::of(field))
    }

    /// Combines each window's records pairwise with `f`.
    pub fn reduce<F>(self, f: F) -> Stream<WindowResult<K, T>>
    where
        F: Fn(&T, &T) -> T + Send + Sync + 'static,
    {
        self.aggregate(Reduce(f))
    }

    /// Folds each window's records into `init()` with `f`. Partial folds
    /// cannot be merged, so the window keeps its records until it fires; the
    /// order they are folded in is not specified.
    pub fn fold<A, I, F>(self, init: I, f: F) -> Stream<WindowResult<K, A>>
    where
        A: Data,
        I: Fn() -> A + Send + Sync + 'static,
        F: Fn(&mut A, &T) + Send + Sync + 'static,
    {
        self.aggregate(Collected(move |records: Vec<T>| {
            let mut acc = init();
            records.iter().for_each(|r| f(&mut acc, r));
            acc
        }))
    }

    /// Hands all of a window's records (in no particular order) to `f`.
    pub fn process<O, F>(self, f: F) -> Stream<WindowResult<K, O>>
    where
        O: Data,
        F: Fn(Vec<T>) -> O + Send + Sync + 'static,
    {
        self.aggregate(Collected(f))
    }
}

/// Lets one aggregator, shared by the workers of a process, serve each
/// worker's window operator.
struct SharedAggregator<A>(Arc<A>);

impl<V, A: Aggregator<V>> Aggregator<V> for SharedAggregator<A> {
    type Acc = A::Acc;
    type Out = A::Out;
    fn init(&self) -> A::Acc {
        self.0.init()
    }
    fn add(&self, acc: &mut A::Acc, value: &V) {
        self.0.add(acc, value)
    }
    fn merge(&self, acc: &mut A::Acc, other: &A::Acc) {
        self.0.merge(acc, other)
    }
    fn add_owned(&self, acc: &mut A::Acc, value: V) {
        self.0.add_owned(acc, value)
    }
    fn merge_owned(&self, acc: &mut A::Acc, other: A::Acc) {
        self.0.merge_owned(acc, other)
    }
    fn finish(&self, acc: A::Acc) -> A::Out {
        self.0.finish(acc)
    }
}
