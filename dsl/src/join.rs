//! Joins of keyed streams: window joins and interval joins.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::aggregate::Aggregator;
use crate::window::WindowSpec;
use crate::{Data, Key, KeyedStream, Stream};

pub use weir_operators::Side;

/// A matching pair of a join.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Joined<K, A, B> {
    /// The key both records have.
    pub key: K,
    /// The left record.
    pub left: A,
    /// The right record.
    pub right: B,
}

/// Collects a window's records of both sides and pairs them when it fires.
struct PairUp;

/// The records of one side of one key in one pane: most keys have one.
type Few<T> = SmallVec<[T; 1]>;

impl<A: crate::Data, B: crate::Data> Aggregator<Side<A, B>> for PairUp {
    type Acc = (Few<A>, Few<B>);
    type Out = Vec<(A, B)>;

    fn init(&self) -> Self::Acc {
        (Few::new(), Few::new())
    }

    fn add(&self, acc: &mut Self::Acc, value: &Side<A, B>) {
        self.add_owned(acc, value.clone());
    }

    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
        acc.0.extend(other.0.iter().cloned());
        acc.1.extend(other.1.iter().cloned());
    }

    fn add_owned(&self, acc: &mut Self::Acc, value: Side<A, B>) {
        match value {
            Side::Left(a) => acc.0.push(a),
            Side::Right(b) => acc.1.push(b),
        }
    }

    fn merge_owned(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.0.extend(other.0);
        acc.1.extend(other.1);
    }

    fn finish(&self, (lefts, rights): Self::Acc) -> Vec<(A, B)> {
        let mut pairs = Vec::with_capacity(lefts.len() * rights.len());
        for a in &lefts {
            for b in &rights {
                pairs.push((a.clone(), b.clone()));
            }
        }
        pairs
    }
}

impl<K: Key, A: Data> KeyedStream<K, A> {
    /// Joins this stream with `other` on the key, within event-time windows:
    /// each pair of records with equal keys in the same window is emitted
    /// once per window, when the window fires (for sliding windows a pair may
    /// share several windows). Both streams need event time; lateness is as
    /// for [`window`](KeyedStream::window) aggregations, and late records
    /// join nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::prelude::*;
    ///
    /// let p = Pipeline::new("join");
    /// let clicks = p
    ///     .source(Iter::new(vec![(1_000u64, 'a'), (1_500, 'b'), (12_000, 'a')]))
    ///     .event_time(|c: &(u64, char)| c.0, Watermark::ascending())
    ///     .key_by(|c| c.1);
    /// let views = p
    ///     .source(Iter::new(vec![(2_000u64, 'a'), (15_000, 'b')]))
    ///     .event_time(|v: &(u64, char)| v.0, Watermark::ascending())
    ///     .key_by(|v| v.1);
    /// let out = Collect::new();
    /// clicks
    ///     .window_join(views, Tumbling::of(Duration::from_secs(10)))
    ///     .sink(out.clone());
    /// p.run(Cluster::threads(2).quiet(true)).unwrap();
    /// let got: Vec<_> = out.take().into_iter().map(|j| (j.key, j.left.0, j.right.0)).collect();
    /// assert_eq!(got, vec![('a', 1_000, 2_000)]);
    /// ```
    pub fn window_join<B: Data>(
        self,
        other: KeyedStream<K, B>,
        spec: WindowSpec,
    ) -> Stream<Joined<K, A, B>> {
        // `union` reports streams of two pipelines, and `window` streams
        // without event time.
        let (left, right) = (self.inner, other.inner);
        let sides = left
            .map(|(k, a)| (k, Side::Left(a)))
            .union(right.map(|(k, b)| (k, Side::Right(b))));
        KeyedStream { inner: sides }
            .window(spec)
            .aggregate(PairUp)
            .flat_map(|r| {
                let key = r.key;
                r.value.into_iter().map(move |(left, right)| Joined {
                    key: key.clone(),
                    left,
                    right,
                })
            })
            .named("window_join")
    }
}

