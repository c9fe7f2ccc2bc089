use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_engine::BoxError;

use super::{PartitionReader, ReadStatus, Source, SourceContext};
use crate::Data;
use crate::error::SourceError;

/// A deterministic source of `count` events: event `i` is `f(i)`.
///
/// The indices are dealt into a fixed number of partitions (16 unless
/// [`partitions`](Generator::partitions) says otherwise): partition `p` reads
/// `p`, `p + partitions`, `p + 2·partitions`, ... in order, so partitions move
/// through the index range (and so through event time, when it grows with the
/// index) together. Partitions are spread round-robin over all workers of all
/// processes; each produces the same events in the same order (and, with
/// event time, the same watermarks) whatever the cluster.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let out = Collect::new();
/// Pipeline::new("gen")
///     .source(Generator::new(1000, |i| i * 2))
///     .sink(out.clone())
///     .run(Cluster::threads(3).quiet(true))
///     .unwrap();
/// let mut got = out.take();
/// got.sort();
/// assert_eq!(got, (0..1000).map(|i| i * 2).collect::<Vec<u64>>());
/// ```
pub struct Generator<T, F> {
    count: u64,
    partitions: u64,
    f: Arc<F>,
    _item: PhantomData<fn() -> T>,
}

impl<T, F> Generator<T, F>
where
    T: Data,
    F: Fn(u64) -> T + Send + Sync + 'static,
{
    /// `count` events, event `i` being `f(i)`.
    pub fn new(count: u64, f: F) -> Self {
        Generator {
            count,
            partitions: 16,
            f: Arc::new(f),
            _item: PhantomData,
        }
    }

    /// Cuts the events into `partitions` partitions (at least 1).
    pub fn partitions(mut self, partitions: u64) -> Self {
        self.partitions = partitions.max(1);
        self
    }
}

impl<T, F> Source for Generator<T, F>
where
    T: Data,
    F: Fn(u64) -> T + Send + Sync + 'static,
{
    type Item = T;

    fn describe(&self) -> String {
        format!("generator({} events)", self.count)
    }

    fn bounded(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        let mut readers: Vec<Box<dyn PartitionReader<T>>> = Vec::new();
        for p in (ctx.worker() as u64..self.partitions).step_by(ctx.peers()) {
            let count = self.count.saturating_sub(p).div_ceil(self.partitions);
            ctx.expect_work(count);
            readers.push(Box::new(GeneratorReader {
                f: Arc::clone(&self.f),
                next: p,
                step: self.partitions,
                count,
                left: count,
                work: ctx.work_done(),
            }));
        }
        Ok(readers)
    }
}

struct GeneratorReader<F> {
    f: Arc<F>,
    next: u64,
    step: u64,
    /// The partition's records in all.
    count: u64,
    left: u64,
    work: Arc<AtomicU64>,
}

impl<T, F> PartitionReader<T> for GeneratorReader<F>
where
    F: Fn(u64) -> T + 'static,
{
    fn read(&mut self, out: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let n = self.left.min(max as u64);
        out.extend((0..n).map(|k| (self.f)(self.next + k * self.step)));
        self.next += n * self.step;
        self.left -= n;
        self.work.fetch_add(n, Ordering::Relaxed);
        Ok(if self.left == 0 {
            ReadStatus::Done
        } else {
            ReadStatus::More
        })
    }

    /// The records returned so far.
    fn position(&self) -> Option<u64> {
        Some(self.count - self.left)
    }

    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        let skip = super::checked_skip("generator", position, self.count - self.left, self.left)?;
        self.next += skip * self.step;
        self.left -= skip;
        Ok(())
    }
}
