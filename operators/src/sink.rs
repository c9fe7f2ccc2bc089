//! The sink operator: hands each input batch to a [`SinkWriter`] and closes
//! it once the input frontier is empty (every source ended and all records
//! upstream were delivered).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use weir_engine::{BoxError, Failure};

use crate::{Time, VecStream};

/// Where a sink's records go on one worker.
pub trait SinkWriter<D>: 'static {
    /// Writes one batch; the batch may be drained.
    ///
    /// # Errors
    ///
    /// An I/O error; it stops the job.
    fn write(&mut self, batch: &mut Vec<D>) -> Result<(), BoxError>;

    /// How many records the last [`write`](SinkWriter::write) of a batch
    /// of `batch_len` items wrote, for the sink's counter: by default one per
    /// item. A writer of items that each hold several records (rendered
    /// lines, say) counts those.
    fn records_written(&self, batch_len: usize) -> u64 {
        batch_len as u64
    }

    /// Writes one batch of records paired with their event times, as the
    /// stream carries them. The default moves the records into `scratch`
    /// (left empty) and hands that to [`write`](SinkWriter::write); a writer
    /// that only reads its records (serializes them, say) writes them where
    /// they are instead, saving a move of each record.
    ///
    /// # Errors
    ///
    /// As [`write`](SinkWriter::write).
    fn write_timed(
        &mut self,
        batch: &mut Vec<(Time, D)>,
        scratch: &mut Vec<D>,
    ) -> Result<(), BoxError> {
        scratch.extend(batch.drain(..).map(|(_, record)| record));
        let result = self.write(scratch);
        scratch.clear();
        result
    }

    /// Flushes and closes, once no more records will come.
    ///
    /// # Errors
    ///
    /// An I/O error; it stops the job.
    fn close(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Terminates a stream in a [`SinkWriter`].
pub trait SinkOp<D> {
    /// Writes every record of the stream on this worker to `writer`, adds the
    /// number written to `counter`, and closes the writer when the stream
    /// ends. Writer errors are raised on `failure`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{atomic::AtomicU64, Arc, Mutex};
    /// use timely::dataflow::operators::ToStream;
    /// use weir_engine::{BoxError, Failure};
    /// use weir_operators::{SinkOp, SinkWriter};
    ///
    /// struct Sum(Arc<Mutex<(u64, bool)>>);
    /// impl SinkWriter<u64> for Sum {
    ///     fn write(&mut self, batch: &mut Vec<u64>) -> Result<(), BoxError> {
    ///         self.0.lock().unwrap().0 += batch.iter().sum::<u64>();
    ///         Ok(())
    ///     }
    ///     fn close(&mut self) -> Result<(), BoxError> {
    ///         self.0.lock().unwrap().1 = true;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let state = Arc::new(Mutex::new((0, false)));
    /// let shared = state.clone();
    /// timely::example(move |scope| {
    ///     (1..=10u64).to_stream(scope).container::<Vec<_>>().sink_into(
    ///         "sum",
    ///         Sum(shared),
    ///         Arc::new(AtomicU64::new(0)),
    ///         Failure::default(),
    ///     );
    /// });
    /// assert_eq!(*state.lock().unwrap(), (55, true));
    /// ```
    fn sink_into<W: SinkWriter<D>>(
        self,
        name: &str,
        writer: W,
        counter: Arc<AtomicU64>,
        failure: Failure,
    );
}

impl<D: 'static> SinkOp<D> for VecStream<'_, D> {
    fn sink_into<W: SinkWriter<D>>(
        self,
        name: &str,
        writer: W,
        counter: Arc<AtomicU64>,
        failure: Failure,
    ) {
        let mut writer = Some(writer);
        self.sink(Pipeline, name, move |(input, frontier)| {
            input.for_each(|_cap, batch| {
                let Some(w) = writer.as_mut() else {
                    batch.clear();
                    return;
                };
                let n = batch.len();
                match w.write(batch) {
                    Ok(()) => {
                        counter.fetch_add(w.records_written(n), Ordering::Relaxed);
                    }
                    Err(e) => {
                        failure.raise(e);
                        writer = None;
                    }
                }
            });
            if frontier.is_empty() {
                if let Some(mut w) = writer.take() {
                    if let Err(e) = w.close() {
                        failure.raise(e);
                    }
                }
            }
        });
    }
}

impl<D, W: SinkWriter<D> + ?Sized> SinkWriter<D> for Box<W> {
    fn write(&mut self, batch: &mut Vec<D>) -> Result<(), BoxError> {
        (**self).write(batch)
    }
    fn records_written(&self, batch_len: usize) -> u64 {
        (**self).records_written(batch_len)
    }
    fn write_timed(
        &mut self,
        batch: &mut Vec<(Time, D)>,
        scratch: &mut Vec<D>,
    ) -> Result<(), BoxError> {
        (**self).write_timed(batch, scratch)
    }
    fn close(&mut self) -> Result<(), BoxError> {
        (**self).close()
    }
}
