//! Keyed window count micro-benchmark: generated events (100 per ms of
//! event time, keys spread by a hash of the event number), counted per key
//! in tumbling (10 s), sliding (10 s every 2 s) or session (`--gap-ms`,
//! 5 s by default) windows. Prints one JSON line per run.
//!
//! `--sweep keys` runs 1e2 .. 1e6 keys and `--sweep events` runs `--events`
//! and 10× `--events` for each window kind, each run in a fresh process of
//! this binary so that its peak memory is its own.
//!
//! ```sh
//! cargo build --release -p weir-benches
//! target/release/window-bench --window tumbling --keys 10000 --events 20000000
//! target/release/window-bench --sweep keys --events 20000000
//! target/release/window-bench --sweep events --events 10000000 --keys 10000
//! target/release/window-bench --window session --checkpoint-ms 1000
//! ```
//!
//! `--checkpoint-ms N` takes checkpoints about every `N` ms (into
//! `target/window-bench/checkpoints`, emptied first); the results sink takes
//! part in them but stages nothing (it only counts), so what is measured is
//! the cost of saving the window state and the sources' positions.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::{Parser, ValueEnum};
use weir::Checkpointing;
use weir::prelude::*;
use weir_benches::peak_rss_bytes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// Tumbling 10 s.
    Tumbling,
    /// Sliding 10 s every 2 s.
    Sliding,
    /// Sessions per key with `--gap-ms`.
    Session,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Sweep {
    /// 1e2, 1e3, ..., 1e6 keys, every window kind.
    Keys,
    /// `--events` and 10 × `--events`, every window kind.
    Events,
}

/// Keyed window count.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// Window kind.
    #[arg(long, value_enum, default_value = "tumbling")]
    window: Kind,
    /// Events to generate.
    #[arg(long, default_value_t = 20_000_000)]
    events: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Session gap in ms (events of one key are `keys / 100` ms apart on
    /// average).
    #[arg(long, default_value_t = 5_000)]
    gap_ms: u64,
    /// Runs a series of configurations, each in a child process.
    #[arg(long, value_enum)]
    sweep: Option<Sweep>,
    /// Take checkpoints about every this many milliseconds; none if not
    /// given.
    #[arg(long)]
    checkpoint_ms: Option<u64>,
}

/// Counts window results and the events they count; with checkpoints it
/// takes part in them without staging anything (it is not exactly-once).
struct Counting {
    results: Arc<AtomicU64>,
    counted: Arc<AtomicU64>,
    staged: Option<std::path::PathBuf>,
}

impl weir::sinks::SinkWriter<WindowResult<u64, u64>> for Counting {
    fn write(&mut self, batch: &mut Vec<WindowResult<u64, u64>>) -> Result<(), weir::BoxError> {
        self.results
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let sum: u64 = batch.drain(..).map(|w| w.value).sum();
        self.counted.fetch_add(sum, Ordering::Relaxed);
        Ok(())
    }

    fn checkpoint(&mut self, _at: Option<u64>) -> Result<(), weir::BoxError> {
        Ok(())
    }
}

impl Sink<WindowResult<u64, u64>> for Counting {
    fn describe(&self) -> String {
        "counts".into()
    }

    fn open(
        &self,
        _: &weir::sinks::SinkContext,
    ) -> Result<Box<dyn weir::sinks::SinkWriter<WindowResult<u64, u64>>>, weir::SinkError> {
        Ok(Box::new(Counting {
            results: Arc::clone(&self.results),
            counted: Arc::clone(&self.counted),
            staged: None,
        }))
    }

    fn staged_output(&self, worker: usize) -> Option<std::path::PathBuf> {
        let dir = self.staged.as_ref()?;
        Some(dir.join(format!("counts-{worker}")))
    }
}

/// Events per millisecond of event time.
const PER_MS: u64 = 100;

