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

use clap::Parser;
use weir::prelude::*;
use weir::sinks::AmqpSink;
use weir::sources::{Amqp, AmqpRecord};
use weir_examples::queue_clicks::{Click, counts_per_user, run};

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

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut source = Amqp::new(&args.url, &args.queue)
        .json::<Click>()
        .consumers(args.consumers);
    if args.bounded {
        source = source.bounded();
    }
    let p = Pipeline::new("amqp-windows");
    let window = Duration::from_millis(args.window_ms);
    let counts = counts_per_user(p.source(source), |r: &AmqpRecord<Click>| &r.value, window);
    let job = match (&args.output, &args.to_queue) {
        (_, Some(queue)) => counts.sink(AmqpSink::new(&args.url, "").routing_key(queue)),
        (Some(path), None) => counts.sink(JsonLinesFile::to(path)),
        (None, None) => counts.sink(Stdout::jsonl()),
    };
    run(
        job,
        args.checkpoints.as_deref(),
        args.cluster,
        "amqp_windows",
    )
}
