use std::sync::{Arc, Mutex};

use super::{Placement, Sink, SinkContext, SinkWriter};
use crate::error::SinkError;
use crate::{BoxError, Data};

/// Collects results in memory and hands them back to the caller: all records
/// are routed to worker 0, so in a multi-process cluster process 0 holds them
/// all (and the other processes none). Order is not specified.
///
/// A `Collect` is a handle: keep a clone, pass one to [`Stream::sink`](crate::Stream::sink),
/// and [`take`](Collect::take) the results after the run.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let out = Collect::new();
/// Pipeline::new("p")
///     .source(Generator::new(10, |i| i))
///     .sink(out.clone())
///     .run(Cluster::threads(2).quiet(true))
///     .unwrap();
/// let mut got = out.take();
/// got.sort();
/// assert_eq!(got, (0..10).collect::<Vec<u64>>());
/// assert!(out.take().is_empty());
/// ```
pub struct Collect<T> {
    items: Arc<Mutex<Vec<T>>>,
}

impl<T> Clone for Collect<T> {
    fn clone(&self) -> Self {
        Collect {
            items: Arc::clone(&self.items),
        }
    }
}

impl<T: Data> Default for Collect<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Data> Collect<T> {
    /// An empty collection.
    pub fn new() -> Self {
        Collect {
            items: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Removes and returns everything collected so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<T: Data> Sink<T> for Collect<T> {
    fn describe(&self) -> String {
        "collect".to_string()
    }

    fn placement(&self) -> Placement {
        Placement::WorkerZero
    }

    fn open(&self, _: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        Ok(Box::new(self.clone()))
    }
}

impl<T: Data> SinkWriter<T> for Collect<T> {
    fn write(&mut self, batch: &mut Vec<T>) -> Result<(), BoxError> {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(batch);
        Ok(())
    }
}