fn key(i: u64, keys: u64) -> u64 {
    // A cheap mix so keys do not arrive in order.
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % keys
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(sweep) = args.sweep {
        return run_sweep(sweep, &args);
    }
    let keys = args.keys.max(1);
    let spec = match args.window {
        Kind::Tumbling => Tumbling::of(Duration::from_secs(10)),
        Kind::Sliding => Sliding::of(Duration::from_secs(10)).every(Duration::from_secs(2)),
        Kind::Session => Session::with_gap(Duration::from_millis(args.gap_ms)),
    };
    let results = Arc::new(AtomicU64::new(0));
    let counted = Arc::new(AtomicU64::new(0));
    let dir = std::path::Path::new("target/window-bench");
    let checkpoints = args.checkpoint_ms.map(|ms| {
        let _ = std::fs::remove_dir_all(dir);
        Checkpointing::to(dir.join("checkpoints")).every(Duration::from_millis(ms))
    });
    let sink = Counting {
        results: Arc::clone(&results),
        counted: Arc::clone(&counted),
        staged: checkpoints.as_ref().map(|_| dir.to_path_buf()),
    };
    let start = Instant::now();
    let job = Pipeline::new("window-count")
        .source(Generator::new(args.events, |i| i))
        .event_time(
            |i: &u64| i / PER_MS,
            Watermark::bounded(Duration::from_millis(100)),
        )
        .key_by(move |i: &u64| key(*i, keys))
        .window(spec)
        .count()
        .sink(sink);
    let job = match checkpoints.clone() {
        Some(c) => job.checkpoint(c),
        None => job,
    };
    let summary = job
        .run(args.cluster.clone().quiet(true))
        .context("weir run failed")?;
    let seconds = start.elapsed().as_secs_f64();
    if args.cluster.processes() == 1 {
        // Every event is counted once per window holding it: sliding
        // windows start at 0, so the first 8 s of events are in fewer than 5.
        let expected: u64 = match args.window {
            Kind::Sliding => (0..args.events)
                .map(|i| (i / PER_MS / 2_000).min(4) + 1)
                .sum(),
            _ => args.events,
        };
        ensure!(
            counted.load(Ordering::Relaxed) == expected,
            "counted {} events, expected {expected}",
            counted.load(Ordering::Relaxed),
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "window",
            "window": format!("{:?}", args.window).to_lowercase(),
            "events": args.events,
            "keys": keys,
            "results": results.load(Ordering::Relaxed),
            "workers": args.cluster.total_workers(),
            "seconds": seconds,
            "events_per_sec": args.events as f64 / seconds,
            "peak_rss_bytes": peak_rss_bytes(),
            "checkpoint_ms": args.checkpoint_ms,
            "checkpoints": summary.checkpoints.as_ref().map_or(0, |c| c.taken),
            "last_checkpoint_bytes": summary
                .checkpoints
                .as_ref()
                .and_then(|c| c.last)
                .map_or(0, |(_, bytes, _)| bytes),
        })
    );
    Ok(())
}

fn run_sweep(sweep: Sweep, args: &Args) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this binary")?;
    let mut runs: Vec<(Kind, u64, u64)> = Vec::new();
    for kind in [Kind::Tumbling, Kind::Sliding, Kind::Session] {
        match sweep {
            Sweep::Keys => {
                for keys in [100, 1_000, 10_000, 100_000, 1_000_000] {
                    runs.push((kind, keys, args.events));
                }
            }
            Sweep::Events => {
                for events in [args.events, 10 * args.events] {
                    runs.push((kind, args.keys, events));
                }
            }
        }
    }
    for (kind, keys, events) in runs {
        let status = Command::new(&exe)
            .arg("--window")
            .arg(format!("{kind:?}").to_lowercase())
            .arg("--keys")
            .arg(keys.to_string())
            .arg("--events")
            .arg(events.to_string())
            .arg("--gap-ms")
            .arg(args.gap_ms.to_string())
            .arg("-w")
            .arg(args.cluster.workers().to_string())
            .status()
            .context("cannot run a child benchmark")?;
        ensure!(
            status.success(),
            "{kind:?} with {keys} keys failed: {status}"
        );
    }
    Ok(())
}
