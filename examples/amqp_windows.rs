//! Clicks from a RabbitMQ queue, counted per user in tumbling event-time
//! windows, published as JSON to an exchange (`--to-queue`: through the
//! default exchange to that queue), or written as JSON lines to a file or
//! stdout. With `--checkpoints DIR` the job takes checkpoints there and
//! acknowledges a message only once a checkpoint holds it: killed and
//! started again, it loses nothing, and the redeliveries of messages the
//! checkpoint counted are dropped (the producer sets message ids), so its
//! file output is exactly once. `--bounded` reads what the queue holds at
//! the start and then finishes.
//!
//! ```sh
//! cargo run --release --example amqp_windows -- \
//!     --url amqp://guest:guest@127.0.0.1:5672/%2f --queue clicks --to-queue click-counts -w 2
//! ```

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::prelude::*;
use weir::sinks::AmqpSink;
use weir::sources::{Amqp, AmqpRecord};
use weir::Checkpointing;

/// Counts clicks from a RabbitMQ queue per user and window.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// The broker, `amqp://user:password@host:port/vhost` (or `amqps://`).
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    url: String,
    /// The queue to read.
    #[arg(long, default_value = "clicks")]
    queue: String,
    /// Consumers of the queue (source partitions, spread over the workers).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Window size in milliseconds.
    #[arg(long, default_value_t = 1000)]
    window_ms: u64,
    /// Read what the queue holds at the start, then finish.
    #[arg(long)]
    bounded: bool,
    /// Take checkpoints in this directory (every second).
    #[arg(long)]
    checkpoints: Option<PathBuf>,
    /// Write results to this JSON lines file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Publish results to this queue (through the default exchange) instead.
    #[arg(long, conflicts_with = "output")]
    to_queue: Option<String>,
}

/// A click, as `amqp_produce` writes it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Click {
    user: String,
    page: u32,
    ts: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut source = Amqp::new(&args.url, &args.queue)
        .json::<Click>()
        .consumers(args.consumers);
    if args.bounded {
        source = source.bounded();
    }
    let p = Pipeline::new("amqp-windows");
    let counts = p
        .source(source)
        .event_time(
            |r: &AmqpRecord<Click>| r.value.ts,
            Watermark::bounded(Duration::from_millis(500)).idle_timeout(Duration::from_secs(2)),
        )
        .key_by(|r: &AmqpRecord<Click>| r.value.user.clone())
        .window(Tumbling::of(Duration::from_millis(args.window_ms.max(1))))
        .count();
    let job = match (&args.output, &args.to_queue) {
        (_, Some(queue)) => counts.sink(AmqpSink::new(&args.url, "").routing_key(queue)),
        (Some(path), None) => counts.sink(JsonLinesFile::to(path)),
        (None, None) => counts.sink(Stdout::jsonl()),
    };
    let job = match &args.checkpoints {
        Some(dir) => job.checkpoint(Checkpointing::to(dir)),
        None => job,
    };
    if !args.cluster.is_quiet() {
        eprint!("{}", job.explain());
    }
    job.run(args.cluster).context("amqp_windows failed")?;
    Ok(())
}
