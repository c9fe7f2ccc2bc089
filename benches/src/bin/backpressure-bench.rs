//! Memory under a fast source and a slow sink: an endless generator, all
//! keyed to one worker (a hot key: the other workers' sources feed a
//! consumer slower than they are), into a sink that sleeps `--sleep-us` per
//! `--per-sleep` records, for `--seconds`; then the job is stopped through
//! its `StopHandle` (drained). Prints one JSON line per second (resident
//! set, records read and written, records in flight between them) and a
//! last line with the resident set at the start and end and its peak: with
//! backpressure it stays flat while the sink is slow.
//!
//! ```sh
//! cargo build --release -p weir-benches
//! target/release/backpressure-bench -w 2 --seconds 60
//! target/release/backpressure-bench -w 2 --seconds 60 --event-time
//! target/release/backpressure-bench -w 2 --seconds 60 --event-time --unaligned
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use weir::prelude::*;
use weir::sources::Mapped;
use weir_benches::{peak_rss_bytes, rss_bytes};

/// A fast source into a slow sink, for a while.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// How long to run before stopping the job.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Event time on the source (aligned); otherwise none (paced).
    #[arg(long)]
    event_time: bool,
    /// With `--event-time`: no alignment (`Watermark::unaligned`), so
    /// nothing holds the source back: the contrast.
    #[arg(long, requires = "event_time")]
    unaligned: bool,
    /// The sink sleeps this many microseconds ...
    #[arg(long, default_value_t = 1_000)]
    sleep_us: u64,
    /// ... every this many records.
    #[arg(long, default_value_t = 512)]
    per_sleep: u64,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = args.cluster.clone().quiet(true);
    let read = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let counting = Arc::clone(&read);
    let source = Mapped::new(Generator::new(u64::MAX / 2, |i| i), move |i: u64| {
        counting.fetch_add(1, Ordering::Relaxed);
        i
    });
    let p = Pipeline::new("backpressure");
    let mut stream = p.source(source);
    if args.event_time {
        let mut watermark = Watermark::ascending();
        if args.unaligned {
            watermark = watermark.unaligned();
        }
        stream = stream.event_time(|i: &u64| *i, watermark);
    }
    let (w, per_sleep, sleep) = (
        Arc::clone(&written),
        args.per_sleep.max(1),
        Duration::from_micros(args.sleep_us),
    );
    let job = stream
        .key_by(|_: &u64| 0u8)
        .values()
        .sink(ForEach::new(move |_: &u64| {
            if w.fetch_add(1, Ordering::Relaxed).is_multiple_of(per_sleep) {
                std::thread::sleep(sleep);
            }
        }));

    let stop = cluster.stop_handle();
    let done = Arc::new(AtomicBool::new(false));
    let (r, wr, d) = (Arc::clone(&read), Arc::clone(&written), Arc::clone(&done));
    let seconds = args.seconds;
    let watcher = std::thread::spawn(move || {
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut most_in_flight = 0;
        let mut second = 1;
        while !d.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
            let (read, written) = (r.load(Ordering::Relaxed), wr.load(Ordering::Relaxed));
            most_in_flight = most_in_flight.max(read.saturating_sub(written));
            if started.elapsed() >= Duration::from_secs(second) {
                let rss = rss_bytes();
                samples.push(rss);
                println!(
                    "{{\"second\":{second},\"rss_mb\":{:.1},\"read\":{read},\"written\":{written},\"in_flight\":{}}}",
                    mb(rss),
                    read.saturating_sub(written)
                );
                if second == seconds {
                    stop.request();
                }
                second += 1;
            }
        }
        (samples, most_in_flight)
    });
    let result = job.run(cluster);
    done.store(true, Ordering::Relaxed);
    let (samples, most_in_flight) = watcher.join().expect("the watcher thread");
    match result {
        Err(RunError::Stopped { .. }) => {}
        Err(e) => return Err(e.into()),
        Ok(_) => anyhow::bail!("the endless job ended by itself"),
    }
    let first = samples.first().copied().unwrap_or(0);
    let last = samples.last().copied().unwrap_or(0);
    println!(
        "{{\"workers\":{},\"event_time\":{},\"unaligned\":{},\"seconds\":{seconds},\"read\":{},\"written\":{},\"most_in_flight\":{most_in_flight},\"rss_mb_at_1s\":{:.1},\"rss_mb_at_end\":{:.1},\"peak_rss_mb\":{:.1}}}",
        args.cluster.total_workers(),
        args.event_time,
        args.unaligned,
        read.load(Ordering::Relaxed),
        written.load(Ordering::Relaxed),
        mb(first),
        mb(last),
        mb(peak_rss_bytes())
    );
    Ok(())
}
