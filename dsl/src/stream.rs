//! `Stream` and `KeyedStream`: the typed stages of a pipeline.

use std::marker::PhantomData;
use std::sync::Arc;

use timely::dataflow::operators::vec::{Filter, Map};
use timely::dataflow::operators::{Concat, Inspect};
use weir_operators::{ExchangeByKey, KeyByGroup, MapBatches, Update, UpdatingCount, UpdatingFold};

use crate::error::PlanError;
use crate::plan::{Builder, Ctx, NodeBuild, NodeId, Pipeline, Port, Timed, builder};
use crate::{Data, Key};

/// A stream of `T` records in a [`Pipeline`].
///
/// Methods add a stage and return the stream of its output. A `Stream` is
/// cheap to clone; a clone reads the same stage, so cloning is how one stream
/// feeds several consumers (the stage is built once).
#[must_use = "a stream does nothing until it ends in `.sink(..)`; an unused stage is a plan error"]
pub struct Stream<T> {
    pub(crate) pipeline: Pipeline,
    /// The stage output this stream reads.
    pub(crate) at: Port,
    /// Whether records carry event time assigned by `event_time`.
    pub(crate) timed: bool,
    /// The source's event-time slot, while the stream comes straight from a
    /// source (for `event_time`).
    pub(crate) source: Option<Arc<crate::sources::EventTimeSlot<T>>>,
}

impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Stream {
            pipeline: self.pipeline.clone(),
            at: self.at,
            timed: self.timed,
            source: self.source.clone(),
        }
    }
}

/// What a stage's build keeps of a stream it reads: the output port, not the
/// pipeline (that would make the graph own itself).
pub(crate) struct Upstream<T> {
    at: Port,
    _records: PhantomData<fn() -> T>,
}

impl<T> Clone for Upstream<T> {
    fn clone(&self) -> Self {
        Upstream {
            at: self.at,
            _records: PhantomData,
        }
    }
}

impl<T: Data> Upstream<T> {
    /// The stream on this worker, building its stage on first use.
    pub(crate) fn build<'s>(&self, ctx: &mut Ctx<'s>) -> Result<Timed<'s, T>, crate::BoxError> {
        ctx.port(self.at)
    }
}

/// Makes a node's build from a builder of its main output.
pub(crate) fn single_output<U: Data>(node: NodeId, build: Builder<U>) -> NodeBuild {
    Arc::new(move |ctx| {
        let stream = build(ctx)?;
        ctx.provide(Port::main(node), stream);
        Ok(())
    })
}

impl<T: Data> Stream<T> {
    /// The stream of output `port` of `node`, whose build is already set.
    pub(crate) fn of(pipeline: Pipeline, at: Port, timed: bool) -> Stream<T> {
        Stream {
            pipeline,
            at,
            timed,
            source: None,
        }
    }

    pub(crate) fn upstream(&self) -> Upstream<T> {
        Upstream {
            at: self.at,
            _records: PhantomData,
        }
    }

    /// Adds a stage of `kind` reading this stream, built by `build`.
    pub(crate) fn then<U: Data>(
        &self,
        kind: &'static str,
        label: String,
        build: Builder<U>,
    ) -> Stream<U> {
        let node = self.pipeline.add_node(kind, label, &[self.at]);
        self.pipeline.set_build(node, single_output(node, build));
        Stream::of(self.pipeline.clone(), Port::main(node), self.timed)
    }

