//! The sink operator: hands each input batch to a [`SinkWriter`] and closes
//! it once the input frontier is empty (every source ended and all records
//! upstream were delivered).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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

    /// Stages everything written since the last call for the checkpoint at
    /// `at` (`None`: the job's end, after the last records), so that it
    /// becomes visible when that checkpoint is committed, and not before
    /// (see [`SinkOp::sink_staged`]). By default a writer cannot: an error.
    ///
    /// # Errors
    ///
    /// The writer cannot stage its output, or staging failed.
    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
        let _ = at;
        Err("this sink cannot take part in checkpoints: its output cannot be held back until a checkpoint completes".into())
    }
}

/// Terminates a stream in a [`SinkWriter`].
pub trait SinkOp<'scope, D> {
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

    /// As [`sink_into`](SinkOp::sink_into), staging the output by
    /// checkpoint: for each checkpoint time `T` announced on `control`, the
    /// records stamped before `T` are written, then
    /// [`SinkWriter::checkpoint`] stages them, and only then does the
    /// returned acknowledgement stream (which carries no records) pass `T`.
    /// Records stamped at or after the next checkpoint time wait until it
    /// is staged. When the input ends, the rest is staged as the job's end
    /// (`checkpoint(None)`) and the writer is closed.
    fn sink_staged<W: SinkWriter<D>>(
        self,
        control: crate::checkpoint::Control<'scope>,
        name: &str,
        writer: W,
        counter: Arc<AtomicU64>,
        failure: Failure,
    ) -> VecStream<'scope, ()>;
}

impl<'scope, D: 'static> SinkOp<'scope, D> for VecStream<'scope, D> {
    fn sink_staged<W: SinkWriter<D>>(
        self,
        control: crate::checkpoint::Control<'scope>,
        name: &str,
        writer: W,
        counter: Arc<AtomicU64>,
        failure: Failure,
    ) -> VecStream<'scope, ()> {
        staged::build(self, control, name, writer, counter, failure)
    }

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
            if frontier.is_empty()
                && let Some(mut w) = writer.take()
                && let Err(e) = w.close()
            {
                failure.raise(e);
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
    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
        (**self).checkpoint(at)
    }
}

/// The staging sink operator behind [`SinkOp::sink_staged`].
mod staged {
    use std::collections::BTreeMap;

    use timely::dataflow::operators::Capability;
    use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

    use super::*;
    use crate::checkpoint::Announced;

    /// What one staging sink holds between activations.
    struct Staging<D, W> {
        writer: Option<W>,
        /// Records waiting for the checkpoint before their time to be staged.
        stash: BTreeMap<Time, Vec<D>>,
        /// Announced checkpoints not yet staged, each holding the
        /// acknowledgements at its time.
        announced: Announced<Capability<Time>>,
        counter: Arc<AtomicU64>,
        failure: Failure,
    }

    impl<D: 'static, W: SinkWriter<D>> Staging<D, W> {
        fn write(&mut self, batch: &mut Vec<D>) {
            let Some(w) = self.writer.as_mut() else {
                batch.clear();
                return;
            };
            let n = batch.len();
            match w.write(batch) {
                Ok(()) => {
                    self.counter
                        .fetch_add(w.records_written(n), Ordering::Relaxed);
                }
                Err(e) => self.fail(e),
            }
        }

        fn fail(&mut self, e: BoxError) {
            self.failure.raise(e);
            self.writer = None;
            self.stash.clear();
        }

        /// Writes the stash below `until` (all of it if `None`), in time order.
        fn write_stash(&mut self, until: Option<Time>) {
            while let Some(entry) = self.stash.first_entry() {
                if until.is_some_and(|u| *entry.key() >= u) {
                    break;
                }
                let mut batch = entry.remove();
                self.write(&mut batch);
            }
        }

        fn stage(&mut self, at: Option<Time>) {
            if let Some(w) = self.writer.as_mut()
                && let Err(e) = w.checkpoint(at)
            {
                self.fail(e);
            }
        }