impl<K: Key, A: Data> KeyedStream<K, A> {
    /// Joins this stream with `other` on the key and an event-time interval:
    /// each pair `(a, b)` with equal keys and `a.ts + lower <= b.ts <= a.ts +
    /// upper` (milliseconds; `lower` may be negative) is emitted once, as soon
    /// as both are in, with the later event time of the two. A record whose
    /// event time is below its partition's watermark is late and joins
    /// nothing; stored records are dropped as soon as the watermark makes a
    /// match impossible.
    ///
    /// # Errors
    ///
    /// `run` reports a [`PlanError`](crate::PlanError) if `lower > upper` or
    /// a stream has no event time.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let p = Pipeline::new("interval");
    /// let orders = p
    ///     .source(Iter::new(vec![(1_000u64, 7u32), (5_000, 8)]))
    ///     .event_time(|o: &(u64, u32)| o.0, Watermark::ascending())
    ///     .key_by(|o| o.1);
    /// let payments = p
    ///     .source(Iter::new(vec![(1_500u64, 7u32), (9_000, 8)]))
    ///     .event_time(|p: &(u64, u32)| p.0, Watermark::ascending())
    ///     .key_by(|p| p.1);
    /// let out = Collect::new();
    /// // A payment up to 2 s after its order.
    /// orders.interval_join(payments, 0, 2_000).sink(out.clone());
    /// p.run(Cluster::threads(2).quiet(true)).unwrap();
    /// let got: Vec<_> = out.take().into_iter().map(|j| (j.key, j.left.0, j.right.0)).collect();
    /// assert_eq!(got, vec![(7, 1_000, 1_500)]);
    /// ```
    pub fn interval_join<B: Data>(
        self,
        other: KeyedStream<K, B>,
        lower: i64,
        upper: i64,
    ) -> Stream<Joined<K, A, B>> {
        use std::sync::Arc;
        use timely::dataflow::operators::vec::Map;
        use weir_engine::CounterKind;
        use weir_operators::join::IntervalJoin;

        let (left, right) = (self.inner, other.inner);
        let pipeline = left.pipeline.clone();
        let node = pipeline.add_combining_node(
            "interval_join",
            format!("[{lower}, {upper}] ms"),
            left.at,
            &right.pipeline,
            right.at,
        );
        let stage = pipeline.describe(node);
        let mut problems = Vec::new();
        if lower > upper {
            problems.push(crate::PlanError::InvalidParameter {
                stage: stage.clone(),
                field: "lower".into(),
                expected: format!(
                    "a lower bound no greater than the upper ({upper} ms), got {lower} ms"
                ),
            });
        }
        if !(left.timed && right.timed) {
            problems.push(crate::PlanError::InvalidParameter {
                stage: stage.clone(),
                field: "event_time".into(),
                expected: "both streams with event time: call `.event_time(..)` on their sources"
                    .into(),
            });
        }
        for p in problems {
            pipeline.record_error(p);
        }
        let (a, b) = (left.upstream(), right.upstream());
        let name = stage;
        let build = crate::plan::builder(move |ctx| {
            let late = ctx.metrics.counter(CounterKind::Late, &name);
            let left = a.build(ctx)?;
            let right = b.build(ctx)?;
            let start = ctx.keyed_start(node)?;
            Ok(left
                .interval_join_from(right, lower, upper, Arc::clone(&late), start)
                .map(|(ts, (key, left, right))| (ts, Joined { key, left, right })))
        });
        pipeline.set_build(node, crate::stream::single_output(node, build));
        Stream::of(pipeline, crate::plan::Port::main(node), true)
    }
}

