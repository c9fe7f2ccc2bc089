//! Nexmark throughput of weir, hand-written timely and a plain loop.
//! Prints one JSON line per run.
//!
//! ```sh
//! cargo build --release -p weir-benches
//! target/release/nexmark-bench --query q5 --events 10000000 --impl weir -w 1
//! ```

use std::time::Instant;

use anyhow::ensure;
use clap::Parser;
use weir::{Checkpointing, Cluster};
use weir_benches::nexmark::{Impl, Query, by_weir, run};
use weir_benches::{Results, peak_rss_bytes};

/// Nexmark benchmark.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// The query.
    #[arg(long, value_enum)]
    query: Query,
    /// Implementation to measure.
    #[arg(long = "impl", value_enum, default_value = "weir")]
    implementation: Impl,
    /// Nexmark events to generate (persons, auctions and bids together).
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    /// Also prints every result, sorted, one per line before the JSON line
    /// (to compare implementations by hand).
    #[arg(long)]
    print_results: bool,
    /// `--impl weir` only: take checkpoints about every this many
    /// milliseconds, into `target/nexmark-bench/checkpoints` (emptied first).
    #[arg(long)]
    checkpoint_ms: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let results = if args.print_results {
        Results::keeping()
    } else {
        Results::counting()
    };
    let start = Instant::now();
    let mut checkpoints = None;
    let out = match args.checkpoint_ms {
        Some(ms) => {
            ensure!(
                args.implementation == Impl::Weir,
                "--checkpoint-ms is for --impl weir"
            );
            let dir = std::path::Path::new("target/nexmark-bench/checkpoints");
            let _ = std::fs::remove_dir_all(dir);
            let every = Checkpointing::to(dir).every(std::time::Duration::from_millis(ms));
            let summary =
                by_weir::run_checkpointed(args.query, args.events, &args.cluster, &results, every)?;
            checkpoints = summary.checkpoints;
            results.finish()
        }
        None => run(
            args.implementation,
            args.query,
            args.events,
            &args.cluster,
            &results,
        )?,
    };
    let seconds = start.elapsed().as_secs_f64();
    let checkpoints = checkpoints.unwrap_or_default();
    let (last_bytes, last_commit_ms) = checkpoints.last.map_or((0, 0.0), |(_, bytes, took)| {
        (bytes, took.as_secs_f64() * 1e3)
    });
    ensure!(
        args.cluster.processes() == 1 || args.implementation != Impl::Loop,
        "--impl loop runs in one process"
    );
    for row in &out.rows {
        println!("{row}");
    }
    let workers = match args.implementation {
        Impl::Loop => 1,
        _ => args.cluster.total_workers(),
    };
    println!(
        "{}",
        serde_json::json!({
            "bench": "nexmark",
            "query": format!("{:?}", args.query).to_lowercase(),
            "impl": format!("{:?}", args.implementation).to_lowercase(),
            "events": args.events,
            "workers": workers,
            "results": out.count,
            "seconds": seconds,
            "events_per_sec": args.events as f64 / seconds,
            "peak_rss_bytes": peak_rss_bytes(),
            "checkpoint_ms": args.checkpoint_ms,
            "checkpoints": checkpoints.taken,
            "last_checkpoint_bytes": last_bytes,
            "last_commit_ms": last_commit_ms,
        })
    );
    Ok(())
}