    /// The pipeline this stream belongs to.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Applies `f` to every record.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec![1, 2, 3]))
    ///     .map(|x: i64| x * 10)
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(1).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![10, 20, 30]);
    /// ```
    pub fn map<U, F>(self, f: F) -> Stream<U>
    where
        U: Data,
        F: Fn(T) -> U + Send + Sync + 'static,
    {
        let up = self.upstream();
        let f = Arc::new(f);
        self.then(
            "map",
            String::new(),
            builder(move |ctx| {
                let f = Arc::clone(&f);
                Ok(up.build(ctx)?.map_batches("Map", move |(ts, x)| (ts, f(x))))
            }),
        )
    }

    /// Renders each batch of records into one [`Lines`](crate::sinks::Lines)
    /// (`render` appends one line, without its `\n`), for a text sink: no
    /// string per record, and across workers one message per batch.
    #[cfg(feature = "cli")]
    pub(crate) fn render_lines<F>(self, render: F) -> Stream<crate::sinks::Lines>
    where
        F: Fn(T, &mut String) + Send + Sync + 'static,
    {
        use timely::dataflow::channels::pact::Pipeline as Local;
        use timely::dataflow::operators::generic::operator::Operator;
        let up = self.upstream();
        let render = Arc::new(render);
        self.then(
            "render",
            String::new(),
            builder(move |ctx| {
                let render = Arc::clone(&render);
                Ok(up.build(ctx)?.unary(Local, "Render", move |_, _| {
                    // Bytes per line of the last batch, to size the next
                    // batch's text without growing it as it fills.
                    let mut per_line = 64;
                    move |input, output| {
                        input.for_each(|cap, batch| {
                            let mut lines = crate::sinks::Lines {
                                text: String::with_capacity(batch.len() * (per_line + 8)),
                                count: batch.len() as u64,
                            };
                            let mut first = None;
                            for (ts, record) in batch.drain(..) {
                                first = Some(first.map_or(ts, |t: weir_operators::Time| t.min(ts)));
                                render(record, &mut lines.text);
                                lines.text.push('\n');
                            }
                            if let Some(ts) = first {
                                per_line = lines.text.len() / (lines.count as usize).max(1);
                                output.session(&cap).give((ts, lines));
                            }
                        });
                    }
                }))
            }),
        )
    }

    /// Keeps the records for which `predicate` is true.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(0..10))
    ///     .filter(|x: &i32| x % 3 == 0)
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(1).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![0, 3, 6, 9]);
    /// ```
    pub fn filter<F>(self, predicate: F) -> Stream<T>
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        let up = self.upstream();
        let p = Arc::new(predicate);
        self.then(
            "filter",
            String::new(),
            builder(move |ctx| {
                let p = Arc::clone(&p);
                Ok(up.build(ctx)?.filter(move |(_, x)| p(x)))
            }),
        )
    }

    /// Replaces every record by the records `f` returns for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec!["a b".to_string(), "c".to_string()]))
    ///     .flat_map(|line: String| line.split(' ').map(String::from).collect::<Vec<_>>())
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(1).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec!["a", "b", "c"]);
    /// ```
    pub fn flat_map<U, I, F>(self, f: F) -> Stream<U>
    where
        U: Data,
        I: IntoIterator<Item = U>,
        F: Fn(T) -> I + Send + Sync + 'static,
    {
        let up = self.upstream();
        let f = Arc::new(f);
        self.then(
            "flat_map",
            String::new(),
            builder(move |ctx| {
                let f = Arc::clone(&f);
                Ok(up
                    .build(ctx)?
                    .flat_map(move |(ts, x)| f(x).into_iter().map(move |y| (ts, y))))
            }),
        )
    }

    /// Calls `f` on every record and passes the records on unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use weir::prelude::*;
    ///
    /// let seen = Arc::new(AtomicUsize::new(0));
    /// let s = seen.clone();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec![1, 2, 3]))
    ///     .inspect(move |_: &i32| { s.fetch_add(1, Ordering::Relaxed); })
    ///     .sink(Collect::new())
    ///     .run(Cluster::threads(2).quiet(true))
    ///     .unwrap();
    /// assert_eq!(seen.load(Ordering::Relaxed), 3);
    /// ```
    pub fn inspect<F>(self, f: F) -> Stream<T>
    where
        F: Fn(&T) + Send + Sync + 'static,
    {
        let up = self.upstream();
        let f = Arc::new(f);
        self.then(
            "inspect",
            String::new(),
            builder(move |ctx| {
                let f = Arc::clone(&f);
                Ok(up.build(ctx)?.inspect(move |(_, x)| f(x)))
            }),
        )
    }

    /// Merges `other` into this stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let p = Pipeline::new("p");
    /// let a = p.source(Iter::new(vec![1, 2]));
    /// let b = p.source(Iter::new(vec![3]));
    /// let out = Collect::new();
    /// a.union(b).sink(out.clone()).run(Cluster::threads(1).quiet(true)).unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![1, 2, 3]);
    /// ```
    pub fn union(self, other: Stream<T>) -> Stream<T> {
        let node = self.pipeline.add_combining_node(
            "union",
            String::new(),
            self.at,
            &other.pipeline,
            other.at,
        );
        if self.timed != other.timed {
            self.pipeline.record_error(PlanError::InvalidParameter {
                stage: self.pipeline.describe(node),
                field: "event_time".into(),
                expected: "both streams with event time, or neither".into(),
            });
        }
        let (a, b) = (self.upstream(), other.upstream());
        let build = builder(move |ctx| {
            let left = a.build(ctx)?;
            let right = b.build(ctx)?;
            Ok(left.concat(right))
        });
        self.pipeline.set_build(node, single_output(node, build));
        Stream::of(self.pipeline, Port::main(node), self.timed)
    }

    /// Gives this stage a name, shown by `explain` and in errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let p = Pipeline::new("p");
    /// let _ = p.source(Iter::new(vec![1])).map(|x: i32| x).named("identity");
    /// assert!(p.explain().contains("#1 map identity <- #0"));
    /// ```
    pub fn named(self, name: impl Into<String>) -> Stream<T> {
        self.pipeline.set_label(self.at.node, name.into());
        self
    }

    /// Partitions the stream by `key`: records with equal keys go to the same
    /// worker (through one of a fixed number of key groups), where keyed
    /// operators see them together.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec![1u32, 2, 3, 4, 5]))
    ///     .key_by(|x| x % 2)
    ///     .count()
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(2).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     Update { key: 0, value: 2, diff: 1 },
    ///     Update { key: 1, value: 3, diff: 1 },
    /// ]);
    /// ```
    pub fn key_by<K, F>(self, key: F) -> KeyedStream<K, T>
    where
        K: Key,
        F: Fn(&T) -> K + Send + Sync + 'static,
    {
        let up = self.upstream();
        let key = Arc::new(key);
        let inner = self.then(
            "key_by",
            String::new(),
            builder(move |ctx| {
                let key = Arc::clone(&key);
                Ok(up.build(ctx)?.key_by_group(move |x: &T| key(x)))
            }),
        );
        KeyedStream { inner }
    }
}