impl<K: Key, A: Data> KeyedStream<K, A> {
    /// Joins this stream with `other` on the key, with no window, using
    /// differential dataflow: the result is a changelog of matching pairs,
    /// each [`Update`](crate::Update) at the watermark its pair formed. State
    /// holds every record of both sides (it is a continuous query over all
    /// the input so far), so use it for bounded inputs, or on sides whose
    /// keys are few.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let p = Pipeline::new("join");
    /// let people = p.source(Iter::new(vec![(1u32, "ann".to_string())])).key_by(|x| x.0);
    /// let orders = p.source(Iter::new(vec![(1u32, 10u64), (1, 11), (2, 12)])).key_by(|x| x.0);
    /// let out = Collect::new();
    /// people.join(orders).sink(out.clone());
    /// p.run(Cluster::threads(2).quiet(true)).unwrap();
    /// let mut got: Vec<_> = out.take().into_iter().map(|u| (u.key, u.value.1 .1, u.diff)).collect();
    /// got.sort();
    /// assert_eq!(got, vec![(1, 10, 1), (1, 11, 1)]);
    /// ```
    pub fn join<B: Data + Ord + std::fmt::Debug>(
        self,
        other: KeyedStream<K, B>,
    ) -> Stream<crate::Update<K, (A, B)>>
    where
        K: Ord + std::fmt::Debug,
        A: Ord + std::fmt::Debug,
    {
        use timely::dataflow::operators::vec::Map;
        use weir_operators::UpdatingJoin;

        let (left, right) = (self.inner, other.inner);
        let pipeline = left.pipeline.clone();
        let node =
            pipeline.add_combining_node("join", String::new(), left.at, &right.pipeline, right.at);
        let (a, b) = (left.upstream(), right.upstream());
        let build = crate::plan::builder(move |ctx| {
            let left = a.build(ctx)?.map(|(_, kv)| kv);
            let right = b.build(ctx)?.map(|(_, kv)| kv);
            let starts = (
                ctx.keyed_start_as("left", node)?,
                ctx.keyed_start_as("right", node)?,
            );
            let (changes, acks) = left.updating_join_from(right, starts);
            ctx.add_acks(acks);
            Ok(changes)
        });
        pipeline.set_build(node, crate::stream::single_output(node, build));
        let timed = left.timed && right.timed;
        Stream::of(pipeline, crate::plan::Port::main(node), timed)
    }
}

impl<K, V> Stream<crate::Update<K, V>>
where
    K: Key + Ord + std::fmt::Debug,
    V: Data + Ord + std::fmt::Debug,
{
    /// Aggregates a changelog per key with differential dataflow: whenever a
    /// key's current values change, `f` gets the key and all its current
    /// values (sorted, with multiplicities), and its result (if any) becomes
    /// the key's output. The result is again a changelog, so updating
    /// queries compose: join, re-key with `map`, aggregate again.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// // Highest order per customer, from a join's changelog.
    /// let p = Pipeline::new("max");
    /// let customers = p.source(Iter::new(vec![(1u32, 'c')])).key_by(|x| x.0);
    /// let orders = p.source(Iter::new(vec![(1u32, 10u64), (1, 30), (1, 20)])).key_by(|x| x.0);
    /// let out = Collect::new();
    /// customers
    ///     .join(orders)
    ///     .reduce_updates(|_id, pairs: &[(&((u32, char), (u32, u64)), isize)]| {
    ///         pairs.iter().map(|(p, _)| p.1 .1).max()
    ///     })
    ///     .sink(out.clone());
    /// p.run(Cluster::threads(2).quiet(true)).unwrap();
    /// assert_eq!(out.take(), vec![Update { key: 1, value: 30, diff: 1 }]);
    /// ```
    pub fn reduce_updates<O, F>(self, f: F) -> Stream<crate::Update<K, O>>
    where
        O: Data + Ord + std::fmt::Debug,
        F: Fn(&K, &[(&V, isize)]) -> Option<O> + Send + Sync + 'static,
    {
        use std::sync::Arc;
        use weir_operators::ReduceChanges;

        let up = self.upstream();
        let f = Arc::new(f);
        let pipeline = self.pipeline.clone();
        let node = pipeline.add_node("reduce_updates", String::new(), &[self.at]);
        let build = crate::plan::builder(move |ctx| {
            let f = Arc::clone(&f);
            let changes = up.build(ctx)?;
            let start = ctx.keyed_start(node)?;
            let (reduced, acks) = changes.reduce_changes_from(move |k, vals| f(k, vals), start);
            ctx.add_acks(acks);
            Ok(reduced)
        });
        pipeline.set_build(node, crate::stream::single_output(node, build));
        Stream::of(pipeline, crate::plan::Port::main(node), self.timed)
    }
}
