//! Throughput of a keyed count: generated events keyed by a hash of `i`
//! modulo `keys`, counted per key (an updating count, or with `--window` a
//! count per event-time window), through the weir DSL or a plain
//! single-threaded loop. Prints one JSON line per run.
//!
//! ```sh
//! cargo run --release -p weir-benches --bin pipeline-bench -- --impl weir --events 10000000 -w 2
//! cargo run --release -p weir-benches --bin pipeline-bench -- --impl loop --events 10000000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::{Parser, ValueEnum};
use rustc_hash::FxHashMap;
use weir::prelude::*;
use weir_benches::peak_rss_bytes;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Impl {
    /// The weir DSL: Generator -> key_by -> count -> Collect.
    Weir,
    /// A single-threaded loop over a hash map: the floor of any framework.
    Loop,
}

/// Keyed count micro-benchmark.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// Implementation to measure.
    #[arg(long = "impl", value_enum, default_value = "weir")]
    implementation: Impl,
    /// Events to generate.
    #[arg(long, default_value_t = 5_000_000)]
    events: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Count per key in event-time windows instead of an updating count
    /// (weir only): events are 1 ms apart in event time.
    #[arg(long, value_enum)]
    window: Option<WindowKind>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum WindowKind {
    /// Tumbling 10 s.
    Tumbling,
    /// Sliding 10 s every 2 s.
    Sliding,
    /// Sessions with a 5 s gap.
    Session,
}

fn event(i: u64) -> u64 {
    // A cheap mix so keys do not arrive in order.
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let keys = args.keys.max(1);
    let start = Instant::now();
    let distinct = match (args.implementation, args.window) {
        (Impl::Weir, Some(kind)) => {
            let spec = match kind {
                WindowKind::Tumbling => Tumbling::of(Duration::from_secs(10)),
                WindowKind::Sliding => {
                    Sliding::of(Duration::from_secs(10)).every(Duration::from_secs(2))
                }
                WindowKind::Session => Session::with_gap(Duration::from_secs(5)),
            };
            let results = Arc::new(AtomicU64::new(0));
            let r = Arc::clone(&results);
            Pipeline::new("window-count")
                .source(Generator::new(args.events, |i| i))
                .event_time(|i: &u64| *i, Watermark::bounded(Duration::from_millis(100)))
                .key_by(move |i: &u64| event(*i) % keys)
                .window(spec)
                .count()
                .sink(ForEach::new(move |_: &WindowResult<u64, u64>| {
                    r.fetch_add(1, Ordering::Relaxed);
                }))
                .run(args.cluster.clone().quiet(true))
                .context("weir run failed")?;
            results.load(Ordering::Relaxed) as usize
        }
        (Impl::Weir, None) => {
            let out = Collect::new();
            Pipeline::new("keyed-count")
                .source(Generator::new(args.events, event))
                .key_by(move |e: &u64| e % keys)
                .count()
                .sink(out.clone())
                .run(args.cluster.clone().quiet(true))
                .context("weir run failed")?;
            out.take().len()
        }
        (Impl::Loop, _) => {
            let mut counts: FxHashMap<u64, u64> = FxHashMap::default();
            for i in 0..args.events {
                *counts.entry(event(i) % keys).or_default() += 1;
            }
            counts.len()
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    if args.cluster.process() == 0 && args.window.is_none() {
        ensure!(
            distinct as u64 == keys.min(args.events),
            "expected {} keys, got {distinct}",
            keys.min(args.events)
        );
    }
    let workers = match args.implementation {
        Impl::Weir => args.cluster.total_workers(),
        Impl::Loop => 1,
    };
    println!(
        "{}",
        serde_json::json!({
            "bench": "keyed-count",
            "impl": format!("{:?}", args.implementation).to_lowercase(),
            "window": args.window.map(|w| format!("{w:?}").to_lowercase()),
            "events": args.events,
            "keys": keys,
            "results": distinct,
            "workers": workers,
            "seconds": seconds,
            "events_per_sec": args.events as f64 / seconds,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}