impl<K: Key, V: Data> Stream<(K, V)> {
    /// Partitions a stream of `(key, value)` pairs by their keys: the
    /// inverse of [`KeyedStream::into_stream`]. Where [`Stream::key_by`]
    /// pairs each whole record with a key computed from it (a clone of part
    /// of the record), a `map` to `(key, value)` followed by `keyed` moves
    /// the key out of the record, and the value carries only what the later
    /// stages read.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec![("a".to_string(), 2u64), ("b".to_string(), 1), ("a".to_string(), 5)]))
    ///     .keyed()
    ///     .fold(|| 0u64, |sum, v| *sum += v)
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(2).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     Update { key: "a".to_string(), value: 7, diff: 1 },
    ///     Update { key: "b".to_string(), value: 1, diff: 1 },
    /// ]);
    /// ```
    pub fn keyed(self) -> KeyedStream<K, V> {
        let up = self.upstream();
        let inner = self.then(
            "keyed",
            String::new(),
            builder(move |ctx| Ok(up.build(ctx)?.exchange_by_key())),
        );
        KeyedStream { inner }
    }
}

/// A stream partitioned by key: every record travels with its key, and all
/// records of one key are on one worker.
#[must_use = "a stream does nothing until it ends in `.sink(..)`; an unused stage is a plan error"]
pub struct KeyedStream<K, T> {
    pub(crate) inner: Stream<(K, T)>,
}

