//! Sources: where records come from.
//!
//! Every source is split into partitions, and each worker reads the
//! partitions assigned to it; the source operator holds one capability per
//! partition. Built-in sources: [`Generator`], [`Iter`], [`Csv`],
//! [`JsonLines`], [`TextLines`] and [`Stdin`]. Implement [`Source`] for your own.

mod files;
mod generator;
mod iter;
mod stdin;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub(crate) use files::LineSource;
pub use files::{Csv, JsonLines, TextLines};
pub use generator::Generator;
pub use iter::Iter;
pub(crate) use stdin::ParsedStdin;
pub use stdin::Stdin;
pub use weir_operators::{PartitionReader, ReadStatus};

use weir_engine::{CounterKind, Metrics};
use weir_operators::partitioned_source;

use crate::error::SourceError;
use crate::plan::{builder, Pipeline};
use crate::{Data, Stream};

/// A source of records of type `Item`.
///
/// `open` runs on every worker when the pipeline is compiled and returns the
/// partitions that worker reads. Partitions must be assigned so that, over
/// all workers, every record is read exactly once.
pub trait Source: Send + Sync + 'static {
    /// The records this source produces.
    type Item: Data;

    /// A short description for `explain` and error messages, e.g. `csv(events.csv)`.
    fn describe(&self) -> String;

    /// The partitions worker `ctx.worker()` of `ctx.peers()` reads.
    ///
    /// # Errors
    ///
    /// The input cannot be found or opened.
    fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<Self::Item>>>, SourceError>;
}

/// What a source knows when it opens on one worker.
pub struct SourceContext {
    worker: usize,
    peers: usize,
    name: String,
    metrics: Arc<Metrics>,
}

impl SourceContext {
    pub(crate) fn new(ctx: &crate::plan::Ctx<'_>, name: &str) -> Self {
        SourceContext {
            worker: ctx.scope.index(),
            peers: ctx.scope.peers(),
            name: name.to_string(),
            metrics: Arc::clone(&ctx.metrics),
        }
    }

    /// Global index of this worker.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Number of workers in the cluster.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// The source's name, for error messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Announces `units` of work this worker's partitions will do, for the
    /// progress bar (events, or bytes for files).
    pub fn expect_work(&self, units: u64) {
        self.metrics.expect_work(units);
    }

    /// The counter to add finished work units to.
    pub fn work_done(&self) -> Arc<AtomicU64> {
        self.metrics.work_done()
    }
}

pub(crate) fn install<S: Source>(pipeline: &Pipeline, source: S) -> Stream<S::Item> {
    let name = source.describe();
    let node = pipeline.add_node("source", name.clone(), &[]);
    let source = Arc::new(source);
    let shared: Arc<dyn Source<Item = S::Item>> = source.clone();
    Stream {
        pipeline: pipeline.clone(),
        node,
        timed: false,
        source: Some(shared),
        build: builder(move |ctx| {
            let sctx = SourceContext::new(ctx, &name);
            let readers = source.open(&sctx)?;
            let counter = ctx.metrics.counter(CounterKind::Source, &name);
            Ok(partitioned_source(
                ctx.scope,
                &name,
                readers,
                counter,
                ctx.failure.clone(),
            ))
        }),
    }
}
