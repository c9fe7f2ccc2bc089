//! Window result latency: a generator paced at `--rate` events/s whose
//! event time is the wall clock at generation, counted per key in tumbling
//! windows. With ascending event time a window's end passes the watermark
//! when the wall clock reaches it, so the latency of a result is the wall
//! clock when it reaches the sink minus its window's end. Prints p50, p99
//! and max over all results as one JSON line.
//!
//! ```sh
//! cargo build --release -p weir-benches
//! target/release/latency-bench --rate 200000 --seconds 20 --window-ms 1000 --keys 1000
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use clap::Parser;
use weir::prelude::*;
use weir::sources::{PartitionReader, ReadStatus, SourceContext};
use weir::{BoxError, SourceError};
use weir_benches::peak_rss_bytes;

/// Paced window latency.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// Events per second, over all partitions.
    #[arg(long, default_value_t = 200_000)]
    rate: u64,
    /// How long to generate.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Tumbling window length in ms.
    #[arg(long, default_value_t = 1_000)]
    window_ms: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 1_000)]
    keys: u64,
    /// Source partitions.
    #[arg(long, default_value_t = 4)]
    partitions: u64,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Events `(wall-clock ms, sequence number)`, released at `rate` per second.
struct Paced {
    rate: u64,
    total: u64,
    partitions: u64,
}

impl Source for Paced {
    type Item = (u64, u64);

    fn describe(&self) -> String {
        format!("paced({} events/s)", self.rate)
    }

    fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<(u64, u64)>>>, SourceError> {
        let start = Instant::now();
        Ok((ctx.worker() as u64..self.partitions)
            .step_by(ctx.peers())
            .map(|p| {
                Box::new(PacedReader {
                    next: p,
                    step: self.partitions,
                    total: self.total,
                    rate: self.rate,
                    start,
                }) as Box<dyn PartitionReader<(u64, u64)>>
            })
            .collect())
    }
}

struct PacedReader {
    next: u64,
    step: u64,
    total: u64,
    rate: u64,
    start: Instant,
}

impl PartitionReader<(u64, u64)> for PacedReader {
    fn read(&mut self, out: &mut Vec<(u64, u64)>, max: usize) -> Result<ReadStatus, BoxError> {
        // Events whose time has come: event i is due at i / rate seconds.
        let due = (self.start.elapsed().as_secs_f64() * self.rate as f64) as u64;
        let ts = now_micros() / 1_000;
        let mut n = 0;
        while self.next < self.total.min(due + 1) && n < max {
            out.push((ts, self.next));
            self.next += self.step;
            n += 1;
        }
        Ok(if self.next >= self.total {
            ReadStatus::Done
        } else if n == 0 {
            ReadStatus::Idle
        } else {
            ReadStatus::More
        })
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1_000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keys = args.keys.max(1);
    let latencies: Arc<Mutex<Vec<u64>>> = Arc::default();
    let l = Arc::clone(&latencies);
    let window_ms = args.window_ms;
    let started = Instant::now();
    Pipeline::new("paced-window")
        .source(Paced {
            rate: args.rate.max(1),
            total: args.rate * args.seconds,
            partitions: args.partitions.max(1),
        })
        .event_time(|e: &(u64, u64)| e.0, Watermark::ascending())
        .key_by(move |e| e.1.wrapping_mul(0x9E37_79B9_7F4A_7C15) % keys)
        .window(Tumbling::of(Duration::from_millis(window_ms)))
        .count()
        .sink(ForEach::new(move |r: &WindowResult<u64, u64>| {
            // Windows still open when the input ends fire at once: they
            // are not timed.
            if let Some(late) = now_micros().checked_sub(r.window_end * 1_000) {
                l.lock().expect("latencies").push(late);
            }
        }))
        .run(args.cluster.clone().quiet(true))
        .context("weir run failed")?;
    let seconds = started.elapsed().as_secs_f64();
    let mut all = std::mem::take(&mut *latencies.lock().expect("latencies"));
    ensure!(!all.is_empty(), "no window results");
    all.sort_unstable();
    println!(
        "{}",
        serde_json::json!({
            "bench": "latency",
            "rate": args.rate,
            "seconds": seconds,
            "achieved_rate": (args.rate * args.seconds) as f64 / seconds,
            "window_ms": window_ms,
            "keys": keys,
            "workers": args.cluster.total_workers(),
            "results": all.len(),
            "p50_ms": percentile(&all, 0.5),
            "p99_ms": percentile(&all, 0.99),
            "max_ms": percentile(&all, 1.0),
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}
