use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_engine::BoxError;

use super::{PartitionReader, ReadStatus, Source, SourceContext};
use crate::Data;
use crate::error::SourceError;

/// An in-memory source, mostly for tests: the records of a vector, cut into a
/// fixed number of partitions (4 unless [`partitions`](Iter::partitions) says
/// otherwise; partition `p` holds records `p`, `p + partitions`, ... in order),
/// spread round-robin over the workers.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let out = Collect::new();
/// Pipeline::new("iter")
///     .source(Iter::new(vec!["x".to_string(), "y".to_string()]))
///     .sink(out.clone())
///     .run(Cluster::threads(2).quiet(true))
///     .unwrap();
/// let mut got = out.take();
/// got.sort();
/// assert_eq!(got, vec!["x", "y"]);
/// ```
pub struct Iter<T> {
    items: Arc<Vec<T>>,
    partitions: usize,
}

impl<T: Data> Iter<T> {
    /// A source of `items`.
    pub fn new(items: impl IntoIterator<Item = T>) -> Self {
        Iter {
            items: Arc::new(items.into_iter().collect()),
            partitions: 4,
        }
    }

    /// Cuts the records into `partitions` partitions (at least 1).
    pub fn partitions(mut self, partitions: usize) -> Self {
        self.partitions = partitions.max(1);
        self
    }
}

impl<T: Data> Source for Iter<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("iter({} records)", self.items.len())
    }

    fn bounded(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        let len = self.items.len();
        let mut readers: Vec<Box<dyn PartitionReader<T>>> = Vec::new();
        for p in (ctx.worker()..self.partitions).step_by(ctx.peers()) {
            ctx.expect_work(len.saturating_sub(p).div_ceil(self.partitions) as u64);
            readers.push(Box::new(IterReader {
                items: Arc::clone(&self.items),
                first: p,
                next: p,
                step: self.partitions,
                work: ctx.work_done(),
            }));
        }
        Ok(readers)
    }
}

struct IterReader<T> {
    items: Arc<Vec<T>>,
    /// The partition's first index.
    first: usize,
    next: usize,
    step: usize,
    /// Records read are reported here, for the progress bar.
    work: Arc<AtomicU64>,
}

impl<T: Data> PartitionReader<T> for IterReader<T> {
    fn read(&mut self, out: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let (before, limit) = (out.len(), out.len() + max);
        while self.next < self.items.len() && out.len() < limit {
            out.push(self.items[self.next].clone());
            self.next += self.step;
        }
        self.work
            .fetch_add((out.len() - before) as u64, Ordering::Relaxed);
        Ok(if self.next >= self.items.len() {
            ReadStatus::Done
        } else {
            ReadStatus::More
        })
    }

    /// The records returned so far.
    fn position(&self) -> Option<u64> {
        Some(((self.next - self.first) / self.step) as u64)
    }

    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        let len = self
            .items
            .len()
            .saturating_sub(self.first)
            .div_ceil(self.step) as u64;
        let done = self.position().unwrap_or(0);
        let skip = super::checked_skip("iter", position, done, len - done)?;
        self.next += skip as usize * self.step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::Generator;

    /// Reads every partition of `source` as `peers` workers would, and
    /// returns the progress `(done, expected)` it reported.
    fn progress<S: Source>(source: &S, peers: usize) -> (u64, u64) {
        let metrics = Arc::new(weir_engine::Metrics::new("t"));
        for worker in 0..peers {
            let ctx = SourceContext::for_test(worker, peers, Arc::clone(&metrics));
            for mut reader in source.open(&ctx).unwrap() {
                let mut out = Vec::new();
                while reader.read(&mut out, 7).unwrap() != ReadStatus::Done {}
            }
        }
        metrics.progress()
    }

    #[test]
    fn bounded_sources_report_all_the_work_they_announce() {
        for peers in [1, 3] {
            let (done, expected) = progress(&Iter::new(0..1000u32), peers);
            assert_eq!((done, expected), (1000, 1000), "iter on {peers} workers");
            let (done, expected) = progress(&Generator::new(1000, |i| i), peers);
            assert_eq!((done, expected), (1000, 1000), "generator on {peers}");
        }
    }
}