impl<K, T> Clone for KeyedStream<K, T> {
    fn clone(&self) -> Self {
        KeyedStream {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Key, T: Data> KeyedStream<K, T> {
    /// Folds each key's records into a running result, starting at `init()`,
    /// and emits a changelog: when a key's result changes, an
    /// [`Update`] retracting the previous result (`diff = -1`) and one adding
    /// the new result (`diff = +1`). Records are folded as their timestamps
    /// complete; on a bounded stream without event time each key gets one
    /// final result, on an unbounded one the changes of each
    /// [`update_interval`](crate::Pipeline::update_interval).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec![('a', 2u64), ('b', 1), ('a', 5)]))
    ///     .key_by(|(k, _)| *k)
    ///     .fold(|| 0u64, |sum, (_, v)| *sum += v)
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(2).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     Update { key: 'a', value: 7, diff: 1 },
    ///     Update { key: 'b', value: 1, diff: 1 },
    /// ]);
    /// ```
    pub fn fold<A, I, F>(self, init: I, fold: F) -> Stream<Update<K, A>>
    where
        A: Data + PartialEq,
        I: Fn() -> A + Send + Sync + 'static,
        F: Fn(&mut A, T) + Send + Sync + 'static,
    {
        let up = self.inner.upstream();
        let (init, fold) = (Arc::new(init), Arc::new(fold));
        let pipeline = self.inner.pipeline.clone();
        let node = pipeline.add_node("fold", String::new(), &[self.inner.at]);
        let build = builder(move |ctx| {
            let (init, fold) = (Arc::clone(&init), Arc::clone(&fold));
            let input = up.build(ctx)?.map(|(_, kv)| kv);
            let start = ctx.keyed_start(node)?;
            Ok(input
                .updating_fold_from(move || init(), move |acc, v| fold(acc, v), start)
                .map(|update| (0, update)))
        });
        pipeline.set_build(node, single_output(node, build));
        Stream::of(pipeline, Port::main(node), self.inner.timed)
    }

    /// Counts the records of each key with differential dataflow, as a
    /// changelog: when a key's count changes at a watermark, an [`Update`]
    /// retracting the old count (`diff = -1`) and one adding the new count.
    /// On a bounded stream without event time each key gets one final count;
    /// on an unbounded one (see [`Source::bounded`](crate::sources::Source::bounded))
    /// the counts change once per
    /// [`update_interval`](crate::Pipeline::update_interval).
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec!["b", "a", "b"].into_iter().map(String::from)))
    ///     .key_by(|w: &String| w.clone())
    ///     .count()
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(2).quiet(true))
    ///     .unwrap();
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![
    ///     Update { key: "a".to_string(), value: 1, diff: 1 },
    ///     Update { key: "b".to_string(), value: 2, diff: 1 },
    /// ]);
    /// ```
    pub fn count(self) -> Stream<Update<K, u64>>
    where
        K: Ord + std::fmt::Debug,
    {
        let up = self.inner.upstream();
        let pipeline = self.inner.pipeline.clone();
        let node = pipeline.add_node("count", String::new(), &[self.inner.at]);
        let build = builder(move |ctx| {
            let keys = up.build(ctx)?.map(|(_, (key, _))| key);
            let start = ctx.keyed_start(node)?;
            let (counts, acks) = keys.updating_count_from(start);
            ctx.add_acks(acks);
            Ok(counts.map(|update| (0, update)))
        });
        pipeline.set_build(node, single_output(node, build));
        Stream::of(pipeline, Port::main(node), self.inner.timed)
    }

    /// The records without their keys (still partitioned by key).
    pub fn values(self) -> Stream<T> {
        self.inner.map(|(_, v)| v)
    }

    /// The `(key, record)` pairs as a plain stream.
    pub fn into_stream(self) -> Stream<(K, T)> {
        self.inner
    }
}
