//! The queries as written in the weir DSL (`weir_examples::nexmark`), with a
//! sink that counts (and optionally keeps) the results.

use std::fmt::Debug;

use anyhow::Context;
use weir::sinks::SinkContext;
use weir::{BoxError, Checkpointing, Cluster, Sink, SinkError};
use weir_examples::nexmark;

use super::Query;
use crate::Results;

/// A weir sink into [`Results`].
pub struct ResultsSink(pub Results);

/// A [`ResultsSink`] that takes part in checkpoints, to measure their cost:
/// it counts results as they come (it does not hold them back until a
/// checkpoint completes, so it is not exactly-once) and stages nothing.
pub struct CheckpointedResults(pub Results, pub std::path::PathBuf);

struct Writer(Results);

impl<T: Debug + 'static> weir::sinks::SinkWriter<T> for Writer {
    fn write(&mut self, batch: &mut Vec<T>) -> Result<(), BoxError> {
        self.0.add(batch);
        batch.clear();
        Ok(())
    }

    fn write_timed(&mut self, batch: &mut Vec<(u64, T)>, _: &mut Vec<T>) -> Result<(), BoxError> {
        self.0.add_each(batch.len(), batch.iter().map(|(_, r)| r));
        batch.clear();
        Ok(())
    }

    fn checkpoint(&mut self, _at: Option<u64>) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<T: weir::Data + Debug> Sink<T> for CheckpointedResults {
    fn describe(&self) -> String {
        "results".into()
    }

    fn open(&self, _: &SinkContext) -> Result<Box<dyn weir::sinks::SinkWriter<T>>, SinkError> {
        Ok(Box::new(Writer(self.0.clone())))
    }

    fn staged_output(&self, worker: usize) -> Option<std::path::PathBuf> {
        Some(self.1.join(format!("results-{worker}")))
    }
}

impl<T: weir::Data + Debug> Sink<T> for ResultsSink {
    fn describe(&self) -> String {
        "results".into()
    }

    fn open(&self, _: &SinkContext) -> Result<Box<dyn weir::sinks::SinkWriter<T>>, SinkError> {
        Ok(Box::new(Writer(self.0.clone())))
    }
}

/// Runs `query` on `cluster`.
///
/// # Errors
///
/// The job failed.
pub fn run(query: Query, events: u64, cluster: &Cluster, results: &Results) -> anyhow::Result<()> {
    let job = pipeline(query, events, ResultsSink(results.clone()));
    job.run(cluster.clone().quiet(true))
        .with_context(|| format!("weir {query:?} failed"))?;
    Ok(())
}

/// Runs `query` on `cluster` taking checkpoints as `checkpoints` says;
/// returns the run summary (with the checkpoints' figures).
///
/// # Errors
///
/// The job failed.
pub fn run_checkpointed(
    query: Query,
    events: u64,
    cluster: &Cluster,
    results: &Results,
    checkpoints: Checkpointing,
) -> anyhow::Result<weir::RunSummary> {
    let sink = CheckpointedResults(results.clone(), checkpoints.dir().to_path_buf());
    let job = pipeline(query, events, sink).checkpoint(checkpoints);
    job.run(cluster.clone().quiet(true))
        .with_context(|| format!("weir {query:?} failed"))
}

/// The pipeline of `query` into `sink`.
fn pipeline<S>(query: Query, events: u64, sink: S) -> weir::Pipeline
where
    S: Sink<weir_examples::nexmark::Q1>
        + Sink<weir::sources::Bid>
        + Sink<weir_examples::nexmark::Q2>
        + Sink<weir_examples::nexmark::Q5>
        + Sink<weir_examples::nexmark::Q7>
        + Sink<weir_examples::nexmark::Q8>,
{
    match query {
        Query::Q0 => nexmark::q0(events, sink),
        Query::Q1 => nexmark::q1(events, sink),
        Query::Q2 => nexmark::q2(events, sink),
        Query::Q5 => nexmark::q5(events, sink),
        Query::Q7 => nexmark::q7(events, sink),
        Query::Q8 => nexmark::q8(events, sink),
    }
}
