//! What the queue benches (`kafka-bench`, `amqp-bench`) share: their
//! records, their job and its check.

use std::io::BufRead;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::aggregate::Sum;
use weir::prelude::*;

/// A record of the queue benches: `{"k":..,"ts":..,"v":1}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    /// The key, `i % keys`.
    pub k: u64,
    /// The event time, 2024-01-01 plus `i` milliseconds.
    pub ts: u64,
    /// Always 1, so that the sums add up to the records read.
    pub v: u64,
}

/// Record `i` of a bench over `keys` keys, as the JSON the benches produce.
///
/// ```
/// assert_eq!(weir_benches::queues::row_json(1001, 1000), r#"{"k":1,"ts":1704067201001,"v":1}"#);
/// ```
pub fn row_json(i: u64, keys: u64) -> String {
    format!(
        r#"{{"k":{},"ts":{},"v":1}}"#,
        i % keys.max(1),
        1_704_067_200_000 + i
    )
}

/// The benches' job on `records` (a source stream of `R` with a [`Row`]
/// inside, reached by `row`): event time `ts`, key `k`, tumbling 1 s
/// `sum(v)`, JSON lines into `out`.
pub fn window_sums<R: weir::Data>(records: Stream<R>, row: fn(&R) -> &Row, out: &Path) -> Pipeline {
    sums(records, row).sink(JsonLinesFile::to(out))
}

/// The keyed tumbling-window sums of [`window_sums`], for a sink of one's
/// own.
pub fn sums<R: weir::Data>(
    records: Stream<R>,
    row: fn(&R) -> &Row,
) -> Stream<WindowResult<u64, u64>> {
    records
        .event_time(
            move |r: &R| row(r).ts,
            Watermark::bounded(Duration::from_millis(0)),
        )
        .key_by(move |r: &R| row(r).k)
        .window(Tumbling::of(Duration::from_secs(1)))
        .aggregate(Sum::of(move |r: &R| row(r).v))
}

/// Checks that the window sums in `out` add up to `read`, the records
/// the job read.
///
/// # Errors
///
/// `out` cannot be read, or the sums differ.
pub fn check_sums(out: &Path, read: u64) -> anyhow::Result<()> {
    let mut sum = 0;
    for line in std::io::BufReader::new(std::fs::File::open(out)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        sum += v["value"].as_u64().unwrap_or(0);
    }
    anyhow::ensure!(sum == read, "the window sums add up to {sum}, not {read}");
    Ok(())
}