        /// Stages the checkpoints the frontier has reached; at the end,
        /// stages the rest and closes the writer.
        fn advance(&mut self, frontier: Option<Time>) {
            while let Some((at, held)) = self.announced.due(frontier) {
                self.write_stash(Some(at));
                self.stage(Some(at));
                drop(held);
            }
            match frontier {
                Some(_) => {
                    let gate = self.announced.gate();
                    if gate.is_some() {
                        self.write_stash(gate);
                    }
                }
                None => {
                    self.write_stash(None);
                    self.stage(None);
                    if let Some(mut w) = self.writer.take()
                        && let Err(e) = w.close()
                    {
                        self.failure.raise(e);
                    }
                }
            }
        }
    }

    pub(super) fn build<'scope, D: 'static, W: SinkWriter<D>>(
        input: VecStream<'scope, D>,
        control: crate::checkpoint::Control<'scope>,
        name: &str,
        writer: W,
        counter: Arc<AtomicU64>,
        failure: Failure,
    ) -> VecStream<'scope, ()> {
        let mut builder = OperatorBuilder::new(name.to_owned(), input.scope());
        let mut input = builder.new_input(input, Pipeline);
        let mut control = builder.new_input(control, Pipeline);
        let (_acks, acks_stream) = builder.new_output::<Vec<()>>();
        builder.build(move |mut initial| {
            // Held until the end is staged: without it the acknowledgements
            // could complete as soon as the input does, before this
            // operator has run to stage the rest.
            let mut alive: Option<Capability<Time>> = initial.pop();
            let mut s = Staging {
                writer: Some(writer),
                stash: BTreeMap::new(),
                announced: Announced::new(None),
                counter,
                failure,
            };
            move |frontiers| {
                s.announced
                    .take(&mut control, &frontiers[1], |cap, at| cap.delayed(&at, 0));
                input.for_each(|cap, batch| {
                    let Some(time) = cap.least().copied() else {
                        batch.clear();
                        return;
                    };
                    if s.announced.gate().is_none_or(|g| time < g) && s.stash.is_empty() {
                        s.write(batch);
                    } else {
                        s.stash.entry(time).or_default().append(batch);
                    }
                });
                let frontier = frontiers
                    .iter()
                    .filter_map(|f| f.frontier().first().copied())
                    .min();
                s.advance(frontier);
                match (frontier, alive.as_mut()) {
                    (None, _) => alive = None,
                    (Some(f), Some(cap)) if f > *cap.time() => cap.downgrade(&f),
                    _ => {}
                }
            }
        });
        acks_stream
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::Concat;
    use timely::dataflow::operators::vec::Input as _;

    use super::*;

    /// Each stage: its checkpoint (`None`: the end) and its records.
    type Staged = Arc<Mutex<Vec<(Option<Time>, Vec<u64>)>>>;

    /// Keeps what it is given, and moves it to `staged` on each checkpoint.
    struct Stages {
        written: Vec<u64>,
        staged: Staged,
    }

    impl SinkWriter<u64> for Stages {
        fn write(&mut self, batch: &mut Vec<u64>) -> Result<(), BoxError> {
            self.written.append(batch);
            Ok(())
        }
        fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
            let mut records = std::mem::take(&mut self.written);
            records.sort();
            self.staged.lock().unwrap().push((at, records));
            Ok(())
        }
    }

    /// Records (value = its time) arrive up to 30 ms before the frontier
    /// reaches them; checkpoints are announced every 50 ms as the announcer
    /// would: each checkpoint's stage holds exactly the records stamped
    /// since the one before, and the end's the rest.
    #[test]
    fn a_staging_sink_stages_each_records_before_its_checkpoint() {
        let staged: Staged = Arc::default();
        let shared = Arc::clone(&staged);
        timely::execute_directly(move |worker| {
            let (mut input, mut trailing, mut control) = worker.dataflow::<Time, _, _>(|scope| {
                let (input, stream) = scope.new_input::<u64>();
                let (trailing, behind) = scope.new_input::<u64>();
                let (control, announced) = scope.new_input::<Time>();
                let writer = Stages {
                    written: Vec::new(),
                    staged: shared,
                };
                let _acks = stream.concat(behind).sink_staged(
                    announced,
                    "stages",
                    writer,
                    Arc::default(),
                    Failure::default(),
                );
                (input, trailing, control)
            });
            let mut next = 50;
            control.send(next);
            control.advance_to(next);
            for t in 0..500u64 {
                while t.saturating_sub(30) >= next {
                    next += 50;
                    control.send(next);
                    control.advance_to(next);
                }
                input.advance_to(t);
                trailing.advance_to(t.saturating_sub(30));
                input.send(t);
                worker.step();
            }
            input.close();
            trailing.close();
            control.close();
            while worker.step() {}
        });
        let staged = staged.lock().unwrap().clone();
        assert!(staged.len() >= 9, "{} stages", staged.len());
        let mut from = 0;
        for (at, records) in &staged {
            let until = at.unwrap_or(500);
            assert_eq!(*records, (from..until).collect::<Vec<_>>(), "stage {at:?}");
            from = until;
        }
        assert_eq!(staged.last().map(|(at, _)| *at), Some(None));
    }
}
