//! What `kafka_windows` and `amqp_windows` share: the clicks their
//! producers write, the per-user window count over them, and how the job
//! ends up run.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use weir::Checkpointing;
use weir::prelude::*;

/// A click, as `kafka_produce` and `amqp_produce` write it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Click {
    /// The user, `u17`.
    pub user: String,
    /// The page.
    pub page: u32,
    /// When, in milliseconds since the epoch (up to 500 ms out of order).
    pub ts: u64,
}

/// `records` (a source stream of `R` with a [`Click`] inside, reached by
/// `click`) counted per user in tumbling windows of `window` in event time;
/// a partition idle for 2 s no longer holds the watermark back.
pub fn counts_per_user<R: weir::Data>(
    records: Stream<R>,
    click: fn(&R) -> &Click,
    window: Duration,
) -> Stream<WindowResult<String, u64>> {
    records
        .event_time(
            move |r: &R| click(r).ts,
            Watermark::bounded(Duration::from_millis(500)).idle_timeout(Duration::from_secs(2)),
        )
        .key_by(move |r: &R| click(r).user.clone())
        .window(Tumbling::of(window.max(Duration::from_millis(1))))
        .count()
}

/// Runs `job` on `cluster`, with checkpoints in `checkpoints` if given,
/// printing its plan first unless the cluster is quiet.
///
/// # Errors
///
/// The job failed; the error names `name`.
pub fn run(
    job: Pipeline,
    checkpoints: Option<&Path>,
    cluster: Cluster,
    name: &str,
) -> anyhow::Result<()> {
    let job = match checkpoints {
        Some(dir) => job.checkpoint(Checkpointing::to(dir)),
        None => job,
    };
    if !cluster.is_quiet() {
        eprint!("{}", job.explain());
    }
    job.run(cluster).with_context(|| format!("{name} failed"))?;
    Ok(())
}
