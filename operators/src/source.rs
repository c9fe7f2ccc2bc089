//! The partitioned source operator.
//!
//! A source is split into partitions (a generator slice, a file byte range,
//! stdin); each worker reads the partitions assigned to it. The operator holds
//! one capability per partition and releases it when the partition is
//! exhausted, so a record's timestamp depends only on its own partition, never
//! on how partitions interleave (DESIGN.md, "Coming later").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::operators::Capability;
use timely::dataflow::Scope;
use timely::ExchangeData;
use weir_engine::{BoxError, Failure};

use crate::{Time, VecStream};

/// Records a partition hands over per read call, at most.
pub const BATCH: usize = 1024;

/// How long one activation of the source reads before yielding to the rest
/// of the dataflow.
const SLICE: Duration = Duration::from_millis(1);

/// What a partition reader reports after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadStatus {
    /// Records may follow right away.
    More,
    /// Nothing is available now (an unbounded source waiting for input).
    Idle,
    /// The partition is exhausted.
    Done,
}

/// One partition of a source, read batch by batch on one worker.
pub trait PartitionReader<D>: 'static {
    /// Appends at most `max` records to `out` and says whether more may follow.
    ///
    /// # Errors
    ///
    /// A record that cannot be read; the error should name the source and
    /// where in it (file, line, offset). It stops the job.
    fn read(&mut self, out: &mut Vec<D>, max: usize) -> Result<ReadStatus, BoxError>;
}

struct Partition<D> {
    reader: Box<dyn PartitionReader<D>>,
    capability: Capability<Time>,
}

/// Creates a source operator reading `readers`, one capability each, adding
/// the number of records read to `counter`. A reader error is raised on
/// `failure` and releases every capability of the operator.
///
/// # Examples
///
/// ```
/// use std::sync::{atomic::AtomicU64, Arc};
/// use timely::dataflow::operators::capture::{Capture, Extract};
/// use weir_engine::{BoxError, Failure};
/// use weir_operators::{partitioned_source, PartitionReader, ReadStatus};
///
/// struct Count(u64, u64);
/// impl PartitionReader<u64> for Count {
///     fn read(&mut self, out: &mut Vec<u64>, max: usize) -> Result<ReadStatus, BoxError> {
///         while self.0 < self.1 && out.len() < max {
///             out.push(self.0);
///             self.0 += 1;
///         }
///         Ok(if self.0 == self.1 { ReadStatus::Done } else { ReadStatus::More })
///     }
/// }
///
/// let counter = Arc::new(AtomicU64::new(0));
/// let seen = counter.clone();
/// let captured = timely::example(move |scope| {
///     let readers: Vec<Box<dyn PartitionReader<u64>>> =
///         vec![Box::new(Count(0, 3000)), Box::new(Count(5000, 5010))];
///     partitioned_source(scope, "numbers", readers, counter, Failure::default()).capture()
/// });
/// let mut all: Vec<u64> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
/// all.sort();
/// assert_eq!(all.len(), 3010);
/// assert_eq!(all[2999..3001], [2999, 5000]);
/// assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 3010);
/// ```
pub fn partitioned_source<'scope, D: ExchangeData>(
    scope: Scope<'scope, Time>,
    name: &str,
    readers: Vec<Box<dyn PartitionReader<D>>>,
    counter: Arc<AtomicU64>,
    failure: Failure,
) -> VecStream<'scope, D> {
    source(scope, name, move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut partitions: Vec<Partition<D>> = readers
            .into_iter()
            .map(|reader| Partition {
                reader,
                capability: capability.clone(),
            })
            .collect();
        drop(capability);
        let mut buffer: Vec<D> = Vec::with_capacity(BATCH);
        move |output| {
            let start = Instant::now();
            let mut any_more = false;
            let mut i = 0;
            while i < partitions.len() {
                let partition = &mut partitions[i];
                let status = loop {
                    match partition.reader.read(&mut buffer, BATCH) {
                        Ok(status) => {
                            if !buffer.is_empty() {
                                counter.fetch_add(buffer.len() as u64, Ordering::Relaxed);
                                output
                                    .session(&partition.capability)
                                    .give_container(&mut buffer);
                                buffer.clear();
                            }
                            if status != ReadStatus::More || start.elapsed() >= SLICE {
                                break status;
                            }
                        }
                        Err(e) => {
                            failure.raise(e);
                            partitions.clear();
                            return;
                        }
                    }
                };
                match status {
                    ReadStatus::Done => {
                        // Dropping the partition releases its capability.
                        partitions.swap_remove(i);
                        continue;
                    }
                    ReadStatus::More => any_more = true,
                    ReadStatus::Idle => {}
                }
                i += 1;
            }
            if any_more {
                activator.activate();
            } else if !partitions.is_empty() {
                activator.activate_after(Duration::from_millis(2));
            }
        }
    })
}
