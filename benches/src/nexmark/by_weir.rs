//! The queries as written in the weir DSL (`weir_examples::nexmark`), with a
//! sink that counts (and optionally keeps) the results.

use std::fmt::Debug;

use anyhow::Context;
use weir::sinks::SinkContext;
use weir::{BoxError, Cluster, Sink, SinkError};
use weir_examples::nexmark;

use super::Query;
use crate::Results;

/// A weir sink into [`Results`].
pub struct ResultsSink(pub Results);

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
    let sink = ResultsSink(results.clone());
    let job = match query {
        Query::Q0 => nexmark::q0(events, sink),
        Query::Q1 => nexmark::q1(events, sink),
        Query::Q2 => nexmark::q2(events, sink),
        Query::Q5 => nexmark::q5(events, sink),
        Query::Q7 => nexmark::q7(events, sink),
        Query::Q8 => nexmark::q8(events, sink),
    };
    job.run(cluster.clone().quiet(true))
        .with_context(|| format!("weir {query:?} failed"))?;
    Ok(())
}
