use std::sync::Arc;

use weir_engine::BoxError;

use super::{PartitionReader, ReadStatus, Source, SourceContext};
use crate::error::SourceError;
use crate::Data;

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

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        let len = self.items.len();
        let mut readers: Vec<Box<dyn PartitionReader<T>>> = Vec::new();
        for p in (ctx.worker()..self.partitions).step_by(ctx.peers()) {
            ctx.expect_work(len.saturating_sub(p).div_ceil(self.partitions) as u64);
            readers.push(Box::new(IterReader {
                items: Arc::clone(&self.items),
                next: p,
                step: self.partitions,
            }));
        }
        Ok(readers)
    }
}

struct IterReader<T> {
    items: Arc<Vec<T>>,
    next: usize,
    step: usize,
}

impl<T: Data> PartitionReader<T> for IterReader<T> {
    fn read(&mut self, out: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let limit = out.len() + max;
        while self.next < self.items.len() && out.len() < limit {
            out.push(self.items[self.next].clone());
            self.next += self.step;
        }
        Ok(if self.next >= self.items.len() {
            ReadStatus::Done
        } else {
            ReadStatus::More
        })
    }
}
