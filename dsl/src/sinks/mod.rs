//! Sinks: where results go.
//!
//! Built-in sinks: [`Stdout`] (JSON lines), [`StdoutLines`], [`JsonLinesFile`], [`CsvFile`] and [`TextFile`]
//! (one file written by one worker, or a directory with one part file per
//! worker), [`Collect`] (results back to the caller, for tests) and
//! [`ForEach`] (a callback). Implement [`Sink`] for your own.

mod collect;
mod files;
mod for_each;
mod stdout;

use std::sync::Arc;

pub use collect::Collect;
pub use files::{CsvFile, JsonLinesFile, Lines, TextFile};
pub use for_each::ForEach;
pub use stdout::{Stdout, StdoutLines};
pub use weir_operators::SinkWriter;

use timely::dataflow::operators::Exchange;
use weir_engine::CounterKind;
use weir_operators::{SinkOp, Time};

use crate::error::SinkError;
use crate::plan::Pipeline;
use crate::{Data, Stream};

/// Where a sink's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Placement {
    /// Each worker writes the records it holds.
    EveryWorker,
    /// All records are routed to worker 0 (in process 0), which writes them.
    WorkerZero,
}

/// A destination for records of type `T`.
pub trait Sink<T>: Send + Sync + 'static {
    /// A short description for `explain`, metrics and errors, e.g. `jsonl(out.jsonl)`.
    fn describe(&self) -> String;

    /// Which workers write.
    fn placement(&self) -> Placement {
        Placement::EveryWorker
    }

    /// The writer of worker `ctx.worker()`. With [`Placement::WorkerZero`]
    /// it is called on worker 0 only.
    ///
    /// # Errors
    ///
    /// The destination cannot be created.
    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError>;
}

/// A sink chosen at run time, e.g. from a command-line flag.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// fn output<T: Data>(path: Option<&str>) -> Box<dyn Sink<T>> {
///     match path {
///         Some(p) => Box::new(JsonLinesFile::to(p)),
///         None => Box::new(Stdout::jsonl()),
///     }
/// }
/// let job = Pipeline::new("p").source(Iter::new(vec![1])).sink(output(None));
/// assert!(job.explain().contains("sink stdout(jsonl)"));
/// ```
impl<T: 'static> Sink<T> for Box<dyn Sink<T>> {
    fn describe(&self) -> String {
        (**self).describe()
    }

    fn placement(&self) -> Placement {
        (**self).placement()
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        (**self).open(ctx)
    }
}

/// What a sink knows when it opens on one worker.
pub struct SinkContext {
    worker: usize,
    peers: usize,
    name: String,
}

impl SinkContext {
    /// Global index of this worker.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Number of workers in the cluster.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// The sink's name, for error messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Hands a sink's writer its records without their event times (in the
/// sink operator itself, rather than through a map operator before it).
struct WithoutTime<T> {
    inner: Box<dyn SinkWriter<T>>,
    buffer: Vec<T>,
    /// What the inner writer counted of the last batch.
    written: u64,
}

impl<T: 'static> SinkWriter<(Time, T)> for WithoutTime<T> {
    fn write(&mut self, batch: &mut Vec<(Time, T)>) -> Result<(), crate::BoxError> {
        let n = batch.len();
        let result = self.inner.write_timed(batch, &mut self.buffer);
        self.written = self.inner.records_written(n);
        batch.clear();
        result
    }

    fn records_written(&self, _batch_len: usize) -> u64 {
        self.written
    }

    fn close(&mut self) -> Result<(), crate::BoxError> {
        self.inner.close()
    }
}

/// A writer that only reads its records. [`ByRef`] makes it a [`SinkWriter`]
/// that writes each batch where it is, with or without event times.
pub(crate) trait WriteRefs<T>: 'static {
    /// Writes `records`, in order.
    fn write_refs<'a>(
        &mut self,
        records: impl Iterator<Item = &'a T>,
    ) -> Result<(), crate::BoxError>
    where
        T: 'a;

    /// Flushes and closes, once no more records will come.
    fn close(&mut self) -> Result<(), crate::BoxError> {
        Ok(())
    }
}

/// The [`SinkWriter`] of a [`WriteRefs`] writer.
pub(crate) struct ByRef<W>(pub(crate) W);

impl<T: 'static, W: WriteRefs<T>> SinkWriter<T> for ByRef<W> {
    fn write(&mut self, batch: &mut Vec<T>) -> Result<(), crate::BoxError> {
        let written = self.0.write_refs(batch.iter());
        batch.clear();
        written
    }

    fn write_timed(
        &mut self,
        batch: &mut Vec<(Time, T)>,
        _scratch: &mut Vec<T>,
    ) -> Result<(), crate::BoxError> {
        let written = self.0.write_refs(batch.iter().map(|(_, record)| record));
        batch.clear();
        written
    }

    fn close(&mut self) -> Result<(), crate::BoxError> {
        self.0.close()
    }
}

/// A writer for workers that receive no records of a [`Placement::WorkerZero`] sink.
struct Nowhere;

impl<T> SinkWriter<T> for Nowhere {
    fn write(&mut self, batch: &mut Vec<T>) -> Result<(), crate::BoxError> {
        batch.clear();
        Ok(())
    }
}

impl<T: Data> Stream<T> {
    /// Ends the stream in `sink` and returns the pipeline, ready to run.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::prelude::*;
    ///
    /// let job = Pipeline::new("p").source(Iter::new(vec![1])).sink(Stdout::jsonl());
    /// assert!(job.validate().is_ok());
    /// ```
    ///
    /// No stage can follow a sink: `sink` consumes the stream.
    ///
    /// ```compile_fail,E0599
    /// use weir::prelude::*;
    ///
    /// let job = Pipeline::new("p").source(Iter::new(vec![1])).sink(Stdout::jsonl());
    /// job.map(|x: i32| x + 1);
    /// ```
    pub fn sink<S: Sink<T>>(self, sink: S) -> Pipeline {
        let name = sink.describe();
        let node = self.pipeline.add_node("sink", name.clone(), &[self.at]);
        let up = self.upstream();
        let sink = Arc::new(sink);
        self.pipeline.set_build(
            node,
            Arc::new(move |ctx| {
                let mut s = up.build(ctx)?;
                let worker = ctx.scope.index();
                let sctx = SinkContext {
                    worker,
                    peers: ctx.scope.peers(),
                    name: name.clone(),
                };
                let writer: Box<dyn SinkWriter<T>> = match sink.placement() {
                    Placement::EveryWorker => sink.open(&sctx)?,
                    Placement::WorkerZero => {
                        // With one worker in all there is nothing to route.
                        if ctx.scope.peers() > 1 {
                            s = s.exchange(|_| 0);
                        }
                        if worker == 0 {
                            sink.open(&sctx)?
                        } else {
                            Box::new(Nowhere)
                        }
                    }
                };
                let s = ctx.probe_sink_input(node, s);
                let counter = ctx.metrics.counter(CounterKind::Sink, &name);
                let writer = WithoutTime {
                    inner: writer,
                    buffer: Vec::new(),
                    written: 0,
                };
                s.sink_into(&name, writer, counter, ctx.failure.clone());
                Ok(())
            }),
        );
        self.pipeline
    }
}
